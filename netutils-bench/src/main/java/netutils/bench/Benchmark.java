package netutils.bench;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import netutils.api.Connection;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import netutils.transport.tcp.TcpClient;
import netutils.transport.tcp.TcpOptions;

/**
 * Measures, in one run on loopback, a plain length-prefixed socket (the baseline) and netutils with each
 * serializer:
 * <ol>
 * <li>throughput of one 256 MiB {@code KV_cache} message, client to server (acknowledged), median of the
 *     measured repetitions after the warm-up;</li>
 * <li>p50 and p99 round-trip latency of an 8 KiB {@code hidden_state} request and its 8 KiB answer;</li>
 * <li>the peak resident memory a child JVM adds while receiving one 1 GiB message.</li>
 * </ol>
 * Prints ratios to the baseline and writes {@code bench-results/results.json}, {@code results.csv} and
 * {@code chart.svg}.
 *
 * <pre>
 * usage: Benchmark [--quick] [--out DIR]
 * </pre>
 */
public final class Benchmark {
    private static final List<String> SERIALIZERS = List.of("json", "msgpack", "kryo");
    private static final long LARGE = 256L << 20;
    private static final int SMALL = 8 << 10;

    private final int warmupLarge;
    private final int measuredLarge;
    private final int warmupSmall;
    private final int measuredSmall;
    private final Path out;
    private final Map<String, Map<String, Double>> results = new LinkedHashMap<>();

    private final List<String> only;

    private Benchmark(boolean quick, Path out, List<String> only) {
        this.only = only;
        this.warmupLarge = quick ? 4 : 12;
        this.measuredLarge = quick ? 5 : 25;
        this.warmupSmall = quick ? 5_000 : 30_000;
        this.measuredSmall = quick ? 5_000 : 30_000;
        this.out = out;
    }

    /** Runs everything and writes the results. */
    public static void main(String[] args) throws Exception {
        boolean quick = Arrays.asList(args).contains("--quick");
        int outIndex = Arrays.asList(args).indexOf("--out");
        Path out = Path.of(outIndex >= 0 ? args[outIndex + 1] : "bench-results");
        int onlyIndex = Arrays.asList(args).indexOf("--only");
        List<String> only = onlyIndex >= 0 ? List.of(args[onlyIndex + 1].split(",")) : List.of();
        new Benchmark(quick, out, only).run();
    }

    private void run() throws Exception {
        System.out.printf("netutils benchmark: %d cores, %s, JDK %s%n", Runtime.getRuntime().availableProcessors(),
                System.getProperty("os.name"), Runtime.version());
        MemorySegment payload = Arena.global().allocate(LARGE, 64);
        for (long i = 0; i < LARGE; i += 8) {
            payload.set(ValueLayout.JAVA_LONG_UNALIGNED, i, i * 0x9E3779B97F4A7C15L);
        }
        List<String> stacks = new ArrayList<>(List.of("raw", "raw-virtual"));
        SERIALIZERS.forEach(s -> stacks.add("netutils-" + s));
        SERIALIZERS.forEach(s -> stacks.add("netutils-" + s + "-platform"));
        stacks.add("netutils-json-fresh");
        if (!only.isEmpty()) {
            // The two baselines always run: every ratio needs one of them.
            stacks.removeIf(stack -> !stack.startsWith("raw") && !only.contains(stack));
        }
        // Interleave the stacks round by round, so a noisy neighbour hurts all of them alike.
        for (String stack : stacks) {
            results.put(stack, new LinkedHashMap<>());
        }
        System.out.println("""
                stacks: raw = plain socket, server on a platform thread; raw-virtual = the same on a virtual thread;
                  netutils-X = netutils with serializer X and its default virtual-thread server, large messages
                    received into a reused buffer (as the raw socket does); compared with raw-virtual;
                  netutils-X-platform = the same with TcpOptions.connectionThreads(platform); compared with raw;
                  netutils-json-fresh = netutils receiving every large tensor into fresh memory (the default of
                    receive()); compared with raw-virtual""");
        List<Stack> running = new ArrayList<>();
        for (String stack : stacks) {
            running.add(Stack.create(stack, payload, SMALL));
        }
        // Rounds visit every stack in turn, so a noisy neighbour or a GC hurts all of them alike.
        System.out.printf("%n1. one 256 MiB message, client to server: %d warm-up + %d measured each, in %d rounds%n",
                warmupLarge, measuredLarge, LARGE_ROUNDS);
        Map<String, List<Long>> largeNanos = measure(running, warmupLarge, measuredLarge, LARGE_ROUNDS, Stack::sendLarge);
        for (Stack stack : running) {
            long[] sorted = sorted(largeNanos.get(stack.name));
            double mibPerSecond = LARGE / (1024.0 * 1024.0) / (sorted[sorted.length / 2] / 1e9);
            results.get(stack.name).put("throughput_mib_s", mibPerSecond);
            System.out.printf("   %-20s %8.0f MiB/s%n", stack.name, mibPerSecond);
        }
        System.out.printf("%n2. 8 KiB hidden_state request/response: %d warm-up + %d measured each, in %d rounds%n",
                warmupSmall, measuredSmall, SMALL_ROUNDS);
        Map<String, List<Long>> smallNanos = measure(running, warmupSmall, measuredSmall, SMALL_ROUNDS, Stack::roundTrip);
        for (Stack stack : running) {
            long[] sorted = sorted(smallNanos.get(stack.name));
            double p50 = sorted[sorted.length / 2] / 1e3;
            double p99 = sorted[(int) (sorted.length * 0.99)] / 1e3;
            results.get(stack.name).put("p50_us", p50);
            results.get(stack.name).put("p99_us", p99);
            System.out.printf("   %-20s p50 %7.1f us   p99 %7.1f us%n", stack.name, p50, p99);
        }
        // Paired ratios: each round's median against its baseline's median in the same round, then the median
        // over rounds, so that slow drift of the machine cancels out.
        for (Stack stack : running) {
            String baseline = baselineOf(stack.name);
            results.get(stack.name).put("p50_ratio",
                    pairedRatio(smallNanos.get(stack.name), smallNanos.get(baseline), SMALL_ROUNDS));
            results.get(stack.name).put("throughput_ratio",
                    1 / pairedRatio(largeNanos.get(stack.name), largeNanos.get(baseline), LARGE_ROUNDS));
        }
        for (Stack stack : running) {
            stack.close();
        }
        System.out.printf("%n3. peak resident memory added by receiving one 1 GiB message (child JVM)%n");
        for (String stack : List.of("raw", "netutils-json")) {
            if (!results.containsKey(stack)) {
                continue; // left out with --only
            }
            double added = peakMemory(stack.equals("raw") ? "raw" : "netutils");
            results.get(stack).put("peak_rss_added_mib", added);
            System.out.printf("   %-20s %8.0f MiB%n", stack, added);
        }
        report();
    }

    // ------------------------------------------------------------------ rounds

    /**
     * This machine's loopback latency drifts by 3x over seconds (a shared VM), so stacks take turns in many short
     * rounds: every stack sees the same mix of good and bad moments.
     */
    private static final int SMALL_ROUNDS = 30;
    private static final int LARGE_ROUNDS = 5;

    /** An operation on one stack. */
    interface Operation {
        void run(Stack stack) throws IOException;
    }

    /** Warm-up on every stack, then {@code rounds} rounds that each run a share of the measured count on every stack. */
    private static Map<String, List<Long>> measure(List<Stack> stacks, int warmup, int measured, int rounds,
            Operation operation) throws IOException {
        for (Stack stack : stacks) {
            for (int i = 0; i < warmup; i++) {
                operation.run(stack);
            }
        }
        Map<String, List<Long>> nanos = new LinkedHashMap<>();
        stacks.forEach(stack -> nanos.put(stack.name, new ArrayList<>()));
        int perRound = Math.max(1, measured / rounds);
        for (int round = 0; round < rounds; round++) {
            for (Stack stack : stacks) {
                List<Long> samples = nanos.get(stack.name);
                for (int i = 0; i < perRound; i++) {
                    long start = System.nanoTime();
                    operation.run(stack);
                    samples.add(System.nanoTime() - start);
                }
            }
        }
        return nanos; // in order: round after round, perRound samples each
    }

    /** The median over rounds of (median of mine in the round / median of theirs in the same round). */
    private static double pairedRatio(List<Long> mine, List<Long> theirs, int rounds) {
        int perRound = mine.size() / rounds;
        double[] ratios = new double[rounds];
        for (int round = 0; round < rounds; round++) {
            long[] a = sorted(mine.subList(round * perRound, (round + 1) * perRound));
            long[] b = sorted(theirs.subList(round * perRound, (round + 1) * perRound));
            ratios[round] = (double) a[a.length / 2] / b[b.length / 2];
        }
        Arrays.sort(ratios);
        return ratios[rounds / 2];
    }

    /** The raw socket with the same kind of server thread. */
    private static String baselineOf(String stack) {
        return stack.equals("raw") || stack.endsWith("-platform") ? "raw" : "raw-virtual";
    }

    private static long[] sorted(List<Long> samples) {
        long[] values = samples.stream().mapToLong(Long::longValue).toArray();
        Arrays.sort(values);
        return values;
    }

    // ------------------------------------------------------------------ memory

    private double peakMemory(String mode) throws Exception {
        long size = 1L << 30;
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process child = new ProcessBuilder(java, "-Xmx256m", "-XX:MaxDirectMemorySize=4g", "-p", System.getProperty("jdk.module.path"),
                "-m", "netutils.bench/netutils.bench.MemoryProbe", mode).redirectErrorStream(true).start();
        try (BufferedReader lines = new BufferedReader(new InputStreamReader(child.getInputStream()))) {
            String first = lines.readLine();
            if (first == null || !first.startsWith("PORT ")) {
                throw new IllegalStateException("memory probe said: " + first);
            }
            int port = Integer.parseInt(first.substring(5).trim());
            MemorySegment data = Arena.ofAuto().allocate(size, 64);
            if (mode.equals("raw")) {
                try (SocketChannel channel = RawSocket.connect(port)) {
                    ByteBuffer length = ByteBuffer.allocateDirect(8).order(ByteOrder.BIG_ENDIAN).putLong(0, size);
                    RawSocket.writeFully(channel, length, data.asByteBuffer());
                    RawSocket.readFully(channel, ByteBuffer.allocate(1));
                }
            } else {
                try (Connection client = TcpClient.connect("127.0.0.1", port)) {
                    client.request(Message.of(MessageType.KV_CACHE, Tensor.wrap(DType.U8, data, size)));
                }
            }
            String report = lines.readLine();
            if (report == null || !report.startsWith("RSS ")) {
                throw new IllegalStateException("memory probe said: " + report);
            }
            String[] fields = report.split(" ");
            child.waitFor(30, TimeUnit.SECONDS);
            return (Long.parseLong(fields[2]) - Long.parseLong(fields[1])) / (1024.0 * 1024.0);
        } finally {
            child.destroy();
        }
    }

    // ------------------------------------------------------------------ report

    private void report() throws IOException {
        System.out.printf("%nratios to the raw socket with the same kind of server thread, in this run: the median over"
                + " rounds of each round's ratio of medians%n(targets: throughput >= 0.90, p50 <= 1.25x; memory"
                + " <= 1280 MiB)%n");
        StringBuilder csv = new StringBuilder("stack,throughput_mib_s,throughput_ratio,p50_us,p50_ratio,p99_us,peak_rss_added_mib\n");
        StringBuilder json = new StringBuilder("{\n  \"machine\": {\"cores\": " + Runtime.getRuntime().availableProcessors()
                + ", \"jdk\": \"" + Runtime.version() + "\"},\n  \"stacks\": {\n");
        int index = 0;
        for (Map.Entry<String, Map<String, Double>> entry : results.entrySet()) {
            Map<String, Double> r = entry.getValue();
            double throughputRatio = r.get("throughput_ratio");
            double p50Ratio = r.get("p50_ratio");
            r.put("throughput_ratio", throughputRatio);
            r.put("p50_ratio", p50Ratio);
            System.out.printf(Locale.ROOT, "   %-20s throughput %.2f   p50 %.2fx%s%n", entry.getKey(), throughputRatio, p50Ratio,
                    r.containsKey("peak_rss_added_mib") ? String.format(Locale.ROOT, "   memory +%.0f MiB", r.get("peak_rss_added_mib")) : "");
            csv.append(String.format(Locale.ROOT, "%s,%.1f,%.3f,%.2f,%.3f,%.2f,%s%n", entry.getKey(), r.get("throughput_mib_s"),
                    throughputRatio, r.get("p50_us"), p50Ratio, r.get("p99_us"),
                    r.containsKey("peak_rss_added_mib") ? String.format(Locale.ROOT, "%.0f", r.get("peak_rss_added_mib")) : ""));
            json.append("    \"").append(entry.getKey()).append("\": {");
            int field = 0;
            for (Map.Entry<String, Double> value : r.entrySet()) {
                json.append(field++ > 0 ? ", " : "").append('"').append(value.getKey()).append("\": ")
                        .append(String.format(Locale.ROOT, "%.3f", value.getValue()));
            }
            json.append(index++ < results.size() - 1 ? "},\n" : "}\n");
        }
        json.append("  }\n}\n");
        Files.createDirectories(out);
        Files.writeString(out.resolve("results.csv"), csv);
        Files.writeString(out.resolve("results.json"), json);
        Files.writeString(out.resolve("chart.svg"), Chart.svg(results));
        System.out.println("\nwrote " + out.resolve("results.json") + ", results.csv and chart.svg");
    }
}
