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
import netutils.api.wire.FrameDecoder;
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
 * {@code SERVER_BUSY} and closed.
 */
public final class TcpServer implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(TcpServer.class.getName());

    private final ServerSocketChannel channel;
    private final TcpOptions options;
    private final ByteBudget budget;
    private final FrameDecoder.Limits limits;
    private final Semaphore connectionSlots;
    private final Set<TcpConnection> live = ConcurrentHashMap.newKeySet();
    private final InetSocketAddress address;
    private volatile Thread acceptor;

    private TcpServer(ServerSocketChannel channel, TcpOptions options) throws IOException {
        this.channel = channel;
        this.options = options;
        this.budget = new ByteBudget(options.maxBytesInFlight(), options.readTimeout());
        this.limits = new FrameDecoder.Limits(options.maxFrameBytes(), options.maxEnvelopeBytes());
        this.connectionSlots = new Semaphore(options.maxConnections());
        this.address = (InetSocketAddress) channel.getLocalAddress();
    }

    /**
     * Listens on {@code port} of the loopback address with default options; port 0 picks a free port.
     *
     * @param port the port, or 0 for a free one
     * @return a server listening on the loopback address
     * @throws java.net.BindException if the port is in use, naming it
     * @throws IOException if listening fails otherwise
     */
    public static TcpServer bind(int port) throws IOException {
        return bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), TcpOptions.defaults());
    }

    /**
     * Listens on {@code address}.
     *
     * @param address the address and port to listen on (port 0 picks a free one)
     * @param options timeouts, limits and the server's settings
     * @return a listening server
     * @throws java.net.BindException if the address is in use, naming it
     */
    public static TcpServer bind(InetSocketAddress address, TcpOptions options) throws IOException {
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

    /**
     * The address the server listens on (with the real port when 0 was asked).
     *
     * @return the bound address
     */
    public InetSocketAddress address() {
        return address;
    }

    /**
     * The port the server listens on.
     *
     * @return the bound port
     */
    public int port() {
        return address.getPort();
    }

    /**
     * The options.
     *
     * @return the options the server was bound with
     */
    public TcpOptions options() {
        return options;
    }

    /**
     * How many connections are open now.
     *
     * @return the number of open connections
     */
    public int connectionCount() {
        return live.size();
    }

    /**
     * Waits for the next connection and returns it; the caller serves and closes it. Connections accepted this
     * way share the server's bytes-in-flight budget but not its connection limit.
     *
     * @return the connection
     * @throws ConnectionClosedException if the server is closed
     */
    public Connection accept() throws IOException {
        SocketChannel socket;
        try {
            socket = channel.accept();
        } catch (ClosedChannelException e) {
            throw new ConnectionClosedException("server on " + address + " is closed");
        }
        return track(wrap(socket));
    }

    /**
     * Serves every connection with {@code handler} on its own virtual thread, from now until {@link #close()}.
     * Returns at once.
     *
     * @param handler serves each connection
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
     * Blocks until the server is closed (from another thread, or by a shutdown hook).
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
            SocketChannel socket;
            try {
                socket = channel.accept();
            } catch (IOException e) {
                if (!channel.isOpen()) {
                    return;
                }
                // Typically out of file descriptors: pause rather than spin, so open connections can finish.
                LOG.log(Level.WARNING, "accept failed on " + address + " (" + e.getMessage() + "); retrying in 100 ms");
                try {
                    Thread.sleep(100);
                } catch (InterruptedException interrupted) {
                    return;
                }
                continue;
            }
            Thread thread = options.connectionThreads().newThread(() -> serveOne(socket, handler));
            if (thread == null) {
                LOG.log(Level.WARNING, "connectionThreads gave no thread; dropping a connection on " + address);
                closeQuietly(socket);
                continue;
            }
            thread.start();
        }
    }

    private void serveOne(SocketChannel socket, ConnectionHandler handler) {
        TcpConnection connection;
        try {
            connection = wrap(socket);
        } catch (IOException e) {
            closeQuietly(socket);
            return;
        }
        if (!connectionSlots.tryAcquire()) {
            try (connection) {
                connection.send(Message.error("SERVER_BUSY", "server on " + address + " already serves "
                        + options.maxConnections() + " connections; try again later"));
            } catch (IOException ignored) {
                // The peer is turned away either way.
            }
            return;
        }
        track(connection);
        try (connection) {
            handler.handle(connection);
        } catch (ConnectionClosedException e) {
            LOG.log(Level.DEBUG, () -> "connection " + connection.peer() + " closed: " + e.getMessage());
        } catch (IOException e) {
            // Bad frames, timeouts, vanished peers: the peer's doing, one line is enough.
            LOG.log(Level.INFO, () -> "dropped connection " + connection.peer() + ": " + e.getMessage());
        } catch (Exception e) {
            LOG.log(Level.WARNING, "handler failed on connection " + connection.peer() + "; connection closed", e);
        } finally {
            connectionSlots.release();
        }
    }

    private TcpConnection wrap(SocketChannel socket) throws IOException {
        return new TcpConnection(socket, options.serializer(), options.checksum(), options.readTimeout(),
                options.writeTimeout(), options.idleTimeout(), limits, budget);
    }

    private TcpConnection track(TcpConnection connection) {
        live.add(connection);
        connection.onClose(() -> live.remove(connection));
        if (!channel.isOpen()) { // closed while we accepted: don't leave it behind
            closeQuietly(connection);
        }
        return connection;
    }

    /** Stops accepting and closes every open connection. */
    @Override
    public void close() throws IOException {
        channel.close();
        for (Connection connection : live) {
            closeQuietly(connection);
        }
        live.clear();
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
