package netutils.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Draws every stack of a run as horizontal bars: 256 MiB throughput against raw, the 8 KiB round trip (p50, p99
 * and CPU against raw), and calls per second with calls in flight; targets as dashed lines.
 */
final class Chart {
    private static final int WIDTH = 1000;
    private static final int LABEL_RIGHT = 350;
    private static final int PLOT_LEFT = 360;
    private static final int PLOT_RIGHT = 930;
    private static final int BAR = 11;

    private Chart() {
    }

    /** One bar: a value, its colour, and what the legend calls it. */
    record Bar(double value, String color, String legend) {
    }

    /** One row: a label and one or more bars. */
    record Row(String label, List<Bar> bars) {
    }

    static String svg(Results results) {
        StringBuilder body = new StringBuilder();
        int y = 10;
        List<Row> large = new ArrayList<>();
        List<Row> small = new ArrayList<>();
        for (Results.Row row : results.rows.values()) {
            if (row.large) {
                large.add(new Row(row.label, List.of(new Bar(row.get("throughput_ratio"), colorOf(row.id), "throughput"))));
            } else {
                small.add(new Row(row.label, List.of(new Bar(row.get("p50_ratio"), "#3b6fb6", "p50"),
                        new Bar(row.get("p99_ratio"), "#e08a2c", "p99"), new Bar(row.get("cpu_ratio"), "#4a9a5b", "CPU"))));
            }
        }
        if (!large.isEmpty()) {
            y = panel(body, y, "256 MiB KV_cache throughput / best raw socket (higher is better)", large, 1.25,
                    List.of(0.90, 0.95), "%.2f");
        }
        if (!small.isEmpty()) {
            y = panel(body, y, "8 KiB round trip / raw socket, platform thread (lower is better): p50, p99, CPU per trip",
                    small, 3.0, List.of(1.25, 1.5), "%.2f");
        }
        List<Row> calls = new ArrayList<>();
        double most = 1;
        for (Map.Entry<String, Map<String, Double>> entry : results.inFlight.entrySet()) {
            for (Map.Entry<String, Double> value : entry.getValue().entrySet()) {
                String what = value.getKey().equals("blocking") ? "blocking caller" : value.getKey() + " in flight";
                double v = value.getValue().isNaN() ? 0 : value.getValue();
                most = Math.max(most, v);
                calls.add(new Row(entry.getKey() + ", " + what, List.of(new Bar(v, "#7a5195", "calls/s"))));
            }
        }
        if (!calls.isEmpty()) {
            y = panel(body, y, "8 KiB calls per second on one connection (higher is better; 0 = not available)", calls,
                    most * 1.15, List.of(), "%,.0f");
        }
        return String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                + "font-family=\"sans-serif\" font-size=\"11\">%n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>%n"
                + "<text x=\"10\" y=\"%d\" fill=\"#555\">%s</text>%n%s</svg>%n", WIDTH, y + 20, y + 10, escape(results.machine),
                body);
    }

    private static String colorOf(String id) {
        return id.startsWith("raw") ? "#999999" : id.startsWith("netty") ? "#c06c84" : id.startsWith("grpc") ? "#8c6d31"
                : "#3b6fb6";
    }

    private static int panel(StringBuilder svg, int top, String title, List<Row> rows, double max, List<Double> targets,
            String format) {
        svg.append(String.format(Locale.ROOT, "<text x=\"10\" y=\"%d\" font-weight=\"bold\" font-size=\"13\">%s</text>%n",
                top + 16, escape(title)));
        int y = top + 34;
        int plotTop = y;
        for (Row row : rows) {
            int rowHeight = row.bars().size() * BAR + 6;
            svg.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>%n", LABEL_RIGHT,
                    y + rowHeight / 2 + 2, escape(row.label())));
            int barY = y;
            for (Bar bar : row.bars()) {
                double clipped = Math.min(bar.value(), max);
                int width = (int) Math.round(clipped / max * (PLOT_RIGHT - PLOT_LEFT));
                svg.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>%n",
                        PLOT_LEFT, barY, width, BAR - 1, bar.color()));
                svg.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" font-size=\"10\">%s%s</text>%n",
                        PLOT_LEFT + width + 3, barY + BAR - 2, row.bars().size() > 1 ? bar.legend() + " " : "",
                        String.format(Locale.ROOT, format, bar.value())));
                barY += BAR;
            }
            y += rowHeight;
        }
        svg.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>%n", PLOT_LEFT,
                plotTop - 2, PLOT_LEFT, y));
        for (int i = 0; i < targets.size(); i++) {
            double target = targets.get(i);
            int x = PLOT_LEFT + (int) Math.round(target / max * (PLOT_RIGHT - PLOT_LEFT));
            // Neighbouring targets' labels lean away from each other.
            svg.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#c0392b\" "
                    + "stroke-dasharray=\"4,3\"/>%n<text x=\"%d\" y=\"%d\" fill=\"#c0392b\" font-size=\"10\" "
                    + "text-anchor=\"%s\">target %.2f</text>%n", x, plotTop - 4, x, y, x + (i == 0 ? -2 : 2), plotTop - 6,
                    i == 0 ? "end" : "start", target));
        }
        if (targets.isEmpty()) {
            return y + 6;
        }
        // A line at 1.0: the baseline.
        int one = PLOT_LEFT + (int) Math.round(1.0 / max * (PLOT_RIGHT - PLOT_LEFT));
        svg.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#555\" "
                + "stroke-dasharray=\"1,2\"/>%n", one, plotTop - 2, one, y));
        return y + 6;
    }

    private static String escape(String text) {
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    }
}
