package netutils.transport.tcp;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.nio.channels.SocketChannel;
import netutils.api.Connection;
import netutils.api.wire.FrameDecoder;
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
        if (address.isUnresolved()) {
            throw new ConnectException("cannot connect to " + address.getHostString() + ":" + address.getPort()
                    + ": unknown host");
        }
        SocketChannel channel = SocketChannel.open();
        try {
            channel.socket().connect(address, (int) Math.min(Integer.MAX_VALUE, options.connectTimeout().toMillis()));
            return new TcpConnection(channel, options.serializer(), options.checksum(), options.readTimeout(),
                    options.writeTimeout(), options.idleTimeout(),
                    new FrameDecoder.Limits(options.maxFrameBytes(), options.maxEnvelopeBytes()),
                    FrameDecoder.MemoryBudget.UNLIMITED);
        } catch (SocketTimeoutException e) {
            channel.close();
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
