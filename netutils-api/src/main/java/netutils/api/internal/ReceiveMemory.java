package netutils.api.internal;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;

/**
 * The default home of received tensors on one connection. Large tensors get their own native allocation;
 * small ones are carved from a shared 256 KiB slab, because at a few KiB per decoded token the cost of an
 * allocation (a new arena, its cleaner, the direct-memory accounting) outweighs copying the bytes.
 *
 * <p>All memory is freed by the garbage collector once unreachable; a slab goes when no tensor carved from it
 * is reachable, so retaining one small tensor keeps at most {@value #SLAB_SIZE} bytes alive. Not thread-safe:
 * a connection receives on one thread at a time.
 */
public final class ReceiveMemory implements SegmentAllocator {
    static final long SLAB_SIZE = 256 * 1024;
    static final long SMALL = 16 * 1024;

    private MemorySegment slab = MemorySegment.NULL;
    private long used;

    @Override
    public MemorySegment allocate(long byteSize, long byteAlignment) {
        if (byteSize > SMALL) {
            return FrameDecoder.FRESH_MEMORY.allocate(byteSize, byteAlignment);
        }
        long start = (used + byteAlignment - 1) & -byteAlignment;
        if (start + byteSize > slab.byteSize()) {
            slab = Arena.ofAuto().allocate(SLAB_SIZE, 64);
            start = 0;
        }
        used = start + byteSize;
        return slab.asSlice(start, byteSize);
    }
}
