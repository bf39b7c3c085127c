package netutils.serde.json;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import netutils.api.ProtocolException;
import netutils.api.spi.Envelope;
import netutils.api.spi.EnvelopeSchema;
import netutils.api.spi.Serializer;
import tools.jackson.core.JacksonException;
import tools.jackson.core.JsonGenerator;
import tools.jackson.core.JsonParser;
import tools.jackson.core.JsonToken;
import tools.jackson.core.ObjectReadContext;
import tools.jackson.core.ObjectWriteContext;
import tools.jackson.core.json.JsonFactory;
import tools.jackson.core.util.JsonRecyclerPools;

/**
 * The default serializer, wire id 1: the envelope as a UTF-8 JSON object
 * ({@code {"type":..,"id":..,"reply_to":..,"meta":{..},"tensors":[{"name","dtype","shape","offset","nbytes"}]}}).
 * Any language's JSON library reads it. Found through {@link java.util.ServiceLoader}; users rarely name it.
 */
public final class JsonSerializer implements Serializer {
    /** The wire id. */
    public static final int ID = 1;

    /**
     * Jackson's limits set from the SDK's own: see {@link JacksonTrees#envelopeConstraints()}. The streaming
     * factory, not a mapper (an envelope needs no data binding); its buffers are recycled through Jackson's hybrid
     * pool, which serves platform threads from a thread-local slot: the default shared deque cost more than
     * parsing a small envelope when a client and a server shared it.
     */
    private static final JsonFactory FACTORY = JsonFactory.builder()
            .streamReadConstraints(JacksonTrees.envelopeConstraints())
            .recyclerPool(JsonRecyclerPools.sharedHybridPool())
            .build();

    /** Used by {@link java.util.ServiceLoader}. */
    public JsonSerializer() {
    }

    @Override
    public int id() {
        return ID;
    }

    @Override
    public String name() {
        return "json";
    }

    @Override
    public byte[] writeEnvelope(Envelope envelope) {
        byte[] ascii = AsciiEnvelopeWriter.write(envelope);
        if (ascii != null) {
            return ascii;
        }
        return writeWithJackson(envelope);
    }

    /** The general path of writing: Jackson escapes and encodes any string. */
    static byte[] writeWithJackson(Envelope envelope) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(128 + 96 * envelope.tensors().size());
        try (JsonGenerator gen = FACTORY.createGenerator(ObjectWriteContext.empty(), out)) {
            EnvelopeSchema.write(envelope, JacksonTrees.writer(gen));
        }
        return out.toByteArray();
    }

    @Override
    public Envelope readEnvelope(byte[] bytes) throws ProtocolException {
        Envelope canonical = AsciiEnvelopeReader.read(bytes);
        if (canonical != null) {
            return canonical;
        }
        Envelope common = CommonEnvelopes.read(bytes);
        if (common != null) {
            return common;
        }
        try (JsonParser parser = FACTORY.createParser(ObjectReadContext.empty(), bytes)) {
            return EnvelopeSchema.fromTree(JacksonTrees.readWhole(parser, "json envelope"));
        } catch (JacksonException e) {
            throw EnvelopeSchema.invalid("json envelope does not parse: " + e.getOriginalMessage());
        }
    }

    /**
     * The fast path of reading: an envelope of the usual form, read straight from the parser into an
     * {@link Envelope}, without a tree. It accepts only what the tree path accepts and reads it to the same
     * envelope: the keys of the schema, each at most once, with values of their kind (strings, a map of strings,
     * rows of exactly the five tensor keys, non-negative 64-bit integers). Anything else (an unknown key, a
     * {@code null}, a duplicate, bad JSON) gives up, and the tree path reads the envelope again and reports what is
     * wrong, so errors and edge cases keep one definition. Building the tree cost more than parsing a small
     * envelope.
     */
    static final class CommonEnvelopes {
        private static final int TYPE = 1;
        private static final int ID = 2;
        private static final int REPLY_TO = 4;
        private static final int META = 8;
        private static final int TENSORS = 16;

        private CommonEnvelopes() {
        }

        /** The envelope, or {@code null} if the bytes are not of the usual form (the caller reads them again). */
        static Envelope read(byte[] bytes) {
            try (JsonParser parser = FACTORY.createParser(ObjectReadContext.empty(), bytes)) {
                return read(parser);
            } catch (JacksonException | ArithmeticException e) {
                return null;
            }
        }

        private static Envelope read(JsonParser parser) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            String type = null;
            String id = null;
            String replyTo = null;
            Map<String, String> meta = Map.of();
            List<Envelope.Entry> entries = List.of();
            int seen = 0;
            int values = 1;
            for (String key = parser.nextName(); key != null; key = parser.nextName()) {
                JsonToken token = parser.nextToken();
                int bit;
                switch (key) {
                    case EnvelopeSchema.TYPE -> {
                        bit = TYPE;
                        type = token == JsonToken.VALUE_STRING ? parser.getString() : null;
                    }
                    case EnvelopeSchema.ID -> {
                        bit = ID;
                        id = token == JsonToken.VALUE_STRING ? parser.getString() : null;
                    }
                    case EnvelopeSchema.REPLY_TO -> {
                        bit = REPLY_TO;
                        replyTo = token == JsonToken.VALUE_STRING ? parser.getString() : null;
                    }
                    case EnvelopeSchema.META -> {
                        bit = META;
                        meta = token == JsonToken.START_OBJECT ? meta(parser) : null;
                    }
                    case EnvelopeSchema.TENSORS -> {
                        bit = TENSORS;
                        entries = token == JsonToken.START_ARRAY ? tensors(parser) : null;
                    }
                    default -> {
                        return null;
                    }
                }
                if ((seen & bit) != 0 || (bit == TYPE && type == null) || (bit == ID && id == null)
                        || (bit == REPLY_TO && replyTo == null) || meta == null || entries == null) {
                    return null;
                }
                seen |= bit;
                values += 1 + (bit == META ? meta.size() : bit == TENSORS ? entries.size() * 9 : 0);
            }
            if (type == null || parser.nextToken() != null || values + shapeValues(entries) > EnvelopeSchema.MAX_VALUES) {
                return null;
            }
            return new Envelope(type, id, replyTo, meta, entries);
        }

        private static int shapeValues(List<Envelope.Entry> entries) {
            int dims = 0;
            for (Envelope.Entry entry : entries) {
                dims += entry.shape().length;
            }
            return dims;
        }

        private static Map<String, String> meta(JsonParser parser) {
            Map<String, String> meta = new LinkedHashMap<>();
            for (String key = parser.nextName(); key != null; key = parser.nextName()) {
                if (parser.nextToken() != JsonToken.VALUE_STRING || meta.put(key, parser.getString()) != null
                        || meta.size() > EnvelopeSchema.MAX_VALUES) {
                    return null; // not a string, a key twice, or too many: the tree path says which
                }
            }
            return meta;
        }

        private static List<Envelope.Entry> tensors(JsonParser parser) {
            List<Envelope.Entry> entries = new ArrayList<>(2);
            while (parser.nextToken() == JsonToken.START_OBJECT) {
                String name = null;
                String dtype = null;
                long[] shape = null;
                long offset = -1;
                long nbytes = -1;
                int seen = 0;
                for (String key = parser.nextName(); key != null; key = parser.nextName()) {
                    JsonToken token = parser.nextToken();
                    int bit;
                    switch (key) {
                        case EnvelopeSchema.NAME -> {
                            bit = 1;
                            name = token == JsonToken.VALUE_STRING ? parser.getString() : null;
                        }
                        case EnvelopeSchema.DTYPE -> {
                            bit = 2;
                            dtype = token == JsonToken.VALUE_STRING ? parser.getString() : null;
                        }
                        case EnvelopeSchema.SHAPE -> {
                            bit = 4;
                            shape = token == JsonToken.START_ARRAY ? shape(parser) : null;
                        }
                        case EnvelopeSchema.OFFSET -> {
                            bit = 8;
                            offset = nonNegative(parser, token);
                        }
                        case EnvelopeSchema.NBYTES -> {
                            bit = 16;
                            nbytes = nonNegative(parser, token);
                        }
                        default -> {
                            return null;
                        }
                    }
                    if ((seen & bit) != 0) {
                        return null;
                    }
                    seen |= bit;
                }
                if (seen != 31 || name == null || dtype == null || shape == null || offset < 0 || nbytes < 0
                        || entries.size() >= EnvelopeSchema.MAX_VALUES) {
                    return null;
                }
                entries.add(new Envelope.Entry(name, dtype, shape, offset, nbytes));
            }
            return parser.currentToken() == JsonToken.END_ARRAY ? entries : null;
        }

        private static long[] shape(JsonParser parser) {
            long[] dims = new long[4];
            int rank = 0;
            JsonToken token;
            while ((token = parser.nextToken()) != JsonToken.END_ARRAY) {
                long dim = nonNegative(parser, token);
                if (dim < 0 || rank >= EnvelopeSchema.MAX_VALUES) {
                    return null;
                }
                if (rank == dims.length) {
                    dims = Arrays.copyOf(dims, 2 * rank);
                }
                dims[rank++] = dim;
            }
            return Arrays.copyOf(dims, rank);
        }

        /** The integer at {@code token} if it is one of 0..2^63-1, else -1. */
        private static long nonNegative(JsonParser parser, JsonToken token) {
            if (token != JsonToken.VALUE_NUMBER_INT) {
                return -1;
            }
            JsonParser.NumberType kind = parser.getNumberType();
            if (kind != JsonParser.NumberType.INT && kind != JsonParser.NumberType.LONG) {
                return -1;
            }
            return Math.max(-1, parser.getLongValue());
        }
    }
}
