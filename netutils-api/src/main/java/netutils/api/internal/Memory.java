package netutils.api.internal;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

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

    /** Where {@link #allocateOnDemand} maps its memory: a RAM-backed file system, or none. */
    private static final Path SHARED_MEMORY = sharedMemoryDirectory();

    private static Path sharedMemoryDirectory() {
        String configured = System.getProperty("netutils.memory.dir", "/dev/shm");
        if (configured.isEmpty()) {
            return null;
        }
        Path directory = Path.of(configured);
        return Files.isDirectory(directory) && Files.isWritable(directory) ? directory : null;
    }

    /** Where received tensors' memory comes from, for error messages: the directory, or ordinary native memory. */
    public static String sharedMemoryDescription() {
        return SHARED_MEMORY != null ? SHARED_MEMORY.toString() : "ordinary native memory (no memory directory)";
    }

    /**
     * Zero-filled native memory of {@code byteSize} bytes that the kernel commits page by page as it is first
     * written, not up front: a claim of a gigabyte costs nothing until the bytes arrive. It is a mapping of an
     * unlinked file in {@code /dev/shm} (RAM, not disk; set {@code -Dnetutils.memory.dir} to change or, with an
     * empty value, to turn this off), unmapped by the garbage collector once unreachable, and unlike
     * {@link Arena#allocate} it neither zeroes every page first nor counts against
     * {@code -XX:MaxDirectMemorySize}. Falls back to {@link Arena#allocate} when that file system is missing or
     * has too little room.
     */
    public static MemorySegment allocateOnDemand(long byteSize) {
        Path directory = SHARED_MEMORY;
        if (directory != null && byteSize > SMALL) {
            try {
                // Leave room for others: writing past a full tmpfs would fault, not fail politely.
                if (Files.getFileStore(directory).getUsableSpace() > 2 * byteSize + (256L << 20)) {
                    Path file = Files.createTempFile(directory, "netutils-", ".tensor");
                    try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                        return channel.map(FileChannel.MapMode.READ_WRITE, 0, byteSize, Arena.ofAuto());
                    } finally {
                        Files.deleteIfExists(file); // the mapping keeps the memory; the name is not needed
                    }
                }
            } catch (IOException | UnsupportedOperationException e) {
                // Fall through to ordinary native memory.
            }
        }
        return Arena.ofAuto().allocate(byteSize, 64);
    }

    /**
     * Zeroed memory of {@code byteSize} bytes: a {@code byte[]} when small (so that it is also a ByteBuffer;
     * tensors are read with unaligned accesses), 64-byte aligned native memory from {@link #allocateOnDemand}
     * otherwise.
     */
    public static MemorySegment allocate(long byteSize) {
        if (byteSize <= SMALL) {
            return MemorySegment.ofArray(new byte[(int) byteSize]);
        }
        // Mapped, not malloc'ed: the garbage collector's unmap gives the pages back to the system, where glibc
        // would keep freed large blocks for itself (a server that answered a thousand 4 MiB messages held ~1 GiB).
        return allocateOnDemand(byteSize);
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
