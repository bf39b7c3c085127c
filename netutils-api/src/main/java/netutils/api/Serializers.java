package netutils.api;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.ServiceLoader;
import java.util.TreeMap;
import netutils.api.spi.MessageTextFormat;
import netutils.api.spi.Serializer;

/**
 * The installed {@link Serializer}s, found once with {@link ServiceLoader}, by wire id or by name.
 * {@code "json"} is the default. When a frame or option names a serializer that is not installed, the
 * error says which module to add.
 */
public final class Serializers {
    /** The name of the default serializer. */
    public static final String DEFAULT_NAME = "json";

    /** The project's own serializers, to name the module to add when one is missing. */
    private static final Map<Integer, String[]> KNOWN = Map.of(
            1, new String[] {"json", "netutils-serde-json (module netutils.serde.json)"},
            2, new String[] {"msgpack", "netutils-serde-msgpack (module netutils.serde.msgpack)"},
            3, new String[] {"kryo", "netutils-serde-kryo (module netutils.serde.kryo)"});

    private static final class Installed {
        static final Serializer[] BY_ID = new Serializer[256];
        static final TreeMap<String, Serializer> BY_NAME = new TreeMap<>();
        static final List<MessageTextFormat> TEXT_FORMATS = new ArrayList<>();

        static {
            for (Serializer serializer : ServiceLoader.load(Serializer.class, Serializers.class.getClassLoader())) {
                register(serializer);
            }
            ServiceLoader.load(MessageTextFormat.class, Serializers.class.getClassLoader()).forEach(TEXT_FORMATS::add);
        }

        private static void register(Serializer serializer) {
            int id = serializer.id();
            if (!isAssignable(id)) {
                throw new java.util.ServiceConfigurationError("serializer " + serializer.getClass().getName()
                        + " has wire id " + id + ", which is reserved; users' serializers take 128..255");
            }
            Serializer previous = BY_ID[id];
            if (previous != null && !previous.getClass().equals(serializer.getClass())) {
                throw new java.util.ServiceConfigurationError("serializers " + previous.getClass().getName() + " and "
                        + serializer.getClass().getName() + " both claim wire id " + id);
            }
            BY_ID[id] = serializer;
            BY_NAME.put(serializer.name(), serializer);
        }
    }

    private Serializers() {
    }

    /** Whether {@code id} may name a serializer: 1..3 (the project's) or 128..255 (users'). */
    public static boolean isAssignable(int id) {
        return (id >= 1 && id <= 3) || (id >= 128 && id <= 255);
    }

    /** The serializer with this wire id, if installed. */
    public static Optional<Serializer> findById(int id) {
        return id >= 0 && id < 256 ? Optional.ofNullable(Installed.BY_ID[id]) : Optional.empty();
    }

    /**
     * The serializer with this wire id.
     *
     * @throws ProtocolException of kind {@link ProtocolException.Kind#UNKNOWN_SERIALIZER} saying whether the id is
     *     reserved or which module to add
     */
    public static Serializer byId(int id) throws ProtocolException {
        Optional<Serializer> found = findById(id);
        if (found.isPresent()) {
            return found.get();
        }
        throw new ProtocolException(ProtocolException.Kind.UNKNOWN_SERIALIZER, describeMissing(id));
    }

    /**
     * The serializer with this name, e.g. {@code "msgpack"}.
     *
     * @throws IllegalArgumentException saying which module to add, or which names are installed
     */
    public static Serializer byName(String name) {
        Serializer serializer = Installed.BY_NAME.get(name);
        if (serializer != null) {
            return serializer;
        }
        for (Map.Entry<Integer, String[]> known : KNOWN.entrySet()) {
            if (known.getValue()[0].equals(name)) {
                throw new IllegalArgumentException("serializer '" + name + "' is not installed: add "
                        + known.getValue()[1] + " to the module path or class path");
            }
        }
        throw new IllegalArgumentException("no serializer named '" + name + "'; installed: " + Installed.BY_NAME.keySet());
    }

    /** The default serializer, JSON. */
    public static Serializer defaultSerializer() {
        return byName(DEFAULT_NAME);
    }

    /** Every installed serializer, by wire id. */
    public static List<Serializer> installed() {
        List<Serializer> all = new ArrayList<>();
        for (Serializer serializer : Installed.BY_ID) {
            if (serializer != null) {
                all.add(serializer);
            }
        }
        return List.copyOf(all);
    }

    static MessageTextFormat textFormat(String name) {
        for (MessageTextFormat format : Installed.TEXT_FORMATS) {
            if (format.name().equals(name)) {
                return format;
            }
        }
        throw new IllegalStateException("no '" + name + "' text format is installed: add "
                + KNOWN.get(1)[1] + " to the module path or class path");
    }

    private static String describeMissing(int id) {
        if (!isAssignable(id)) {
            return "serializer id " + id + " is reserved (valid: 1 json, 2 msgpack, 3 kryo, 128..255 user serializers)";
        }
        String[] known = KNOWN.get(id);
        if (known != null) {
            return "frame uses serializer id " + id + " (" + known[0] + "), which is not installed: add " + known[1];
        }
        return "frame uses user serializer id " + id + ", which is not installed here; installed ids: "
                + installed().stream().map(s -> s.id() + " " + s.name()).toList();
    }
}
