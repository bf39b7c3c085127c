package netutils.api.wire;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * A message laid out as a frame, ready to write: the prefix (header, envelope length, envelope, padding),
 * then each tensor's own memory with zero padding between them, then the checksum trailer if any. The pieces
 * are the tensors' memory itself, not copies.
 * A transport writes the {@link #pieces()} (gathering writes straight from tensor memory) or, for a small
 * frame, {@linkplain #copyTo copies} them into one buffer first.
 */
public final class EncodedFrame {
    private final FrameHeader header;
    private final List<MemorySegment> pieces;

    EncodedFrame(FrameHeader header, List<MemorySegment> pieces) {
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

    /**
     * The frame's bytes in order: prefix (header, envelope length, envelope, padding), each tensor's own memory
     * with zero padding between them, then the checksum trailer if any. What a transport writes.
     */
    public List<MemorySegment> pieces() {
        return pieces;
    }

    /** The whole frame copied into one segment of native memory. */
    public MemorySegment toSegment() {
        MemorySegment out = Arena.ofAuto().allocate(frameLength(), 64);
        copyTo(out);
        return out;
    }

    /** Copies the whole frame into {@code out}, which must hold at least {@link #frameLength()} bytes. */
    public void copyTo(MemorySegment out) {
        long position = 0;
        for (MemorySegment piece : pieces) {
            MemorySegment.copy(piece, 0, out, position, piece.byteSize());
            position += piece.byteSize();
        }
    }
}
