package netutils.bench;

import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;

/**
 * The baseline: a plain blocking socket moving the same bytes, length-prefixed, from and into direct buffers
 * that are allocated once and reused. Nothing is parsed, allocated or checked per message.
 */
final class RawSocket {
    private RawSocket() {
    }

    static void readFully(SocketChannel channel, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            if (channel.read(buffer) < 0) {
                throw new EOFException("peer closed");
            }
        }
    }

    static void writeFully(SocketChannel channel, ByteBuffer... buffers) throws IOException {
        long remaining = 0;
        for (ByteBuffer buffer : buffers) {
            remaining += buffer.remaining();
        }
        while (remaining > 0) {
            remaining -= channel.write(buffers);
        }
    }

    static SocketChannel connect(int port) throws IOException {
        SocketChannel channel = SocketChannel.open(new InetSocketAddress(InetAddress.getLoopbackAddress(), port));
        channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
        return channel;
    }

    static ServerSocketChannel listen() throws IOException {
        return ServerSocketChannel.open().bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
    }

    static int port(ServerSocketChannel server) throws IOException {
        return ((InetSocketAddress) server.getLocalAddress()).getPort();
    }

    private static Thread.Builder builder(boolean virtual, String name) {
        return virtual ? Thread.ofVirtual().name(name) : Thread.ofPlatform().daemon(true).name(name);
    }

    /** Serves one connection: reads length-prefixed messages into one reused buffer, answers each with one byte. */
    static Thread sinkServer(ServerSocketChannel server, long maxMessage, boolean virtual) {
        return builder(virtual, "raw-sink").start(() -> {
            try (SocketChannel channel = server.accept()) {
                channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
                ByteBuffer length = ByteBuffer.allocateDirect(8).order(ByteOrder.BIG_ENDIAN);
                ByteBuffer data = java.lang.foreign.Arena.ofAuto().allocate(maxMessage, 64).asByteBuffer();
                ByteBuffer ack = ByteBuffer.allocateDirect(1);
                while (true) {
                    length.clear();
                    readFully(channel, length);
                    data.clear().limit((int) length.getLong(0));
                    readFully(channel, data);
                    ack.clear();
                    writeFully(channel, ack);
                }
            } catch (IOException end) {
                // the client closed
            }
        });
    }

    /** Serves one connection: echoes every length-prefixed message back. */
    static Thread echoServer(ServerSocketChannel server, int maxMessage, boolean virtual) {
        return builder(virtual, "raw-echo").start(() -> {
            try (SocketChannel channel = server.accept()) {
                channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
                ByteBuffer length = ByteBuffer.allocateDirect(4).order(ByteOrder.BIG_ENDIAN);
                ByteBuffer data = ByteBuffer.allocateDirect(maxMessage);
                while (true) {
                    length.clear();
                    readFully(channel, length);
                    data.clear().limit(length.getInt(0));
                    readFully(channel, data);
                    length.flip();
                    data.flip();
                    writeFully(channel, length, data);
                }
            } catch (IOException end) {
                // the client closed
            }
        });
    }
}
