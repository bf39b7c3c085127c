package netutils.api.wire;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import netutils.api.ProtocolException;
import netutils.api.spi.Serializer;

/**
 * What {@link Serializers} knows, built once from the providers found: serializers by wire id and by name, and
 * every conflict with the providers that caused it. A conflict (two serializers claiming one id or one name, a
 * reserved id, a provider that failed to load) makes only the names and ids involved fail, each time they are
 * asked for, with a message naming both providers; every other serializer keeps working.
 */
final class SerializerRegistry {
    /** The project's own serializers, to name the module to add when one is missing. */
    private static final Map<Integer, String[]> KNOWN = Map.of(
            1, new String[] {"json", "netutils-serde-json (module netutils.serde.json)"},
            2, new String[] {"msgpack", "netutils-serde-msgpack (module netutils.serde.msgpack)"},
            3, new String[] {"kryo", "netutils-serde-kryo (module netutils.serde.kryo)"});

    private final Serializer[] byId = new Serializer[256];
    private final TreeMap<String, Serializer> byName = new TreeMap<>();
    private final Map<Integer, String> idConflicts = new TreeMap<>();
    private final Map<String, String> nameConflicts = new TreeMap<>();
    private final List<String> loadFailures = new ArrayList<>();
    private final Set<String> listedButNotLoaded;

    /**
     * @param found the serializers the service loader made, in its order
     * @param loadFailures what the service loader could not load, one line each
     * @param listedClasses class names listed in {@code META-INF/services} files, to hint at a missing
     *     {@code provides} clause when one of them was not loaded
     */
    SerializerRegistry(List<Serializer> found, List<String> loadFailures, Set<String> listedClasses) {
        this.loadFailures.addAll(loadFailures);
        Map<Integer, List<Serializer>> idClaims = new TreeMap<>();
        Map<String, List<Serializer>> nameClaims = new TreeMap<>();
        for (Serializer serializer : found) {
            int id = serializer.id();
            if (!Serializers.isAssignable(id)) {
                this.loadFailures.add("serializer " + describe(serializer) + " has wire id " + id
                        + ", which is reserved; users' serializers take 128..255");
                continue;
            }
            addClaim(idClaims.computeIfAbsent(id, k -> new ArrayList<>()), serializer);
            addClaim(nameClaims.computeIfAbsent(serializer.name(), k -> new ArrayList<>()), serializer);
        }
        idClaims.forEach((id, claims) -> {
            if (claims.size() > 1) {
                idConflicts.put(id, "serializers " + describeAll(claims) + " both claim wire id " + id
                        + "; remove one of them from the path (or give one another id)");
            }
        });
        nameClaims.forEach((name, claims) -> {
            if (claims.size() > 1) {
                nameConflicts.put(name, "serializers " + describeAll(claims) + " both claim the name '" + name
                        + "'; remove one of them from the path (or give one another name)");
            }
        });
        for (List<Serializer> claims : idClaims.values()) {
            for (Serializer serializer : claims) {
                if (!idConflicts.containsKey(serializer.id()) && !nameConflicts.containsKey(serializer.name())) {
                    byId[serializer.id()] = serializer;
                    byName.put(serializer.name(), serializer);
                }
            }
        }
        Set<String> loaded = new LinkedHashSet<>();
        found.forEach(s -> loaded.add(s.getClass().getName()));
        this.listedButNotLoaded = new LinkedHashSet<>(listedClasses);
        this.listedButNotLoaded.removeAll(loaded);
    }

    /** One instance per class: the module path and a {@code META-INF/services} file may both name a class. */
    private static void addClaim(List<Serializer> claims, Serializer serializer) {
        for (Serializer claim : claims) {
            if (claim.getClass().equals(serializer.getClass())) {
                return;
            }
        }
        claims.add(serializer);
    }

    Optional<Serializer> findById(int id) {
        return id >= 0 && id < 256 ? Optional.ofNullable(byId[id]) : Optional.empty();
    }

    Serializer byId(int id) throws ProtocolException {
        Optional<Serializer> found = findById(id);
        if (found.isPresent()) {
            return found.get();
        }
        throw new ProtocolException(ProtocolException.Kind.UNKNOWN_SERIALIZER, describeMissing(id));
    }

    Serializer byName(String name) {
        Serializer serializer = byName.get(name);
        if (serializer != null) {
            return serializer;
        }
        String conflict = nameConflicts.get(name);
        if (conflict != null) {
            throw new IllegalStateException(conflict);
        }
        for (Map.Entry<Integer, String[]> known : KNOWN.entrySet()) {
            if (known.getValue()[0].equals(name)) {
                String idConflict = idConflicts.get(known.getKey());
                throw idConflict != null ? new IllegalStateException(idConflict)
                        : new IllegalArgumentException("serializer '" + name + "' is not installed: add "
                                + known.getValue()[1] + " to the module path or class path" + problemsSuffix());
            }
        }
        throw new IllegalArgumentException("no serializer named '" + name + "'; installed: " + byName.keySet()
                + problemsSuffix());
    }

    List<Serializer> installed() {
        List<Serializer> all = new ArrayList<>();
        for (Serializer serializer : byId) {
            if (serializer != null) {
                all.add(serializer);
            }
        }
        return List.copyOf(all);
    }

    /** Everything that kept a provider from being used, for error messages and diagnostics. */
    List<String> problems() {
        List<String> all = new ArrayList<>(loadFailures);
        all.addAll(idConflicts.values());
        all.addAll(nameConflicts.values());
        for (String listed : listedButNotLoaded) {
            all.add(listed + " is listed in META-INF/services/" + Serializer.class.getName() + " but was not "
                    + "loaded: on the module path, its module-info.java must also declare 'provides "
                    + Serializer.class.getName() + " with " + listed + ";'");
        }
        return all;
    }

    private String problemsSuffix() {
        List<String> all = problems();
        return all.isEmpty() ? "" : "; problems: " + String.join("; ", all);
    }

    private String describeMissing(int id) {
        if (!Serializers.isAssignable(id)) {
            return "serializer id " + id + " is reserved (valid: 1 json, 2 msgpack, 3 kryo, 128..255 user serializers)";
        }
        String conflict = idConflicts.get(id);
        if (conflict != null) {
            return "frame uses serializer id " + id + ", which is ambiguous here: " + conflict;
        }
        String[] known = KNOWN.get(id);
        if (known != null) {
            return "frame uses serializer id " + id + " (" + known[0] + "), which is not installed: add " + known[1];
        }
        return "frame uses user serializer id " + id + ", which is not installed here; installed ids: "
                + installed().stream().map(s -> s.id() + " " + s.name()).toList();
    }

    private static String describe(Serializer serializer) {
        Module module = serializer.getClass().getModule();
        return "'" + serializer.name() + "' (" + serializer.getClass().getName()
                + (module.isNamed() ? " in module " + module.getName() : "") + ")";
    }

    private static String describeAll(List<Serializer> serializers) {
        Map<String, Boolean> names = new LinkedHashMap<>();
        serializers.forEach(s -> names.put(describe(s), true));
        return String.join(" and ", names.keySet());
    }
}
