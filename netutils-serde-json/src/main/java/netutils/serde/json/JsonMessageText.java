package netutils.serde.json;

import java.io.StringWriter;
import java.util.Base64;
import netutils.api.Message;
import netutils.api.ProtocolException;
import netutils.api.Tensor;
import netutils.api.spi.EnvelopeSchema;
import netutils.api.spi.MessageTextFormat;
import tools.jackson.core.JacksonException;
import tools.jackson.core.JsonGenerator;
import tools.jackson.core.JsonParser;
import tools.jackson.core.StreamReadConstraints;
import tools.jackson.core.json.JsonFactory;
import tools.jackson.databind.json.JsonMapper;

/**
 * The text behind {@code Frames.toJson}: one JSON object with the envelope fields and, per tensor,
 * {@code "data"} holding its bytes in standard base64. Self-contained, for logs, debugging and JSON-only peers.
 * Reading is strict: unknown keys, duplicate keys and values of the wrong kind are refused by name.
 */
public final class JsonMessageText implements MessageTextFormat {
    /**
     * Jackson refuses strings over 20,000,000 characters by default, which a base64 tensor passes at about
     * 15 MB. The real bound for the text and its strings is the Java string itself, so that is the limit we give
     * Jackson. Nesting is bounded as in a frame's envelope ({@link EnvelopeSchema#MAX_DEPTH}, so 100,000 nested
     * arrays are refused at the ninth), and so are names and numbers ({@link JacksonTrees#MAX_NAME_UNITS},
     * {@link JacksonTrees#MAX_NUMBER_CHARS}).
     */
    private static final JsonMapper MAPPER = JsonMapper.builder(JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder()
                    .maxStringLength(Integer.MAX_VALUE)
                    .maxNameLength(JacksonTrees.MAX_NAME_UNITS)
                    .maxDocumentLength(-1)
                    .maxNestingDepth(EnvelopeSchema.MAX_DEPTH)
                    .maxNumberLength(JacksonTrees.MAX_NUMBER_CHARS)
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
            JacksonTrees.write(gen, EnvelopeSchema.messageToText(message, Tensor::data));
        }
        return out.toString();
    }

    @Override
    public Message read(String text) throws ProtocolException {
        try (JsonParser parser = MAPPER.createParser(text)) {
            return EnvelopeSchema.messageFromText(JacksonTrees.readWhole(parser, "message JSON"),
                    JsonMessageText::base64);
        } catch (JacksonException e) {
            throw EnvelopeSchema.invalid("message JSON does not parse: " + e.getOriginalMessage());
        }
    }

    /**
     * Strict base64 with padding, as the text form specifies and Python's reader requires: Jackson's decoder would
     * skip whitespace and line breaks inside the data, so a text one side accepts the other refuses.
     */
    private static byte[] base64(String text) {
        byte[] bytes;
        try {
            bytes = Base64.getDecoder().decode(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("data is not base64: " + e.getMessage(), e);
        }
        if (text.length() % 4 != 0) {
            throw new IllegalArgumentException("data is not base64 with padding: " + text.length()
                    + " characters, not a multiple of 4");
        }
        return bytes;
    }
}
