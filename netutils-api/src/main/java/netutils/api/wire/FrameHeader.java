package netutils.api.wire;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import netutils.api.ProtocolException;

/**
 * The 12-byte header of a frame (layout in {@link Frames}). {@link #decode} validates every field and says
 * which one is wrong; {@link #encode} writes one. Both are plain functions on buffers: no socket needed.
 *
 * @param version the protocol version
 * @param serializerId the wire id of the envelope's serializer
 * @param flags the flag bits
 * @param bodyLength the body length, 0 to {@link Frames#MAX_BODY_LENGTH}
 */
public record FrameHeader(int version, int serializerId, int flags, long bodyLength) {

    /** Checks each field's range (not whether the serializer is installed). */
    public FrameHeader {
        if (version < 0 || version > 255 || serializerId < 0 || serializerId > 255 || flags < 0 || flags > 255) {
            throw new IllegalArgumentException("header fields are single bytes");
        }
        if (bodyLength < 0 || bodyLength > Frames.MAX_BODY_LENGTH) {
            throw new IllegalArgumentException("body length " + bodyLength + " is outside 0.." + Frames.MAX_BODY_LENGTH);
        }
    }

    /**
     * A version-1 header.
     *
     * @param serializerId the wire id of the envelope's serializer
     * @param checksum whether a CRC32C trailer follows the body
     * @param bodyLength the body's length, 0 to {@link Frames#MAX_BODY_LENGTH}
     * @return the header
     */
    public static FrameHeader of(int serializerId, boolean checksum, long bodyLength) {
        return new FrameHeader(Frames.VERSION, serializerId, checksum ? Frames.FLAG_CHECKSUM : 0, bodyLength);
    }

    /**
     * Whether a CRC32C trailer follows the body.
     *
     * @return whether the checksum flag is set
     */
    public boolean hasChecksum() {
        return (flags & Frames.FLAG_CHECKSUM) != 0;
    }

    /**
     * Header, body and trailer: the number of bytes the whole frame occupies on the wire.
     *
     * @return the frame's length in bytes
     */
    public long frameLength() {
        return Frames.HEADER_LENGTH + bodyLength + (hasChecksum() ? Frames.CHECKSUM_LENGTH : 0);
    }

    /**
     * Writes the 12 header bytes at the buffer's position, advancing it.
     *
     * @param out a buffer with at least 12 bytes remaining
     */
    public void encode(ByteBuffer out) {
        ByteBuffer big = out.order() == ByteOrder.BIG_ENDIAN ? out : out.duplicate().order(ByteOrder.BIG_ENDIAN);
        int start = out.position();
        big.position(start);
        big.putShort((short) Frames.MAGIC).put((byte) version).put((byte) serializerId).put((byte) flags)
                .put((byte) 0).put((byte) 0).put((byte) 0).putInt((int) bodyLength);
        out.position(start + Frames.HEADER_LENGTH);
    }

    /**
     * The 12 header bytes.
     *
     * @return a new array of 12 bytes
     */
    public byte[] toBytes() {
        ByteBuffer out = ByteBuffer.allocate(Frames.HEADER_LENGTH);
        encode(out);
        return out.array();
    }

    /**
     * Reads and validates 12 header bytes at the buffer's position, advancing it.
     *
     * @param in a buffer with at least 12 bytes remaining
     * @param maxBodyLength the receiver's limit for the body length
     * @return the header
     * @throws ProtocolException naming the first bad field: magic, version, reserved bits, serializer id
     *     (reserved ids only; whether it is installed is the caller's check) or body length over the limit
     */
    public static FrameHeader decode(ByteBuffer in, long maxBodyLength) throws ProtocolException {
        if (in.remaining() < Frames.HEADER_LENGTH) {
            throw new ProtocolException(ProtocolException.Kind.TRUNCATED,
                    "frame header needs " + Frames.HEADER_LENGTH + " bytes, got " + in.remaining());
        }
        ByteBuffer big = in.duplicate().order(ByteOrder.BIG_ENDIAN);
        int magic = Short.toUnsignedInt(big.getShort());
        int version = Byte.toUnsignedInt(big.get());
        int serializerId = Byte.toUnsignedInt(big.get());
        int flags = Byte.toUnsignedInt(big.get());
        int reserved = (Byte.toUnsignedInt(big.get()) << 16) | (Byte.toUnsignedInt(big.get()) << 8)
                | Byte.toUnsignedInt(big.get());
        long bodyLength = Integer.toUnsignedLong(big.getInt());
        if (magic != Frames.MAGIC) {
            throw new ProtocolException(ProtocolException.Kind.BAD_MAGIC, String.format(
                    "bad magic 0x%04X: not a netutils frame (expected 0x4E55, \"NU\")", magic));
        }
        if (version != Frames.VERSION) {
            throw new ProtocolException(ProtocolException.Kind.UNSUPPORTED_VERSION,
                    "unsupported protocol version " + version + " (this library speaks version " + Frames.VERSION + ")");
        }
        if ((flags & ~Frames.FLAG_CHECKSUM) != 0) {
            throw new ProtocolException(ProtocolException.Kind.RESERVED_BITS_SET,
                    String.format("reserved flag bits set: flags 0x%02X (only bit 0, checksum, is defined)", flags));
        }
        if (reserved != 0) {
            throw new ProtocolException(ProtocolException.Kind.RESERVED_BITS_SET,
                    String.format("reserved header bytes 5..7 must be zero, got 0x%06X", reserved));
        }
        if (!Serializers.isAssignable(serializerId)) {
            throw new ProtocolException(ProtocolException.Kind.UNKNOWN_SERIALIZER, "serializer id " + serializerId
                    + " is reserved (valid: 1 json, 2 msgpack, 3 kryo, 128..255 user serializers)");
        }
        if (bodyLength > maxBodyLength) {
            throw new ProtocolException(ProtocolException.Kind.FRAME_TOO_LARGE, String.format(
                    "frame body of %,d bytes exceeds the limit of %,d bytes (raise maxFrameBytes to accept it)",
                    bodyLength, maxBodyLength));
        }
        in.position(in.position() + Frames.HEADER_LENGTH);
        return new FrameHeader(version, serializerId, flags, bodyLength);
    }
}
