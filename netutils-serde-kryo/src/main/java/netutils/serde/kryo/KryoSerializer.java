package netutils.serde.kryo;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.KryoException;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import netutils.api.ProtocolException;
import netutils.api.spi.Envelope;
import netutils.api.spi.EnvelopeSchema;
import netutils.api.spi.Serializer;

/**
 * Kryo envelopes, wire id 3, for Java-to-Java links: what {@code kryo.writeClassAndObject} writes for the envelope
 * registered as the one class (id {@value #ENVELOPE_REGISTRATION}, references off), that is the registration id + 2
 * as a variable-length int, then the envelope field by field in Kryo's encodings. The envelope is the only class
 * this reader reads: a frame naming any other class (by id or by name) is refused, never resolved or
 * instantiated. Every length read from the wire is checked against the bytes that remain before anything is
 * allocated.
 *
 * <p>Both directions call the envelope codec with Kryo's {@link Output} and {@link Input} directly rather than
 * through a {@link Kryo} instance: the instance would only look up that one registration, and taking one from a
 * thread-safe pool and giving it back cost more than the rest of an 8 KiB message's envelope. The bytes are the
 * same (tested against a registered Kryo instance both ways).
 */
public final class KryoSerializer implements Serializer {
    /** The wire id. */
    public static final int ID = 3;
    /** The Kryo registration id of the envelope class; part of the wire format of serializer 3. */
    static final int ENVELOPE_REGISTRATION = 16;
    /** What {@code writeClassAndObject} writes before a registered class's fields: its registration id + 2. */
    private static final int ENVELOPE_CLASS_MARK = ENVELOPE_REGISTRATION + 2;

    static {
        // Keep Kryo off sun.misc.Unsafe (JDK 24+ warns when it is used); set before Kryo's classes load.
        if (System.getProperty("kryo.unsafe") == null) {
            System.setProperty("kryo.unsafe", "false");
        }
    }

    private static final EnvelopeCodec CODEC = new EnvelopeCodec();

    /** Used by {@link java.util.ServiceLoader}. */
    public KryoSerializer() {
    }

    @Override
    public int id() {
        return ID;
    }

    @Override
    public String name() {
        return "kryo";
    }

    @Override
    public byte[] writeEnvelope(Envelope envelope) {
        try (Output output = new Output(256, -1)) {
            output.writeVarInt(ENVELOPE_CLASS_MARK, true);
            CODEC.write(null, output, envelope);
            return output.toBytes();
        }
    }

    @Override
    public Envelope readEnvelope(byte[] bytes) throws ProtocolException {
        try (Input input = new Input(bytes)) {
            // Read the class mark and accept the envelope's only: Kryo's default registrations (String, int[],
            // ...) would otherwise be reachable, and its String reader allocates a char[] of whatever length
            // the input declares (6 bytes made it allocate 2 GiB) before finding the bytes are not there.
            if (input.limit() == 0) {
                throw EnvelopeSchema.invalid("kryo envelope is empty");
            }
            int registration = input.readVarInt(true);
            if (registration != ENVELOPE_CLASS_MARK) {
                throw EnvelopeSchema.invalid(switch (registration) {
                    case 0 -> "kryo envelope holds null, not an envelope";
                    case 1 -> "kryo envelope names a class outside the registered set: a class given by name";
                    default -> "kryo envelope names a class outside the registered set: registration id "
                            + Integer.toUnsignedString(registration - 2) + " (only the envelope, id "
                            + ENVELOPE_REGISTRATION + ", is read)";
                });
            }
            Envelope envelope = CODEC.read(null, input, Envelope.class);
            if (input.position() != bytes.length) {
                throw EnvelopeSchema.invalid("kryo envelope has " + (bytes.length - input.position())
                        + " bytes after the envelope");
            }
            return envelope;
        } catch (KryoException | IllegalArgumentException e) {
            String detail = e.getMessage() == null ? e.toString() : e.getMessage();
            ProtocolException invalid = EnvelopeSchema.invalid("kryo envelope does not parse: " + detail);
            invalid.initCause(e);
            throw invalid;
        }
    }

    /** Writes the envelope field by field, with lengths that the reader bounds by the remaining input. */
    static final class EnvelopeCodec extends com.esotericsoftware.kryo.Serializer<Envelope> {
        EnvelopeCodec() {
            setImmutable(true);
        }

        @Override
        public void write(Kryo kryo, Output out, Envelope envelope) {
            writeString(out, envelope.type());
            writeOptional(out, envelope.id());
            writeOptional(out, envelope.replyTo());
            out.writeVarInt(envelope.meta().size(), true);
            for (Map.Entry<String, String> entry : envelope.meta().entrySet()) {
                writeString(out, entry.getKey());
                writeString(out, entry.getValue());
            }
            out.writeVarInt(envelope.tensors().size(), true);
            for (Envelope.Entry entry : envelope.tensors()) {
                writeString(out, entry.name());
                writeString(out, entry.dtype());
                long[] shape = entry.shape();
                out.writeVarInt(shape.length, true);
                for (long dim : shape) {
                    out.writeVarLong(dim, true);
                }
                out.writeVarLong(entry.offset(), true);
                out.writeVarLong(entry.nbytes(), true);
            }
        }

        @Override
        public Envelope read(Kryo kryo, Input in, Class<? extends Envelope> type) {
            // Field paths for error messages are built only when something is wrong (tensor fields are passed as a
            // name and an index, not concatenated for every message); meta values are named by their key.
            String messageType = readString(in, "type", -1);
            String id = readOptional(in, "id");
            String replyTo = readOptional(in, "reply_to");
            int metaCount = count(in, "meta", -1, 2);
            Map<String, String> meta = new LinkedHashMap<>();
            for (int i = 0; i < metaCount; i++) {
                String key = readString(in, "meta key", -1);
                // Refused, not last-one-wins, as every serializer does: two readers must not see two messages.
                if (meta.put(key, readString(in, "meta." + key, -1)) != null) {
                    throw new KryoException("meta: key '" + key + "' appears twice");
                }
            }
            int tensorCount = count(in, "tensors", -1, 5);
            List<Envelope.Entry> tensors = new ArrayList<>(tensorCount);
            for (int t = 0; t < tensorCount; t++) {
                String name = readString(in, "name", t);
                String dtype = readString(in, "dtype", t);
                long[] shape = new long[count(in, "shape", t, 1)];
                for (int d = 0; d < shape.length; d++) {
                    shape[d] = nonNegative(in.readVarLong(true), "shape", t, d);
                }
                long offset = nonNegative(in.readVarLong(true), "offset", t, -1);
                long nbytes = nonNegative(in.readVarLong(true), "nbytes", t, -1);
                tensors.add(new Envelope.Entry(name, dtype, shape, offset, nbytes));
            }
            return new Envelope(messageType, id, replyTo, meta, tensors);
        }

        /** A field's path in error messages: {@code field}, or {@code tensors[t].field[d]} inside the table. */
        private static String path(String field, int tensor, int index) {
            String path = tensor < 0 ? field : "tensors[" + tensor + "]." + field;
            return index < 0 ? path : path + "[" + index + "]";
        }

        private static void writeString(Output out, String value) {
            byte[] utf8 = value.getBytes(StandardCharsets.UTF_8);
            out.writeVarInt(utf8.length, true);
            out.writeBytes(utf8);
        }

        private static void writeOptional(Output out, String value) {
            out.writeBoolean(value != null);
            if (value != null) {
                writeString(out, value);
            }
        }

        private static String readString(Input in, String field, int tensor) {
            int length = count(in, field, tensor, 1);
            return new String(in.readBytes(length), StandardCharsets.UTF_8);
        }

        private static String readOptional(Input in, String field) {
            return in.readBoolean() ? readString(in, field, -1) : null;
        }

        /** A count of items of at least {@code minBytes} each, bounded by the bytes left. */
        private static int count(Input in, String field, int tensor, int minBytes) {
            int count = in.readVarInt(true);
            long left = in.limit() - in.position();
            if (count < 0 || (long) count * minBytes > left) {
                throw new KryoException(path(field, tensor, -1) + " declares " + Integer.toUnsignedString(count)
                        + " items but only " + left + " bytes remain");
            }
            return count;
        }

        private static long nonNegative(long value, String field, int tensor, int index) {
            if (value < 0) {
                throw new KryoException(path(field, tensor, index) + " must be a non-negative integer, got " + value);
            }
            return value;
        }
    }
}
