package netutils.api.internal;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
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
     * A ByteBuffer over {@code segment} for channel I/O: the segment itself when it can be viewed so, else a copy
     * (heap segments over arrays other than {@code byte[]}); {@code segment} is at most 2 GiB.
     */
    public static ByteBuffer readableView(MemorySegment segment) {
        if (segment.isNative() || segment.heapBase().orElse(null) instanceof byte[]) {
            return segment.asByteBuffer();
        }
        if (segment.byteSize() <= SMALL) {
            return ByteBuffer.wrap(segment.toArray(ValueLayout.JAVA_BYTE));
        }
        MemorySegment copy = Arena.ofAuto().allocate(segment.byteSize(), 64);
        copy.copyFrom(segment);
        return copy.asByteBuffer();
    }
}
