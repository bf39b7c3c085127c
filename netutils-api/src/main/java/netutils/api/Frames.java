package netutils.api;

/**
 * Constants of the wire format (see {@code docs/PROTOCOL.md}, which is the contract).
 *
 * <pre>
 *  offset  size  field
 *  0       2     magic 0x4E 0x55 ("NU")
 *  2       1     protocol version, 1
 *  3       1     serializer id: 1 json, 2 msgpack, 3 kryo, 128..255 user serializers
 *  4       1     flags: bit 0 = a CRC32C of the body follows the body (4 bytes, big-endian)
 *  5       3     reserved, zero
 *  8       4     body length n, unsigned 32-bit big-endian
 *  12      n     body:
 *                  envelope length e (u32 BE) | envelope (e bytes) | zero padding to a multiple of 64
 *                  | data area: each tensor's bytes at its offset (a multiple of 64)
 * [12+n    4     CRC32C of the body, big-endian, when flag bit 0 is set]
 * </pre>
 *
 * @see FrameHeader
 */
public final class Frames {
    /** The two magic bytes, {@code "NU"}, as a big-endian short. */
    public static final int MAGIC = 0x4E55;
    /** The protocol version this library writes and reads. */
    public static final int VERSION = 1;
    /** Bytes in a frame header. */
    public static final int HEADER_LENGTH = 12;
    /** The largest body a frame can declare: 2^32 - 1 bytes. */
    public static final long MAX_BODY_LENGTH = 0xFFFF_FFFFL;
    /** Flag bit 0: a CRC32C of the body follows the body. */
    public static final int FLAG_CHECKSUM = 0x01;
    /** Bytes of the checksum trailer. */
    public static final int CHECKSUM_LENGTH = 4;
    /** Bytes of the envelope-length field at the start of the body. */
    public static final int ENVELOPE_LENGTH_FIELD = 4;
    /** The data area and every tensor offset in it are aligned to this many bytes. */
    public static final int DATA_ALIGNMENT = 64;

    private Frames() {
    }

    /**
     * How many bytes {@code message} takes on the wire as one frame with {@code serializer}'s envelope:
     * header, body and checksum trailer. Computes the layout only; tensor bytes are not touched.
     *
     * @throws FrameTooLargeException if the message does not fit a frame
     */
    public static long frameLength(Message message, netutils.api.spi.Serializer serializer, boolean checksum) {
        return netutils.api.internal.FrameEncoder.encode(message, serializer, false).frameLength()
                + (checksum ? CHECKSUM_LENGTH : 0);
    }

    /** {@code value} rounded up to the next multiple of {@link #DATA_ALIGNMENT}. */
    public static long align(long value) {
        return (value + DATA_ALIGNMENT - 1) & -DATA_ALIGNMENT;
    }
}
