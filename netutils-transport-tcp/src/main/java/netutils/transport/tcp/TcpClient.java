package netutils.transport.tcp;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.nio.channels.SocketChannel;
import java.util.List;
import java.util.function.Consumer;
import netutils.api.Connection;
import netutils.transport.tcp.internal.TcpConnection;

/**
 * Opens TCP connections: the original module's {@code NetworkConnection(host, port).connect()}.
 *
 * <pre>{@code
 * try (Connection connection = TcpClient.connect("127.0.0.1", 5000)) {
 *     connection.send(Message.of(MessageType.KV_INDEX, Tensor.scalar(42)));
 *     Message reply = connection.receive();
 * }
 * }</pre>
 */
public final class TcpClient {
    private TcpClient() {
    }

    /**
     * Connects with the {@linkplain TcpOptions#defaults() default options}.
     *
     * @param host the server's host name or address
     * @param port the server's port
     * @return an open connection
     * @throws java.net.ConnectException if the peer cannot be reached, naming it
     * @throws IOException if the connection fails otherwise
     */
    public static Connection connect(String host, int port) throws IOException {
        return connect(host, port, TcpOptions.defaults());
    }

    /**
     * Connects to {@code host:port}.
     *
     * @param host the server's host name or address
     * @param port the server's port
     * @param options timeouts, limits and the serializer of sent frames
     * @return an open connection
     * @throws ConnectException if the peer cannot be reached, naming it
     * @throws IOException if the connection fails otherwise
     */
    public static Connection connect(String host, int port, TcpOptions options) throws IOException {
        return connect(new InetSocketAddress(host, port), options);
    }

    /**
     * Connects to {@code address}; see {@link #connect(String, int, TcpOptions)}.
     *
     * @param address the server's address
     * @param options timeouts, limits and the serializer of sent frames
     * @return an open connection
     * @throws java.net.ConnectException if the peer cannot be reached, naming it
     * @throws IOException if the connection fails otherwise
     */
    public static Connection connect(InetSocketAddress address, TcpOptions options) throws IOException {
        return openConnection(address, options);
    }

    /**
     * A connection that connects again when it loses its peer, to the next of {@code addresses} each time an
     * attempt fails, waiting as {@code policy} says between attempts. Calls in flight when it is lost fail with
     * a {@link netutils.api.ConnectionClosedException} (they are never resent: a call is not known to be
     * idempotent); calls made while reconnecting wait for the new connection up to their deadline. The
     * {@code listener} hears every {@link ConnectionState} change, on the thread that made it, so that session
     * state the peer keeps (a KV cache) can be set up again after {@link ConnectionState#CONNECTED}.
     *
     * @param addresses the servers to try, in order; the first that answers is used first
     * @param options timeouts, limits and the serializer of sent frames, for every connection made
     * @param policy how long to wait between attempts after a loss, and how many attempts to make
     * @param listener told of every state change, starting with {@link ConnectionState#CONNECTED} once the first
     *     connection is open
     * @return an open connection that reconnects by itself until it is closed or runs out of attempts
     * @throws IllegalArgumentException if {@code addresses} is empty
     * @throws IOException if none of the addresses can be reached now
     */
    public static Connection connect(List<InetSocketAddress> addresses, TcpOptions options, ReconnectPolicy policy,
            Consumer<ConnectionState> listener) throws IOException {
        return ReconnectingConnection.open(addresses, options, policy, listener);
    }

    static TcpConnection openConnection(InetSocketAddress address, TcpOptions options) throws IOException {
        if (address.isUnresolved()) {
            throw new ConnectException("cannot connect to " + address.getHostString() + ":" + address.getPort()
                    + ": unknown host");
        }
        SocketChannel channel = SocketChannel.open();
        try {
            channel.socket().connect(address, (int) Math.min(Integer.MAX_VALUE, options.connectTimeout().toMillis()));
            return TcpConnection.openClient(channel, options, address.getHostString());
        } catch (SocketTimeoutException e) {
            boolean handshaking = channel.isConnected(); // the TLS handshake's timeout, which says so itself
            channel.close();
            if (handshaking) {
                throw e;
            }
            SocketTimeoutException timeout = new SocketTimeoutException("cannot connect to " + address + ": no answer within "
                    + options.connectTimeout());
            timeout.initCause(e);
            throw timeout;
        } catch (ConnectException e) {
            channel.close();
            ConnectException refused = new ConnectException("cannot connect to " + address + ": " + e.getMessage());
            refused.initCause(e);
            throw refused;
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }
}
