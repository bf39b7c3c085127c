package netutils.bench;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ProtocolException;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;

/**
 * The baseline: the best a plain blocking {@link SocketChannel} does with the same bytes. An 8-byte length (or a
 * 64-byte header: {@link #ALIGNED_HEADER}), then the payload, moved between direct buffers that are allocated once
 * and reused; nothing is parsed, allocated or checked per message.
 *
 * <p>Tuned as follows, because each of these showed up in measurements on this VM:
 * <ul>
 * <li>one read loop for header and payload: the first read scatters into the header and the start of the
 *     payload, so a small message costs one read call, not a 8-byte read and then another;</li>
 * <li>the header leaves with the first payload bytes in one gathering write;</li>
 * <li>the payload moves in read and write calls of at most {@code chunk} bytes: one call for all 256 MiB keeps a
 *     writer inside one huge {@code send} that the kernel completes piecemeal, and measured about 0.7 of the
 *     best chunked variant; the benchmark runs several chunk sizes and takes the best as "raw";</li>
 * <li>the server runs on a platform thread (a virtual thread's wake-up costs tens of microseconds here; a
 *     virtual-thread echo runs as a documented row of its own).</li>
 * </ul>
 * Messages are not pipelined (a client waits for the answer before the next request), which is what lets the
 * first read take up to a whole chunk without a length known in advance.
 */
final class RawSocket extends Stack {
    static final int HEADER = 8;
    /**
     * A header of 64 bytes (the length, then zeros). In a probe whose payload was page-aligned, the same socket code
     * moved 256 MiB about 15% faster when the payload started at least 64 bytes into the stream (8, 16 or 32 bytes
     * in: 2,500-2,700 MiB/s; 64, 76, 128, 256 or 4,096 bytes in: 3,000-3,100 MiB/s; one connection, interleaved,
     * sender and receiver pinned); netutils' data area starts at least 76 bytes in. With the benchmark's own
     * payload the two header sizes came out alike when placed (0.98-1.03), so the effect depends on where the
     * payload lies in memory as well; the benchmark runs both sizes and takes the best.
     */
    static final int ALIGNED_HEADER = 64;
    /** The chunk of the "one call" variant: the whole payload in one read or write call. */
    static final int ONE_CALL = Integer.MAX_VALUE;

    private final boolean large;
    private final int chunk;
    private final ServerSocketChannel server = listen();
    private final SocketChannel channel;
    /** The header's size: {@link #HEADER}, or {@link #ALIGNED_HEADER} for the variant whose payload starts 64 bytes in. */
    private final int headerBytes;
    private final ByteBuffer header;
    private final ByteBuffer data;
    private final ByteBuffer reply;

    /** A sink: each message from {@code payload} is read into {@code sinkMemory} and answered with its length. */
    static RawSocket sink(String id, String label, int chunk, MemorySegment payload, MemorySegment sinkMemory)
            throws IOException {
        return sink(id, label, chunk, HEADER, payload, sinkMemory);
    }

    /** A sink whose header is {@code headerBytes} long (at least 8: the length, then zeros). */
    static RawSocket sink(String id, String label, int chunk, int headerBytes, MemorySegment payload,
            MemorySegment sinkMemory) throws IOException {
        return new RawSocket(id, label, true, chunk, headerBytes, payload.asByteBuffer(), sinkMemory.asByteBuffer(),
                false);
    }

    /** An echo: 8 KiB messages are sent back as they came. */
    static RawSocket echo(String id, String label, int small, boolean virtualServer) throws IOException {
        return new RawSocket(id, label, false, ONE_CALL, HEADER, ByteBuffer.allocateDirect(small),
                ByteBuffer.allocateDirect(small), virtualServer);
    }

    private RawSocket(String id, String label, boolean large, int chunk, int headerBytes, ByteBuffer data,
            ByteBuffer serverMemory, boolean virtualServer) throws IOException {
        super(id, label);
        this.large = large;
        this.chunk = chunk;
        this.headerBytes = headerBytes;
        this.header = ByteBuffer.allocateDirect(headerBytes).order(ByteOrder.BIG_ENDIAN);
        this.data = data;
        this.reply = large ? ByteBuffer.allocateDirect(HEADER) : ByteBuffer.allocateDirect(data.capacity());
        Thread.Builder thread = virtualServer ? Thread.ofVirtual() : Thread.ofPlatform().daemon(true);
        thread.name("raw-" + id).start(() -> serve(serverMemory));
        channel = connect(port(server));
    }

    @Override
    boolean large() {
        return large;
    }


    @Override
    void sendLarge() throws IOException {
        exchange();
    }

    @Override
    void roundTrip() throws IOException {
        exchange();
    }

    private void exchange() throws IOException {
        header.clear().putLong(0, data.capacity());
        write(channel, header, data.clear(), chunk);
        long length = read(channel, header.clear(), reply.clear(), chunk);
        if (large ? reply.getLong(0) != data.capacity() : length != data.capacity()) {
            throw new IllegalStateException(id + ": bad answer");
        }
    }

    /** The server: reads each message whole into {@code memory}; a sink answers its length, an echo the message. */
    private void serve(ByteBuffer memory) {
        try (SocketChannel peer = server.accept()) {
            peer.setOption(StandardSocketOptions.TCP_NODELAY, true);
            ByteBuffer peerHeader = ByteBuffer.allocateDirect(headerBytes).order(ByteOrder.BIG_ENDIAN);
            ByteBuffer ack = ByteBuffer.allocateDirect(HEADER).order(ByteOrder.BIG_ENDIAN);
            while (true) {
                long length = read(peer, peerHeader.clear(), memory.clear(), chunk);
                Placement.serverThread();
                if (large) {
                    // The answer is a message of its own: 8 bytes that say how many arrived.
                    write(peer, peerHeader.clear().putLong(0, HEADER), ack.clear().putLong(0, length), chunk);
                } else {
                    write(peer, peerHeader.flip(), memory, chunk); // read() left memory flipped to the message
                }
            }
        } catch (EOFException | java.nio.channels.ClosedChannelException end) {
            // the client closed
        } catch (IOException e) {
            if (channel.isOpen()) {
                System.err.println("raw server " + id + " failed: " + e);
            }
        }
    }

    /**
     * Reads one message: header and payload in one loop, the first call scattering into both; then calls of at
     * most {@code chunk} bytes. Leaves {@code data} flipped to the payload; returns its length.
     */
    static long read(SocketChannel channel, ByteBuffer header, ByteBuffer data, int chunk) throws IOException {
        ByteBuffer[] both = {header, data};
        long length = -1;
        while (length < 0 || data.position() < length) {
            long end = length < 0 ? data.capacity() : length;
            data.limit((int) Math.min(end, (long) data.position() + chunk));
            long n = length < 0 ? channel.read(both) : channel.read(data);
            if (n < 0) {
                throw new EOFException("peer closed");
            }
            if (length < 0 && !header.hasRemaining()) {
                length = header.getLong(0);
                if (length > data.capacity() || data.position() > length) {
                    throw new ProtocolException("length " + length + " does not fit");
                }
            }
        }
        return data.flip().remaining();
    }

    /** Writes header and payload, the header in the same gathering call as the first at most {@code chunk} bytes. */
    static void write(SocketChannel channel, ByteBuffer header, ByteBuffer data, int chunk) throws IOException {
        ByteBuffer[] both = {header, data};
        int end = data.limit();
        while (header.hasRemaining() || data.position() < end) {
            data.limit((int) Math.min(end, (long) data.position() + chunk));
            if (header.hasRemaining()) {
                channel.write(both);
            } else {
                channel.write(data);
            }
        }
        data.limit(end);
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

    /** Reads exactly {@code buffer.remaining()} bytes (the memory probe's simple path). */
    static void readFully(SocketChannel channel, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            if (channel.read(buffer) < 0) {
                throw new EOFException("peer closed");
            }
        }
    }

    @Override
    public void close() throws IOException {
        channel.close();
        server.close();
    }
}
