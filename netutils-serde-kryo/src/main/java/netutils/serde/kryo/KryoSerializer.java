package netutils.serde.kryo;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.KryoException;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import com.esotericsoftware.kryo.util.Pool;
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
 * Kryo envelopes, wire id 3, for Java-to-Java links. The envelope is written with
 * {@code writeClassAndObject} as the one registered class; registration stays required, so a frame naming any
 * other class (by id or by name) is refused instead of instantiated. Every length read from the wire is
 * checked against the bytes that remain before anything is allocated.
 */
public final class KryoSerializer implements Serializer {
    /** The wire id. */
    public static final int ID = 3;
    /** The Kryo registration id of the envelope class; part of the wire format of serializer 3. */
    static final int ENVELOPE_REGISTRATION = 16;

    static {
        // Keep Kryo off sun.misc.Unsafe (JDK 24+ warns when it is used); set before Kryo's classes load.
        if (System.getProperty("kryo.unsafe") == null) {
            System.setProperty("kryo.unsafe", "false");
        }
    }

    /** Kryo instances are not thread-safe; a pool serves virtual threads without one instance per thread. */
    private final Pool<Kryo> pool = new Pool<>(true, false, 64) {
        @Override
        protected Kryo create() {
            Kryo kryo = new Kryo();
            kryo.setRegistrationRequired(true);
            kryo.setReferences(false);
            kryo.register(Envelope.class, new EnvelopeCodec(), ENVELOPE_REGISTRATION);
            return kryo;
        }
    };

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
        Kryo kryo = pool.obtain();
        try (Output output = new Output(256, -1)) {
            kryo.writeClassAndObject(output, envelope);
            return output.toBytes();
        } finally {
            pool.free(kryo);
        }
    }

    @Override
    public Envelope readEnvelope(byte[] bytes) throws ProtocolException {
        Kryo kryo = pool.obtain();
        try (Input input = new Input(bytes)) {
            // writeClassAndObject wrote the class as its registration id + 2 (0 is null, 1 "class by name").
            // Read that id here and accept the envelope's only: Kryo's default registrations (String, int[],
            // ...) would otherwise be reachable, and its String reader allocates a char[] of whatever length
            // the input declares (6 bytes made it allocate 2 GiB) before finding the bytes are not there.
            if (input.limit() == 0) {
                throw EnvelopeSchema.invalid("kryo envelope is empty");
            }
            int registration = input.readVarInt(true);
            if (registration != ENVELOPE_REGISTRATION + 2) {
                throw EnvelopeSchema.invalid(switch (registration) {
                    case 0 -> "kryo envelope holds null, not an envelope";
                    case 1 -> "kryo envelope names a class outside the registered set: a class given by name";
                    default -> "kryo envelope names a class outside the registered set: registration id "
                            + Integer.toUnsignedString(registration - 2) + " (only the envelope, id "
                            + ENVELOPE_REGISTRATION + ", is read)";
                });
            }
            Envelope envelope = kryo.readObject(input, Envelope.class);
            if (input.position() != bytes.length) {
                throw EnvelopeSchema.invalid("kryo envelope has " + (bytes.length - input.position())
                        + " bytes after the envelope");
            }
            return envelope;
        } catch (KryoException | IllegalArgumentException e) {
            String detail = e.getMessage() == null ? e.toString() : e.getMessage();
            String what = detail.contains("nregistered") || detail.contains("not registered")
                    ? "kryo envelope names a class outside the registered set: " : "kryo envelope does not parse: ";
            ProtocolException invalid = EnvelopeSchema.invalid(what + detail);
            invalid.initCause(e);
            throw invalid;
        } finally {
            pool.free(kryo);
        }
    }

    /** Writes the envelope field by field, with lengths that the reader bounds by the remaining input. */
    private static final class EnvelopeCodec extends com.esotericsoftware.kryo.Serializer<Envelope> {
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
            String messageType = readString(in, "type");
            String id = readOptional(in, "id");
            String replyTo = readOptional(in, "reply_to");
            int metaCount = count(in, "meta", 2);
            Map<String, String> meta = new LinkedHashMap<>();
            for (int i = 0; i < metaCount; i++) {
                String key = readString(in, "meta key");
                // Refused, not last-one-wins, as every serializer does: two readers must not see two messages.
                if (meta.put(key, readString(in, "meta." + key)) != null) {
                    throw new KryoException("meta: key '" + key + "' appears twice");
                }
            }
            int tensorCount = count(in, "tensors", 5);
            List<Envelope.Entry> tensors = new ArrayList<>(tensorCount);
            for (int t = 0; t < tensorCount; t++) {
                String path = "tensors[" + t + "]";
                String name = readString(in, path + ".name");
                String dtype = readString(in, path + ".dtype");
                long[] shape = new long[count(in, path + ".shape", 1)];
                for (int d = 0; d < shape.length; d++) {
                    shape[d] = nonNegative(in.readVarLong(true), path + ".shape[" + d + "]");
                }
                long offset = nonNegative(in.readVarLong(true), path + ".offset");
                long nbytes = nonNegative(in.readVarLong(true), path + ".nbytes");
                tensors.add(new Envelope.Entry(name, dtype, shape, offset, nbytes));
            }
            return new Envelope(messageType, id, replyTo, meta, tensors);
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

        private static String readString(Input in, String path) {
            int length = count(in, path, 1);
            return new String(in.readBytes(length), StandardCharsets.UTF_8);
        }

        private static String readOptional(Input in, String path) {
            return in.readBoolean() ? readString(in, path) : null;
        }

        /** A count of items of at least {@code minBytes} each, bounded by the bytes left. */
        private static int count(Input in, String path, int minBytes) {
            int count = in.readVarInt(true);
            long left = in.limit() - in.position();
            if (count < 0 || (long) count * minBytes > left) {
                throw new KryoException(path + " declares " + Integer.toUnsignedString(count) + " items but only "
                        + left + " bytes remain");
            }
            return count;
        }

        private static long nonNegative(long value, String path) {
            if (value < 0) {
                throw new KryoException(path + " must be a non-negative integer, got " + value);
            }
            return value;
        }
    }
}
