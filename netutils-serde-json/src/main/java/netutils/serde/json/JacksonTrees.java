package netutils.serde.json;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import netutils.api.Message;
import netutils.api.ProtocolException;
import netutils.api.spi.EnvelopeSchema;
import netutils.api.wire.FrameDecoder;
import tools.jackson.core.Base64Variants;
import tools.jackson.core.JsonGenerator;
import tools.jackson.core.JsonParser;
import tools.jackson.core.JsonToken;
import tools.jackson.core.StreamReadConstraints;

/**
 * Moves {@link EnvelopeSchema} trees through Jackson's streaming API, which every Jackson format shares (JSON
 * here, CBOR in the example serializer): the format-specific half of a serializer, with no envelope keys in
 * it. Reading refuses duplicate keys and nesting deeper than {@link EnvelopeSchema#MAX_DEPTH}; parsers of frame
 * envelopes get {@link #envelopeConstraints()}.
 */
public final class JacksonTrees {
    private JacksonTrees() {
    }

    /**
     * Writes a tree: maps, lists, strings, {@code Long}s, {@code null}, and {@link MemorySegment}s as binary
     * (base64 in JSON), streamed without a copy of the whole segment.
     *
     * @param gen the generator to write to; the caller closes it
     * @param value the tree, or any value within it
     * @throws IllegalArgumentException if the tree holds a value of any other kind
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
     * Writes an envelope straight to {@code gen}, without building its tree:
     * {@code EnvelopeSchema.write(envelope, JacksonTrees.writer(gen))}.
     *
     * @param gen the generator to write to; the caller closes it
     * @return the writer that {@link EnvelopeSchema#write} calls
     */
    public static EnvelopeSchema.TreeWriter writer(JsonGenerator gen) {
        return new EnvelopeSchema.TreeWriter() {
            @Override
            public void startMap(int entries) {
                gen.writeStartObject(null, entries);
            }

            @Override
            public void key(String key) {
                gen.writeName(key);
            }

            @Override
            public void string(String value) {
                gen.writeString(value);
            }

            @Override
            public void number(long value) {
                gen.writeNumber(value);
            }

            @Override
            public void startList(int elements) {
                gen.writeStartArray(null, elements);
            }

            @Override
            public void endList() {
                gen.writeEndArray();
            }

            @Override
            public void endMap() {
                gen.writeEndObject();
            }
        };
    }

    /**
     * The limits a Jackson parser of frame envelopes gets, from the SDK's own rather than Jackson's defaults:
     * nesting at most {@link EnvelopeSchema#MAX_DEPTH} (refused as the parser reaches it, so 100,000 nested
     * arrays cost nothing); a document or string as long as the largest envelope a receiver can be configured
     * to accept (the transport checks its configured {@code maxEnvelopeBytes}, 16 MiB by default, before the bytes
     * reach a serializer, and every serializer must accept what fits in it); names (the envelope's keys and
     * metadata keys, at most {@link Message#MAX_NAME_LENGTH} characters) of at most {@value #MAX_NAME_UNITS}
     * units, which holds any valid one in UTF-8 bytes or UTF-16 chars; numbers of at most
     * {@value #MAX_NUMBER_CHARS} characters, enough for any 64-bit integer or any double in its shortest form.
     *
     * @return new constraints, to give the factory or mapper that creates envelope parsers
     */
    public static StreamReadConstraints envelopeConstraints() {
        int maxEnvelope = FrameDecoder.Limits.PROTOCOL_MAXIMUM.maxEnvelopeLength();
        return StreamReadConstraints.builder()
                .maxNestingDepth(EnvelopeSchema.MAX_DEPTH)
                .maxDocumentLength(maxEnvelope)
                .maxStringLength(maxEnvelope)
                .maxNameLength(MAX_NAME_UNITS)
                .maxNumberLength(MAX_NUMBER_CHARS)
                .build();
    }

    /**
     * The characters of the longest number an envelope needs: 20 for {@code -9223372036854775808}, 24 for a double
     * such as {@code -2.2250738585072014E-308}. Longer numbers cannot be 64-bit integers and are refused by the
     * parser before it builds a {@code BigInteger} or {@code BigDecimal} of them.
     */
    public static final int MAX_NUMBER_CHARS = 32;

    /**
     * The longest name (object key) a parser accepts, in bytes or chars: a metadata key has at most
     * {@link Message#MAX_NAME_LENGTH} characters, and a character is at most 4 bytes of UTF-8.
     */
    public static final int MAX_NAME_UNITS = 4 * Message.MAX_NAME_LENGTH;

    /**
     * Reads one value and checks that nothing follows it.
     *
     * @param parser a parser positioned before the value
     * @param what what the input is, to name it in error messages (e.g. {@code "json envelope"})
     * @return the value as a tree: maps, lists, strings, {@code Long}s and {@code null}, and also {@code Double},
     *     {@code Boolean} or {@code byte[]} where the input has those (which {@link EnvelopeSchema} refuses)
     * @throws ProtocolException of kind {@code MALFORMED_ENVELOPE} if the input is empty, has a key twice, nests
     *     too deep, has more than {@link EnvelopeSchema#MAX_VALUES} values or an integer beyond 64 bits, or has
     *     trailing content
     * @throws tools.jackson.core.JacksonException if the parser itself fails, for instance on input that is not
     *     well-formed or breaks its constraints; callers turn this into a {@link ProtocolException}
     */
    public static Object readWhole(JsonParser parser, String what) throws ProtocolException {
        if (parser.nextToken() == null) {
            throw EnvelopeSchema.invalid(what + " is empty");
        }
        Object value = read(parser, new Path());
        if (parser.nextToken() != null) {
            throw EnvelopeSchema.invalid(what + " has content after its end");
        }
        return value;
    }

    private static Object read(JsonParser parser, Path path) throws ProtocolException {
        path.values = EnvelopeSchema.countValue(path.values);
        JsonToken token = parser.currentToken();
        switch (token) {
            case START_OBJECT -> {
                if (path.depth >= EnvelopeSchema.MAX_DEPTH) {
                    throw EnvelopeSchema.tooDeep();
                }
                Map<String, Object> map = new LinkedHashMap<>();
                for (String key = parser.nextName(); key != null; key = parser.nextName()) {
                    parser.nextToken();
                    path.push(key, -1);
                    Object value = read(parser, path);
                    path.pop();
                    if (map.containsKey(key)) {
                        throw EnvelopeSchema.duplicateKey(path.toString(), key);
                    }
                    map.put(key, value);
                }
                return map;
            }
            case START_ARRAY -> {
                if (path.depth >= EnvelopeSchema.MAX_DEPTH) {
                    throw EnvelopeSchema.tooDeep();
                }
                List<Object> list = new ArrayList<>();
                while (parser.nextToken() != JsonToken.END_ARRAY) {
                    path.push(null, list.size());
                    list.add(read(parser, path));
                    path.pop();
                }
                return list;
            }
            case VALUE_STRING -> {
                return parser.getString();
            }
            case VALUE_NUMBER_INT -> {
                if (parser.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
                    throw EnvelopeSchema.invalid(path + " is " + parser.getString() + ", an integer over 64 bits, "
                            + "which no envelope field holds");
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

    /**
     * Where the reader is, kept as a stack and turned into text ({@code tensors[0].shape}) only for an error
     * message: building that text for every value cost more than the tree itself (1.2 GB of garbage for a
     * 16 MiB envelope of zeros).
     */
    private static final class Path {
        private final String[] keys = new String[EnvelopeSchema.MAX_DEPTH + 1];
        private final int[] indexes = new int[EnvelopeSchema.MAX_DEPTH + 1];
        private int depth;
        /** Values read so far in the whole document, against {@link EnvelopeSchema#MAX_VALUES}. */
        private int values;

        void push(String key, int index) {
            keys[depth] = key;
            indexes[depth] = index;
            depth++;
        }

        void pop() {
            depth--;
        }

        @Override
        public String toString() {
            StringBuilder out = new StringBuilder();
            for (int i = 0; i < depth; i++) {
                if (keys[i] == null) {
                    out.append('[').append(indexes[i]).append(']');
                } else {
                    out.append(out.isEmpty() ? "" : ".").append(keys[i]);
                }
            }
            return out.toString();
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
