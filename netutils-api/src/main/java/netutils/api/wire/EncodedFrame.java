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

    /** {@return the frame's header, which gives its lengths, flags and serializer} */
    public FrameHeader header() {
        return header;
    }

    /** {@return the bytes of the whole frame on the wire, header and trailer included} */
    public long frameLength() {
        return header.frameLength();
    }

    /**
     * The frame's bytes in order: prefix (header, envelope length, envelope, padding), each tensor's own memory
     * with zero padding between them, then the checksum trailer if any. What a transport writes.
     *
     * @return the pieces, which add up to {@link #frameLength()} bytes; the tensors' segments are not copies
     */
    public List<MemorySegment> pieces() {
        return pieces;
    }

    /**
     * The whole frame copied into one segment of native memory.
     *
     * @return a new 64-byte-aligned segment of {@link #frameLength()} bytes, freed by the garbage collector
     */
    public MemorySegment toSegment() {
        MemorySegment out = Arena.ofAuto().allocate(frameLength(), 64);
        copyTo(out);
        return out;
    }

    /**
     * Copies the whole frame into {@code out}, which must hold at least {@link #frameLength()} bytes.
     *
     * @param out where the frame goes, from its offset 0
     */
    public void copyTo(MemorySegment out) {
        long position = 0;
        for (MemorySegment piece : pieces) {
            MemorySegment.copy(piece, 0, out, position, piece.byteSize());
            position += piece.byteSize();
        }
    }
}
