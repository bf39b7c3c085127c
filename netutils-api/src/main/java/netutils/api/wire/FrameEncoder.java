package netutils.api.wire;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;
import netutils.api.wire.FrameHeader;
import netutils.api.FrameTooLargeException;
import netutils.api.wire.Frames;
import netutils.api.Message;
import netutils.api.Tensor;
import netutils.api.spi.Envelope;
import netutils.api.spi.Serializer;
import netutils.api.internal.Memory;

/** Lays a {@link Message} out as a frame without copying tensor bytes. */
public final class FrameEncoder {
    private static final MemorySegment ZEROS = MemorySegment.ofArray(new byte[Frames.DATA_ALIGNMENT]).asReadOnly();

    private FrameEncoder() {
    }

    /**
     * The frame of {@code message} with {@code serializer}'s envelope.
     *
     * @param message the message
     * @param serializer the serializer that writes the envelope
     * @param checksum whether a CRC32C trailer follows the body
     * @return the frame, ready to be written
     * @throws FrameTooLargeException before anything is written, if the body would exceed 2^32 - 1 bytes
     */
    public static EncodedFrame encode(Message message, Serializer serializer, boolean checksum) {
        List<Envelope.Entry> entries = new ArrayList<>(message.tensors().size());
        long dataLength = 0;
        for (Map.Entry<String, Tensor> named : message.tensors().entrySet()) {
            Tensor tensor = named.getValue();
            long offset = Frames.align(dataLength);
            entries.add(new Envelope.Entry(named.getKey(), tensor.dtype().wireName(), tensor.shape(), offset,
                    tensor.byteSize()));
            dataLength = offset + tensor.byteSize();
        }
        Envelope envelope = new Envelope(message.type().name(), message.id().orElse(null),
                message.replyTo().orElse(null), message.meta(), entries);
        byte[] envelopeBytes = serializer.writeEnvelope(envelope);
        long dataStart = Frames.align(Frames.ENVELOPE_LENGTH_FIELD + (long) envelopeBytes.length);
        long bodyLength = dataStart + dataLength;
        if (bodyLength > Frames.MAX_BODY_LENGTH) {
            throw new FrameTooLargeException(bodyLength);
        }
        FrameHeader header = FrameHeader.of(serializer.id(), checksum, bodyLength);

        ByteBuffer prefix = ByteBuffer.allocate((int) (Frames.HEADER_LENGTH + dataStart)).order(ByteOrder.BIG_ENDIAN);
        header.encode(prefix);
        prefix.putInt(envelopeBytes.length).put(envelopeBytes);
        prefix.position(0); // the rest is already zero: the padding
        List<MemorySegment> pieces = new ArrayList<>(2 + 2 * entries.size());
        pieces.add(MemorySegment.ofArray(prefix.array()));
        long written = 0;
        int index = 0;
        for (Tensor tensor : message.tensors().values()) {
            long offset = entries.get(index++).offset();
            if (offset > written) {
                pieces.add(ZEROS.asSlice(0, offset - written));
            }
            if (tensor.byteSize() > 0) {
                pieces.add(tensor.data());
            }
            written = offset + tensor.byteSize();
        }
        if (checksum) {
            CRC32C crc = new CRC32C();
            try (java.lang.foreign.Arena scratch = java.lang.foreign.Arena.ofConfined()) {
                for (int i = 0; i < pieces.size(); i++) {
                    // the checksum covers the body only
                    MemorySegment piece = i == 0 ? pieces.get(0).asSlice(Frames.HEADER_LENGTH) : pieces.get(i);
                    Memory.views(piece, scratch).forEach(crc::update);
                }
            }
            pieces.add(MemorySegment.ofArray(ByteBuffer.allocate(Frames.CHECKSUM_LENGTH)
                    .putInt(0, (int) crc.getValue()).array()));
        }
        return new EncodedFrame(header, List.copyOf(pieces));
    }
}
