package netutils.api;

/**
 * A message does not fit one frame: its body would exceed {@link Frames#MAX_BODY_LENGTH}
 * (4,294,967,295 bytes). Thrown before anything is sent; the message says by how much.
 */
public class FrameTooLargeException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    private final long bodyLength;

    /** A message whose body would have {@code bodyLength} bytes. */
    public FrameTooLargeException(long bodyLength) {
        super(String.format("message needs a frame body of %,d bytes, %,d bytes over the %,d-byte maximum",
                bodyLength, bodyLength - Frames.MAX_BODY_LENGTH, Frames.MAX_BODY_LENGTH));
        this.bodyLength = bodyLength;
    }

    /** How many bytes the body would have had. */
    public long bodyLength() {
        return bodyLength;
    }

    /** How many bytes over the maximum the body is. */
    public long excessBytes() {
        return bodyLength - Frames.MAX_BODY_LENGTH;
    }
}
