package netutils.api.wire;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.util.List;
import netutils.api.wire.FrameHeader;
import netutils.api.internal.Memory;

/**
 * A message laid out as a frame, ready to write: the prefix (header, envelope length, envelope, padding),
 * then each tensor's own memory with zero padding between them, then the checksum trailer if any. The pieces
 * are the tensors' memory itself, not copies.
 *
 * <p>{@link #writeTo} sends a large frame with gathering writes straight from tensor memory; a small one is
 * first gathered into the caller's direct scratch buffer, one copy that saves a system call per piece and the
 * JDK's own copy of heap memory.
 */
public final class EncodedFrame {
    private final FrameHeader header;
    private final List<MemorySegment> pieces;

    EncodedFrame(FrameHeader header, List<MemorySegment> pieces) {
        this.header = header;
        this.pieces = pieces;
    }

    /**
     * The header.
     *
     * @return the frame's header
     */
    public FrameHeader header() {
        return header;
    }

    /**
     * Bytes of the whole frame on the wire.
     *
     * @return header, body and trailer bytes
     */
    public long frameLength() {
        return header.frameLength();
    }

    /**
     * Writes the whole frame.
     *
     * @param channel where the frame goes
     * @param scratch a direct buffer for frames that fit in it (cleared and overwritten), or {@code null}
     * @param progress called after each write that moved bytes (a watchdog hook); may be {@code null}
     * @throws IOException if a write fails
     */
    public void writeTo(GatheringByteChannel channel, ByteBuffer scratch, Runnable progress) throws IOException {
        if (scratch != null && frameLength() <= scratch.capacity()) {
            copyTo(MemorySegment.ofBuffer(scratch.clear()));
            scratch.limit((int) frameLength());
            while (scratch.hasRemaining()) {
                if (channel.write(scratch) > 0 && progress != null) {
                    progress.run();
                }
            }
            return;
        }
        try (Arena heapCopies = Arena.ofConfined()) {
            List<ByteBuffer> views = new java.util.ArrayList<>(pieces.size() + 4);
            for (MemorySegment piece : pieces) {
                views.addAll(Memory.views(piece, heapCopies));
            }
            gatherWrite(channel, views.toArray(ByteBuffer[]::new), progress);
        }
    }

    private static void gatherWrite(GatheringByteChannel channel, ByteBuffer[] buffers, Runnable progress)
            throws IOException {
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

    /**
     * The whole frame copied into one segment of native memory.
     *
     * @return a new segment of {@link #frameLength()} bytes
     */
    public MemorySegment toSegment() {
        MemorySegment out = Arena.ofAuto().allocate(frameLength(), 64);
        copyTo(out);
        return out;
    }

    private void copyTo(MemorySegment out) {
        long position = 0;
        for (MemorySegment piece : pieces) {
            MemorySegment.copy(piece, 0, out, position, piece.byteSize());
            position += piece.byteSize();
        }
    }
}
