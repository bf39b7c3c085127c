package netutils.transport.tcp.internal;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;
import netutils.api.internal.Memory;
import netutils.api.wire.EncodedFrame;

/**
 * The writing half of a TCP connection, symmetric to {@link ChannelSource}. Frames go out whole, one at a time
 * (a lock); a small frame is gathered into one direct scratch buffer and sent with one system call, a large one
 * is written straight from tensor memory with gathering writes of at most {@link #NON_BLOCKING_WRITE_CALL} bytes
 * per call on a non-blocking plaintext channel (a client's) and {@link ChannelSource#IO_CALL} otherwise. The
 * {@link IoWatchdog} ends a write that makes no progress. Over TLS the same writes go through a
 * {@link TlsChannel}, which encrypts them.
 */
final class ChannelSink {
    private static final int SCRATCH_SIZE = 64 * 1024;
    /**
     * The most bytes one write call is given on a non-blocking plaintext channel: 4 MiB, the plain socket's best
     * call size for 256 MiB in the benchmark (1 MiB calls ran at 0.95-0.96 of it in three runs of four). Such a
     * call returns what fit, so the watchdog still sees progress at every call. Measured with a netutils client
     * against a plain-socket server, medians of five interleaved runs: 1.04 of plain to plain with 1 MiB calls,
     * 1.09 with 4 MiB. A blocking write (a server's connection, TLS) returns only when its whole call is sent, so
     * there calls stay at {@link ChannelSource#IO_CALL}: the write timeout then asks for 1 MiB of progress per
     * timeout, not 4.
     */
    static final int NON_BLOCKING_WRITE_CALL = 4 << 20;
    /** The kernel limits how many buffers one gathering write takes, and the JDK copies long arrays. */
    private static final int MAX_GATHER = 64;

    private final SocketChannel channel;
    private final IoWatchdog watchdog;
    private final ReentrantLock lock = new ReentrantLock();
    private final ByteBuffer scratch = ByteBuffer.allocateDirect(SCRATCH_SIZE); // guarded by lock
    /** The scratch buffer as a segment, made once. */
    private final MemorySegment scratchMemory = MemorySegment.ofBuffer(scratch);
    /** TLS over the channel, or {@code null} for plaintext. */
    private final TlsChannel tls;
    /** Waits until a non-blocking channel takes bytes again; made when first needed (under lock). */
    private volatile Readiness writable;
    private volatile boolean closed;

    ChannelSink(SocketChannel channel, IoWatchdog watchdog) {
        this(channel, null, watchdog);
    }

    ChannelSink(SocketChannel channel, TlsChannel tls, IoWatchdog watchdog) {
        this.channel = channel;
        this.watchdog = watchdog;
        this.tls = tls;
    }

    /** Whether a frame is being written now. */
    boolean isWriting() {
        return lock.isLocked();
    }

    void write(EncodedFrame frame) throws IOException {
        lock.lock();
        try {
            watchdog.writeStarted();
            if (frame.frameLength() <= SCRATCH_SIZE) {
                frame.copyTo(scratchMemory);
                scratch.clear().limit((int) frame.frameLength());
                while (scratch.hasRemaining()) {
                    progress(tls == null ? channel.write(scratch) : tls.write(scratch));
                }
                return;
            }
            int callSize = tls == null && !channel.isBlocking() ? NON_BLOCKING_WRITE_CALL : ChannelSource.IO_CALL;
            try (Arena heapCopies = Arena.ofConfined()) {
                List<ByteBuffer> views = new ArrayList<>();
                for (MemorySegment piece : frame.pieces()) {
                    for (long at = 0; at < piece.byteSize(); at += callSize) {
                        MemorySegment part = piece.asSlice(at, Math.min(callSize, piece.byteSize() - at));
                        views.add(Memory.view(part, heapCopies));
                    }
                }
                gatherWrite(views.toArray(ByteBuffer[]::new), callSize);
            }
        } finally {
            watchdog.writeEnded();
            lock.unlock();
        }
    }

    /** Writes every buffer, each call taking consecutive buffers of at most {@code callSize} bytes in all. */
    private void gatherWrite(ByteBuffer[] buffers, int callSize) throws IOException {
        int first = 0;
        while (first < buffers.length) {
            int count = 1;
            long bytes = buffers[first].remaining();
            while (first + count < buffers.length && count < MAX_GATHER
                    && bytes + buffers[first + count].remaining() <= callSize) {
                bytes += buffers[first + count].remaining();
                count++;
            }
            progress(tls == null ? channel.write(buffers, first, count) : tls.write(buffers, first, count));
            while (first < buffers.length && !buffers[first].hasRemaining()) {
                first++;
            }
        }
    }

    private void progress(long written) throws IOException {
        if (written > 0) {
            watchdog.writeStarted(); // progress: the stall clock starts again
        } else if (written == 0 && !channel.isBlocking()) {
            // A non-blocking channel's send buffer is full: wait until the peer has read some (the watchdog ends a
            // wait that lasts too long).
            Readiness waiting = writable;
            if (waiting == null) {
                writable = waiting = Readiness.toWrite(channel);
                if (closed) {
                    waiting.close();
                }
            }
            waiting.await(Long.MAX_VALUE);
        }
    }

    /** Wakes a writer waiting on a non-blocking channel; called once the channel is closed. */
    void close() throws IOException {
        closed = true; // a writer making its Readiness after this closes it itself
        Readiness waiting = writable;
        if (waiting != null) {
            waiting.close();
        }
    }
}
