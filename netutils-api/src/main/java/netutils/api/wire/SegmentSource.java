package netutils.api.wire;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;

/** A {@link FrameSource} over bytes in memory, for raw messages and in-memory connections. */
public final class SegmentSource implements FrameSource {
    private final MemorySegment bytes;
    private long position;

    /**
     * Reads {@code bytes} from its start.
     *
     * @param bytes the bytes to read
     */
    public SegmentSource(MemorySegment bytes) {
        this.bytes = bytes;
    }

    /**
     * Bytes not read yet.
     *
     * @return the bytes between the position and the end
     */
    public long remaining() {
        return bytes.byteSize() - position;
    }

    /**
     * Bytes read so far.
     *
     * @return the position
     */
    public long position() {
        return position;
    }

    @Override
    public boolean readFrameStart(ByteBuffer header) throws java.io.IOException {
        if (remaining() == 0) {
            return false;
        }
        readFully(header);
        return true;
    }

    @Override
    public long readFully(MemorySegment destination) {
        long count = Math.min(destination.byteSize(), remaining());
        MemorySegment.copy(bytes, position, destination, 0, count);
        position += count;
        return count;
    }
}
