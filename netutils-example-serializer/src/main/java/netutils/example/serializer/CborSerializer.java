package netutils.example.serializer;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import netutils.api.ProtocolException;
import netutils.api.spi.Envelope;
import netutils.api.spi.Serializer;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;
import tools.jackson.dataformat.cbor.CBORMapper;

/**
 * A user serializer: the envelope as CBOR (RFC 8949) with the keys of the JSON envelope, wire id 200.
 *
 * <p>The steps to write one: implement {@link Serializer} with a public no-argument constructor, pick a wire id
 * in 128..255, turn the {@link Envelope} into bytes and back (refusing bad input with a
 * {@link ProtocolException} of kind {@code MALFORMED_ENVELOPE}), and declare it in {@code module-info.java}
 * ({@code provides netutils.api.spi.Serializer with ...}) and in
 * {@code META-INF/services/netutils.api.spi.Serializer} for class-path users.
 */
public final class CborSerializer implements Serializer {
    /** The wire id: in the users' range. */
    public static final int ID = 200;

    private static final CBORMapper MAPPER = CBORMapper.builder().build();

    /** Used by {@link java.util.ServiceLoader}. */
    public CborSerializer() {
    }

    @Override
    public int id() {
        return ID;
    }

    @Override
    public String name() {
        return "cbor";
    }

    @Override
    public byte[] writeEnvelope(Envelope envelope) {
        ObjectNode root = MAPPER.createObjectNode();
        root.put("type", envelope.type());
        if (envelope.id() != null) {
            root.put("id", envelope.id());
        }
        if (envelope.replyTo() != null) {
            root.put("reply_to", envelope.replyTo());
        }
        ObjectNode meta = root.putObject("meta");
        envelope.meta().forEach(meta::put);
        ArrayNode tensors = root.putArray("tensors");
        for (Envelope.Entry entry : envelope.tensors()) {
            ObjectNode tensor = tensors.addObject();
            tensor.put("name", entry.name());
            tensor.put("dtype", entry.dtype());
            ArrayNode shape = tensor.putArray("shape");
            for (long dim : entry.shape()) {
                shape.add(dim);
            }
            tensor.put("offset", entry.offset());
            tensor.put("nbytes", entry.nbytes());
        }
        return MAPPER.writeValueAsBytes(root);
    }

    @Override
    public Envelope readEnvelope(byte[] bytes) throws ProtocolException {
        try {
            JsonNode root = MAPPER.readTree(bytes);
            if (root == null || !root.isObject() || !root.path("type").isString()) {
                throw invalid("envelope must be a map with a string 'type'");
            }
            Map<String, String> meta = new LinkedHashMap<>();
            for (Map.Entry<String, JsonNode> entry : root.path("meta").properties()) {
                if (!entry.getValue().isString()) {
                    throw invalid("meta." + entry.getKey() + " must be a string");
                }
                meta.put(entry.getKey(), entry.getValue().stringValue());
            }
            List<Envelope.Entry> entries = new ArrayList<>();
            for (JsonNode tensor : root.path("tensors")) {
                JsonNode shapeNode = tensor.path("shape");
                long[] shape = new long[shapeNode.size()];
                for (int i = 0; i < shape.length; i++) {
                    shape[i] = integer(shapeNode.get(i), "shape");
                }
                if (!tensor.path("name").isString() || !tensor.path("dtype").isString()) {
                    throw invalid("each tensor needs a string name and dtype");
                }
                entries.add(new Envelope.Entry(tensor.get("name").stringValue(), tensor.get("dtype").stringValue(),
                        shape, integer(tensor.get("offset"), "offset"), integer(tensor.get("nbytes"), "nbytes")));
            }
            return new Envelope(root.get("type").stringValue(), text(root.get("id")), text(root.get("reply_to")),
                    meta, entries);
        } catch (JacksonException e) {
            throw new ProtocolException(ProtocolException.Kind.MALFORMED_ENVELOPE,
                    "cbor envelope does not parse: " + e.getOriginalMessage(), e);
        }
    }

    private static long integer(JsonNode node, String field) throws ProtocolException {
        if (node == null || !node.isIntegralNumber() || !node.canConvertToLong() || node.longValue() < 0) {
            throw invalid(field + " must be a non-negative integer");
        }
        return node.longValue();
    }

    private static String text(JsonNode node) {
        return node == null || node.isNull() ? null : node.asString();
    }

    private static ProtocolException invalid(String detail) {
        return new ProtocolException(ProtocolException.Kind.MALFORMED_ENVELOPE, "cbor envelope: " + detail);
    }
}
