package netutils.serde.json;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import netutils.api.ProtocolException;
import netutils.api.spi.Envelope;
import netutils.api.spi.Serializer;
import tools.jackson.core.JacksonException;
import tools.jackson.core.JsonGenerator;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The default serializer, wire id 1: the envelope as a UTF-8 JSON object
 * ({@code {"type":..,"id":..,"reply_to":..,"meta":{..},"tensors":[{"name","dtype","shape","offset","nbytes"}]}}).
 * Any language's JSON library reads it. Found through {@link java.util.ServiceLoader}; users rarely name it.
 */
public final class JsonSerializer implements Serializer {
    /** The wire id. */
    public static final int ID = 1;

    private static final JsonMapper MAPPER = JsonMapper.builder().build();

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
        ByteArrayOutputStream out = new ByteArrayOutputStream(128 + 96 * envelope.tensors().size());
        try (JsonGenerator gen = MAPPER.createGenerator(out)) {
            writeHead(gen, envelope.type(), envelope.id(), envelope.replyTo(), envelope.meta());
            gen.writeArrayPropertyStart("tensors");
            for (Envelope.Entry entry : envelope.tensors()) {
                gen.writeStartObject();
                writeTensorHead(gen, entry.name(), entry.dtype(), entry.shape());
                gen.writeNumberProperty("offset", entry.offset());
                gen.writeNumberProperty("nbytes", entry.nbytes());
                gen.writeEndObject();
            }
            gen.writeEndArray();
            gen.writeEndObject();
        }
        return out.toByteArray();
    }

    @Override
    public Envelope readEnvelope(byte[] bytes) throws ProtocolException {
        try {
            JsonNode root = JsonTrees.object(MAPPER.readTree(bytes), "envelope");
            List<Envelope.Entry> entries = new ArrayList<>();
            List<JsonNode> tensors = JsonTrees.array(root, "tensors", "");
            for (int i = 0; i < tensors.size(); i++) {
                String path = "tensors[" + i + "].";
                JsonNode entry = JsonTrees.object(tensors.get(i), "tensors[" + i + "]");
                entries.add(new Envelope.Entry(JsonTrees.string(entry, "name", path), JsonTrees.string(entry, "dtype", path),
                        JsonTrees.shape(entry, path), JsonTrees.nonNegativeLong(entry.get("offset"), path + "offset"),
                        JsonTrees.nonNegativeLong(entry.get("nbytes"), path + "nbytes")));
            }
            return new Envelope(JsonTrees.string(root, "type", ""), JsonTrees.optionalString(root, "id", ""),
                    JsonTrees.optionalString(root, "reply_to", ""), JsonTrees.stringMap(root, "meta", ""), entries);
        } catch (JsonTrees.Invalid e) {
            throw new ProtocolException(ProtocolException.Kind.MALFORMED_ENVELOPE, "json envelope: " + e.getMessage());
        } catch (JacksonException e) {
            throw new ProtocolException(ProtocolException.Kind.MALFORMED_ENVELOPE,
                    "json envelope does not parse: " + e.getOriginalMessage(), e);
        }
    }

    /** Writes the start of the object and the fields every form of a message shares. */
    static void writeHead(JsonGenerator gen, String type, String id, String replyTo, Map<String, String> meta) {
        gen.writeStartObject();
        gen.writeStringProperty("type", type);
        if (id != null) {
            gen.writeStringProperty("id", id);
        }
        if (replyTo != null) {
            gen.writeStringProperty("reply_to", replyTo);
        }
        gen.writeObjectPropertyStart("meta");
        for (Map.Entry<String, String> entry : meta.entrySet()) {
            gen.writeStringProperty(entry.getKey(), entry.getValue());
        }
        gen.writeEndObject();
    }

    static void writeTensorHead(JsonGenerator gen, String name, String dtype, long[] shape) {
        gen.writeStringProperty("name", name);
        gen.writeStringProperty("dtype", dtype);
        gen.writeArrayPropertyStart("shape");
        for (long dim : shape) {
            gen.writeNumber(dim);
        }
        gen.writeEndArray();
    }
}
