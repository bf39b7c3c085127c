package netutils.transport.tcp;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.Objects;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
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
 * ({@link #accept}), plus {@link #serve}, which runs every connection on its own thread (by default a platform
 * thread for each of the first {@value TcpServerOptions#DEFAULT_PLATFORM_THREADS} connections at a time and a
 * virtual thread for the others; see {@link TcpServerOptions.Builder#connectionThreads}).
 *
 * <pre>{@code
 * try (TcpServer server = TcpServer.bind(5000)) {
 *     server.serve(ConnectionHandler.ofRequests(request -> process(request)));
 *     server.awaitClose();
 * }
 * }</pre>
 *
 * <p>A connection that fails (bad frames, a peer that vanishes, a handler that throws) is closed alone; the
 * server and its other connections go on. When {@link TcpServerOptions#maxConnections()} connections are open, a
 * new one takes the place of the one idle the longest (if one has been idle for at least a second); otherwise it
 * is told {@code SERVER_BUSY} and closed, as are connections over
 * {@link TcpServerOptions#maxConnectionsPerAddress()} from one address. {@link #close()} stops accepting, lets
 * the messages that have arrived be answered within {@link TcpServerOptions#shutdownGrace()}, then closes what
 * is left.
 *
 * <p>{@link #bind(int)} listens on the loopback address only, the safe default for a port that speaks an
 * unauthenticated protocol; to be reachable from other machines, bind an explicit address, e.g.
 * {@code TcpServer.bind(new InetSocketAddress(port), options)} for all interfaces.
 */
public final class TcpServer implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(TcpServer.class.getName());
    /** How often a draining connection's reader checks for the end of the grace period. */

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
    private final Map<InetAddress, Integer> perAddress = new ConcurrentHashMap<>();
    /** Evicted connections whose slot went to the newcomer that evicted them. */
    private final Set<TcpConnection> slotHandedOver = ConcurrentHashMap.newKeySet();
    private final TcpOptions connectionOptions;
    private volatile Thread acceptor;
    private volatile boolean closing;
    /** A full server evicts a connection only if it has been idle at least this long. */
    private static final long EVICTABLE_IDLE_NANOS = TimeUnit.SECONDS.toNanos(1);

    private TcpServer(ServerSocketChannel channel, TcpServerOptions options) throws IOException {
        this.channel = channel;
        this.options = options;
        this.budget = new ByteBudget(options.maxBytesInFlight(), options.connection().readTimeout());
        this.connectionSlots = new Semaphore(options.maxConnections());
        this.address = (InetSocketAddress) channel.getLocalAddress();
        // Server connections close after the server's idle timeout; TcpOptions.idleTimeout is the clients'.
        this.connectionOptions = options.connection().toBuilder().idleTimeout(options.idleTimeout()).build();
    }

    /**
     * Listens on {@code port} of the loopback address only, with default options; port 0 picks a free port.
     *
     * @param port the port to listen on, or 0 for any free one (see {@link #port()})
     * @return a server that listens but does not accept yet: call {@link #serve} or {@link #accept}
     * @throws java.net.BindException if the port is in use, naming it
     * @throws IOException if the socket cannot be opened otherwise
     */
    public static TcpServer bind(int port) throws IOException {
        return bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), TcpServerOptions.defaults());
    }

    /**
     * Listens on {@code address} with server defaults and {@code options} for each connection.
     *
     * @param address the address and port to listen on ({@code new InetSocketAddress(port)} is every interface)
     * @param options the options of each connection the server accepts
     * @return a server that listens but does not accept yet: call {@link #serve} or {@link #accept}
     * @throws java.net.BindException if the address is in use, naming it
     * @throws IOException if the socket cannot be opened otherwise
     */
    public static TcpServer bind(InetSocketAddress address, TcpOptions options) throws IOException {
        return bind(address, TcpServerOptions.of(options));
    }

    /**
     * Listens on {@code address} ({@code new InetSocketAddress(port)} is every interface).
     *
     * @param address the address and port to listen on
     * @param options the server's limits and threads, and the options of each connection
     * @return a server that listens but does not accept yet: call {@link #serve} or {@link #accept}
     * @throws java.net.BindException if the address is in use, naming it
     * @throws IOException if the socket cannot be opened otherwise
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

    /** {@return the address the server listens on (with the real port when 0 was asked)} */
    public InetSocketAddress address() {
        return address;
    }

    /** {@return the port the server listens on, the one picked when 0 was asked} */
    public int port() {
        return address.getPort();
    }

    /** {@return the options the server was bound with} */
    public TcpServerOptions options() {
        return options;
    }

    /** {@return how many connections are open now, served or {@linkplain #accept() accepted}} */
    public int connectionCount() {
        return live.size();
    }

    /**
     * Waits for the next connection and returns it; the caller serves and closes it. Connections accepted this
     * way share the server's bytes-in-flight budget but not its connection limit. With TLS the handshake runs
     * here, on the caller's thread (at most {@link TlsOptions#handshakeTimeout()} per client); a client that fails
     * it is logged and closed, and the wait goes on for the next one.
     *
     * @return the new connection, open
     * @throws ConnectionClosedException if the server is closed
     * @throws IOException if accepting fails otherwise
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
     * @param handler serves each connection; the server closes the connection when it returns or throws
     * @return this server
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

    /**
     * Blocks until the server is closed (from another thread, or by a shutdown hook). Returns at once if
     * {@link #serve} was never called.
     *
     * @throws InterruptedException if the waiting thread is interrupted
     */
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
        InetAddress remote = remoteAddress(socket);
        if (perAddress.merge(remote, 1, Integer::sum) > options.maxConnectionsPerAddress()) {
            forget(remote);
            turnAway(connection, "server on " + address + " already serves " + options.maxConnectionsPerAddress()
                    + " connections from " + remote.getHostAddress() + "; try again later");
            return;
        }
        try {
            if (!connectionSlots.tryAcquire() && !evictIdlest()) {
                turnAway(connection, "server on " + address + " already serves " + options.maxConnections()
                        + " connections; try again later");
                return;
            }
            serveTracked(connection, handler);
        } finally {
            forget(remote);
        }
    }

    /** One connection from {@code remote} fewer; addresses with none are dropped, so the map stays small. */
    private void forget(InetAddress remote) {
        perAddress.computeIfPresent(remote, (key, count) -> count == 1 ? null : count - 1);
    }

    private static InetAddress remoteAddress(SocketChannel socket) {
        try {
            return ((InetSocketAddress) socket.getRemoteAddress()).getAddress();
        } catch (IOException | RuntimeException e) {
            return InetAddress.getLoopbackAddress();
        }
    }

    private static void turnAway(TcpConnection connection, String why) {
        try (connection) {
            connection.send(Message.error("SERVER_BUSY", why));
        } catch (IOException | RuntimeException ignored) {
            // The peer is turned away either way.
        }
    }

    /**
     * The server is full: closes the connection that has been idle the longest, if one has been idle a while,
     * and gives its slot to the caller (not back to the pool, where another newcomer could take it first).
     *
     * @return whether the caller now holds the evicted connection's slot
     */
    private boolean evictIdlest() {
        while (true) {
            TcpConnection idlest = null;
            long longest = EVICTABLE_IDLE_NANOS;
            for (TcpConnection candidate : live) {
                long idle = candidate.idleNanos();
                if (idle >= longest && candidate.isOpen() && !slotHandedOver.contains(candidate)) {
                    idlest = candidate;
                    longest = idle;
                }
            }
            if (idlest == null) {
                return false;
            }
            if (slotHandedOver.add(idlest)) { // exactly one newcomer takes a given connection's slot
                String why = "evicted: idle for " + Duration.ofNanos(longest) + " while the server on " + address
                        + " is full";
                LOG.log(Level.DEBUG, () -> "closing a connection: " + why);
                turnAway(idlest, why);
                return true;
            }
        }
    }

    private void serveTracked(TcpConnection connection, ConnectionHandler handler) {
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
            if (!slotHandedOver.remove(connection)) {
                connectionSlots.release();
            }
        }
    }

    private TcpConnection wrap(SocketChannel socket) throws IOException {
        return TcpConnection.open(socket, connectionOptions, budget, () -> closing);
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
        for (TcpConnection connection : live) {
            connection.endIfWaiting(); // waits between frames end now; a frame under way is answered first
        }
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
