package netutils.bench;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
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
import netutils.api.ConnectionHandler;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import netutils.transport.tcp.TcpClient;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServer;

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
        this.measuredLarge = quick ? 5 : 15;
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
        stacks.add("netutils-json-fresh");
        if (!only.isEmpty()) {
            stacks.retainAll(only);
        }
        // Interleave the stacks round by round, so a noisy neighbour hurts all of them alike.
        for (String stack : stacks) {
            results.put(stack, new LinkedHashMap<>());
        }
        System.out.println("stacks: raw = plain socket, server on a platform thread; raw-virtual = the same on a virtual"
                + " thread;\n  netutils-X = netutils with serializer X, receiving into a reused buffer (as the raw socket"
                + " does);\n  netutils-json-fresh = netutils with fresh memory for every received tensor (the default)");
        System.out.printf("%n1. one 256 MiB message, client to server: %d warm-up + %d measured each%n", warmupLarge, measuredLarge);
        for (String stack : stacks) {
            double mibPerSecond = throughput(stack, payload);
            results.get(stack).put("throughput_mib_s", mibPerSecond);
            System.out.printf("   %-17s %8.0f MiB/s%n", stack, mibPerSecond);
        }
        System.out.printf("%n2. 8 KiB hidden_state request/response: %d warm-up + %d measured each%n", warmupSmall, measuredSmall);
        for (String stack : stacks) {
            double[] percentiles = latency(stack);
            results.get(stack).put("p50_us", percentiles[0]);
            results.get(stack).put("p99_us", percentiles[1]);
            System.out.printf("   %-17s p50 %7.1f us   p99 %7.1f us%n", stack, percentiles[0], percentiles[1]);
        }
        System.out.printf("%n3. peak resident memory added by receiving one 1 GiB message (child JVM)%n");
        for (String stack : List.of("raw", "netutils-json")) {
            double added = peakMemory(stack.equals("raw") ? "raw" : "netutils");
            results.get(stack).put("peak_rss_added_mib", added);
            System.out.printf("   %-17s %8.0f MiB%n", stack, added);
        }
        report();
    }

    // ------------------------------------------------------------------ throughput

    private double throughput(String stack, MemorySegment payload) throws Exception {
        double[] seconds = new double[measuredLarge];
        if (stack.startsWith("raw")) {
            try (ServerSocketChannel server = RawSocket.listen()) {
                RawSocket.sinkServer(server, LARGE, stack.equals("raw-virtual"));
                try (SocketChannel channel = RawSocket.connect(RawSocket.port(server))) {
                    ByteBuffer length = ByteBuffer.allocateDirect(8).order(ByteOrder.BIG_ENDIAN);
                    ByteBuffer ack = ByteBuffer.allocateDirect(1);
                    ByteBuffer data = payload.asByteBuffer();
                    for (int i = 0; i < warmupLarge + measuredLarge; i++) {
                        long start = System.nanoTime();
                        length.clear().putLong(0, LARGE);
                        RawSocket.writeFully(channel, length, data.clear());
                        RawSocket.readFully(channel, ack.clear());
                        if (i >= warmupLarge) {
                            seconds[i - warmupLarge] = (System.nanoTime() - start) / 1e9;
                        }
                    }
                }
            }
        } else {
            boolean fresh = stack.endsWith("-fresh");
            String serializer = stack.substring("netutils-".length()).replace("-fresh", "");
            TcpOptions options = TcpOptions.builder().serializer(serializer).maxFrameBytes(LARGE + (1 << 20)).build();
            ConnectionHandler acknowledge = connection -> {
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment buffer = arena.allocate(LARGE + (1 << 20), 64);
                    while (true) {
                        Message request = fresh ? connection.receive()
                                : connection.receive(java.lang.foreign.SegmentAllocator.slicingAllocator(buffer));
                        connection.send(Message.builder(MessageType.KV_INDEX).replyTo(request)
                                .meta("bytes", "" + request.tensorBytes()).build());
                    }
                } catch (netutils.api.ConnectionClosedException done) {
                    // the client finished
                }
            };
            Message message = Message.builder(MessageType.KV_CACHE).tensor("layers", Tensor.wrap(DType.BF16, payload, LARGE / 2)).build();
            try (TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), options)
                    .serve(acknowledge);
                    Connection client = TcpClient.connect("127.0.0.1", server.port(), options)) {
                for (int i = 0; i < warmupLarge + measuredLarge; i++) {
                    long start = System.nanoTime();
                    Message reply = client.request(message);
                    if (!reply.meta("bytes").orElse("").equals("" + LARGE)) {
                        throw new IllegalStateException("server saw " + reply);
                    }
                    if (i >= warmupLarge) {
                        seconds[i - warmupLarge] = (System.nanoTime() - start) / 1e9;
                    }
                }
            }
        }
        Arrays.sort(seconds);
        return LARGE / (1024.0 * 1024.0) / seconds[seconds.length / 2];
    }

    // ------------------------------------------------------------------ latency

    private double[] latency(String stack) throws Exception {
        long[] nanos = new long[measuredSmall];
        if (stack.startsWith("raw")) {
            try (ServerSocketChannel server = RawSocket.listen()) {
                RawSocket.echoServer(server, SMALL, stack.equals("raw-virtual"));
                try (SocketChannel channel = RawSocket.connect(RawSocket.port(server))) {
                    ByteBuffer length = ByteBuffer.allocateDirect(4).order(ByteOrder.BIG_ENDIAN);
                    ByteBuffer data = ByteBuffer.allocateDirect(SMALL);
                    for (int i = 0; i < warmupSmall + measuredSmall; i++) {
                        long start = System.nanoTime();
                        length.clear().putInt(0, SMALL);
                        data.clear();
                        RawSocket.writeFully(channel, length, data);
                        length.clear();
                        RawSocket.readFully(channel, length);
                        data.clear().limit(length.getInt(0));
                        RawSocket.readFully(channel, data);
                        if (i >= warmupSmall) {
                            nanos[i - warmupSmall] = System.nanoTime() - start;
                        }
                    }
                }
            }
        } else {
            String serializer = stack.substring("netutils-".length()).replace("-fresh", "");
            TcpOptions options = TcpOptions.builder().serializer(serializer).build();
            Tensor hidden = Tensor.zeros(DType.F16, 1, 1, SMALL / 2);
            ConnectionHandler layer = ConnectionHandler.ofRequests(
                    request -> Message.of(MessageType.HIDDEN_STATE, request.data()));
            Message request = Message.of(MessageType.HIDDEN_STATE, hidden);
            try (TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), options)
                    .serve(layer);
                    Connection client = TcpClient.connect("127.0.0.1", server.port(), options)) {
                for (int i = 0; i < warmupSmall + measuredSmall; i++) {
                    long start = System.nanoTime();
                    Message reply = client.request(request);
                    if (reply.data().byteSize() != SMALL) {
                        throw new IllegalStateException("bad answer " + reply);
                    }
                    if (i >= warmupSmall) {
                        nanos[i - warmupSmall] = System.nanoTime() - start;
                    }
                }
            }
        }
        Arrays.sort(nanos);
        return new double[] {nanos[nanos.length / 2] / 1e3, nanos[(int) (nanos.length * 0.99)] / 1e3};
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
        double bestThroughput = Math.max(results.get("raw").get("throughput_mib_s"),
                results.get("raw-virtual").get("throughput_mib_s"));
        double bestP50 = Math.min(results.get("raw").get("p50_us"), results.get("raw-virtual").get("p50_us"));
        System.out.printf("%nratios to the better raw socket of this run (targets: throughput >= 0.90, p50 <= 1.25x;"
                + " memory <= 1280 MiB)%n");
        StringBuilder csv = new StringBuilder("stack,throughput_mib_s,throughput_ratio,p50_us,p50_ratio,p99_us,peak_rss_added_mib\n");
        StringBuilder json = new StringBuilder("{\n  \"machine\": {\"cores\": " + Runtime.getRuntime().availableProcessors()
                + ", \"jdk\": \"" + Runtime.version() + "\"},\n  \"stacks\": {\n");
        int index = 0;
        for (Map.Entry<String, Map<String, Double>> entry : results.entrySet()) {
            Map<String, Double> r = entry.getValue();
            double throughputRatio = r.get("throughput_mib_s") / bestThroughput;
            double p50Ratio = r.get("p50_us") / bestP50;
            r.put("throughput_ratio", throughputRatio);
            r.put("p50_ratio", p50Ratio);
            System.out.printf(Locale.ROOT, "   %-17s throughput %.2f   p50 %.2fx%s%n", entry.getKey(), throughputRatio, p50Ratio,
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
