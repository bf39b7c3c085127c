package netutils.api;

/**
 * A message does not fit one frame: its body would exceed {@value #MAX_BODY_LENGTH} bytes (the 32-bit length
 * of the wire format). Thrown before anything is sent; the message says by how much. It is a caller error,
 * like any argument that cannot be used, hence unchecked.
 */
public class FrameTooLargeException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    /** The largest body a frame can declare: 2^32 - 1 bytes, as {@code netutils.api.wire.Frames.MAX_BODY_LENGTH}. */
    public static final long MAX_BODY_LENGTH = 0xFFFF_FFFFL;

    /** The body length the message would have needed; part of the serialized form. */
    private final long bodyLength;

    /**
     * A message whose body would have {@code bodyLength} bytes.
     *
     * @param bodyLength the body length the message would need
     */
    public FrameTooLargeException(long bodyLength) {
        super(String.format("message needs a frame body of %,d bytes, %,d bytes over the %,d-byte maximum",
                bodyLength, bodyLength - MAX_BODY_LENGTH, MAX_BODY_LENGTH));
        this.bodyLength = bodyLength;
    }

    /**
     * How many bytes the body would have had.
     *
     * @return the body length
     */
    public long bodyLength() {
        return bodyLength;
    }

    /**
     * How many bytes over the maximum the body is.
     *
     * @return the body length minus {@code Frames.MAX_BODY_LENGTH}
     */
    public long excessBytes() {
        return bodyLength - MAX_BODY_LENGTH;
    }
}
