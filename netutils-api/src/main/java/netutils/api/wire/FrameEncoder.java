package netutils.api.wire;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
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
    private static final MemorySegment ZEROS = MemorySegment.ofArray(new byte[Frames.DATA_ALIGNMENT * 3]).asReadOnly();
    /** Tensors this large are placed where copying them is fast; below, the two copies cost a few nanoseconds. */
    static final long PLACED_MIN_BYTES = 64 * 1024;
    private static final long PAGE = 4096;

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
        List<Tensor> tensors = List.copyOf(message.tensors().values());
        long[] plain = layout(tensors, -1, null);
        byte[] plainEnvelope = writeEnvelope(message, serializer, plain);
        long plainStart = dataStart(plainEnvelope);
        // Where large tensors go depends on where the data area starts, which depends on the envelope's length,
        // which depends on the offsets written in it: redo the layout while the start moves. No offset goes below
        // the last try's, so offsets, envelope and start only grow and this settles; a message without large
        // tensors keeps its first envelope. Every layout tried is a valid frame.
        long[] offsets = plain;
        byte[] envelopeBytes = plainEnvelope;
        long dataStart = plainStart;
        for (int attempt = 0; attempt < 4; attempt++) {
            long[] placed = layout(tensors, Frames.HEADER_LENGTH + dataStart, offsets);
            if (Arrays.equals(placed, offsets)) {
                break;
            }
            offsets = placed;
            envelopeBytes = writeEnvelope(message, serializer, offsets);
            long moved = dataStart(envelopeBytes);
            if (moved == dataStart) {
                break;
            }
            dataStart = moved;
        }
        long bodyLength = dataStart + dataEnd(tensors, offsets);
        if (bodyLength > Frames.MAX_BODY_LENGTH && plainStart + dataEnd(tensors, plain) <= Frames.MAX_BODY_LENGTH) {
            // placing added padding (at most a few hundred bytes a tensor): never refuse a message for that
            offsets = plain;
            envelopeBytes = plainEnvelope;
            dataStart = plainStart;
            bodyLength = plainStart + dataEnd(tensors, plain);
        }
        if (bodyLength > Frames.MAX_BODY_LENGTH) {
            throw new FrameTooLargeException(bodyLength);
        }
        FrameHeader header = FrameHeader.of(serializer.id(), checksum, bodyLength);

        ByteBuffer prefix = ByteBuffer.allocate((int) (Frames.HEADER_LENGTH + dataStart)).order(ByteOrder.BIG_ENDIAN);
        header.encode(prefix);
        prefix.putInt(envelopeBytes.length).put(envelopeBytes);
        prefix.position(0); // the rest is already zero: the padding
        List<MemorySegment> pieces = new ArrayList<>(2 + 2 * tensors.size());
        pieces.add(MemorySegment.ofArray(prefix.array()));
        long written = 0;
        int index = 0;
        for (Tensor tensor : tensors) {
            long offset = offsets[index++];
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

    private static byte[] writeEnvelope(Message message, Serializer serializer, long[] offsets) {
        List<Envelope.Entry> entries = new ArrayList<>(offsets.length);
        int index = 0;
        for (Map.Entry<String, Tensor> named : message.tensors().entrySet()) {
            Tensor tensor = named.getValue();
            entries.add(new Envelope.Entry(named.getKey(), tensor.dtype().wireName(), tensor.shape(), offsets[index++],
                    tensor.byteSize()));
        }
        return serializer.writeEnvelope(new Envelope(message.type().name(), message.id().orElse(null),
                message.replyTo().orElse(null), message.meta(), entries));
    }

    private static long dataStart(byte[] envelope) {
        return Frames.align(Frames.ENVELOPE_LENGTH_FIELD + (long) envelope.length);
    }

    private static long dataEnd(List<Tensor> tensors, long[] offsets) {
        return tensors.isEmpty() ? 0 : offsets[offsets.length - 1] + tensors.getLast().byteSize();
    }

    /**
     * Each tensor's offset in the data area: the first multiple of 64 after the previous tensor's end and not below
     * its {@code floor} offset (null: none), or, for a tensor of at least {@link #PLACED_MIN_BYTES} when the data
     * area starts {@code dataStartInFrame} bytes into the frame (negative: not known yet), the next one or two
     * multiples when that one would make the kernel's copies of its bytes slow.
     */
    static long[] layout(List<Tensor> tensors, long dataStartInFrame, long[] floor) {
        long[] offsets = new long[tensors.size()];
        long end = 0;
        for (int i = 0; i < offsets.length; i++) {
            Tensor tensor = tensors.get(i);
            long offset = Math.max(Frames.align(end), floor == null ? 0 : floor[i]);
            if (dataStartInFrame >= 0 && tensor.byteSize() >= PLACED_MIN_BYTES) {
                long source = tensor.data().isNative() ? tensor.data().address() : -1;
                // each condition rules out one of 64 consecutive places, so two moves always suffice
                for (int move = 0; move < 2 && slowCopy(dataStartInFrame + offset, source); move++) {
                    offset += Frames.DATA_ALIGNMENT;
                }
            }
            offsets[i] = offset;
            end = offset + tensor.byteSize();
        }
        return offsets;
    }

    /**
     * Whether a tensor starting {@code framePosition} bytes into its frame, sent from {@code source} (negative:
     * heap memory, which is copied to native memory before it reaches the socket), lands where copies run slowly.
     * A CPU copying forward slows down by up to a fifth when the destination runs 1 to 63 bytes ahead of the source
     * modulo the page size (loads look dependent on earlier stores to the same page offset: "4K aliasing"; it is
     * measurable with 256 MiB tensors on loopback). A connection with nothing in flight starts the next frame at
     * the start of a socket page, so the sender's copy runs {@code framePosition - source} ahead, and a receiver's
     * copy into page-aligned memory (pooled tensors are) runs {@code -framePosition} ahead; a raw socket gets
     * either for free only by luck.
     */
    private static boolean slowCopy(long framePosition, long source) {
        return (source >= 0 && aliases(framePosition - source)) || aliases(-framePosition);
    }

    private static boolean aliases(long destinationAhead) {
        long ahead = Math.floorMod(destinationAhead, PAGE);
        return ahead > 0 && ahead < Frames.DATA_ALIGNMENT;
    }
}
