package netutils.api.wire;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import netutils.api.FrameTooLargeException;
import netutils.api.Message;
import netutils.api.ProtocolException;
import netutils.api.spi.Serializer;

/**
 * The one public place where messages become bytes and bytes become messages: whole frames
 * ({@link #toRawMessage}, {@link #fromRawMessage}), the self-contained JSON text ({@link #toJson},
 * {@link #fromJson}), and the constants of the wire format (see {@code docs/PROTOCOL.md}, which is the contract).
 *
 * <p>Failure contract: bytes or text that come from outside and break the format raise the checked
 * {@link ProtocolException} with a {@link ProtocolException.Kind kind}; a message that cannot be encoded (too
 * large for one frame) is a caller error, the unchecked {@link FrameTooLargeException}.
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
    public static final long MAX_BODY_LENGTH = FrameTooLargeException.MAX_BODY_LENGTH;
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
     * @param message the message
     * @param serializer the serializer that would write the envelope
     * @param checksum whether a CRC32C trailer would follow the body
     * @return header, body and trailer bytes
     * @throws FrameTooLargeException if the message does not fit a frame
     */
    public static long frameLength(Message message, Serializer serializer, boolean checksum) {
        return FrameEncoder.encode(message, serializer, false).frameLength() + (checksum ? CHECKSUM_LENGTH : 0);
    }

    /**
     * {@code message} as one whole frame with the default serializer (a JSON envelope): the original
     * {@code Message} raw form.
     *
     * @param message the message
     * @return the frame's bytes
     * @throws FrameTooLargeException if the message does not fit a frame
     * @throws IllegalArgumentException if the frame is larger than a Java array; use {@link #toRawSegment}
     */
    public static byte[] toRawMessage(Message message) {
        return toRawMessage(message, Serializers.defaultSerializer());
    }

    /**
     * {@code message} as one whole frame with the given serializer's envelope.
     *
     * @param message the message
     * @param serializer the serializer that writes the envelope
     * @return the frame's bytes, without a checksum trailer
     * @throws FrameTooLargeException if the message does not fit a frame
     * @throws IllegalArgumentException if the frame is larger than a Java array; use {@link #toRawSegment}
     */
    public static byte[] toRawMessage(Message message, Serializer serializer) {
        MemorySegment frame = toRawSegment(message, serializer, false);
        if (frame.byteSize() > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("a frame of " + frame.byteSize()
                    + " bytes does not fit a byte[]; use toRawSegment");
        }
        return frame.toArray(ValueLayout.JAVA_BYTE);
    }

    /**
     * {@code message} as one whole frame in native memory, of any size up to {@link #MAX_BODY_LENGTH}.
     *
     * @param message the message
     * @param serializer the serializer that writes the envelope
     * @param checksum whether to append a CRC32C of the body
     * @return the frame's bytes in a new segment of native memory
     * @throws FrameTooLargeException if the message does not fit a frame
     */
    public static MemorySegment toRawSegment(Message message, Serializer serializer, boolean checksum) {
        return FrameEncoder.encode(message, serializer, checksum).toSegment();
    }

    /**
     * Parses one whole frame (header, body and, if flagged, checksum): the original
     * {@code Message.from_raw_message}.
     *
     * @param frame exactly one frame's bytes
     * @return the message, its tensors on fresh memory
     * @throws ProtocolException naming what is wrong with the frame, including bytes after its end
     */
    public static Message fromRawMessage(byte[] frame) throws ProtocolException {
        return fromRawMessage(MemorySegment.ofArray(frame));
    }

    /**
     * Parses one whole frame from the remaining bytes of a buffer; see {@link #fromRawMessage(byte[])}.
     *
     * @param frame a buffer whose remaining bytes are exactly one frame; its position is not changed
     * @return the message, its tensors on fresh memory
     * @throws ProtocolException naming what is wrong with the frame, including bytes after its end
     */
    public static Message fromRawMessage(ByteBuffer frame) throws ProtocolException {
        return fromRawMessage(MemorySegment.ofBuffer(frame));
    }

    /**
     * Parses one whole frame held in a segment, of any size; see {@link #fromRawMessage(byte[])}.
     *
     * @param frame exactly one frame's bytes
     * @return the message, its tensors on fresh memory
     * @throws ProtocolException naming what is wrong with the frame, including bytes after its end
     */
    public static Message fromRawMessage(MemorySegment frame) throws ProtocolException {
        if (frame.byteSize() >= HEADER_LENGTH) {
            // A raw message is all there is of the frame, so a header that declares more than it holds is refused
            // here, before the decoder sizes anything by the declared lengths (a 45-byte frame declaring a 16 MiB
            // envelope made it allocate 16 MiB). Header errors come first, in the decoder's order.
            FrameHeader header = FrameHeader.decode(frame.asSlice(0, HEADER_LENGTH).asByteBuffer(), MAX_BODY_LENGTH);
            Serializers.byId(header.serializerId());
            if (header.frameLength() > frame.byteSize()) {
                throw new ProtocolException(ProtocolException.Kind.TRUNCATED, "raw message of " + frame.byteSize()
                        + " bytes is cut short: its header declares a " + header.frameLength() + "-byte frame");
            }
        }
        return FrameDecoder.decodeWhole(frame, FrameDecoder.Limits.PROTOCOL_MAXIMUM).message();
    }

    /**
     * The self-contained JSON text of {@code message}, tensor bytes in base64, for logs, debugging and peers that
     * only speak JSON (not the wire format): the original {@code Message.to_json()}.
     *
     * @param message the message
     * @return a JSON object as text
     * @throws IllegalStateException if no JSON text format is installed (add {@code netutils-serde-json})
     * @throws IllegalArgumentException if the text would be longer than a Java string can be
     */
    public static String toJson(Message message) {
        return Serializers.textFormat("json").write(message);
    }

    /**
     * Reads the text of {@link #toJson}: the original {@code Message.from_json(json_string)}. Unknown keys,
     * duplicate keys and values of the wrong kind are refused, never ignored.
     *
     * @param json text written by {@link #toJson}
     * @return the message, its tensors on fresh memory
     * @throws ProtocolException naming what is wrong with the text
     * @throws NullPointerException if {@code json} is null
     * @throws IllegalStateException if no JSON text format is installed (add {@code netutils-serde-json})
     */
    public static Message fromJson(String json) throws ProtocolException {
        java.util.Objects.requireNonNull(json, "json text to read a message from is null");
        return Serializers.textFormat("json").read(json);
    }

    /**
     * {@code value} rounded up to the next multiple of {@link #DATA_ALIGNMENT}.
     *
     * @param value a byte count or offset, not negative
     * @return the smallest multiple of {@link #DATA_ALIGNMENT} not below {@code value}
     */
    public static long align(long value) {
        return (value + DATA_ALIGNMENT - 1) & -DATA_ALIGNMENT;
    }
}
