package netutils.api.spi;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.ProtocolException;
import netutils.api.ProtocolException.Kind;
import netutils.api.Tensor;
import netutils.api.internal.Unicode;

/**
 * The envelope's schema in one socket-free place: its key names, its form as a tree of plain values, and the
 * rules of the tensor table. Self-describing serializers (JSON, MessagePack, CBOR) only translate between their
 * bytes and a <em>tree</em>; this class does the rest, so every serializer reads and refuses the same things.
 *
 * <p>A tree is made of {@code Map<String, Object>} (insertion-ordered), {@code List<Object>}, {@code String},
 * {@code Long} and {@code null}; a reader may also produce {@code Boolean}, {@code Double} or {@code byte[]} for
 * what it found, which the schema refuses with a message naming the path. The envelope's tree:
 *
 * <pre>
 * {"type": str, "id": str?, "reply_to": str?, "meta": {str: str},
 *  "tensors": [{"name": str, "dtype": str, "shape": [int], "offset": int, "nbytes": int}]}
 * </pre>
 *
 * Unknown keys in a frame's envelope are skipped (a newer peer may add some); the text form of
 * {@link #messageFromText} refuses them. Readers must refuse a key that appears twice in one map
 * ({@link #duplicateKey}).
 */
public final class EnvelopeSchema {
    /** Key of the message type. */
    public static final String TYPE = "type";
    /** Key of the message id. */
    public static final String ID = "id";
    /** Key of the id this message answers. */
    public static final String REPLY_TO = "reply_to";
    /** Key of the string metadata map. */
    public static final String META = "meta";
    /** Key of the tensor table. */
    public static final String TENSORS = "tensors";
    /** Key of a tensor's name. */
    public static final String NAME = "name";
    /** Key of a tensor's dtype wire name. */
    public static final String DTYPE = "dtype";
    /** Key of a tensor's shape. */
    public static final String SHAPE = "shape";
    /** Key of a tensor's offset in the data area. */
    public static final String OFFSET = "offset";
    /** Key of a tensor's byte count. */
    public static final String NBYTES = "nbytes";
    /** Key of a tensor's bytes in the text form (base64 in JSON). */
    public static final String DATA = "data";
    /** The deepest nesting a reader needs to accept (an envelope has four levels); deeper input is refused. */
    public static final int MAX_DEPTH = 8;
    /**
     * The most values (maps, arrays, strings, numbers) a reader accepts in one envelope: about 25,000 tensors. A
     * parsed tree costs tens of times its bytes, so a large junk envelope must be refused while it is read, not
     * after; readers count with {@link #countValue}.
     */
    public static final int MAX_VALUES = 262_144;

    private static final Set<String> TEXT_KEYS = Set.of(TYPE, ID, REPLY_TO, META, TENSORS);
    private static final Set<String> TEXT_TENSOR_KEYS = Set.of(NAME, DTYPE, SHAPE, DATA);

    private EnvelopeSchema() {
    }

    /**
     * The exception a serializer throws for input that does not parse or does not fit the schema.
     *
     * @param what what is wrong, with the path of the offending value where there is one
     * @return an exception of kind {@link Kind#MALFORMED_ENVELOPE}, to throw
     */
    public static ProtocolException invalid(String what) {
        return new ProtocolException(Kind.MALFORMED_ENVELOPE, what);
    }

    /**
     * The exception a reader throws when {@code key} appears twice in the map at {@code path}.
     *
     * @param path where the map is in the tree, e.g. {@code "tensors[2]"}; empty for the root
     * @param key the repeated key
     * @return an exception of kind {@link Kind#MALFORMED_ENVELOPE} naming the path and key, to throw
     */
    public static ProtocolException duplicateKey(String path, String key) {
        return invalid((path.isEmpty() ? "" : path + ": ") + "key '" + key + "' appears twice");
    }

    /**
     * Counts one more value read; call it for every value.
     *
     * @param count how many values were read before this one
     * @return {@code count + 1}
     * @throws ProtocolException once the envelope has more than {@link #MAX_VALUES}
     */
    public static int countValue(int count) throws ProtocolException {
        if (count >= MAX_VALUES) {
            throw invalid("envelope has more than " + MAX_VALUES + " values");
        }
        return count + 1;
    }

    /**
     * {@return the exception of kind {@link Kind#MALFORMED_ENVELOPE} a reader throws for nesting deeper than
     * {@link #MAX_DEPTH}}
     */
    public static ProtocolException tooDeep() {
        return invalid("nesting deeper than " + MAX_DEPTH + " levels");
    }

    // ---------------------------------------------------------------- writing

    /**
     * Receives an envelope as a stream of values: what a serializer implements to write an envelope straight to its
     * output, without building the tree first (the tree's maps cost more than the writing on a small message).
     * Calls come in document order; a map's entries are {@link #key} then one value each, and every map and list
     * announces its size first, for formats that write sizes before contents.
     */
    public interface TreeWriter {
        /**
         * A map of {@code entries} entries begins.
         *
         * @param entries how many keys follow before {@link #endMap}
         */
        void startMap(int entries);

        /**
         * The key of the next map entry.
         *
         * @param key the key
         */
        void key(String key);

        /**
         * A string value.
         *
         * @param value the string
         */
        void string(String value);

        /**
         * An integer value.
         *
         * @param value the number
         */
        void number(long value);

        /**
         * A list of {@code elements} values begins.
         *
         * @param elements how many values follow before {@link #endList}
         */
        void startList(int elements);

        /** The current list ends. */
        void endList();

        /** The current map ends. */
        void endMap();
    }

    /**
     * Writes the envelope to {@code out}, keys in the order of {@code docs/PROTOCOL.md}; absent ids are left out.
     * The one definition of the envelope's layout: {@link #toTree} builds its tree from these same calls.
     *
     * @param envelope the envelope to write
     * @param out what receives the values
     */
    public static void write(Envelope envelope, TreeWriter out) {
        out.startMap(3 + (envelope.id() != null ? 1 : 0) + (envelope.replyTo() != null ? 1 : 0));
        out.key(TYPE);
        out.string(envelope.type());
        if (envelope.id() != null) {
            out.key(ID);
            out.string(envelope.id());
        }
        if (envelope.replyTo() != null) {
            out.key(REPLY_TO);
            out.string(envelope.replyTo());
        }
        out.key(META);
        out.startMap(envelope.meta().size());
        for (Map.Entry<String, String> entry : envelope.meta().entrySet()) {
            out.key(entry.getKey());
            out.string(entry.getValue());
        }
        out.endMap();
        out.key(TENSORS);
        out.startList(envelope.tensors().size());
        for (Envelope.Entry entry : envelope.tensors()) {
            out.startMap(5);
            out.key(NAME);
            out.string(entry.name());
            out.key(DTYPE);
            out.string(entry.dtype());
            out.key(SHAPE);
            long[] shape = entry.shapeView();
            out.startList(shape.length);
            for (long dim : shape) {
                out.number(dim);
            }
            out.endList();
            out.key(OFFSET);
            out.number(entry.offset());
            out.key(NBYTES);
            out.number(entry.nbytes());
            out.endMap();
        }
        out.endList();
        out.endMap();
    }

    /**
     * The envelope as a tree, as {@link #write} lays it out.
     *
     * @param envelope the envelope to write
     * @return a new tree of insertion-ordered maps, lists, strings and {@code Long}s, for a serializer to write
     */
    public static Map<String, Object> toTree(Envelope envelope) {
        TreeBuilder builder = new TreeBuilder();
        write(envelope, builder);
        @SuppressWarnings("unchecked")
        Map<String, Object> root = (Map<String, Object>) builder.root;
        return root;
    }

    /** Builds a tree from {@link TreeWriter} calls. */
    private static final class TreeBuilder implements TreeWriter {
        private final java.util.ArrayDeque<Object> open = new java.util.ArrayDeque<>();
        private String pendingKey;
        private Object root;

        @SuppressWarnings("unchecked")
        private void add(Object value) {
            Object parent = open.peek();
            if (parent == null) {
                root = value;
            } else if (parent instanceof Map<?, ?> map) {
                ((Map<String, Object>) map).put(pendingKey, value);
            } else {
                ((List<Object>) parent).add(value);
            }
        }

        @Override
        public void startMap(int entries) {
            Map<String, Object> map = new LinkedHashMap<>(Math.max(4, entries * 2));
            add(map);
            open.push(map);
        }

        @Override
        public void key(String key) {
            pendingKey = key;
        }

        @Override
        public void string(String value) {
            add(value);
        }

        @Override
        public void number(long value) {
            add(value);
        }

        @Override
        public void startList(int elements) {
            List<Object> list = new ArrayList<>(elements);
            add(list);
            open.push(list);
        }

        @Override
        public void endList() {
            open.pop();
        }

        @Override
        public void endMap() {
            open.pop();
        }
    }

    /**
     * The self-contained text form of {@code message} as a tree: the envelope without offsets, each tensor's
     * bytes under {@value #DATA} as the value {@code tensorData} makes of its tensor (the JSON text writes a
     * {@link java.lang.foreign.MemorySegment} as base64 while streaming).
     *
     * @param message the message to write
     * @param tensorData makes the value written under {@value #DATA} for each tensor
     * @return a new tree of the message: type, ids, metadata and tensors with their data, in that order
     */
    public static Map<String, Object> messageToText(Message message, Function<Tensor, Object> tensorData) {
        Map<String, Object> root = head(message.type().name(), message.id().orElse(null),
                message.replyTo().orElse(null), message.meta());
        List<Object> tensors = new ArrayList<>(message.tensors().size());
        message.tensors().forEach((name, tensor) -> {
            Map<String, Object> row = tensorHead(name, tensor.dtype().wireName(), tensor.shape());
            row.put(DATA, tensorData.apply(tensor));
            tensors.add(row);
        });
        root.put(TENSORS, tensors);
        return root;
    }

    private static Map<String, Object> head(String type, String id, String replyTo, Map<String, String> meta) {
        Map<String, Object> root = new LinkedHashMap<>(8);
        root.put(TYPE, type);
        if (id != null) {
            root.put(ID, id);
        }
        if (replyTo != null) {
            root.put(REPLY_TO, replyTo);
        }
        root.put(META, new LinkedHashMap<Object, Object>(meta));
        return root;
    }

    private static Map<String, Object> tensorHead(String name, String dtype, long[] shape) {
        Map<String, Object> row = new LinkedHashMap<>(8);
        row.put(NAME, name);
        row.put(DTYPE, dtype);
        List<Object> dims = new ArrayList<>(shape.length);
        for (long dim : shape) {
            dims.add(dim);
        }
        row.put(SHAPE, dims);
        return row;
    }

    // ---------------------------------------------------------------- reading

    /**
     * Reads an envelope from its tree, checking the kind of every value; unknown keys are skipped.
     * The tensor table is not checked here: that is {@link #checkTable}'s job.
     *
     * @param tree the tree a serializer read from the envelope's bytes
     * @return the envelope
     * @throws ProtocolException of kind {@link Kind#MALFORMED_ENVELOPE} naming the path of what is wrong
     */
    public static Envelope fromTree(Object tree) throws ProtocolException {
        Map<?, ?> root = map(tree, "envelope");
        List<?> rows = optionalList(root.get(TENSORS), TENSORS);
        List<Envelope.Entry> entries = new ArrayList<>(rows.size());
        for (int i = 0; i < rows.size(); i++) {
            // Paths are only spelled out for an error message: building them for every value cost more than reading.
            Map<?, ?> row = rows.get(i) instanceof Map<?, ?> map ? map : map(rows.get(i), TENSORS + "[" + i + "]");
            entries.add(new Envelope.Entry(string(row.get(NAME), i, NAME), string(row.get(DTYPE), i, DTYPE),
                    shape(row.get(SHAPE), i), nonNegative(row.get(OFFSET), i, OFFSET), nonNegative(row.get(NBYTES), i, NBYTES)));
        }
        return new Envelope(string(root.get(TYPE), TYPE), optionalString(root.get(ID), ID),
                optionalString(root.get(REPLY_TO), REPLY_TO), stringMap(root.get(META), META), entries);
    }

    /**
     * Reads a message from its text form ({@link #messageToText}), refusing unknown keys, checking every value
     * and the tensors' sizes against their shapes.
     *
     * @param tree the tree a serializer read from the message's text
     * @param base64 decodes the text of a tensor's {@value #DATA}
     * @return the message, its tensors in fresh memory
     * @throws ProtocolException naming the path of what is wrong
     */
    public static Message messageFromText(Object tree, Function<String, byte[]> base64) throws ProtocolException {
        Map<?, ?> root = map(tree, "message");
        for (Object key : root.keySet()) {
            if (!TEXT_KEYS.contains(key)) {
                String hint = DATA.equals(key) ? " (tensors go in \"tensors\": [{\"name\", \"dtype\", \"shape\", "
                        + "\"data\": base64 of the little-endian bytes}], as Frames.toJson writes them)" : "";
                throw invalid("unknown key '" + key + "' in the message text; its keys are " + TEXT_KEYS + hint);
            }
        }
        Message.Builder builder;
        try {
            builder = Message.builder(MessageType.of(string(root.get(TYPE), TYPE)))
                    .id(optionalString(root.get(ID), ID)).replyTo(optionalString(root.get(REPLY_TO), REPLY_TO));
            for (Map.Entry<String, String> entry : stringMap(root.get(META), META).entrySet()) {
                builder.meta(entry.getKey(), entry.getValue());
            }
        } catch (IllegalArgumentException e) {
            throw invalid("message text: " + e.getMessage());
        }
        List<?> rows = optionalList(root.get(TENSORS), TENSORS);
        for (int i = 0; i < rows.size(); i++) {
            String path = TENSORS + "[" + i + "]";
            Map<?, ?> row = map(rows.get(i), path);
            for (Object key : row.keySet()) {
                if (!TEXT_TENSOR_KEYS.contains(key)) {
                    throw invalid("unknown key '" + key + "' in " + path + "; its keys are " + TEXT_TENSOR_KEYS);
                }
            }
            String name = string(row.get(NAME), path + "." + NAME);
            try {
                DType dtype = DType.fromWireName(string(row.get(DTYPE), path + "." + DTYPE));
                byte[] bytes = base64.apply(string(row.get(DATA), path + "." + DATA));
                builder.tensor(name, Tensor.ofBytes(dtype, bytes, shape(row.get(SHAPE), path + "." + SHAPE)));
            } catch (IllegalArgumentException e) {
                throw new ProtocolException(Kind.BAD_TENSOR, path + " ('" + name + "'): " + e.getMessage(), e);
            }
        }
        return builder.build();
    }

    /**
     * Checks a frame's tensor table against the rules of {@code docs/PROTOCOL.md}: names unique and of 1 to
     * {@link Message#MAX_NAME_LENGTH} characters, known dtypes, rank at most {@link Tensor#MAX_RANK},
     * {@code nbytes} equal to the shape times the dtype's width, offsets multiples of 64 in ascending order
     * without overlap, every tensor inside a data area of {@code dataLength} bytes.
     *
     * @param entries the envelope's tensor table, in the order of the envelope
     * @param dataLength bytes from the start of the data area to the end of the body (negative if the body ends
     *     before the data area starts)
     * @return the dtype of each entry, in order
     * @throws ProtocolException of kind {@link Kind#BAD_TENSOR} or {@link Kind#MALFORMED_ENVELOPE} naming the
     *     tensor and the rule
     */
    public static DType[] checkTable(List<Envelope.Entry> entries, long dataLength) throws ProtocolException {
        if (!entries.isEmpty() && dataLength < 0) {
            throw new ProtocolException(Kind.BAD_TENSOR, "frame has tensors but its body ends " + -dataLength
                    + " bytes before the data area starts");
        }
        DType[] dtypes = new DType[entries.size()];
        Set<String> names = new HashSet<>();
        long previousEnd = 0;
        String previousName = null;
        for (int i = 0; i < entries.size(); i++) {
            Envelope.Entry entry = entries.get(i);
            String name = entry.name();
            int characters = name.codePointCount(0, name.length());
            if (characters == 0 || characters > Message.MAX_NAME_LENGTH) {
                throw invalid("tensor " + i + " has a name of " + characters + " characters (1.."
                        + Message.MAX_NAME_LENGTH + " allowed)");
            }
            String notUnicode = Unicode.lonelySurrogate(name);
            if (notUnicode != null) {
                throw invalid("tensor " + i + " has a name that is not valid Unicode: " + notUnicode);
            }
            if (!names.add(name)) {
                throw invalid("tensor name '" + name + "' appears twice");
            }
            try {
                dtypes[i] = DType.fromWireName(entry.dtype());
            } catch (IllegalArgumentException e) {
                throw new ProtocolException(Kind.BAD_TENSOR, "tensor '" + name + "': " + e.getMessage());
            }
            long[] shape = entry.shape();
            if (shape.length > Tensor.MAX_RANK) {
                throw new ProtocolException(Kind.BAD_TENSOR, "tensor '" + name + "' has rank " + shape.length
                        + ", over the maximum of " + Tensor.MAX_RANK);
            }
            long expectedBytes;
            try {
                for (long dim : shape) {
                    if (dim < 0) {
                        throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
                    }
                }
                expectedBytes = Tensor.byteSize(dtypes[i], shape);
            } catch (IllegalArgumentException e) {
                throw new ProtocolException(Kind.BAD_TENSOR, "tensor '" + name + "': " + e.getMessage());
            }
            if (entry.nbytes() != expectedBytes) {
                throw new ProtocolException(Kind.BAD_TENSOR, "tensor '" + name + "' declares " + entry.nbytes()
                        + " bytes but " + dtypes[i] + " " + Arrays.toString(shape) + " needs " + expectedBytes);
            }
            long offset = entry.offset();
            if (offset < 0 || offset % 64 != 0) {
                throw new ProtocolException(Kind.BAD_TENSOR, "tensor '" + name + "' has offset " + offset
                        + ", which is not a non-negative multiple of 64");
            }
            if (offset < previousEnd) {
                throw new ProtocolException(Kind.BAD_TENSOR, "tensor '" + name + "' at offset " + offset
                        + " overlaps tensor '" + previousName + "', which ends at " + previousEnd
                        + " (tensors must be in ascending offset order)");
            }
            long end = offset + entry.nbytes();
            if (end > dataLength) {
                throw new ProtocolException(Kind.BAD_TENSOR, "tensor '" + name + "' ends at byte " + end
                        + " of the data area, but the frame's data area has " + dataLength + " bytes");
            }
            previousEnd = end;
            previousName = name;
        }
        return dtypes;
    }

    // ---------------------------------------------------------------- strict value access

    private static Map<?, ?> map(Object value, String path) throws ProtocolException {
        if (value instanceof Map<?, ?> map) {
            return map;
        }
        throw invalid(path + " must be a map, got " + kind(value));
    }

    private static List<?> optionalList(Object value, String path) throws ProtocolException {
        if (value == null) {
            return List.of();
        }
        if (value instanceof List<?> list) {
            return list;
        }
        throw invalid(path + " must be an array, got " + kind(value));
    }

    private static String string(Object value, String path) throws ProtocolException {
        if (value instanceof String string) {
            return string;
        }
        throw invalid(path + " must be a string, got " + kind(value));
    }

    private static String optionalString(Object value, String path) throws ProtocolException {
        return value == null ? null : string(value, path);
    }

    private static long nonNegative(Object value, String path) throws ProtocolException {
        if (value instanceof Long number && number >= 0) {
            return number;
        }
        throw invalid(path + " must be a non-negative 64-bit integer, got " + describe(value));
    }

    private static long[] shape(Object value, String path) throws ProtocolException {
        if (!(value instanceof List<?> dims)) {
            throw invalid(path + " must be an array, got " + kind(value));
        }
        long[] shape = new long[dims.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = nonNegative(dims.get(i), path + "[" + i + "]");
        }
        return shape;
    }

    private static Map<String, String> stringMap(Object value, String path) throws ProtocolException {
        if (value == null) {
            return new LinkedHashMap<>();
        }
        Map<?, ?> map = map(value, path);
        Map<String, String> out = new LinkedHashMap<>(Math.max(4, map.size() * 2));
        for (Map.Entry<?, ?> entry : map.entrySet()) {
            String key = String.valueOf(entry.getKey());
            out.put(key, entry.getValue() instanceof String text ? text : string(entry.getValue(), path + "." + key));
        }
        return out;
    }

    /** A tensor row's string field: {@code tensors[row].key}, named only if it is wrong. */
    private static String string(Object value, int row, String key) throws ProtocolException {
        return value instanceof String text ? text : string(value, TENSORS + "[" + row + "]." + key);
    }

    /** A tensor row's integer field, as {@link #string(Object, int, String)}. */
    private static long nonNegative(Object value, int row, String key) throws ProtocolException {
        return value instanceof Long number && number >= 0 ? number : nonNegative(value, TENSORS + "[" + row + "]." + key);
    }

    /** A tensor row's shape, as {@link #string(Object, int, String)}. */
    private static long[] shape(Object value, int row) throws ProtocolException {
        if (value instanceof List<?> dims) {
            long[] shape = new long[dims.size()];
            for (int i = 0; i < shape.length; i++) {
                if (!(dims.get(i) instanceof Long dim && dim >= 0)) {
                    return shape(value, TENSORS + "[" + row + "]." + SHAPE); // names the bad dimension
                }
                shape[i] = dim;
            }
            return shape;
        }
        return shape(value, TENSORS + "[" + row + "]." + SHAPE);
    }

    private static String kind(Object value) {
        return switch (value) {
            case null -> "nothing (missing or null)";
            case String s -> "a string";
            case Long l -> "an integer";
            case Map<?, ?> m -> "a map";
            case List<?> l -> "an array";
            case Boolean b -> "a boolean";
            case Double d -> "a floating-point number";
            case byte[] b -> "binary data";
            default -> value.getClass().getSimpleName();
        };
    }

    private static String describe(Object value) {
        return value instanceof Long || value instanceof Double || value instanceof Boolean ? String.valueOf(value)
                : kind(value);
    }
}
