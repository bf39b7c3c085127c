package netutils.transport.tcp.internal;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import netutils.api.wire.FrameSource;
import netutils.api.internal.Memory;

/**
 * Reads frames from a blocking socket channel through a small direct read-ahead buffer, so a small message
 * takes one or two system calls; a destination at least as large as the buffer (a big tensor) is read into
 * directly, with no intermediate copy.
 *
 * <p>Waiting for a frame to begin with a timeout uses the socket's own timed read (a channel has none), and
 * leaves the connection usable when nothing arrived. Every read after that is watched by the
 * {@link IoWatchdog}.
 */
final class ChannelSource implements FrameSource {
    static final int BUFFER_SIZE = 64 * 1024;

    private final SocketChannel channel;
    private final Socket socket;
    private final InputStream timedInput;
    private final IoWatchdog watchdog;
    private final ByteBuffer buffer = ByteBuffer.allocateDirect(BUFFER_SIZE).flip();
    /** The whole read-ahead buffer as a segment, made once: making one per copy costs more than the copy. */
    private final MemorySegment bufferMemory = MemorySegment.ofBuffer(buffer.duplicate().clear());
    private final byte[] oneByte = new byte[1];
    private long waitMillis;

    ChannelSource(SocketChannel channel, IoWatchdog watchdog) throws IOException {
        this.channel = channel;
        this.socket = channel.socket();
        this.timedInput = socket.getInputStream();
        this.watchdog = watchdog;
    }

    /** How long the next {@link #readFrameStart} waits for a first byte; 0 waits forever. */
    void waitForNextFrame(long millis) {
        this.waitMillis = millis;
    }

    @Override
    public boolean readFrameStart(ByteBuffer header) throws IOException {
        if (!buffer.hasRemaining() && !awaitFirstByte()) {
            return false;
        }
        readFully(header);
        return true;
    }

    /** @throws SocketTimeoutException if the wait ran out and nothing was consumed */
    private boolean awaitFirstByte() throws IOException {
        if (waitMillis > 0) {
            socket.setSoTimeout((int) Math.min(Integer.MAX_VALUE, waitMillis));
            int count = timedInput.read(oneByte, 0, 1);
            if (count < 0) {
                return false;
            }
            buffer.clear().put(oneByte[0]).flip();
            return true;
        }
        buffer.clear();
        int count = channel.read(buffer); // between frames: idle is allowed, so no watchdog
        buffer.flip();
        return count > 0;
    }

    @Override
    public long readFully(MemorySegment destination) throws IOException {
        long size = destination.byteSize();
        long done = 0;
        while (done < size) {
            if (buffer.hasRemaining()) {
                int count = (int) Math.min(buffer.remaining(), size - done);
                MemorySegment.copy(bufferMemory, buffer.position(), destination, done, count);
                buffer.position(buffer.position() + count);
                done += count;
            } else if (size - done >= BUFFER_SIZE && destination.isNative()) {
                // Straight from the socket into the tensor: no intermediate copy for large data.
                ByteBuffer view = destination.asSlice(done, Math.min(Memory.MAX_VIEW, size - done)).asByteBuffer();
                int count = watchedRead(view);
                if (count < 0) {
                    return done;
                }
                done += count;
            } else {
                buffer.clear();
                int count = watchedRead(buffer);
                buffer.flip();
                if (count < 0) {
                    return done;
                }
            }
        }
        return done;
    }

    private int watchedRead(ByteBuffer destination) throws IOException {
        watchdog.readStarted();
        try {
            return channel.read(destination);
        } finally {
            watchdog.readEnded();
        }
    }
}
