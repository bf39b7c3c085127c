package netutils.api.internal;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.util.List;
import netutils.api.FrameHeader;

/**
 * A message laid out as a frame, ready to write: the prefix (header, envelope length, envelope, padding),
 * then views of each tensor's own memory with zero padding between them, then the checksum trailer if any.
 * Nothing of the tensors is copied; the pieces are written with gathering writes.
 */
public final class EncodedFrame {
    private final FrameHeader header;
    private final List<ByteBuffer> pieces;

    EncodedFrame(FrameHeader header, List<ByteBuffer> pieces) {
        this.header = header;
        this.pieces = pieces;
    }

    /** The header. */
    public FrameHeader header() {
        return header;
    }

    /** Bytes of the whole frame on the wire. */
    public long frameLength() {
        return header.frameLength();
    }

    /** Fresh views of the pieces in wire order, positioned at their start. */
    public ByteBuffer[] buffers() {
        ByteBuffer[] views = new ByteBuffer[pieces.size()];
        for (int i = 0; i < views.length; i++) {
            views[i] = pieces.get(i).duplicate();
        }
        return views;
    }

    /**
     * Writes the whole frame with gathering writes.
     *
     * @param progress called after each write that moved bytes (a watchdog hook); may be {@code null}
     */
    public void writeTo(GatheringByteChannel channel, Runnable progress) throws IOException {
        ByteBuffer[] buffers = buffers();
        int first = 0;
        while (first < buffers.length) {
            // Keep the iovec count modest: the kernel limits it, and the JDK copies long arrays.
            int count = Math.min(buffers.length - first, 64);
            long written = channel.write(buffers, first, count);
            if (written > 0 && progress != null) {
                progress.run();
            }
            while (first < buffers.length && !buffers[first].hasRemaining()) {
                first++;
            }
        }
    }

    /** The whole frame copied into one segment of native memory. */
    public MemorySegment toSegment() {
        MemorySegment out = Arena.ofAuto().allocate(frameLength(), 64);
        long position = 0;
        for (ByteBuffer piece : pieces) {
            MemorySegment source = MemorySegment.ofBuffer(piece);
            MemorySegment.copy(source, 0, out, position, source.byteSize());
            position += source.byteSize();
        }
        return out;
    }
}
