package netutils.bench;

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
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;

/**
 * The loopback benchmark: netutils against the best plain socket, Netty 4.2 and gRPC-java, all in one run (in
 * this JVM, then each stack again in a child JVM of its own).
 * <ol>
 * <li>256 MiB {@code KV_cache} messages, client to server, acknowledged after the whole message arrived; then again
 * with each stack in a child JVM of its own beside the best raw variant, sender and receiver on different CPUs;</li>
 * <li>8 KiB {@code hidden_state} round trips: p50, p99 and process CPU time (user + system, both ends) per trip;
 * then again with each stack in a child JVM of its own beside the raw socket, threads left to the scheduler, on one
 * CPU, and with servers on the other CPU;</li>
 * <li>8 KiB calls with 1, 8 and 64 in flight on one connection;</li>
 * <li>peak resident memory of a child JVM receiving one 1 GiB message, and 100 messages of 256 MiB in a row.</li>
 * </ol>
 * After a warm-up on every stack, stacks take turns in many short rounds (this shared VM drifts by 3x within
 * seconds) and each ratio is the median over rounds of that round's ratio to the baseline in the same round.
 * Writes {@code results.json}, {@code results.csv}, {@code table.md} (the README's tables) and {@code chart.svg}.
 *
 * <pre>
 * usage: Benchmark [--quick] [--out DIR] [--only WORD,WORD...]
 *   --only keeps the stacks whose id contains one of the words, plus the raw baselines;
 *          "inflight" and "memory" name those two parts
 * </pre>
 */
public final class Benchmark {
    static final long LARGE = 256L << 20;
    static final int SMALL = 8 << 10;
    private static final List<String> SERIALIZERS = List.of("json", "msgpack", "kryo");
    /** Runs one 8 KiB stack beside the raw socket and prints their rows: the child JVMs {@link #placedPass} starts. */
    private static final String PLACED_CHILD = "--placed-child";
    /** Runs one 256 MiB stack beside the given raw variant and prints their rows: see {@link #largeOwnJvm}. */
    private static final String LARGE_CHILD = "--large-child";
    /** A child's result line: ROW, id, label, then key=value for each number of its row, tab-separated. */
    private static final String ROW_PREFIX = "ROW\t";

    private final boolean quick;
    private final Path out;
    private final List<String> only;
    final Results results = new Results();

    private Benchmark(boolean quick, Path out, List<String> only) {
        this.quick = quick;
        this.out = out;
        this.only = only;
    }

    /** Runs everything and writes the results. */
    public static void main(String[] args) throws Exception {
        List<String> list = Arrays.asList(args);
        if (list.contains("--help")) {
            System.out.println("usage: Benchmark [--quick] [--out DIR] [--only WORD,WORD...]");
            return;
        }
        int outIndex = list.indexOf("--out");
        int onlyIndex = list.indexOf("--only");
        Benchmark benchmark = new Benchmark(list.contains("--quick"),
                Path.of(outIndex >= 0 ? args[outIndex + 1] : "bench-results"),
                onlyIndex >= 0 ? List.of(args[onlyIndex + 1].split(",")) : List.of());
        if (list.contains(PLACED_CHILD)) {
            benchmark.placedChild(args[list.indexOf(PLACED_CHILD) + 1]);
        } else if (list.contains(LARGE_CHILD)) {
            benchmark.largeChild(args[list.indexOf(LARGE_CHILD) + 1], args[list.indexOf(LARGE_CHILD) + 2]);
        } else {
            benchmark.run();
        }
        // Event-loop and server threads of the other stacks are daemons or closed; exit promptly all the same.
        System.exit(0);
    }

    private boolean wanted(String id) {
        return only.isEmpty() || id.startsWith("raw-") || only.stream().anyMatch(id::contains);
    }

    private boolean wantedPart(String part) {
        return only.isEmpty() || only.contains(part);
    }

    private void run() throws Exception {
        results.machine = String.format("%d cores, %s %s, JDK %s", Runtime.getRuntime().availableProcessors(),
                System.getProperty("os.name"), System.getProperty("os.version"), Runtime.version());
        System.out.println("netutils benchmark: " + results.machine + (quick ? " (--quick)" : ""));
        System.out.println("Netty transport: " + NettyStack.transport() + "; CPU time from " + CpuClock.source()
                + "; 256 MiB payload " + payloadPageOffset() + " bytes past a page boundary");
        System.out.println("netutils: explicit release of received messages "
                + (NetutilsStack.canRelease() ? "available" : "not in this API yet (messages are left to the GC)")
                + "; Connection.requestAsync " + (NetutilsStack.hasRequestAsync() ? "available" : "not in this API yet"));
        MemorySegment payload = payload();
        // One receive buffer for every stack that receives into reused memory: they take turns, never overlap,
        // and so all read into the same, already faulted-in pages.
        MemorySegment sinkMemory = sinkMemory();

        List<Stack> stacks = new ArrayList<>();
        try {
            create(stacks, payload, sinkMemory);
            List<Stack> large = stacks.stream().filter(Stack::large).toList();
            List<Stack> small = stacks.stream().filter(Stack::small).toList();
            large(large);
            largeOwnJvm(large);
            small(small);
            smallPlaced(small);
            if (wantedPart("inflight")) {
                inFlight(stacks);
            }
        } finally {
            for (Stack stack : stacks) {
                stack.close();
            }
        }
        if (wantedPart("memory")) {
            memory();
        }
        Report.write(results, out, quick);
    }

    /**
     * The 256 MiB message every large stack sends: a pattern, so that no layer can shortcut zeros. It starts
     * {@code -Dbench.payloadPageOffset} bytes past a page boundary (64 by default, where this JVM's allocator put
     * it in earlier runs): where a copy's source lies relative to its destination modulo 4096 moves every stack's
     * throughput, raw sockets' too (docs/PROTOCOL.md, "Where a writer puts large tensors").
     */
    private static MemorySegment payload() {
        MemorySegment payload = Arena.global().allocate(LARGE + 4096, 4096).asSlice(payloadPageOffset(), LARGE);
        for (long i = 0; i < LARGE; i += 8) {
            payload.set(ValueLayout.JAVA_LONG_UNALIGNED, i, i * 0x9E3779B97F4A7C15L);
        }
        return payload;
    }

    private static long payloadPageOffset() {
        long offset = Long.getLong("bench.payloadPageOffset", 64);
        if (offset < 0 || offset > 4095) {
            throw new IllegalArgumentException("-Dbench.payloadPageOffset must be 0 to 4095, not " + offset);
        }
        return offset;
    }

    /** Memory to receive one large message into, with a little room for netutils' alignment. */
    private static MemorySegment sinkMemory() {
        return Arena.global().allocate(LARGE + (1 << 20), 64);
    }

    private void create(List<Stack> stacks, MemorySegment payload, MemorySegment sinkMemory) throws Exception {
        // 256 MiB: the raw socket with several I/O call sizes (the best becomes "raw"), Netty, gRPC, netutils.
        for (int kib : new int[] {64, 256, 1024, 4096}) {
            String size = kib < 1024 ? kib + " KiB" : kib / 1024 + " MiB";
            stacks.add(RawSocket.sink("raw-" + (kib < 1024 ? kib + "k" : kib / 1024 + "m"),
                    "raw socket, " + size + " I/O calls", kib << 10, payload, sinkMemory));
        }
        stacks.add(RawSocket.sink("raw-one-call", "raw socket, one call for the whole payload", RawSocket.ONE_CALL, payload,
                sinkMemory));
        for (int kib : new int[] {1024, 4096}) {
            stacks.add(RawSocket.sink("raw-" + kib / 1024 + "m-h64", "raw socket, " + kib / 1024
                    + " MiB I/O calls, 64-byte header", kib << 10, RawSocket.ALIGNED_HEADER, payload, sinkMemory));
        }
        add(stacks, "netty", () -> new NettyStack("netty", "Netty 4.2 " + (NettyStack.EPOLL ? "epoll" : "NIO")
                + ", composite cumulator", payload, SMALL));
        add(stacks, "grpc", () -> new GrpcStack("grpc", "gRPC-java 1.85 unary, byte[] marshaller", payload, SMALL));
        for (String serializer : SERIALIZERS) {
            add(stacks, "netutils-" + serializer + "-default", () -> new NetutilsStack("netutils-" + serializer + "-default",
                    "netutils " + serializer + ", receive()" + (NetutilsStack.canRelease() ? ", released" : ""), serializer,
                    NetutilsStack.Receive.DEFAULT, false, payload, sinkMemory, SMALL));
        }
        if (NetutilsStack.canRelease()) {
            // Without an explicit release the row above already is this one.
            add(stacks, "netutils-json-default-not-released", () -> new NetutilsStack("netutils-json-default-not-released",
                    "netutils json, receive(), not released", "json", NetutilsStack.Receive.DEFAULT_NOT_RELEASED, false,
                    payload, sinkMemory, SMALL));
        }
        // The README's server pattern: the handler only answers; the adapter closes each request once answered.
        add(stacks, "netutils-json-handler", () -> new NetutilsStack("netutils-json-handler",
                "netutils json, ofRequests handler", "json", NetutilsStack.Receive.HANDLER, false, payload, sinkMemory,
                SMALL));
        for (String serializer : SERIALIZERS) {
            add(stacks, "netutils-" + serializer + "-reused", () -> new NetutilsStack("netutils-" + serializer + "-reused",
                    "netutils " + serializer + ", receive(allocator), reused memory", serializer,
                    NetutilsStack.Receive.REUSED, false, payload, sinkMemory, SMALL));
        }
        createSmall(stacks, payload, sinkMemory);
    }

    private void createSmall(List<Stack> stacks, MemorySegment payload, MemorySegment sinkMemory) throws Exception {
        // 8 KiB: raw echo on a platform thread (the baseline) and on a virtual thread, Netty, gRPC, netutils.
        stacks.add(RawSocket.echo("raw-echo", "raw socket, platform-thread server", SMALL, false));
        stacks.add(RawSocket.echo("raw-echo-virtual", "raw socket, virtual-thread server", SMALL, true));
        add(stacks, "netty-echo", () -> new NettyStack("netty-echo", "Netty 4.2 " + (NettyStack.EPOLL ? "epoll" : "NIO"),
                null, SMALL));
        add(stacks, "grpc-echo", () -> new GrpcStack("grpc-echo", "gRPC-java 1.85 unary, byte[] marshaller", null, SMALL));
        for (String serializer : SERIALIZERS) {
            add(stacks, "netutils-" + serializer + "-echo", () -> new NetutilsStack("netutils-" + serializer + "-echo",
                    "netutils " + serializer + ", default options", serializer, null, false, payload, sinkMemory, SMALL));
        }
        // The default gives the first connections platform threads; this row shows what virtual threads only cost.
        add(stacks, "netutils-json-echo-virtual", () -> new NetutilsStack("netutils-json-echo-virtual",
                "netutils json, virtual-thread server", "json", null, true, payload, sinkMemory, SMALL));
    }

    interface Factory {
        Stack create() throws Exception;
    }

    private void add(List<Stack> stacks, String id, Factory factory) throws Exception {
        if (wanted(id)) {
            stacks.add(factory.create());
        }
    }

    // ------------------------------------------------------------------ 256 MiB

    private final Map<Stack, Rounds> pairedBaselines = new java.util.HashMap<>();

    private int largeWarmup() {
        return quick ? 3 : 12;
    }

    private int largeRounds() {
        return quick ? 5 : 25;
    }

    private void large(List<Stack> stacks) throws Exception {
        int warmup = largeWarmup();
        int rounds = largeRounds();
        System.out.printf("%n1. one 256 MiB message, client to server, answered when all arrived: %d warm-up each, then %d"
                + " rounds of one message on every stack in turn%n", warmup, rounds);
        // A stack that never releases its messages takes a pooled chunk each message and leaves it to the garbage
        // collector; interleaved with the others it would make whichever netutils stack comes next pay for a fresh
        // chunk. So it is measured in a pass of its own, paired with the baseline chosen below.
        List<Stack> leaking = stacks.stream().filter(s -> s.id.contains("not-released")).toList();
        List<Stack> shared = stacks.stream().filter(s -> !leaking.contains(s)).toList();
        Map<Stack, Rounds> measured = new java.util.LinkedHashMap<>(
                Rounds.measure(shared, warmup, rounds, 1, Stack::sendLarge));
        // The best raw variant is the baseline: "raw" is what a tuned plain socket does. Chosen by the same paired
        // per-round ratio the table reports (against any one raw variant), so that no row beats it.
        Stack reference = stacks.stream().filter(s -> s.id.startsWith("raw-")).findFirst().orElseThrow();
        Stack best = reference;
        for (Stack stack : stacks) {
            if (stack.id.startsWith("raw-")
                    && measured.get(stack).pairedRatio(measured.get(reference)) < measured.get(best).pairedRatio(measured.get(reference))) {
                best = stack;
            }
        }
        results.largeBaseline = best.id;
        for (Stack stack : leaking) {
            Map<Stack, Rounds> alone = Rounds.measure(List.of(best, stack), warmup, rounds, 1, Stack::sendLarge);
            // Ratios are paired within a pass: keep this pass's baseline rounds for this stack's ratio.
            measured.put(stack, alone.get(stack));
            pairedBaselines.put(stack, alone.get(best));
        }
        if (!leaking.isEmpty()) {
            results.freshMemoryMibPerSecond = freshMemoryMibPerSecond();
        }
        for (Stack stack : stacks) {
            largeRow(results.row(stack), measured.get(stack), pairedBaselines.getOrDefault(stack, measured.get(best)),
                    best.id);
        }
        if (results.freshMemoryMibPerSecond > 0) {
            System.out.printf("   (fresh memory on this machine, allocated and touched without any socket: %.0f MiB/s, the"
                    + " ceiling of a receiver that never closes its messages)%n", results.freshMemoryMibPerSecond);
        }
    }

    /**
     * How fast this machine makes fresh memory: 256 MiB allocated and every page touched, no socket involved (the
     * median of three). A receiver that never closes its messages gets new memory for each one, so this is its
     * ceiling; printed beside that row.
     */
    private static double freshMemoryMibPerSecond() {
        long[] nanos = new long[3];
        for (int i = 0; i < nanos.length; i++) {
            long start = System.nanoTime();
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment fresh = arena.allocate(LARGE, 64);
                for (long at = 0; at < LARGE; at += 4096) {
                    fresh.set(ValueLayout.JAVA_BYTE, at, (byte) 1);
                }
            }
            nanos[i] = System.nanoTime() - start;
        }
        Arrays.sort(nanos);
        return LARGE / (1024.0 * 1024.0) / (nanos[1] / 1e9);
    }

    /**
     * The 256 MiB pass again with every stack in a JVM of its own, interleaved there with the best raw variant of
     * the pass above (each ratio is to the raw socket of the same JVM and rounds), the sending threads on CPU 0 and
     * the receiving ones on CPU 1, as sender and receiver on two machines each have their own. A user runs one
     * stack per process; in one JVM the stacks share the collector, the direct-memory reservation and the JIT's
     * profiles, and left to the scheduler a pass's placement moves its ratio: the same child, run six times, gave
     * 0.85 to 1.11 unplaced and 0.88 to 1.02 placed.
     */
    private void largeOwnJvm(List<Stack> large) throws Exception {
        if (results.largeBaseline.isEmpty()) {
            return;
        }
        List<String> launcher = List.of(javaLauncher(), "-Dbench.serverCpu=1", "-Dbench.clientCpu=0");
        String baseline = placedBaseline(large, launcher);
        System.out.printf("%n1b. each stack in a JVM of its own, interleaved with %s; senders on CPU 0, receivers on CPU 1;"
                + " the median of %d such JVMs per stack, their range in brackets%n", baseline, childRepeats());
        List<String> ids = large.stream().map(stack -> stack.id).filter(id -> !id.startsWith("raw-")).toList();
        ChildRows rows = new ChildRows(baseline);
        if (runChildren(rows, launcher, ids, id -> List.of(LARGE_CHILD, id, baseline, "--only", id))) {
            addMedianRows(rows, "-own-jvm", ", own JVM, sender CPU 0, receiver CPU 1", true);
        }
    }

    /**
     * The raw baseline of the placed pass: the best raw variant of the pass above, or its twin with the other header
     * size if that is faster placed (measured in child JVMs of its own, the same way; the median of their ratios).
     * The header's size matters most with sender and receiver on their own CPUs: in a probe, a payload 8 to 32 bytes
     * into the stream moved about 15% slower than one 64 or more bytes in; in one JVM left to the scheduler the two
     * raw variants come out close, so the pass above alone would not find the faster one.
     */
    private String placedBaseline(List<Stack> large, List<String> launcher) throws Exception {
        String best = results.largeBaseline;
        String twin = best.endsWith("-h64") ? best.substring(0, best.length() - 4) : best + "-h64";
        if (large.stream().noneMatch(stack -> stack.id.equals(twin))) {
            return best;
        }
        ChildRows duel = new ChildRows(best);
        if (!runChildren(duel, launcher, List.of(twin), id -> List.of(LARGE_CHILD, id, best, "--only", id))) {
            return best;
        }
        double[] ratios = duel.values.getOrDefault(twin, List.of()).stream()
                .mapToDouble(numbers -> numbers.get("throughput_ratio")).sorted().toArray();
        if (ratios.length == 0) {
            return best;
        }
        double median = median(ratios);
        String chosen = median > 1 ? twin : best;
        System.out.printf("%n1b. the placed baseline: %s ran at %.2f of %s with sender and receiver on their own CPUs "
                + "(median of %d JVMs: %s); baseline %s%n", twin, median, best, ratios.length,
                Arrays.toString(Arrays.stream(ratios).mapToObj(r -> String.format("%.2f", r)).toArray()), chosen);
        results.placedLargeBaseline = chosen;
        return chosen;
    }

    /**
     * Runs {@link #childRepeats} child JVMs per stack id, in turn (all ids, then all again), each {@code launcher},
     * then this JVM's options and class, then {@code arguments} of the id; their rows go to {@code rows}. False if a
     * child failed (why is printed), and no more were started.
     */
    private boolean runChildren(ChildRows rows, List<String> launcher, List<String> ids,
            java.util.function.Function<String, List<String>> arguments) throws Exception {
        for (int repeat = 0; repeat < childRepeats(); repeat++) {
            for (String id : ids) {
                List<String> command = childJvm(launcher);
                command.addAll(arguments.apply(id));
                if (quick) {
                    command.add("--quick");
                }
                if (!rows.add(runChild(command))) {
                    return false;
                }
            }
        }
        return true;
    }

    /**
     * How many child JVMs measure each stack in the own-JVM passes. One JVM's ratio moved by up to 0.1 from one
     * child to the next (JIT decisions, placement of memory and threads); the median of three is steadier, and the
     * range of the three says how much. {@code -Dbench.childRepeats} sets another number.
     */
    private int childRepeats() {
        return Integer.getInteger("bench.childRepeats", quick ? 1 : 3);
    }

    /** The rows of a pass's children, per row id in the order first seen: label and each child's numbers. */
    private static final class ChildRows {
        final String baselineId;
        final Map<String, String> labels = new LinkedHashMap<>();
        final Map<String, List<Map<String, Double>>> values = new LinkedHashMap<>();
        /** The first child's stack: the baseline's row is taken from its children only. */
        String firstStack;

        ChildRows(String baselineId) {
            this.baselineId = baselineId;
        }

        /** Adds one child's ROW lines; false if the child failed ({@code null}). */
        boolean add(List<String> rows) {
            if (rows == null) {
                return false;
            }
            String stack = rows.stream().map(line -> line.split("\t")[1]).filter(id -> !id.equals(baselineId))
                    .findFirst().orElse("");
            if (firstStack == null) {
                firstStack = stack;
            }
            for (String line : rows) {
                String[] f = line.split("\t");
                if (f[1].equals(baselineId) && !stack.equals(firstStack)) {
                    continue;
                }
                labels.putIfAbsent(f[1], f[2]);
                Map<String, Double> numbers = new LinkedHashMap<>();
                for (int i = 3; i < f.length; i++) {
                    int equals = f[i].indexOf('=');
                    numbers.put(f[i].substring(0, equals), Double.parseDouble(f[i].substring(equals + 1)));
                }
                values.computeIfAbsent(f[1], key -> new ArrayList<>()).add(numbers);
            }
            return true;
        }
    }

    /**
     * Adds a row per stack of {@code rows} with the median over its children of each number; ratios also get their
     * smallest and largest ({@code _min}, {@code _max}) over the children.
     */
    private void addMedianRows(ChildRows rows, String idSuffix, String labelSuffix, boolean large) {
        rows.values.forEach((id, children) -> {
            Results.Row row = results.row(id + idSuffix, rows.labels.get(id) + labelSuffix, large);
            for (String key : children.get(0).keySet()) {
                double[] each = children.stream().mapToDouble(numbers -> numbers.getOrDefault(key, Double.NaN)).sorted()
                        .toArray();
                row.put(key, median(each));
                if (key.endsWith("_ratio") && each.length > 1) {
                    row.put(key + "_min", each[0]);
                    row.put(key + "_max", each[each.length - 1]);
                }
            }
            if (large) {
                printLargeRow(row, rows.baselineId);
            } else {
                printSmallRow(row, row.label);
            }
        });
    }

    /**
     * The median of {@code values}, the mean of the middle two for an even count (over child JVMs; {@link Rounds}
     * takes the upper middle over rounds).
     */
    static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        int middle = sorted.length / 2;
        return sorted.length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    /** The child of {@link #largeOwnJvm}: the raw variant {@code rawId} and the stack {@code id}, rows printed. */
    private void largeChild(String id, String rawId) throws Exception {
        Placement.pinClients();
        MemorySegment payload = payload();
        MemorySegment sinkMemory = sinkMemory();
        List<Stack> stacks = new ArrayList<>();
        try {
            create(stacks, payload, sinkMemory);
            List<Stack> pair = measuredPair(stacks, rawId, id);
            System.out.printf("%d warm-up each, then %d rounds of one message on each in turn%n", largeWarmup(),
                    largeRounds());
            Map<Stack, Rounds> measured = Rounds.measure(pair, largeWarmup(), largeRounds(), 1, Stack::sendLarge);
            Rounds base = measured.get(pair.get(0));
            for (Stack stack : pair) {
                Results.Row row = results.row(stack);
                largeRow(row, measured.get(stack), base, rawId);
                printRow(row);
            }
        } finally {
            for (Stack stack : stacks) {
                stack.close();
            }
        }
    }

    /**
     * The baseline and the stack a child measures, in that order; closes the others that {@code create} made
     * beside them (the other raw variants, or stacks whose id contains this one).
     */
    private static List<Stack> measuredPair(List<Stack> stacks, String baselineId, String id) throws Exception {
        List<Stack> pair = new ArrayList<>();
        stacks.stream().filter(stack -> stack.id.equals(baselineId)).findFirst().ifPresent(pair::add);
        stacks.stream().filter(stack -> stack.id.equals(id)).findFirst().ifPresent(pair::add);
        for (Stack other : stacks) {
            if (!pair.contains(other)) {
                other.close();
            }
        }
        stacks.retainAll(pair);
        if (pair.size() != 2) {
            throw new IllegalArgumentException("no stack named " + id + " beside " + baselineId);
        }
        return pair;
    }

    /** Prints a child's row for the parent to read back: see {@link #ROW_PREFIX}. */
    private static void printRow(Results.Row row) {
        List<String> fields = new ArrayList<>(List.of(row.id, row.label));
        row.forEach((key, value) -> fields.add(key + "=" + value));
        System.out.println(ROW_PREFIX + String.join("\t", fields));
    }

    private static String javaLauncher() {
        return Path.of(System.getProperty("java.home"), "bin", "java").toString();
    }

    /**
     * The command line of a child JVM up to its arguments: the launcher, this JVM's own options (heap and direct
     * memory sizes, native access; not agents), two processors seen, this class path and main class.
     */
    private static List<String> childJvm(List<String> launcher) {
        List<String> command = new ArrayList<>(launcher);
        java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
                .filter(option -> !option.startsWith("-agent") && !option.startsWith("-javaagent")
                        && !option.startsWith("-XX:ActiveProcessorCount"))
                .forEach(command::add);
        command.addAll(List.of("-XX:ActiveProcessorCount=2", "-cp", System.getProperty("java.class.path"),
                Benchmark.class.getName()));
        return command;
    }

    // ------------------------------------------------------------------ 8 KiB

    private int smallWarmup() {
        return quick ? 3_000 : 20_000;
    }

    private int smallRounds() {
        return quick ? 10 : 60;
    }

    private static final int SMALL_PER_ROUND = 500;

    private void small(List<Stack> stacks) throws Exception {
        int warmup = smallWarmup();
        int rounds = smallRounds();
        int perRound = SMALL_PER_ROUND;
        System.out.printf("%n2. 8 KiB hidden_state request and answer: %d warm-up each, then %d rounds of %d on every stack"
                + " in turn%n", warmup, rounds, perRound);
        Map<Stack, Rounds> measured = Rounds.measure(stacks, warmup, rounds, perRound, Stack::roundTrip);
        Stack raw = stacks.stream().filter(s -> s.id.equals("raw-echo")).findFirst().orElseThrow();
        results.smallBaseline = raw.id;
        Rounds base = measured.get(raw);
        for (Stack stack : stacks) {
            smallRow(results.row(stack), stack.label, measured.get(stack), base);
        }
        // The default netutils echo once more, alternating with the raw socket alone. In the pass above some rows
        // run the whole pass at 30-45 us where others take 17-26 (which rows changes from run to run, and alone
        // the serializers cost the same): two stacks alone show what netutils itself adds.
        Stack json = stacks.stream().filter(s -> s.id.equals("netutils-json-echo")).findFirst().orElse(null);
        if (json != null) {
            Map<Stack, Rounds> alone = Rounds.measure(List.of(raw, json), warmup / 4, rounds, perRound, Stack::roundTrip);
            String label = json.label + ", alone with raw";
            smallRow(results.row(json.id + "-alone", label, false), label, alone.get(json), alone.get(raw));
        }
    }

    /**
     * The 8 KiB pass again with every stack in a JVM of its own, interleaved there with the raw socket (each
     * ratio is to the raw socket of the same JVM and rounds): code paths that share a JVM slow each other by
     * microseconds (JIT profiles; the same netutils client measured 1.5 us slower per round trip beside another
     * way of calling it than alone), and a user runs one stack per process. Three placements: left to the
     * scheduler; all on one CPU ({@code taskset -c 0}); clients on CPU 0 and servers on CPU 1 ({@link Placement}).
     * On two CPUs left to the scheduler, each stack's server thread lands on the client's CPU (a wake-up is a
     * switch: 15-25 us here) or on the other one (an inter-processor wake-up: 30-45 us) for a whole pass; placed,
     * every stack pays the same wake-ups. The children see two processors (-XX:ActiveProcessorCount) so that their
     * collectors and thread pools are the parent's. Virtual-thread servers are left out of the split pass: their
     * carriers cannot be placed.
     */
    private void smallPlaced(List<Stack> small) throws Exception {
        if (results.smallBaseline.isEmpty()) {
            return;
        }
        List<String> ids = small.stream().map(stack -> stack.id).filter(id -> !id.equals("raw-echo")).toList();
        String java = javaLauncher();
        System.out.printf("%n2b. each stack in a JVM of its own with the raw socket, threads left to the scheduler; the median of %d"
                + " such JVMs per stack, the range of its p50 ratio in brackets%n", childRepeats());
        placedPass(List.of(java), ids, "-own-jvm", ", own JVM");
        System.out.printf("%n2c. the same on one CPU: child JVMs under taskset -c 0%n");
        placedPass(List.of("taskset", "-c", "0", java), ids, "-one-cpu", ", own JVM, one CPU");
        System.out.printf("%n2d. the same with clients on CPU 0 and servers on CPU 1: child JVMs pinned thread by thread%n");
        placedPass(List.of(java, "-Dbench.serverCpu=1", "-Dbench.clientCpu=0"),
                ids.stream().filter(id -> !id.endsWith("-virtual")).toList(), "-split-cpus",
                ", own JVM, client CPU 0, server CPU 1");
    }

    /**
     * Runs the placed children of each stack id ({@link #runChildren}) and adds the medians; the raw socket's row
     * comes from the first stack's children.
     */
    private void placedPass(List<String> launcher, List<String> ids, String idSuffix, String labelSuffix)
            throws Exception {
        ChildRows rows = new ChildRows("raw-echo");
        if (runChildren(rows, launcher, ids, id -> List.of(PLACED_CHILD, id, "--only", id))) {
            addMedianRows(rows, idSuffix, labelSuffix, false);
        }
    }

    /** The child's ROW lines, or {@code null} (and why, printed) if it could not run or failed. */
    private static List<String> runChild(List<String> command) throws Exception {
        Path said = Files.createTempFile("netutils-bench-placed", ".txt");
        try {
            Process child;
            try {
                child = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(said.toFile()).start();
            } catch (java.io.IOException e) {
                System.out.println("   skipped: cannot run " + command.get(0) + " (" + e.getMessage() + ")");
                return null;
            }
            if (!child.waitFor(30, TimeUnit.MINUTES)) {
                child.destroyForcibly();
                child.waitFor();
            }
            List<String> lines = Files.readAllLines(said);
            List<String> rows = lines.stream().filter(line -> line.startsWith(ROW_PREFIX)).toList();
            if (child.exitValue() != 0 || rows.isEmpty()) {
                System.out.println("   FAILED or skipped (exit " + child.exitValue() + "); the child said:\n"
                        + String.join("\n", lines));
                return null;
            }
            return rows;
        } finally {
            Files.deleteIfExists(said);
        }
    }

    /** The child of {@link #placedPass}: the raw socket and the one stack {@code id}, their rows printed. */
    private void placedChild(String id) throws Exception {
        Placement.pinClients();
        MemorySegment none = Arena.global().allocate(64, 64);
        List<Stack> stacks = new ArrayList<>();
        try {
            createSmall(stacks, none, none);
            List<Stack> small = measuredPair(stacks, "raw-echo", id);
            System.out.printf("%d processors seen; %d warm-up each, then %d rounds of %d on every stack in turn%n",
                    Runtime.getRuntime().availableProcessors(), smallWarmup(), smallRounds(), SMALL_PER_ROUND);
            Map<Stack, Rounds> measured = Rounds.measure(small, smallWarmup(), smallRounds(), SMALL_PER_ROUND,
                    Stack::roundTrip);
            Rounds base = measured.get(small.get(0));
            for (Stack stack : small) {
                Results.Row row = results.row(stack);
                smallRow(row, stack.label, measured.get(stack), base);
                printRow(row);
            }
        } finally {
            for (Stack stack : stacks) {
                stack.close();
            }
        }
    }

    /** A 256 MiB row: MiB/s at the median, and the paired ratio to {@code base} (higher is faster). */
    private static void largeRow(Results.Row row, Rounds r, Rounds base, String baselineId) {
        row.put("throughput_mib_s", LARGE / (1024.0 * 1024.0) / (r.median() / 1e9));
        row.put("throughput_ratio", 1 / r.pairedRatio(base));
        printLargeRow(row, baselineId);
    }

    private static void printLargeRow(Results.Row row, String baselineId) {
        System.out.printf("   %-45s %7.0f MiB/s   %.2f of %s%s%n", row.label, row.get("throughput_mib_s"),
                row.get("throughput_ratio"), baselineId, Report.range(row, "throughput_ratio"));
    }

    private static void smallRow(Results.Row row, String label, Rounds r, Rounds base) {
        row.put("p50_us", r.percentile(0.50) / 1e3);
        row.put("p99_us", r.percentile(0.99) / 1e3);
        row.put("p50_ratio", r.pairedRatio(base));
        row.put("p99_ratio", (double) r.percentile(0.99) / base.percentile(0.99));
        row.put("cpu_us_per_op", r.cpuPerOp() / 1e3);
        row.put("cpu_ratio", r.pairedCpuRatio(base));
        printSmallRow(row, label);
    }

    private static void printSmallRow(Results.Row row, String label) {
        System.out.printf("   %-45s p50 %6.1f us  p99 %7.1f us  CPU %6.1f us/op   p50 %.2fx%s  p99 %.2fx  CPU %.2fx%n",
                label, row.get("p50_us"), row.get("p99_us"), row.get("cpu_us_per_op"), row.get("p50_ratio"),
                Report.range(row, "p50_ratio"), row.get("p99_ratio"), row.get("cpu_ratio"));
    }

    // ------------------------------------------------------------------ calls in flight

    private void inFlight(List<Stack> stacks) throws Exception {
        int warmup = quick ? 1_000 : 5_000;
        int rounds = quick ? 3 : 7;
        int calls = quick ? 1_000 : 4_000;
        int[] depths = {1, 8, 64};
        System.out.printf("%n3. 8 KiB calls on one connection: one blocking caller, and 1, 8, 64 asynchronous calls in flight;"
                + " %d warm-up, then %d rounds of %d calls each%n", warmup, rounds, calls);
        Map<String, Supplier<CompletableFuture<?>>> async = new LinkedHashMap<>();
        Map<String, Stack> blocking = new LinkedHashMap<>();
        for (Stack stack : stacks) {
            if (stack instanceof NetutilsStack netutils && stack.id.equals("netutils-json-echo")) {
                blocking.put(stack.label, stack);
                async.put(stack.label, NetutilsStack.hasRequestAsync() ? netutils::callAsync : null);
            } else if (stack instanceof GrpcStack grpc && stack.small()) {
                blocking.put(stack.label, stack);
                async.put(stack.label, grpc::callAsync);
            }
        }
        Map<String, List<Double>> perSecond = new LinkedHashMap<>();
        for (int round = -1; round < rounds; round++) {
            boolean warm = round < 0;
            for (Map.Entry<String, Stack> entry : blocking.entrySet()) {
                String label = entry.getKey();
                int n = warm ? warmup : calls;
                long start = System.nanoTime();
                for (int i = 0; i < n; i++) {
                    entry.getValue().roundTrip();
                }
                record(perSecond, label + "|blocking", warm, n, System.nanoTime() - start);
                Supplier<CompletableFuture<?>> calls1 = async.get(label);
                for (int depth : depths) {
                    if (calls1 != null) {
                        long begin = System.nanoTime();
                        window(calls1, depth, n);
                        record(perSecond, label + "|" + depth, warm, n, System.nanoTime() - begin);
                    }
                }
            }
        }
        for (String label : blocking.keySet()) {
            Map<String, Double> row = new LinkedHashMap<>();
            row.put("blocking", median(perSecond.get(label + "|blocking")));
            for (int depth : depths) {
                List<Double> values = perSecond.get(label + "|" + depth);
                row.put(Integer.toString(depth), values == null ? Double.NaN : median(values));
            }
            results.inFlight.put(label, row);
            System.out.printf("   %-45s blocking %7.0f/s   in flight: 1 %s   8 %s   64 %s%n", label, row.get("blocking"),
                    rate(row.get("1")), rate(row.get("8")), rate(row.get("64")));
        }
    }

    private static String rate(double perSecond) {
        return Double.isNaN(perSecond) ? "not available" : String.format("%7.0f/s", perSecond);
    }

    private static void record(Map<String, List<Double>> perSecond, String key, boolean warm, int n, long nanos) {
        if (!warm) {
            perSecond.computeIfAbsent(key, k -> new ArrayList<>()).add(n / (nanos / 1e9));
        }
    }

    /** Runs {@code total} calls keeping at most {@code depth} of them outstanding. */
    private static void window(Supplier<CompletableFuture<?>> call, int depth, int total) throws Exception {
        Semaphore window = new Semaphore(depth);
        CountDownLatch done = new CountDownLatch(total);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        for (int i = 0; i < total && failure.get() == null; i++) {
            window.acquire();
            call.get().whenComplete((answer, error) -> {
                if (error != null) {
                    failure.compareAndSet(null, error);
                }
                window.release();
                done.countDown();
            });
        }
        if (failure.get() == null && !done.await(120, TimeUnit.SECONDS)) {
            throw new IllegalStateException("calls did not finish");
        }
        if (failure.get() != null) {
            throw new IllegalStateException("a call failed", failure.get());
        }
    }

    private static double median(List<Double> values) {
        double[] sorted = values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return sorted[sorted.length / 2];
    }

    // ------------------------------------------------------------------ memory

    private void memory() throws Exception {
        int count = quick ? 20 : 100;
        System.out.printf("%n4. peak resident memory of a child JVM receiving (default receive()%s)%n",
                NetutilsStack.canRelease() ? ", each message released" : "; no release in this API yet");
        for (String mode : List.of("raw", "netutils")) {
            try {
                long[] rss = probe(mode, 1L << 30, 1);
                double added = (rss[1] - rss[0]) / (1024.0 * 1024.0);
                results.memory.put(mode + "_1gib_added_mib", added);
                System.out.printf("   %-10s one 1 GiB message: +%.0f MiB (peak %.0f MiB)%n", mode, added, rss[1] / 1048576.0);
            } catch (RuntimeException e) {
                // One failed probe should not cost the whole run its results.
                System.out.printf("   %-10s one 1 GiB message: FAILED: %s%n", mode, e.getMessage());
                e.printStackTrace();
            }
        }
        try {
            long[] rss = probe("netutils", LARGE, count);
            results.memory.put("netutils_" + count + "x256mib_peak_mib", rss[1] / 1048576.0);
            results.memory.put("netutils_" + count + "x256mib_added_mib", (rss[1] - rss[0]) / 1048576.0);
            System.out.printf("   netutils   %d messages of 256 MiB in a row: peak %.0f MiB (+%.0f MiB)%n", count,
                    rss[1] / 1048576.0, (rss[1] - rss[0]) / 1048576.0);
        } catch (RuntimeException e) {
            System.out.printf("   netutils   %d messages of 256 MiB in a row: FAILED: %s%n", count, e.getMessage());
            e.printStackTrace();
        }
    }

    /** Runs {@link MemoryProbe} in a child JVM and sends it {@code count} messages; returns RSS before and peak. */
    private static long[] probe(String mode, long size, int count) throws Exception {
        String java = javaLauncher();
        // The child writes to a file, not a pipe: when it fails, what it said can still be read after it is gone.
        Path said = Files.createTempFile("netutils-memory-probe", ".txt");
        // A small heap, and direct memory well above one message, as a user receiving large tensors would set it.
        Process child = new ProcessBuilder(java, "-Xmx256m", "-XX:MaxDirectMemorySize=4g", "-cp",
                System.getProperty("java.class.path"), MemoryProbe.class.getName(), mode, Integer.toString(count))
                .redirectErrorStream(true).redirectOutput(said.toFile()).start();
        try {
            int port = Integer.parseInt(awaitLine(said, "PORT ", child).trim());
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment data = arena.allocate(size, 64);
                if (mode.equals("raw")) {
                    try (SocketChannel channel = RawSocket.connect(port)) {
                        ByteBuffer length = ByteBuffer.allocateDirect(8).order(ByteOrder.BIG_ENDIAN).putLong(0, size);
                        RawSocket.write(channel, length, data.asByteBuffer(), 1 << 20);
                        RawSocket.readFully(channel, ByteBuffer.allocate(1));
                    }
                } else {
                    NetutilsStack.sendToProbe(port, data, count);
                }
            }
            String[] fields = awaitLine(said, "RSS ", child).split(" ");
            return new long[] {Long.parseLong(fields[0]), Long.parseLong(fields[1])};
        } catch (Exception e) {
            child.destroy();
            child.waitFor(10, TimeUnit.SECONDS);
            throw new IllegalStateException("memory probe (" + mode + ") failed; it said:\n" + Files.readString(said), e);
        } finally {
            child.destroy();
            Files.deleteIfExists(said);
        }
    }

    /** Waits for the child to print a line starting with {@code prefix}; returns the rest of it. */
    private static String awaitLine(Path file, String prefix, Process child) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
        while (System.nanoTime() < deadline) {
            for (String line : Files.readAllLines(file)) {
                if (line.startsWith(prefix)) {
                    return line.substring(prefix.length());
                }
            }
            if (!child.isAlive()) {
                break;
            }
            Thread.sleep(20);
        }
        throw new IllegalStateException("no " + prefix.trim() + " line from the memory probe");
    }
}
