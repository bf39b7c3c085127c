package netutils.bench;

import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The samples of one stack: nanoseconds per operation and process CPU nanoseconds, round by round. */
final class Rounds {
    /** An operation on one stack. */
    interface Operation {
        void run(Stack stack) throws Exception;
    }

    private final long[][] nanos;
    private final long[] cpu;
    private final long[] all;

    private Rounds(long[][] nanos, long[] cpu) {
        this.nanos = nanos;
        this.cpu = cpu;
        this.all = Arrays.stream(nanos).flatMapToLong(Arrays::stream).sorted().toArray();
    }

    /**
     * Warms up every stack, then runs {@code rounds} rounds; each round runs {@code perRound} operations on every
     * stack in turn, starting one stack further on each round, so that a noisy neighbour or a GC hurts all stacks
     * alike and the ratios can be paired.
     */
    static Map<Stack, Rounds> measure(List<Stack> stacks, int warmup, int rounds, int perRound, Operation operation)
            throws Exception {
        runEach(stacks, warmup, operation);
        settle(stacks, Math.max(1, warmup / 4), operation);
        Map<Stack, long[][]> nanos = new LinkedHashMap<>();
        Map<Stack, long[]> cpu = new LinkedHashMap<>();
        stacks.forEach(stack -> {
            nanos.put(stack, new long[rounds][perRound]);
            cpu.put(stack, new long[rounds]);
        });
        for (int round = 0; round < rounds; round++) {
            // Each round starts one stack further on, so that every stack takes every place in the order equally
            // often and no place can favour one (kryo, always third, came out lowest in three 256 MiB runs of four).
            for (int turn = 0; turn < stacks.size(); turn++) {
                Stack stack = stacks.get((round + turn) % stacks.size());
                long[] samples = nanos.get(stack)[round];
                long cpuStart = CpuClock.processNanos();
                for (int i = 0; i < perRound; i++) {
                    long start = System.nanoTime();
                    operation.run(stack);
                    samples[i] = System.nanoTime() - start;
                }
                cpu.get(stack)[round] = CpuClock.processNanos() - cpuStart;
            }
        }
        Map<Stack, Rounds> result = new LinkedHashMap<>();
        stacks.forEach(stack -> result.put(stack, new Rounds(nanos.get(stack), cpu.get(stack))));
        return result;
    }

    /**
     * Goes on warming up, {@code chunk} operations on every stack at a time, until the JIT compilers are done: two
     * chunks in a row during which they compiled for at most 2 ms (or 1% of the chunk's time), or 20 chunks. A
     * fixed warm-up was not enough where the compiler shares one CPU with both ends: 20,000 round trips of the json
     * stack left its decoding methods in profiled (C1) code for seconds of the measured rounds (p50 1.48 of raw
     * against 1.26 after 100,000). Prints how many more it took.
     */
    private static void settle(List<Stack> stacks, int chunk, Operation operation) throws Exception {
        CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
        if (jit == null || !jit.isCompilationTimeMonitoringSupported()) {
            return;
        }
        int chunks = 0;
        int quiet = 0;
        long more = 0;
        long compiled;
        long chunkMillis;
        do {
            long compiledBefore = jit.getTotalCompilationTime();
            long start = System.nanoTime();
            // At least half a second per chunk: a compilation counts only once it is done, and one of C2 can take
            // longer than a short chunk.
            do {
                runEach(stacks, chunk, operation);
                more += chunk;
            } while (System.nanoTime() - start < MIN_CHUNK_NANOS);
            chunkMillis = (System.nanoTime() - start) / 1_000_000;
            compiled = jit.getTotalCompilationTime() - compiledBefore;
            chunks++;
            quiet = compiled <= Math.max(2, chunkMillis / 100) ? quiet + 1 : 0;
        } while (quiet < 2 && chunks < MAX_SETTLE_CHUNKS);
        System.out.printf("   warm-up went on for %d more each until the JIT settled (%d ms compiling in the last %d ms%s)%n",
                more, compiled, chunkMillis, quiet < 2 ? ", not settled: gave up" : "");
    }

    private static final long MIN_CHUNK_NANOS = 500_000_000L;

    /** Runs {@code count} operations on each stack, one stack after the other (warming up, not measured). */
    private static void runEach(List<Stack> stacks, int count, Operation operation) throws Exception {
        for (Stack stack : stacks) {
            for (int i = 0; i < count; i++) {
                operation.run(stack);
            }
        }
    }

    private static final int MAX_SETTLE_CHUNKS = 20;

    /** The median over all measured operations. */
    long median() {
        return percentile(0.5);
    }

    long percentile(double p) {
        return all[Math.min(all.length - 1, (int) (all.length * p))];
    }

    /** Process CPU nanoseconds per operation over all rounds (both ends: client and server share this JVM). */
    double cpuPerOp() {
        return (double) Arrays.stream(cpu).sum() / all.length;
    }

    /** The median over rounds of (my median in the round / the baseline's median in the same round). */
    double pairedRatio(Rounds baseline) {
        double[] ratios = new double[nanos.length];
        for (int round = 0; round < nanos.length; round++) {
            ratios[round] = (double) median(nanos[round]) / median(baseline.nanos[round]);
        }
        return median(ratios);
    }

    /** The median over rounds of (my CPU time in the round / the baseline's in the same round). */
    double pairedCpuRatio(Rounds baseline) {
        double[] ratios = new double[cpu.length];
        for (int round = 0; round < cpu.length; round++) {
            ratios[round] = (double) cpu[round] / Math.max(1, baseline.cpu[round]);
        }
        return median(ratios);
    }

    private static long median(long[] values) {
        long[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }
}
