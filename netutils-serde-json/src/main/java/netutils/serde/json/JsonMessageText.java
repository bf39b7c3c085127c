package netutils.serde.json;

import java.io.InputStream;
import java.io.StringWriter;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Map;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import netutils.api.spi.MessageTextFormat;
import tools.jackson.core.Base64Variants;
import tools.jackson.core.JacksonException;
import tools.jackson.core.JsonGenerator;
import tools.jackson.core.StreamReadConstraints;
import tools.jackson.core.json.JsonFactory;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The text behind {@link Message#toJson()}: one JSON object with the envelope fields and, per tensor,
 * {@code "data"} holding its bytes in standard base64. Self-contained, for logs, debugging and JSON-only peers.
 */
public final class JsonMessageText implements MessageTextFormat {
    /**
     * Jackson refuses strings over 20,000,000 characters by default, which a base64 tensor passes at about
     * 15 MB. The real bound here is the Java string itself, so that is the limit we give Jackson.
     */
    private static final JsonMapper MAPPER = JsonMapper.builder(JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder()
                    .maxStringLength(Integer.MAX_VALUE)
                    .maxDocumentLength(-1)
                    .build())
            .build()).build();

    /** Used by {@link java.util.ServiceLoader}. */
    public JsonMessageText() {
    }

    @Override
    public String name() {
        return "json";
    }

    @Override
    public String write(Message message) {
        long base64Chars = 0;
        for (Tensor tensor : message.tensors().values()) {
            base64Chars += (tensor.byteSize() + 2) / 3 * 4;
        }
        if (base64Chars > Integer.MAX_VALUE - 1_000_000L) {
            throw new IllegalArgumentException("the JSON text of this message would need " + base64Chars
                    + " characters of base64, more than a Java string holds; send it as a frame instead");
        }
        StringWriter out = new StringWriter((int) Math.min(Integer.MAX_VALUE - 8, base64Chars + 256));
        try (JsonGenerator gen = MAPPER.createGenerator(out)) {
            JsonSerializer.writeHead(gen, message.type().name(), message.id().orElse(null),
                    message.replyTo().orElse(null), message.meta());
            gen.writeArrayPropertyStart("tensors");
            for (Map.Entry<String, Tensor> named : message.tensors().entrySet()) {
                Tensor tensor = named.getValue();
                gen.writeStartObject();
                JsonSerializer.writeTensorHead(gen, named.getKey(), tensor.dtype().wireName(), tensor.shape());
                gen.writeName("data");
                gen.writeBinary(Base64Variants.MIME_NO_LINEFEEDS, new SegmentInputStream(tensor.data()),
                        (int) tensor.byteSize());
                gen.writeEndObject();
            }
            gen.writeEndArray();
            gen.writeEndObject();
        }
        return out.toString();
    }

    @Override
    public Message read(String text) {
        try {
            JsonNode root = JsonTrees.object(MAPPER.readTree(text), "message");
            Message.Builder builder = Message.builder(MessageType.of(JsonTrees.string(root, "type", "")))
                    .id(JsonTrees.optionalString(root, "id", ""))
                    .replyTo(JsonTrees.optionalString(root, "reply_to", ""));
            JsonTrees.stringMap(root, "meta", "").forEach(builder::meta);
            List<JsonNode> tensors = JsonTrees.array(root, "tensors", "");
            for (int i = 0; i < tensors.size(); i++) {
                String path = "tensors[" + i + "].";
                JsonNode entry = JsonTrees.object(tensors.get(i), "tensors[" + i + "]");
                DType dtype = DType.fromWireName(JsonTrees.string(entry, "dtype", path));
                byte[] data = Base64Variants.MIME_NO_LINEFEEDS.decode(JsonTrees.string(entry, "data", path));
                builder.tensor(JsonTrees.string(entry, "name", path),
                        Tensor.ofBytes(dtype, data, JsonTrees.shape(entry, path)));
            }
            return builder.build();
        } catch (JsonTrees.Invalid e) {
            throw new IllegalArgumentException("message JSON: " + e.getMessage(), e);
        } catch (JacksonException e) {
            throw new IllegalArgumentException("message JSON does not parse: " + e.getOriginalMessage(), e);
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
            return position < segment.byteSize() ? segment.get(java.lang.foreign.ValueLayout.JAVA_BYTE, position++) & 0xFF : -1;
        }

        @Override
        public int read(byte[] buffer, int offset, int length) {
            long remaining = segment.byteSize() - position;
            if (remaining <= 0) {
                return length == 0 ? 0 : -1;
            }
            int count = (int) Math.min(length, remaining);
            MemorySegment.copy(segment, java.lang.foreign.ValueLayout.JAVA_BYTE, position, buffer, offset, count);
            position += count;
            return count;
        }
    }
}
