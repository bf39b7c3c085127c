package netutils.api.wire;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;
import netutils.api.DType;
import netutils.api.wire.FrameHeader;
import netutils.api.wire.Frames;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.ProtocolException;
import netutils.api.ProtocolException.Kind;
import netutils.api.wire.Serializers;
import netutils.api.Tensor;
import netutils.api.spi.Envelope;
import netutils.api.spi.EnvelopeSchema;
import netutils.api.spi.Serializer;
import netutils.api.internal.Memory;

/**
 * Reads one frame from a {@link FrameSource} and builds the {@link Message}, validating every field on the way.
 * Tensor bytes go from the source straight into each tensor's own segment; nothing is allocated for a tensor
 * before its turn comes, and an envelope only once its declared length has passed the limits.
 */
public final class FrameDecoder {
    /** With a checksum, read in slices this large so the CRC runs over bytes still in cache. */
    private static final long CHECKSUM_SLICE = 1L << 20;
    /** The envelope buffer starts this large and doubles as bytes arrive. */
    private static final int ENVELOPE_STEP = 64 * 1024;

    /**
     * Where received tensors live by default: fresh memory per tensor ({@link Memory#allocate}), freed by the
     * garbage collector once unreachable. Native memory counts against {@code -XX:MaxDirectMemorySize}, whose
     * pressure makes the JVM collect and free it.
     */
    public static final SegmentAllocator FRESH_MEMORY = (byteSize, byteAlignment) -> Memory.allocate(byteSize);

    /**
     * What a receiver accepts.
     *
     * @param maxBodyLength the largest body length, at most {@link Frames#MAX_BODY_LENGTH}
     * @param maxEnvelopeLength the largest envelope, in bytes
     */
    public record Limits(long maxBodyLength, int maxEnvelopeLength) {
        /** What the protocol itself allows. */
        public static final Limits PROTOCOL_MAXIMUM = new Limits(Frames.MAX_BODY_LENGTH, Integer.MAX_VALUE - 8);

        /** Checks the ranges. */
        public Limits {
            if (maxBodyLength < 0 || maxBodyLength > Frames.MAX_BODY_LENGTH) {
                throw new IllegalArgumentException("maxBodyLength must be 0.." + Frames.MAX_BODY_LENGTH);
            }
            if (maxEnvelopeLength < 0) {
                throw new IllegalArgumentException("maxEnvelopeLength must not be negative");
            }
        }
    }

    /**
     * A decoded frame.
     *
     * @param message the message
     * @param serializer the serializer that wrote its envelope
     * @param frameLength bytes the frame took on the wire
     */
    public record Decoded(Message message, Serializer serializer, long frameLength) {
    }

    private FrameDecoder() {
    }

    /**
     * Decodes a buffer that holds exactly one frame. The tensors are copied into fresh memory
     * ({@link #FRESH_MEMORY}), so the message does not depend on {@code frame} afterwards.
     *
     * @param frame the frame's bytes, nothing before or after it
     * @param limits the largest body and envelope accepted
     * @return the message, the serializer of its envelope and the frame's length
     * @throws ProtocolException if the frame is malformed, the input is shorter, or bytes follow it
     */
    public static Decoded decodeWhole(MemorySegment frame, Limits limits) throws ProtocolException {
        SegmentSource source = new SegmentSource(frame);
        Decoded decoded;
        try {
            decoded = read(source, limits, FRESH_MEMORY);
        } catch (ProtocolException e) {
            throw e;
        } catch (IOException e) {
            throw new ProtocolException(Kind.TRUNCATED, e.getMessage(), e);
        }
        if (decoded == null) {
            throw new ProtocolException(Kind.TRUNCATED, "raw message is empty: a frame has at least "
                    + Frames.HEADER_LENGTH + " bytes");
        }
        if (source.remaining() > 0) {
            throw new ProtocolException(Kind.TRAILING_BYTES, "raw message has " + source.remaining()
                    + " bytes after the end of its " + decoded.frameLength() + "-byte frame");
        }
        return decoded;
    }

    /**
     * Reads the next frame: {@link #readHeader}, then {@link #readBody}.
     *
     * @param source where the frame's bytes come from
     * @param limits the largest body and envelope accepted
     * @param tensorMemory where tensors go; {@code null} for memory lent from a pool that {@link Message#close()}
     *     gives back
     * @return the frame, or {@code null} if the source ended cleanly before it began
     * @throws ProtocolException if the frame breaks the format, or the source ends inside it ({@link Kind#TRUNCATED})
     * @throws IOException if reading fails
     */
    public static Decoded read(FrameSource source, Limits limits, SegmentAllocator tensorMemory) throws IOException {
        FrameHeader header = readHeader(source, limits);
        return header == null ? null : readBody(source, header, limits, tensorMemory, "memory");
    }

    /**
     * Reads and checks the 12-byte header of the next frame. A transport calls this once bytes are known to be
     * coming, so that it can reserve memory for the body before {@link #readBody}.
     *
     * @param source where the frame's bytes come from
     * @param limits the largest body accepted (the envelope limit is checked by {@link #readBody})
     * @return the header, or {@code null} if the source ended cleanly before the frame began
     * @throws ProtocolException if the header breaks the format or is cut off
     * @throws IOException if reading fails
     */
    public static FrameHeader readHeader(FrameSource source, Limits limits) throws IOException {
        ByteBuffer head = ByteBuffer.allocate(Frames.HEADER_LENGTH).order(ByteOrder.BIG_ENDIAN);
        try {
            if (!source.readFrameStart(head)) {
                return null;
            }
        } catch (EOFException e) {
            throw truncated("the frame header", head.position(), Frames.HEADER_LENGTH, e);
        }
        head.flip();
        return FrameHeader.decode(head, limits.maxBodyLength());
    }

    /**
     * Reads the body of a frame whose header was read, and builds the message.
     *
     * @param source where the frame's bytes come from, just after the header
     * @param header the frame's header, from {@link #readHeader}
     * @param limits the largest envelope accepted
     * @param tensorMemory where tensors go; {@code null} for the default, memory lent from a pool that
     *     {@link Message#close()} gives back
     * @param peer who sent the frame, for reports about unclosed messages
     * @return the message, the serializer of its envelope and the frame's length
     * @throws ProtocolException if the body breaks the format, or the source ends inside it
     * @throws IOException if reading fails
     */
    public static Decoded readBody(FrameSource source, FrameHeader header, Limits limits,
            SegmentAllocator tensorMemory, String peer) throws IOException {
        Serializer serializer = Serializers.byId(header.serializerId());
        if (tensorMemory != null) {
            return new BodyReader(source, header, limits, serializer, tensorMemory).read(null);
        }
        TensorPool.Lending lending = TensorPool.SHARED.lend(peer);
        boolean built = false;
        try {
            Decoded decoded = new BodyReader(source, header, limits, serializer, lending).read(lending);
            built = true;
            return decoded;
        } finally {
            if (!built) {
                lending.abandon();
            }
        }
    }

    private static ProtocolException truncated(String what, long got, long of, IOException cause) {
        return new ProtocolException(Kind.TRUNCATED, "peer stopped in the middle of a frame: got " + got + " of "
                + of + " bytes of " + what, cause);
    }

    /**
     * {@code bytes} of writable memory from {@code tensorMemory} for tensor {@code name}, 64-byte aligned; whatever
     * the allocator does wrong (runs out, hands back the wrong size or read-only memory, throws) is an IOException
     * that names the tensor. Also used where a received message is copied into a caller's memory.
     */
    static MemorySegment allocateTensor(SegmentAllocator tensorMemory, long bytes, String name) throws IOException {
        try {
            MemorySegment data = tensorMemory.allocate(bytes, Frames.DATA_ALIGNMENT);
            if (data.byteSize() != bytes || data.isReadOnly()) {
                throw new IOException("the tensor allocator returned " + data.byteSize() + " bytes"
                        + (data.isReadOnly() ? " of read-only memory" : "") + " for tensor '" + name
                        + "', which needs " + bytes);
            }
            return data;
        } catch (OutOfMemoryError e) {
            throw new IOException("cannot allocate " + bytes + " bytes for tensor '" + name
                    + "': " + e.getMessage() + " (received tensors are native memory; raise -XX:MaxDirectMemorySize)", e);
        } catch (RuntimeException e) { // a slicing allocator that is full, a closed arena, another thread's arena
            throw new IOException("the tensor allocator could not provide " + bytes + " bytes for tensor '"
                    + name + "': " + e.getMessage(), e);
        }
    }

    /** The state of reading one body. */
    private static final class BodyReader {
        private final FrameSource source;
        private final FrameHeader header;
        private final Limits limits;
        private final Serializer serializer;
        private final CRC32C crc;
        private final SegmentAllocator tensorMemory;
        private long bodyRead;

        BodyReader(FrameSource source, FrameHeader header, Limits limits, Serializer serializer,
                SegmentAllocator tensorMemory) {
            this.tensorMemory = tensorMemory;
            this.source = source;
            this.header = header;
            this.limits = limits;
            this.serializer = serializer;
            this.crc = header.hasChecksum() ? new CRC32C() : null;
        }

        Decoded read(TensorPool.Lending lending) throws IOException {
            long bodyLength = header.bodyLength();
            if (bodyLength < Frames.ENVELOPE_LENGTH_FIELD) {
                throw new ProtocolException(Kind.MALFORMED_ENVELOPE, "frame body of " + bodyLength
                        + " bytes is too short to hold the 4-byte envelope length");
            }
            ByteBuffer lengthField = ByteBuffer.allocate(Frames.ENVELOPE_LENGTH_FIELD);
            fill(lengthField, "the envelope length");
            long envelopeLength = Integer.toUnsignedLong(lengthField.getInt(0));
            if (envelopeLength > bodyLength - Frames.ENVELOPE_LENGTH_FIELD) {
                throw new ProtocolException(Kind.MALFORMED_ENVELOPE, "envelope length " + envelopeLength
                        + " runs past the end of the " + bodyLength + "-byte body");
            }
            if (envelopeLength > limits.maxEnvelopeLength()) {
                throw new ProtocolException(Kind.MALFORMED_ENVELOPE, "envelope of " + envelopeLength
                        + " bytes exceeds the limit of " + limits.maxEnvelopeLength() + " bytes");
            }
            byte[] envelopeBytes = readEnvelope((int) envelopeLength);
            Envelope envelope;
            try {
                envelope = serializer.readEnvelope(envelopeBytes);
            } catch (ProtocolException e) {
                throw e;
            } catch (RuntimeException e) {
                // The serializer contract: bad input is a ProtocolException, but a library's own unchecked
                // exception (Kryo's, a parser's) means the same thing and is reported the same way.
                throw new ProtocolException(Kind.MALFORMED_ENVELOPE, serializer.name() + " envelope does not parse: "
                        + e.getMessage(), e);
            }
            long dataStart = Frames.align(Frames.ENVELOPE_LENGTH_FIELD + envelopeLength);
            Message.Builder builder = startMessage(envelope);
            List<Envelope.Entry> entries = envelope.tensors();
            DType[] dtypes = EnvelopeSchema.checkTable(entries, header.bodyLength() - dataStart);

            for (int i = 0; i < entries.size(); i++) {
                Envelope.Entry entry = entries.get(i);
                skipTo(dataStart + entry.offset());
                MemorySegment data = allocateTensor(tensorMemory, entry.nbytes(), entry.name());
                readTensor(data, entry);
                builder.tensor(entry.name(), Tensor.wrap(dtypes[i], data, entry.shape()));
            }
            skipTo(bodyLength);
            if (crc != null) {
                ByteBuffer trailer = ByteBuffer.allocate(Frames.CHECKSUM_LENGTH);
                try {
                    source.readFully(trailer);
                } catch (EOFException e) {
                    throw truncated("the checksum", trailer.position(), Frames.CHECKSUM_LENGTH, e);
                }
                int expected = trailer.getInt(0);
                int actual = (int) crc.getValue();
                if (expected != actual) {
                    throw new ProtocolException(Kind.CHECKSUM_MISMATCH, String.format(
                            "body checksum mismatch: frame says CRC32C 0x%08X, body has 0x%08X", expected, actual));
                }
            }
            if (lending != null) {
                builder.lease(lending.lease());
            }
            return new Decoded(builder.build(), serializer, header.frameLength());
        }

        private Message.Builder startMessage(Envelope envelope) throws ProtocolException {
            try {
                Message.Builder builder = Message.builder(MessageType.of(envelope.type()));
                builder.id(envelope.id()).replyTo(envelope.replyTo());
                for (Map.Entry<String, String> entry : envelope.meta().entrySet()) {
                    builder.meta(entry.getKey(), entry.getValue());
                }
                return builder;
            } catch (IllegalArgumentException | NullPointerException e) {
                throw new ProtocolException(Kind.MALFORMED_ENVELOPE, "envelope is invalid: " + e.getMessage(), e);
            }
        }

        private void readTensor(MemorySegment data, Envelope.Entry entry) throws IOException {
            long slice = crc != null ? CHECKSUM_SLICE : Memory.MAX_VIEW;
            try (Arena checksumScratch = crc != null ? Arena.ofConfined() : null) {
                for (long position = 0; position < data.byteSize(); ) {
                    long length = Math.min(slice, data.byteSize() - position);
                    MemorySegment part = data.asSlice(position, length);
                    long got = readInto(part, entry);
                    if (got < length) {
                        throw truncated("tensor '" + entry.name() + "'", position + got, data.byteSize(), null);
                    }
                    if (crc != null) {
                        crc.update(Memory.view(part, checksumScratch));
                    }
                    position += length;
                    bodyRead += length;
                }
            }
        }

        /**
         * Reads into a tensor's memory. Pooled memory is a mapping of RAM-backed files, committed page by page as
         * bytes arrive: when that file system fills up meanwhile (other processes, other receives), the kernel
         * refuses the page and the read fails with EFAULT, "Bad address", or a copy into it faults; said here in
         * words that name the cause.
         */
        private long readInto(MemorySegment part, Envelope.Entry entry) throws IOException {
            try {
                return source.readFully(part);
            } catch (IOException | InternalError e) {
                boolean fault = e instanceof InternalError || "Bad address".equals(e.getMessage());
                if (!fault || !part.isNative()) {
                    throw e;
                }
                throw new IOException("cannot store the bytes of tensor '" + entry.name() + "' (" + entry.nbytes()
                        + " bytes): the memory it was given could not be committed (" + e.getMessage() + "). Received"
                        + " tensors are RAM mapped from " + Memory.sharedMemoryDescription() + ", which is probably"
                        + " full: free room there, or set -Dnetutils.memory.dir to another RAM-backed directory", e);
            }
        }

        /**
         * Reads the envelope into an array that grows as its bytes arrive: a peer that declares a 16 MiB envelope
         * and sends nothing more costs 64 KiB, not 16 MiB.
         */
        private byte[] readEnvelope(int length) throws IOException {
            byte[] envelope = new byte[Math.min(length, ENVELOPE_STEP)];
            int got = 0;
            while (got < length) {
                if (got == envelope.length) {
                    envelope = Arrays.copyOf(envelope, (int) Math.min(length, 2L * envelope.length));
                }
                ByteBuffer part = ByteBuffer.wrap(envelope, got, envelope.length - got);
                fill(part, "the envelope");
                got = envelope.length;
            }
            return envelope;
        }

        private void fill(ByteBuffer destination, String what) throws IOException {
            int start = destination.position();
            try {
                source.readFully(destination);
            } catch (EOFException e) {
                throw truncated(what, destination.position() - start, destination.limit() - start, e);
            }
            if (crc != null) {
                crc.update(destination.duplicate().flip().position(start));
            }
            bodyRead += destination.position() - start;
        }

        /** Reads and drops bytes (padding) until {@code bodyOffset} bytes of the body are consumed. */
        private void skipTo(long bodyOffset) throws IOException {
            if (bodyRead >= bodyOffset) {
                return;
            }
            ByteBuffer scratch = ByteBuffer.allocate((int) Math.min(64 * 1024, bodyOffset - bodyRead));
            while (bodyRead < bodyOffset) {
                scratch.clear().limit((int) Math.min(scratch.capacity(), bodyOffset - bodyRead));
                fill(scratch, "padding");
            }
        }
    }
}
