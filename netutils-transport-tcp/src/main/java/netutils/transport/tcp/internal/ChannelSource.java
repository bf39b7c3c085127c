package netutils.transport.tcp.internal;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import netutils.api.ProtocolException;
import netutils.api.wire.FrameSource;

/**
 * The reading half of a TCP connection: waits for the next frame to begin ({@link #awaitFrame}), then serves
 * the decoder's reads through a small direct read-ahead buffer, so that a small message takes one system call.
 * A destination at least as large as the buffer (a big tensor) is read into directly, in calls of at most
 * {@link #IO_CALL} bytes: a plain socket moved 256 MiB fastest that way here (one call for everything ran at
 * 0.73 of it).
 *
 * <p>A blocking channel waits in its read (a server's connections: one system call per read, like a plain
 * socket); a timed wait there uses the socket's own timed read, and leaves the connection usable when nothing
 * arrived. A non-blocking channel (a client's connections, whose calls all wait with a deadline) reads first and
 * waits on its {@link Readiness} only when nothing is there (so a reply already arrived is taken even by an
 * interrupted thread; its next wait that finds nothing ends as the interrupt says). Every read inside a frame is
 * watched by the {@link IoWatchdog}.
 *
 * <p>Over TLS the same reads go through a {@link TlsChannel}, which decrypts into this buffer or straight into a
 * tensor's memory; over plaintext the only extra cost is a null check per read.
 */
final class ChannelSource implements FrameSource {
    static final int BUFFER_SIZE = 64 * 1024;
    /**
     * The most bytes one read system call is asked for, one blocking write call sends, and the server's budget
     * reserves at a time (see {@link ChannelSink#NON_BLOCKING_WRITE_CALL} for the client's writes). A read returns
     * what has arrived, so this bound seldom matters to reading; it keeps a stalled peer's hold on the budget and
     * a blocking write's time between progress reports at 1 MiB.
     */
    static final int IO_CALL = 1 << 20;

    /** What {@link #awaitFrame} found. */
    enum Arrival {
        /** Bytes of the next frame are there. */
        FRAME,
        /** Nothing arrived within the wait. */
        NOTHING,
        /** The peer closed the connection between frames. */
        END
    }

    private final SocketChannel channel;
    private final Socket socket;
    private final InputStream timedInput;
    private final IoWatchdog watchdog;
    private final ByteBuffer buffer = ByteBuffer.allocateDirect(BUFFER_SIZE).flip();
    /** The whole read-ahead buffer as a segment, made once: making one per copy costs more than the copy. */
    private final MemorySegment bufferMemory = MemorySegment.ofBuffer(buffer.duplicate().clear());
    /** Timed reads go through the socket's stream, which reads into an array. */
    private final byte[] timedChunk = new byte[BUFFER_SIZE];
    /** TLS over the channel, or {@code null} for plaintext. */
    private final TlsChannel tls;
    /** Whether the first frame's start was looked at (for a TLS peer talking to this plaintext side). */
    private boolean sawFirstFrame;
    /** Waits for bytes on a non-blocking channel; {@code null} when the channel blocks. */
    private final Readiness readable;

    ChannelSource(SocketChannel channel, IoWatchdog watchdog) throws IOException {
        this(channel, null, watchdog);
    }

    ChannelSource(SocketChannel channel, TlsChannel tls, IoWatchdog watchdog) throws IOException {
        this.channel = channel;
        this.socket = channel.socket();
        this.timedInput = socket.getInputStream();
        this.watchdog = watchdog;
        this.tls = tls;
        this.readable = channel.isBlocking() ? null : Readiness.toRead(channel);
    }

    /**
     * Waits at most {@code waitNanos} ({@link Long#MAX_VALUE}: forever) for the next frame to begin. Between
     * frames silence is allowed, so the watchdog does not watch this wait.
     */
    Arrival awaitFrame(long waitNanos) throws IOException {
        if (buffer.hasRemaining()) {
            return Arrival.FRAME;
        }
        int count;
        if (tls != null) {
            // Decrypted bytes, or whole records, may already be buffered: the TLS channel looks there first, and a
            // wait that times out mid-record keeps the ciphertext it got.
            buffer.clear();
            count = tls.read(buffer, waitNanos);
            buffer.flip();
        } else if (readable != null || waitNanos == Long.MAX_VALUE) {
            // a non-blocking channel waits on its selector; a blocking one without a time limit, in its read
            buffer.clear();
            count = readWhenReady(buffer, waitNanos);
            buffer.flip();
        } else {
            long millis = Math.max(1, (waitNanos + 999_999) / 1_000_000);
            socket.setSoTimeout((int) Math.min(Integer.MAX_VALUE, millis));
            try {
                count = timedInput.read(timedChunk, 0, timedChunk.length);
            } catch (SocketTimeoutException nothing) {
                return Arrival.NOTHING;
            }
            if (count > 0) {
                buffer.clear().put(timedChunk, 0, count).flip();
            }
        }
        return count < 0 ? Arrival.END : count == 0 ? Arrival.NOTHING : Arrival.FRAME;
    }

    /** Wakes a reader waiting on a non-blocking channel; called once the channel is closed. */
    void close() throws IOException {
        if (readable != null) {
            readable.close();
        }
    }

    /** Whether bytes of the next frame are already in the read-ahead buffer. */
    boolean hasBuffered() {
        return buffer.hasRemaining();
    }

    /**
     * Whether nothing more has arrived: nothing in the socket, nothing buffered by TLS. For a reader that found its
     * read-ahead buffer empty (the buffer itself is the reader's, and not looked at here). Safe to call from any
     * thread while the reader waits; a byte may of course arrive just after it returns.
     */
    boolean nothingArrived() throws IOException {
        return (tls == null || !tls.hasBuffered()) && timedInput.available() == 0;
    }

    @Override
    public boolean readFrameStart(ByteBuffer header) throws IOException {
        if (!buffer.hasRemaining() && awaitFrame(Long.MAX_VALUE) == Arrival.END) {
            return false;
        }
        if (!sawFirstFrame) {
            sawFirstFrame = true;
            refuseTlsPeer();
        }
        readFully(header);
        return true;
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
                ByteBuffer view = destination.asSlice(done, Math.min(IO_CALL, size - done)).asByteBuffer();
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

    /**
     * One plaintext read. On a non-blocking channel with nothing there, waits on its {@link Readiness} and reads
     * again, until bytes come or {@code waitNanos} pass (then 0; {@link Long#MAX_VALUE}: no limit; the clock is read
     * only when a wait begins). Read first, then wait: when both ends share a CPU, the woken peer usually runs and
     * answers before the writer gets the CPU back, and the reply is there (measured: 8 KiB echo 17.4 -> 15.5 us on
     * one CPU, raw blocking socket 14.9; across CPUs the same as waiting first). A blocking channel's read waits by
     * itself.
     */
    private int readWhenReady(ByteBuffer destination, long waitNanos) throws IOException {
        int count = channel.read(destination);
        if (count != 0 || readable == null || !destination.hasRemaining()) {
            return count;
        }
        long deadline = waitNanos >= Long.MAX_VALUE / 2 ? Long.MAX_VALUE : System.nanoTime() + waitNanos;
        while (count == 0 && destination.hasRemaining()) {
            if (!readable.await(deadline)) {
                return 0;
            }
            count = channel.read(destination);
        }
        return count;
    }

    private int watchedRead(ByteBuffer destination) throws IOException {
        watchdog.readStarted();
        try {
            // no deadline: the watchdog ends a wait that lasts too long
            int count = tls == null
                    ? readWhenReady(destination, Long.MAX_VALUE)
                    : tls.read(destination, Long.MAX_VALUE);
            if (count > 0) {
                watchdog.frameProgress(count);
            }
            return count;
        } finally {
            watchdog.readEnded();
        }
    }

    /**
     * A TLS client's first bytes are a handshake record, 0x16 then major version 3, where this plaintext side
     * expects "NU": say so, instead of "bad magic 0x1603". The peer is told with a plaintext {@code error} frame,
     * which its TLS handshake takes for a plaintext answer at once.
     */
    private void refuseTlsPeer() throws ProtocolException {
        if (tls == null && buffer.remaining() >= 2 && buffer.get(buffer.position()) == 0x16
                && buffer.get(buffer.position() + 1) == 0x03) {
            throw new ProtocolException(ProtocolException.Kind.BAD_MAGIC, "the peer speaks TLS: a TLS handshake "
                    + "record (0x16 0x03) arrived where a netutils frame (\"NU\") was expected; this side is plaintext, "
                    + "so configure TLS here too (TcpOptions.builder().tls(...)) or connect without it");
        }
    }
}
