package netutils.serde.msgpack;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import netutils.api.ProtocolException;
import netutils.api.spi.Envelope;
import netutils.api.spi.Serializer;
import org.msgpack.core.MessageBufferPacker;
import org.msgpack.core.MessageFormat;
import org.msgpack.core.MessagePack;
import org.msgpack.core.MessagePackException;
import org.msgpack.core.MessageUnpacker;
import org.msgpack.value.ValueType;

/**
 * MessagePack envelopes, wire id 2: a map with the keys of the JSON envelope ({@code type}, {@code id},
 * {@code reply_to}, {@code meta}, {@code tensors} of {@code name}, {@code dtype}, {@code shape}, {@code offset},
 * {@code nbytes}). Unknown keys are skipped. Every count and string length read from the wire is checked against
 * the bytes that remain before anything is allocated.
 */
public final class MsgpackSerializer implements Serializer {
    /** The wire id. */
    public static final int ID = 2;

    static {
        // msgpack-core picks Unsafe-based buffers unless told otherwise, and JDK 24+ warns on every console
        // that loads them. The portable ByteBuffer-based ones are plenty for envelopes of a few hundred bytes.
        // This must run before msgpack's MessageBuffer class loads; a user's explicit setting wins.
        if (System.getProperty("msgpack.universal-buffer") == null) {
            System.setProperty("msgpack.universal-buffer", "true");
        }
    }

    /**
     * The default packer starts with an 8 KiB buffer, costlier to allocate than the whole envelope is to write;
     * envelopes are a few hundred bytes, and the buffer grows when one is larger.
     */
    private static final MessagePack.PackerConfig PACKER = new MessagePack.PackerConfig().withBufferSize(512);

    /** Used by {@link java.util.ServiceLoader}. */
    public MsgpackSerializer() {
    }

    @Override
    public int id() {
        return ID;
    }

    @Override
    public String name() {
        return "msgpack";
    }

    @Override
    public byte[] writeEnvelope(Envelope envelope) {
        try (MessageBufferPacker packer = PACKER.newBufferPacker()) {
            int fields = 3 + (envelope.id() != null ? 1 : 0) + (envelope.replyTo() != null ? 1 : 0);
            packer.packMapHeader(fields);
            packer.packString("type").packString(envelope.type());
            if (envelope.id() != null) {
                packer.packString("id").packString(envelope.id());
            }
            if (envelope.replyTo() != null) {
                packer.packString("reply_to").packString(envelope.replyTo());
            }
            packer.packString("meta").packMapHeader(envelope.meta().size());
            for (Map.Entry<String, String> entry : envelope.meta().entrySet()) {
                packer.packString(entry.getKey()).packString(entry.getValue());
            }
            packer.packString("tensors").packArrayHeader(envelope.tensors().size());
            for (Envelope.Entry entry : envelope.tensors()) {
                packer.packMapHeader(5);
                packer.packString("name").packString(entry.name());
                packer.packString("dtype").packString(entry.dtype());
                long[] shape = entry.shape();
                packer.packString("shape").packArrayHeader(shape.length);
                for (long dim : shape) {
                    packer.packLong(dim);
                }
                packer.packString("offset").packLong(entry.offset());
                packer.packString("nbytes").packLong(entry.nbytes());
            }
            return packer.toByteArray();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("writing to memory cannot fail", e);
        }
    }

    @Override
    public Envelope readEnvelope(byte[] bytes) throws ProtocolException {
        try (MessageUnpacker in = MessagePack.newDefaultUnpacker(bytes)) {
            Reader reader = new Reader(in, bytes.length);
            Envelope envelope = reader.envelope();
            if (in.hasNext()) {
                throw new Invalid("envelope has " + (bytes.length - in.getTotalReadBytes()) + " bytes after its map");
            }
            return envelope;
        } catch (Invalid e) {
            throw new ProtocolException(ProtocolException.Kind.MALFORMED_ENVELOPE, "msgpack envelope: " + e.getMessage());
        } catch (MessagePackException | IOException e) {
            throw new ProtocolException(ProtocolException.Kind.MALFORMED_ENVELOPE,
                    "msgpack envelope does not parse: " + e.getMessage(), e);
        }
    }

    private static final class Invalid extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Invalid(String message) {
            super(message);
        }
    }

    /** Strict, bounded reads of the envelope schema. */
    private static final class Reader {
        private final MessageUnpacker in;
        private final long size;

        Reader(MessageUnpacker in, long size) {
            this.in = in;
            this.size = size;
        }

        Envelope envelope() throws IOException {
            String type = null;
            String id = null;
            String replyTo = null;
            Map<String, String> meta = new LinkedHashMap<>();
            List<Envelope.Entry> tensors = new ArrayList<>();
            int fields = mapHeader("envelope");
            for (int i = 0; i < fields; i++) {
                String key = string("envelope key");
                switch (key) {
                    case "type" -> type = string("type");
                    case "id" -> id = optionalString("id");
                    case "reply_to" -> replyTo = optionalString("reply_to");
                    case "meta" -> {
                        int entries = mapHeader("meta");
                        for (int e = 0; e < entries; e++) {
                            String metaKey = string("meta key");
                            meta.put(metaKey, string("meta." + metaKey));
                        }
                    }
                    case "tensors" -> {
                        int count = arrayHeader("tensors");
                        for (int t = 0; t < count; t++) {
                            tensors.add(entry("tensors[" + t + "]"));
                        }
                    }
                    default -> in.skipValue();
                }
            }
            if (type == null) {
                throw new Invalid("type is missing");
            }
            return new Envelope(type, id, replyTo, meta, tensors);
        }

        private Envelope.Entry entry(String path) throws IOException {
            String name = null;
            String dtype = null;
            long[] shape = null;
            long offset = -1;
            long nbytes = -1;
            int fields = mapHeader(path);
            for (int i = 0; i < fields; i++) {
                String key = string(path + " key");
                switch (key) {
                    case "name" -> name = string(path + ".name");
                    case "dtype" -> dtype = string(path + ".dtype");
                    case "shape" -> {
                        shape = new long[arrayHeader(path + ".shape")];
                        for (int d = 0; d < shape.length; d++) {
                            shape[d] = nonNegativeLong(path + ".shape[" + d + "]");
                        }
                    }
                    case "offset" -> offset = nonNegativeLong(path + ".offset");
                    case "nbytes" -> nbytes = nonNegativeLong(path + ".nbytes");
                    default -> in.skipValue();
                }
            }
            if (name == null || dtype == null || shape == null || offset < 0 || nbytes < 0) {
                throw new Invalid(path + " needs name, dtype, shape, offset and nbytes");
            }
            return new Envelope.Entry(name, dtype, shape, offset, nbytes);
        }

        private long remaining() {
            return size - in.getTotalReadBytes();
        }

        private ValueType next(String path) throws IOException {
            if (!in.hasNext()) {
                throw new Invalid(path + " is missing: the envelope ends early");
            }
            return in.getNextFormat().getValueType();
        }

        private int mapHeader(String path) throws IOException {
            ValueType type = next(path);
            if (type != ValueType.MAP) {
                throw new Invalid(path + " must be a map, got " + type);
            }
            int count = in.unpackMapHeader();
            if (count < 0 || count > remaining() / 2) {
                throw new Invalid(path + " declares " + Integer.toUnsignedString(count) + " entries but only "
                        + remaining() + " bytes remain");
            }
            return count;
        }

        private int arrayHeader(String path) throws IOException {
            ValueType type = next(path);
            if (type != ValueType.ARRAY) {
                throw new Invalid(path + " must be an array, got " + type);
            }
            int count = in.unpackArrayHeader();
            if (count < 0 || count > remaining()) {
                throw new Invalid(path + " declares " + Integer.toUnsignedString(count) + " elements but only "
                        + remaining() + " bytes remain");
            }
            return count;
        }

        private String string(String path) throws IOException {
            ValueType type = next(path);
            if (type != ValueType.STRING) {
                throw new Invalid(path + " must be a string, got " + type);
            }
            int length = in.unpackRawStringHeader();
            if (length < 0 || length > remaining()) {
                throw new Invalid(path + " declares a string of " + Integer.toUnsignedString(length)
                        + " bytes but only " + remaining() + " bytes remain");
            }
            return new String(in.readPayload(length), StandardCharsets.UTF_8);
        }

        private String optionalString(String path) throws IOException {
            if (in.hasNext() && in.getNextFormat() == MessageFormat.NIL) {
                in.unpackNil();
                return null;
            }
            return string(path);
        }

        private long nonNegativeLong(String path) throws IOException {
            ValueType type = next(path);
            if (type != ValueType.INTEGER) {
                throw new Invalid(path + " must be an integer, got " + type);
            }
            long value;
            try {
                value = in.unpackLong();
            } catch (MessagePackException e) {
                throw new Invalid(path + " does not fit 64 bits");
            }
            if (value < 0) {
                throw new Invalid(path + " must be a non-negative integer, got " + value);
            }
            return value;
        }
    }
}
