package netutils.serde.json;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import tools.jackson.databind.JsonNode;

/**
 * Strict reads from a Jackson tree: every field has the JSON type the protocol says, and errors name the
 * path of the field, e.g. {@code tensors[2].shape[1]}.
 */
final class JsonTrees {
    private JsonTrees() {
    }

    static final class Invalid extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Invalid(String message) {
            super(message);
        }
    }

    static JsonNode object(JsonNode node, String path) {
        if (node == null || !node.isObject()) {
            throw new Invalid(path + " must be an object, got " + kind(node));
        }
        return node;
    }

    static String string(JsonNode parent, String field, String path) {
        JsonNode node = parent.get(field);
        if (node == null || !node.isString()) {
            throw new Invalid(path + field + " must be a string, got " + kind(node));
        }
        return node.stringValue();
    }

    static String optionalString(JsonNode parent, String field, String path) {
        JsonNode node = parent.get(field);
        if (node == null || node.isNull()) {
            return null;
        }
        if (!node.isString()) {
            throw new Invalid(path + field + " must be a string or null, got " + kind(node));
        }
        return node.stringValue();
    }

    static long nonNegativeLong(JsonNode node, String path) {
        if (node == null || !node.isIntegralNumber() || !node.canConvertToLong() || node.longValue() < 0) {
            throw new Invalid(path + " must be a non-negative 64-bit integer, got " + describe(node));
        }
        return node.longValue();
    }

    static Map<String, String> stringMap(JsonNode parent, String field, String path) {
        JsonNode node = parent.get(field);
        Map<String, String> out = new LinkedHashMap<>();
        if (node == null || node.isNull()) {
            return out;
        }
        object(node, path + field);
        for (Map.Entry<String, JsonNode> entry : node.properties()) {
            if (!entry.getValue().isString()) {
                throw new Invalid(path + field + "." + entry.getKey() + " must be a string, got " + kind(entry.getValue()));
            }
            out.put(entry.getKey(), entry.getValue().stringValue());
        }
        return out;
    }

    static List<JsonNode> array(JsonNode parent, String field, String path) {
        JsonNode node = parent.get(field);
        if (node == null || node.isNull()) {
            return List.of();
        }
        if (!node.isArray()) {
            throw new Invalid(path + field + " must be an array, got " + kind(node));
        }
        List<JsonNode> out = new ArrayList<>(node.size());
        node.values().forEach(out::add);
        return out;
    }

    static long[] shape(JsonNode entry, String path) {
        JsonNode node = entry.get("shape");
        if (node == null || !node.isArray()) {
            throw new Invalid(path + "shape must be an array, got " + kind(node));
        }
        long[] shape = new long[node.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = nonNegativeLong(node.get(i), path + "shape[" + i + "]");
        }
        return shape;
    }

    private static String kind(JsonNode node) {
        return node == null ? "nothing (missing)" : node.getNodeType().toString().toLowerCase(java.util.Locale.ROOT);
    }

    private static String describe(JsonNode node) {
        return node == null ? "nothing (missing)" : node.toString();
    }
}
