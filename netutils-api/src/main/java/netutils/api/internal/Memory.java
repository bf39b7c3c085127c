package netutils.api.internal;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;

/**
 * Where netutils puts tensor bytes it allocates itself. Small tensors (a decoded token's hidden state, a KV
 * index) live on the Java heap: a native allocation costs microseconds of arena, cleaner and accounting work,
 * which would dominate a small round trip. Large ones live in native memory (no 2 GiB limit, no GC copying),
 * aligned to 64 bytes and freed by the garbage collector once unreachable.
 */
public final class Memory {
    /** Up to this size, tensors live on the heap. */
    public static final long SMALL = 64 * 1024;

    private Memory() {
    }

    /**
     * Zeroed memory of {@code byteSize} bytes: a {@code byte[]} when small (so that it is also a ByteBuffer;
     * tensors are read with unaligned accesses), 64-byte aligned native memory otherwise.
     */
    public static MemorySegment allocate(long byteSize) {
        if (byteSize <= SMALL) {
            return MemorySegment.ofArray(new byte[(int) byteSize]);
        }
        return Arena.ofAuto().allocate(byteSize, 64);
    }

    /** A ByteBuffer view holds under 2 GiB: larger segments are viewed in slices of this size. */
    public static final long MAX_VIEW = 1L << 30;

    /**
     * {@link #view}s of {@code segment} of any size, in order, each at most {@value #MAX_VIEW} bytes; none for an
     * empty segment.
     */
    public static java.util.List<ByteBuffer> views(MemorySegment segment, Arena scratch) {
        java.util.List<ByteBuffer> views = new java.util.ArrayList<>((int) (segment.byteSize() / MAX_VIEW) + 1);
        for (long at = 0; at < segment.byteSize(); at += MAX_VIEW) {
            views.add(view(segment.asSlice(at, Math.min(MAX_VIEW, segment.byteSize() - at)), scratch));
        }
        return views;
    }

    /**
     * A ByteBuffer over {@code segment} (at most 2 GiB) for channel I/O and checksums: the segment itself when it
     * is native or over a {@code byte[]}; otherwise (a tensor wrapped around another kind of Java array) a copy made in
     * {@code scratch}, native memory that the caller frees when the I/O is done. Tensor bytes never pass
     * through a {@code byte[]}.
     */
    public static ByteBuffer view(MemorySegment segment, Arena scratch) {
        if (segment.isNative() || segment.heapBase().orElse(null) instanceof byte[]) {
            return segment.asByteBuffer();
        }
        MemorySegment copy = scratch.allocate(segment.byteSize(), 64);
        copy.copyFrom(segment);
        return copy.asByteBuffer();
    }
}
