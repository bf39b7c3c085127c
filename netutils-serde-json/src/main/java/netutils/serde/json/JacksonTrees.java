package netutils.serde.json;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import netutils.api.ProtocolException;
import netutils.api.spi.EnvelopeSchema;
import tools.jackson.core.Base64Variants;
import tools.jackson.core.JsonGenerator;
import tools.jackson.core.JsonParser;
import tools.jackson.core.JsonToken;

/**
 * Moves {@link EnvelopeSchema} trees through Jackson's streaming API, which every Jackson format shares (JSON
 * here, CBOR in the example serializer): the format-specific half of a serializer, with no envelope keys in
 * it. Reading refuses duplicate keys and nesting deeper than {@link EnvelopeSchema#MAX_DEPTH}.
 */
public final class JacksonTrees {
    private JacksonTrees() {
    }

    /**
     * Writes a tree: maps, lists, strings, {@code Long}s, {@code null}, and {@link MemorySegment}s as binary
     * (base64 in JSON), streamed without a copy of the whole segment.
     *
     * @param gen where the tree goes
     * @param value the tree
     */
    public static void write(JsonGenerator gen, Object value) {
        switch (value) {
            case null -> gen.writeNull();
            case String text -> gen.writeString(text);
            case Long number -> gen.writeNumber(number);
            case Map<?, ?> map -> {
                gen.writeStartObject();
                for (Map.Entry<?, ?> entry : map.entrySet()) {
                    gen.writeName((String) entry.getKey());
                    write(gen, entry.getValue());
                }
                gen.writeEndObject();
            }
            case List<?> list -> {
                gen.writeStartArray();
                for (Object element : list) {
                    write(gen, element);
                }
                gen.writeEndArray();
            }
            case MemorySegment bytes -> gen.writeBinary(Base64Variants.MIME_NO_LINEFEEDS,
                    new SegmentInputStream(bytes), (int) bytes.byteSize());
            default -> throw new IllegalArgumentException("not a tree value: " + value.getClass().getName());
        }
    }

    /**
     * Reads one value and checks that nothing follows it.
     *
     * @param parser the input
     * @param what what the input is, for error messages (e.g. {@code "JSON envelope"})
     * @return the tree: maps, lists, strings, {@code Long}s, {@code null} and binary values as the format holds them
     * @throws ProtocolException of kind {@code MALFORMED_ENVELOPE} if the input does not parse, has a key twice,
     *     nests too deep, or has trailing content
     */
    public static Object readWhole(JsonParser parser, String what) throws ProtocolException {
        if (parser.nextToken() == null) {
            throw EnvelopeSchema.invalid(what + " is empty");
        }
        Object value = read(parser, 0, "", new int[1]);
        if (parser.nextToken() != null) {
            throw EnvelopeSchema.invalid(what + " has content after its end");
        }
        return value;
    }

    private static Object read(JsonParser parser, int depth, String path, int[] count) throws ProtocolException {
        count[0] = EnvelopeSchema.countValue(count[0]);
        JsonToken token = parser.currentToken();
        switch (token) {
            case START_OBJECT -> {
                if (depth >= EnvelopeSchema.MAX_DEPTH) {
                    throw EnvelopeSchema.tooDeep();
                }
                Map<String, Object> map = new LinkedHashMap<>();
                for (String key = parser.nextName(); key != null; key = parser.nextName()) {
                    parser.nextToken();
                    Object value = read(parser, depth + 1, path.isEmpty() ? key : path + "." + key, count);
                    if (map.containsKey(key)) {
                        throw EnvelopeSchema.duplicateKey(path, key);
                    }
                    map.put(key, value);
                }
                return map;
            }
            case START_ARRAY -> {
                if (depth >= EnvelopeSchema.MAX_DEPTH) {
                    throw EnvelopeSchema.tooDeep();
                }
                List<Object> list = new ArrayList<>();
                while (parser.nextToken() != JsonToken.END_ARRAY) {
                    list.add(read(parser, depth + 1, path + "[" + list.size() + "]", count));
                }
                return list;
            }
            case VALUE_STRING -> {
                return parser.getString();
            }
            case VALUE_NUMBER_INT -> {
                if (parser.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
                    throw EnvelopeSchema.invalid(path + " is " + parser.getString() + ", which does not fit 64 bits");
                }
                return parser.getLongValue();
            }
            case VALUE_NUMBER_FLOAT -> {
                return parser.getDoubleValue();
            }
            case VALUE_TRUE, VALUE_FALSE -> {
                return token == JsonToken.VALUE_TRUE;
            }
            case VALUE_NULL -> {
                return null;
            }
            case VALUE_EMBEDDED_OBJECT -> {
                return parser.getBinaryValue();
            }
            default -> throw EnvelopeSchema.invalid(path + ": unexpected " + token);
        }
    }

    /** Reads a segment as a stream, so base64 is written without a byte[] copy of the whole tensor. */
    private static final class SegmentInputStream extends InputStream {
        private final MemorySegment segment;
        private long position;

        SegmentInputStream(MemorySegment segment) {
            this.segment = segment;
        }

        @Override
        public int read() {
            return position < segment.byteSize() ? segment.get(ValueLayout.JAVA_BYTE, position++) & 0xFF : -1;
        }

        @Override
        public int read(byte[] buffer, int offset, int length) throws IOException {
            long remaining = segment.byteSize() - position;
            if (remaining <= 0) {
                return length == 0 ? 0 : -1;
            }
            int count = (int) Math.min(length, remaining);
            MemorySegment.copy(segment, ValueLayout.JAVA_BYTE, position, buffer, offset, count);
            position += count;
            return count;
        }
    }
}
