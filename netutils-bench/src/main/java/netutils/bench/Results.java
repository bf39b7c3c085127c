package netutils.bench;

import java.util.LinkedHashMap;
import java.util.Map;

/** What one run measured, in the order it was measured. */
final class Results {
    /** One stack's numbers. */
    static final class Row extends LinkedHashMap<String, Double> {
        private static final long serialVersionUID = 1;
        final String id;
        final String label;
        final boolean large;

        Row(String id, String label, boolean large) {
            this.id = id;
            this.label = label;
            this.large = large;
        }
    }

    String machine = "";
    String largeBaseline = "";
    /** The raw baseline of the own-JVM (placed) 256 MiB pass, when it differs from {@link #largeBaseline}; or "". */
    String placedLargeBaseline = "";
    String smallBaseline = "";
    /** MiB/s of fresh memory (allocated and every page touched), or 0 if not measured. */
    double freshMemoryMibPerSecond;
    final Map<String, Row> rows = new LinkedHashMap<>();
    /** Calls per second by stack label, then by "blocking" or the number in flight. */
    final Map<String, Map<String, Double>> inFlight = new LinkedHashMap<>();
    final Map<String, Double> memory = new LinkedHashMap<>();

    Row row(Stack stack) {
        return row(stack.id, stack.label, stack.large());
    }

    /** A row of its own for a stack measured again in another pass. */
    Row row(String id, String label, boolean large) {
        return rows.computeIfAbsent(id, key -> new Row(key, label, large));
    }
}
