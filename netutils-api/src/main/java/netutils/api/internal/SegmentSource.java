package netutils.api.internal;

import java.io.EOFException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;

/** A {@link FrameSource} over bytes in memory, for raw messages and in-memory connections. */
public final class SegmentSource implements FrameSource {
    private final MemorySegment bytes;
    private long position;

    /** Reads {@code bytes} from its start. */
    public SegmentSource(MemorySegment bytes) {
        this.bytes = bytes;
    }

    /** Bytes not read yet. */
    public long remaining() {
        return bytes.byteSize() - position;
    }

    /** Bytes read so far. */
    public long position() {
        return position;
    }

    @Override
    public boolean readFrameStart(ByteBuffer header) throws EOFException {
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

    @Override
    public void readFully(ByteBuffer destination) throws EOFException {
        int wanted = destination.remaining();
        long available = remaining();
        int count = (int) Math.min(wanted, available);
        MemorySegment.copy(bytes, position, MemorySegment.ofBuffer(destination), 0, count);
        destination.position(destination.position() + count);
        position += count;
        if (count < wanted) {
            throw new EOFException("input ended");
        }
    }
}
