package netutils.api.wire;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.Set;
import netutils.api.ProtocolException;
import netutils.api.spi.MessageTextFormat;
import netutils.api.spi.Serializer;

/**
 * The installed {@link Serializer}s, found once with {@link ServiceLoader}, by wire id or by name.
 * {@code "json"} is the default. When a frame or option names a serializer that is not installed, the
 * error says which module to add; when two providers claim one name or wire id, asking for it fails with a
 * message naming both (other serializers keep working); a class listed in {@code META-INF/services} that
 * the module path did not load is named with the {@code provides} clause it lacks.
 */
public final class Serializers {
    /** The name of the default serializer. */
    public static final String DEFAULT_NAME = "json";

    private static final class Installed {
        static final SerializerRegistry REGISTRY = load();
        static final List<MessageTextFormat> TEXT_FORMATS = new ArrayList<>();
        static final List<String> TEXT_FORMAT_FAILURES = new ArrayList<>();

        static {
            // A broken text format must not take the serializers down with it; asking for it says why.
            loadEach(MessageTextFormat.class, TEXT_FORMATS, TEXT_FORMAT_FAILURES);
        }

        private static SerializerRegistry load() {
            List<Serializer> found = new ArrayList<>();
            List<String> failures = new ArrayList<>();
            loadEach(Serializer.class, found, failures);
            return new SerializerRegistry(found, failures, listedInServiceFiles());
        }

        /** Every provider of {@code service} that loads; one broken provider is recorded and does not hide the rest. */
        private static <T> void loadEach(Class<T> service, List<T> found, List<String> failures) {
            var providers = ServiceLoader.load(service, Serializers.class.getClassLoader()).iterator();
            while (true) {
                try {
                    if (!providers.hasNext()) {
                        return;
                    }
                    found.add(providers.next());
                } catch (ServiceConfigurationError e) {
                    failures.add(e.getMessage());
                }
            }
        }

        /** Class names in every {@code META-INF/services} file for the SPI that the class loader sees. */
        private static Set<String> listedInServiceFiles() {
            Set<String> names = new LinkedHashSet<>();
            try {
                ClassLoader loader = Serializers.class.getClassLoader();
                Enumeration<URL> files = loader.getResources("META-INF/services/" + Serializer.class.getName());
                while (files.hasMoreElements()) {
                    try (BufferedReader in = new BufferedReader(new InputStreamReader(files.nextElement().openStream(),
                            StandardCharsets.UTF_8))) {
                        in.lines().map(line -> line.replaceFirst("#.*", "").trim()).filter(line -> !line.isEmpty())
                                .forEach(names::add);
                    }
                }
            } catch (IOException | RuntimeException e) {
                // Only a hint for error messages; without it the errors are merely less specific.
            }
            return names;
        }
    }

    private Serializers() {
    }

    /**
     * Whether {@code id} may name a serializer: 1..3 (the project's) or 128..255 (users').
     *
     * @param id a wire id
     * @return whether it is outside the reserved ranges
     */
    public static boolean isAssignable(int id) {
        return (id >= 1 && id <= 3) || (id >= 128 && id <= 255);
    }

    /**
     * The serializer with this wire id, if installed (and not claimed by two providers).
     *
     * @param id a wire id
     * @return the serializer, or empty
     */
    public static Optional<Serializer> findById(int id) {
        return Installed.REGISTRY.findById(id);
    }

    /**
     * The serializer with this wire id.
     *
     * @param id a wire id
     * @return the serializer
     * @throws ProtocolException of kind {@link ProtocolException.Kind#UNKNOWN_SERIALIZER} saying whether the id is
     *     reserved, which module to add, or which two providers claim it
     */
    public static Serializer byId(int id) throws ProtocolException {
        return Installed.REGISTRY.byId(id);
    }

    /**
     * The serializer with this name, e.g. {@code "msgpack"}.
     *
     * @param name the serializer's name
     * @return the serializer
     * @throws IllegalArgumentException saying which module to add, or which names are installed
     * @throws IllegalStateException if two installed providers claim the name, naming both
     */
    public static Serializer byName(String name) {
        return Installed.REGISTRY.byName(name);
    }

    /**
     * The default serializer, JSON.
     *
     * @return the JSON serializer
     */
    public static Serializer defaultSerializer() {
        return byName(DEFAULT_NAME);
    }

    /**
     * Every usable installed serializer, by wire id, each once.
     *
     * @return the serializers, ordered by wire id
     */
    public static List<Serializer> installed() {
        return Installed.REGISTRY.installed();
    }

    /**
     * What kept providers from being used: load failures, reserved ids, two providers claiming one name or id,
     * classes listed in {@code META-INF/services} but not loaded. Empty when all is well.
     *
     * @return one line per problem
     */
    public static List<String> problems() {
        return Installed.REGISTRY.problems();
    }

    static MessageTextFormat textFormat(String name) {
        for (MessageTextFormat format : Installed.TEXT_FORMATS) {
            if (format.name().equals(name)) {
                return format;
            }
        }
        throw new IllegalStateException("no '" + name + "' text format is installed: add "
                + "netutils-serde-json (module netutils.serde.json) to the module path or class path"
                + (Installed.TEXT_FORMAT_FAILURES.isEmpty() ? "" : "; failed to load: " + Installed.TEXT_FORMAT_FAILURES));
    }
}
