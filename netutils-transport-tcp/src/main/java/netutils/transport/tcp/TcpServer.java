package netutils.transport.tcp;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.ConnectionHandler;
import netutils.api.Message;
import java.time.Duration;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;
import netutils.transport.tcp.internal.ByteBudget;
import netutils.transport.tcp.internal.TcpConnection;

/**
 * A TCP server: the original module's {@code create_server()} ({@link #bind}) and {@code accept_connection()}
 * ({@link #accept}), plus {@link #serve}, which runs every connection on its own thread (virtual by default,
 * see {@link TcpOptions.Builder#connectionThreads}).
 *
 * <pre>{@code
 * try (TcpServer server = TcpServer.bind(5000)) {
 *     server.serve(ConnectionHandler.ofRequests(request -> process(request)));
 *     server.awaitClose();
 * }
 * }</pre>
 *
 * <p>A connection that fails (bad frames, a peer that vanishes, a handler that throws) is closed alone; the
 * server and its other connections go on. Connections over {@link TcpOptions#maxConnections()} are told
 * {@code SERVER_BUSY} and closed. {@link #close()} stops accepting, lets the messages that have arrived be
 * answered within {@link TcpServerOptions#shutdownGrace()}, then closes what is left.
 *
 * <p>{@link #bind(int)} listens on the loopback address only, the safe default for a port that speaks an
 * unauthenticated protocol; to be reachable from other machines, bind an explicit address, e.g.
 * {@code TcpServer.bind(new InetSocketAddress(port), options)} for all interfaces.
 */
public final class TcpServer implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(TcpServer.class.getName());
    /** How often a draining connection's reader checks for the end of the grace period. */
    private static final Duration DRAIN_POLL = Duration.ofMillis(200);

    private final ServerSocketChannel channel;
    private final TcpServerOptions options;
    private final ByteBudget budget;
    private final Semaphore connectionSlots;
    private final Set<TcpConnection> live = ConcurrentHashMap.newKeySet();
    private final InetSocketAddress address;
    private final AtomicInteger platformThreads = new AtomicInteger();
    private final ThreadFactory virtualThreads = Thread.ofVirtual().name("netutils-connection-", 0).factory();
    private final ThreadFactory platformThreadFactory = Thread.ofPlatform().daemon(true)
            .name("netutils-connection-p", 0).factory();
    private volatile Thread acceptor;
    private volatile boolean closing;

    private TcpServer(ServerSocketChannel channel, TcpServerOptions options) throws IOException {
        this.channel = channel;
        this.options = options;
        this.budget = new ByteBudget(options.maxBytesInFlight(), options.connection().readTimeout());
        this.connectionSlots = new Semaphore(options.maxConnections());
        this.address = (InetSocketAddress) channel.getLocalAddress();
    }

    /** Listens on {@code port} of the loopback address only, with default options; port 0 picks a free port. */
    public static TcpServer bind(int port) throws IOException {
        return bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), TcpServerOptions.defaults());
    }

    /** Listens on {@code address} with server defaults and {@code options} for each connection. */
    public static TcpServer bind(InetSocketAddress address, TcpOptions options) throws IOException {
        return bind(address, TcpServerOptions.of(options));
    }

    /**
     * Listens on {@code address} ({@code new InetSocketAddress(port)} is every interface).
     *
     * @throws java.net.BindException if the address is in use, naming it
     */
    public static TcpServer bind(InetSocketAddress address, TcpServerOptions options) throws IOException {
        Objects.requireNonNull(options, "options");
        ServerSocketChannel channel = ServerSocketChannel.open();
        try {
            channel.bind(address, 128);
        } catch (java.net.BindException e) {
            channel.close();
            java.net.BindException named = new java.net.BindException("cannot listen on " + address + ": " + e.getMessage());
            named.initCause(e);
            throw named;
        }
        return new TcpServer(channel, options);
    }

    /** The address the server listens on (with the real port when 0 was asked). */
    public InetSocketAddress address() {
        return address;
    }

    /** The port the server listens on. */
    public int port() {
        return address.getPort();
    }

    /** The options. */
    public TcpServerOptions options() {
        return options;
    }

    /** How many connections are open now. */
    public int connectionCount() {
        return live.size();
    }

    /**
     * Waits for the next connection and returns it; the caller serves and closes it. Connections accepted this
     * way share the server's bytes-in-flight budget but not its connection limit. With TLS the handshake runs
     * here, on the caller's thread (at most {@link TlsOptions#handshakeTimeout()} per client); a client that fails
     * it is logged and closed, and the wait goes on for the next one.
     *
     * @throws ConnectionClosedException if the server is closed
     */
    public Connection accept() throws IOException {
        while (true) {
            SocketChannel socket;
            try {
                socket = channel.accept();
            } catch (ClosedChannelException e) {
                throw new ConnectionClosedException("server on " + address + " is closed");
            }
            TcpConnection connection;
            try {
                connection = wrap(socket);
            } catch (IOException e) {
                // One client that fails its handshake (or resets at once) must not end the caller's accept loop.
                closeQuietly(socket);
                LOG.log(Level.INFO, () -> "refused a connection on " + address + ": " + e.getMessage());
                continue;
            }
            return track(connection);
        }
    }

    /**
     * Serves every connection with {@code handler} on its own thread, from now until {@link #close()}.
     * Returns at once.
     *
     * @throws IllegalStateException if already serving
     */
    public synchronized TcpServer serve(ConnectionHandler handler) {
        Objects.requireNonNull(handler, "handler");
        if (acceptor != null) {
            throw new IllegalStateException("server on " + address + " is already serving");
        }
        acceptor = Thread.ofVirtual().name("netutils-accept-" + port()).start(() -> acceptLoop(handler));
        return this;
    }

    /** Blocks until the server is closed (from another thread, or by a shutdown hook). */
    public void awaitClose() throws InterruptedException {
        Thread thread = acceptor;
        if (thread != null) {
            thread.join();
        }
    }

    private void acceptLoop(ConnectionHandler handler) {
        while (channel.isOpen()) {
            SocketChannel socket = null;
            try {
                socket = channel.accept();
                startServing(socket, handler);
            } catch (Throwable e) {
                if (!channel.isOpen()) {
                    return;
                }
                if (socket != null) {
                    closeQuietly(socket);
                }
                // Out of descriptors, memory or threads: pause rather than spin, so open connections can finish.
                LOG.log(Level.WARNING, "accepting a connection on " + address + " failed (" + e
                        + "); that connection was closed, retrying in 100 ms");
                try {
                    Thread.sleep(100);
                } catch (InterruptedException interrupted) {
                    return;
                }
            }
        }
    }

    private void startServing(SocketChannel socket, ConnectionHandler handler) {
        ThreadFactory factory = options.connectionThreads();
        boolean platform = false;
        if (factory == null) {
            platform = platformThreads.incrementAndGet() <= TcpServerOptions.DEFAULT_PLATFORM_THREADS;
            if (!platform) {
                platformThreads.decrementAndGet();
            }
            factory = platform ? platformThreadFactory : virtualThreads;
        }
        boolean countedPlatform = platform;
        Thread thread = factory.newThread(() -> {
            try {
                serveOne(socket, handler);
            } finally {
                if (countedPlatform) {
                    platformThreads.decrementAndGet();
                }
            }
        });
        if (thread == null) {
            if (countedPlatform) {
                platformThreads.decrementAndGet();
            }
            throw new IllegalStateException("connectionThreads gave no thread");
        }
        thread.start();
    }

    private void serveOne(SocketChannel socket, ConnectionHandler handler) {
        TcpConnection connection;
        try {
            connection = wrap(socket);
        } catch (Throwable e) {
            closeQuietly(socket);
            // A failed TLS handshake, mostly: its message names the client and the reason.
            LOG.log(Level.INFO, () -> "refused a connection on " + address + ": "
                    + (e instanceof IOException ? e.getMessage() : e.toString()));
            return;
        }
        if (!connectionSlots.tryAcquire()) {
            try (connection) {
                connection.send(Message.error("SERVER_BUSY", "server on " + address + " already serves "
                        + options.maxConnections() + " connections; try again later"));
            } catch (IOException | RuntimeException ignored) {
                // The peer is turned away either way.
            }
            return;
        }
        try (connection) {
            track(connection);
            handler.handle(connection);
        } catch (ConnectionClosedException e) {
            LOG.log(Level.DEBUG, () -> "connection " + connection.peer() + " closed: " + e.getMessage());
        } catch (IOException e) {
            // Bad frames, timeouts, vanished peers: the peer's doing, one line is enough.
            LOG.log(Level.INFO, () -> "dropped connection " + connection.peer() + ": " + e.getMessage());
        } catch (Throwable e) {
            // The handler's failure, or memory running out: this connection ends, the server goes on.
            LOG.log(Level.WARNING, "handler failed on connection " + connection.peer() + "; connection closed", e);
        } finally {
            connectionSlots.release();
        }
    }

    private TcpConnection wrap(SocketChannel socket) throws IOException {
        return TcpConnection.open(socket, options.connection(), budget, () -> closing, DRAIN_POLL);
    }

    private TcpConnection track(TcpConnection connection) {
        live.add(connection);
        connection.onClose(() -> live.remove(connection));
        if (!channel.isOpen() && !closing) { // closed while we accepted: don't leave it behind
            closeQuietly(connection);
        }
        return connection;
    }

    /**
     * Stops accepting, lets every connection answer the messages that have arrived (for at most
     * {@link TcpServerOptions#shutdownGrace()}), then closes every connection that is still open.
     */
    @Override
    public void close() throws IOException {
        closing = true;
        channel.close();
        long deadline = System.nanoTime() + options.shutdownGrace().toNanos();
        while (!live.isEmpty() && System.nanoTime() < deadline) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        for (Connection connection : live) {
            closeQuietly(connection);
        }
        live.clear();
        Thread thread = acceptor;
        if (thread != null) {
            try {
                thread.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private static void closeQuietly(AutoCloseable closeable) {
        try {
            closeable.close();
        } catch (Exception ignored) {
            // Shutting down: nothing useful to do with a failure to close.
        }
    }

    @Override
    public String toString() {
        return "TcpServer[" + address + ", " + connectionCount() + " connections]";
    }
}
