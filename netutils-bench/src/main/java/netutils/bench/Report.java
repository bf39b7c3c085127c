package netutils.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;

/**
 * Writes a run's results: {@code results.json}, {@code results.csv}, {@code chart.svg} and {@code table.md}, the
 * tables of the README's Performance section, so that refreshing the README after a run is a copy.
 */
final class Report {
    private Report() {
    }

    static void write(Results results, Path out, boolean quick) throws IOException {
        String table = markdown(results, quick);
        System.out.println("\n" + table);
        Files.createDirectories(out);
        Files.writeString(out.resolve("table.md"), table);
        Files.writeString(out.resolve("results.csv"), csv(results));
        Files.writeString(out.resolve("results.json"), json(results));
        Files.writeString(out.resolve("chart.svg"), Chart.svg(results));
        System.out.println("wrote " + out.resolve("results.json") + ", results.csv, table.md and chart.svg");
    }

    static String markdown(Results results, boolean quick) {
        StringBuilder md = new StringBuilder();
        md.append("Run on ").append(results.machine).append(quick ? " with --quick (not for quoting)" : "")
                .append(". Ratios are medians over rounds of each round's ratio to the baseline in the same round; where"
                        + " each stack ran in JVMs of its own, the median over those JVMs, their range in brackets.\n\n");
        Results.Row largeBase = results.rows.get(results.largeBaseline);
        if (largeBase != null) {
            md.append("256 MiB `KV_cache`, client to server, answered when all arrived (baseline \"raw\": ")
                    .append(largeBase.label).append(", the best raw variant in this run");
            Results.Row placedBase = results.rows.get(results.placedLargeBaseline + "-own-jvm");
            if (placedBase != null && !results.placedLargeBaseline.equals(results.largeBaseline)) {
                md.append("; in JVMs of their own, the best raw variant placed: ").append(placedBase.label);
            }
            md.append("; targets: default receive() >= 0.90, reused memory >= 0.95 and >= Netty):\n\n");
            md.append("| stack | MiB/s | ratio to raw |\n|---|---:|---:|\n");
            for (Results.Row row : results.rows.values()) {
                if (row.large) {
                    md.append(String.format(Locale.ROOT, "| %s | %,.0f | %.2f%s |%n", row.label + (row == largeBase ? " (raw)" : ""),
                            row.get("throughput_mib_s"), row.get("throughput_ratio"), range(row, "throughput_ratio")));
                }
            }
            if (results.freshMemoryMibPerSecond > 0) {
                md.append(String.format(Locale.ROOT, "%nFresh memory on this machine (256 MiB allocated and every page "
                        + "touched, no socket): %,.0f MiB/s. A receiver that never closes its messages gets fresh memory "
                        + "for each one, so this is its ceiling.%n", results.freshMemoryMibPerSecond));
            }
            md.append('\n');
        }
        Results.Row smallBase = results.rows.get(results.smallBaseline);
        if (smallBase != null) {
            md.append("8 KiB `hidden_state` request and answer (baseline: ").append(smallBase.label)
                    .append("; targets: p50 <= 1.25x, p99 <= 1.5x, CPU <= 1.5x). CPU is the process's user + system time"
                            + " per round trip, client and server together:\n\n");
            md.append("| stack | p50 | p99 | CPU per trip | p50 ratio | p99 ratio | CPU ratio |\n"
                    + "|---|---:|---:|---:|---:|---:|---:|\n");
            for (Results.Row row : results.rows.values()) {
                if (!row.large) {
                    md.append(String.format(Locale.ROOT, "| %s | %.1f µs | %.1f µs | %.1f µs | %.2f%s | %.2f | %.2f |%n",
                            row.label, row.get("p50_us"), row.get("p99_us"), row.get("cpu_us_per_op"), row.get("p50_ratio"),
                            range(row, "p50_ratio"), row.get("p99_ratio"), row.get("cpu_ratio")));
                }
            }
            md.append('\n');
        }
        if (!results.inFlight.isEmpty()) {
            md.append("8 KiB calls on one connection, calls per second (one blocking caller; then asynchronous calls with"
                    + " 1, 8 and 64 in flight):\n\n");
            md.append("| stack | blocking caller | 1 in flight | 8 in flight | 64 in flight |\n|---|---:|---:|---:|---:|\n");
            for (Map.Entry<String, Map<String, Double>> entry : results.inFlight.entrySet()) {
                Map<String, Double> row = entry.getValue();
                md.append(String.format(Locale.ROOT, "| %s | %s | %s | %s | %s |%n", entry.getKey(), rate(row.get("blocking")),
                        rate(row.get("1")), rate(row.get("8")), rate(row.get("64"))));
            }
            md.append('\n');
        }
        if (!results.memory.isEmpty()) {
            md.append("Peak resident memory of a child JVM receiving with the default `receive()`"
                    + (NetutilsStack.canRelease() ? ", each message released" : " (no release in this API yet)") + ":\n\n");
            for (Map.Entry<String, Double> entry : results.memory.entrySet()) {
                md.append(String.format(Locale.ROOT, "- %s: %,.0f MiB%n", describe(entry.getKey()), entry.getValue()));
            }
        }
        return md.toString();
    }

    private static String describe(String key) {
        if (key.endsWith("_1gib_added_mib")) {
            return key.substring(0, key.indexOf('_')) + ", one 1 GiB message, added (target <= 1,280 MiB)";
        }
        String count = key.split("_")[1].replace("x256mib", "");
        return key.endsWith("_peak_mib") ? "netutils, " + count + " messages of 256 MiB in a row, peak of the process (target"
                + " <= 1,536 MiB)" : "netutils, " + count + " messages of 256 MiB in a row, added";
    }

    private static String rate(Double perSecond) {
        return perSecond == null || perSecond.isNaN() ? "not available" : String.format(Locale.ROOT, "%,.0f", perSecond);
    }

    /**
     * " [min-max]" of a ratio measured by several child JVMs (the row holds their median), or nothing for a ratio
     * measured once.
     */
    static String range(Results.Row row, String ratio) {
        Double min = row.get(ratio + "_min");
        Double max = row.get(ratio + "_max");
        return min == null || max == null ? "" : String.format(Locale.ROOT, " [%.2f-%.2f]", min, max);
    }

    static String csv(Results results) {
        String[] keys = {"throughput_mib_s", "throughput_ratio", "p50_us", "p99_us", "cpu_us_per_op", "p50_ratio", "p99_ratio",
            "cpu_ratio"};
        StringBuilder csv = new StringBuilder("stack,label," + String.join(",", keys) + "\n");
        for (Results.Row row : results.rows.values()) {
            csv.append(row.id).append(",\"").append(row.label).append('"');
            for (String key : keys) {
                csv.append(',').append(row.containsKey(key) ? String.format(Locale.ROOT, "%.3f", row.get(key)) : "");
            }
            csv.append('\n');
        }
        return csv.toString();
    }

    static String json(Results results) {
        StringBuilder json = new StringBuilder("{\n");
        json.append("  \"machine\": \"").append(results.machine).append("\",\n");
        json.append("  \"baseline_256mib\": \"").append(results.largeBaseline).append("\",\n");
        json.append("  \"baseline_256mib_own_jvm\": \"").append(results.placedLargeBaseline.isEmpty()
                ? results.largeBaseline : results.placedLargeBaseline).append("\",\n");
        json.append(String.format(Locale.ROOT, "  \"fresh_memory_mib_s\": %.1f,%n", results.freshMemoryMibPerSecond));
        json.append("  \"baseline_8kib\": \"").append(results.smallBaseline).append("\",\n");
        json.append("  \"stacks\": {");
        String separator = "\n";
        for (Results.Row row : results.rows.values()) {
            json.append(separator).append("    \"").append(row.id).append("\": {\"label\": \"").append(row.label).append('"');
            row.forEach((key, value) -> json.append(", \"").append(key).append("\": ").append(number(value)));
            json.append('}');
            separator = ",\n";
        }
        json.append("\n  },\n  \"calls_per_second\": {");
        separator = "\n";
        for (Map.Entry<String, Map<String, Double>> entry : results.inFlight.entrySet()) {
            json.append(separator).append("    \"").append(entry.getKey()).append("\": {");
            String inner = "";
            for (Map.Entry<String, Double> value : entry.getValue().entrySet()) {
                json.append(inner).append('"').append(value.getKey()).append("\": ").append(number(value.getValue()));
                inner = ", ";
            }
            json.append('}');
            separator = ",\n";
        }
        json.append("\n  },\n  \"memory_mib\": {");
        separator = "\n";
        for (Map.Entry<String, Double> entry : results.memory.entrySet()) {
            json.append(separator).append("    \"").append(entry.getKey()).append("\": ").append(number(entry.getValue()));
            separator = ",\n";
        }
        return json.append("\n  }\n}\n").toString();
    }

    private static String number(Double value) {
        return value == null || value.isNaN() ? "null" : String.format(Locale.ROOT, "%.3f", value);
    }
}
