package netutils.transport.tcp.internal;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import netutils.api.wire.FrameSource;

/**
 * A frame body read through a {@link ByteBudget}: each I/O call's worth of bytes is reserved just before it is
 * read, so what a connection holds of the server's budget is what its peer actually sent.
 */
final class BudgetedSource implements FrameSource {
    private final FrameSource source;
    private final ByteBudget budget;
    private final long bodyLength;
    private long held;

    /** Reserves at most {@code bodyLength}: the checksum trailer after the body is not a body byte. */
    BudgetedSource(FrameSource source, ByteBudget budget, long bodyLength) {
        this.source = source;
        this.budget = budget;
        this.bodyLength = bodyLength;
    }

    @Override
    public boolean readFrameStart(ByteBuffer header) throws IOException {
        return source.readFrameStart(header);
    }

    @Override
    public long readFully(MemorySegment destination) throws IOException {
        long done = 0;
        while (done < destination.byteSize()) {
            long length = Math.min(ChannelSource.IO_CALL, destination.byteSize() - done);
            long reserve = Math.min(length, bodyLength - held);
            if (reserve > 0) {
                budget.acquire(reserve);
                held += reserve;
            }
            long got = source.readFully(destination.asSlice(done, length));
            done += got;
            if (got < length) {
                break;
            }
        }
        return done;
    }

    /** Gives back everything this frame reserved. */
    void releaseAll() {
        budget.release(held);
        held = 0;
    }
}
