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

    /** Zeroed memory of {@code byteSize} bytes: heap-backed (8-byte aligned) when small, native otherwise. */
    public static MemorySegment allocate(long byteSize) {
        if (byteSize <= SMALL) {
            return MemorySegment.ofArray(new long[(int) ((byteSize + 7) >>> 3)]).asSlice(0, byteSize);
        }
        return Arena.ofAuto().allocate(byteSize, 64);
    }

    /**
     * A ByteBuffer over {@code segment} (at most 2 GiB) for channel I/O and checksums: the segment itself when it
     * is native or over a {@code byte[]}; otherwise (a heap tensor over a {@code long[]}) a copy made in
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
