package netutils.bench;

import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Draws the benchmark's ratios to the baseline as a small SVG bar chart, with the targets as lines. */
final class Chart {
    private Chart() {
    }

    static String svg(Map<String, Map<String, Double>> results) {
        List<String> stacks = List.copyOf(results.keySet());
        int width = 1000;
        int height = 345;
        StringBuilder svg = new StringBuilder();
        svg.append(String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                + "font-family=\"sans-serif\" font-size=\"12\">%n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>%n", width, height));
        panel(svg, results, stacks, "throughput_ratio", "256 MiB throughput / raw socket (higher is better)", 15, 0.90,
                "target 0.90", 1.2);
        panel(svg, results, stacks, "p50_ratio", "8 KiB round trip p50 / raw socket (lower is better)", 505, 1.25,
                "target 1.25", 2.0);
        svg.append("</svg>\n");
        return svg.toString();
    }

    private static void panel(StringBuilder svg, Map<String, Map<String, Double>> results, List<String> stacks, String key,
            String title, int left, double target, String targetLabel, double max) {
        int top = 40;
        int plotHeight = 220;
        int barWidth = 38;
        int gap = 14;
        svg.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"22\" font-weight=\"bold\">%s</text>%n", left, title));
        svg.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>%n",
                left, top + plotHeight, left + stacks.size() * (barWidth + gap), top + plotHeight));
        for (int i = 0; i < stacks.size(); i++) {
            double value = results.get(stacks.get(i)).get(key);
            int barHeight = (int) Math.round(Math.min(value, max) / max * plotHeight);
            int x = left + i * (barWidth + gap) + gap / 2;
            String color = stacks.get(i).startsWith("raw") ? "#999999" : "#3b6fb6";
            svg.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>%n",
                    x, top + plotHeight - barHeight, barWidth, barHeight, color));
            svg.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.2f</text>%n",
                    x + barWidth / 2, top + plotHeight - barHeight - 4, value));
            svg.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">%s</text>%n",
                    x + barWidth / 2, top + plotHeight + 16 + (i % 2) * 13,
                    stacks.get(i).replace("netutils-", "").replace("-platform", "-plat")));
        }
        int targetY = top + plotHeight - (int) Math.round(target / max * plotHeight);
        svg.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#c0392b\" "
                + "stroke-dasharray=\"5,4\"/>%n", left, targetY, left + stacks.size() * (barWidth + gap), targetY));
        svg.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" fill=\"#c0392b\" font-size=\"11\">%s</text>%n",
                left + stacks.size() * (barWidth + gap) - 70, targetY - 4, targetLabel));
    }
}
