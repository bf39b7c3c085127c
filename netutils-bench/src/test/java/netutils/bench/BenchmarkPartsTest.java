package netutils.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The benchmark's own parts, small and fast: the baseline moves every byte, the rounds and the report add up. */
class BenchmarkPartsTest {

    @Test
    void rawSocketMovesWholeMessagesInChunksAndEchoes() throws Exception {
        // Automatic: server threads read into this memory and may still be blocked in a read when the test ends.
        Arena arena = Arena.ofAuto();
        {
            long size = (3L << 20) + 12_345; // not a multiple of the chunk
            MemorySegment payload = arena.allocate(size, 64);
            for (long i = 0; i < size; i++) {
                payload.set(ValueLayout.JAVA_BYTE, i, (byte) (i * 31));
            }
            MemorySegment sink = arena.allocate(size + (1 << 20), 64);
            try (RawSocket chunked = RawSocket.sink("raw-64k", "chunked", 64 << 10, payload, sink)) {
                chunked.sendLarge();
                chunked.sendLarge();
            }
            assertThat(sink.asSlice(0, size).mismatch(payload)).isEqualTo(-1);
            try (RawSocket oneCall = RawSocket.sink("raw-one-call", "one call", RawSocket.ONE_CALL, payload, sink);
                    RawSocket echo = RawSocket.echo("raw-echo", "echo", 8 << 10, false)) {
                oneCall.sendLarge();
                for (int i = 0; i < 100; i++) {
                    echo.roundTrip();
                }
            }
        }
    }

    @Test
    void pairedRatiosAndTheReportCoverEveryStack() throws Exception {
        Stack fast = new Sleeper("raw-echo", 0);
        Stack slow = new Sleeper("slow", 200_000);
        Map<Stack, Rounds> rounds = Rounds.measure(List.of(fast, slow), 2, 5, 3, Stack::roundTrip);
        double ratio = rounds.get(slow).pairedRatio(rounds.get(fast));
        assertThat(ratio).isGreaterThan(1);
        assertThat(rounds.get(fast).pairedRatio(rounds.get(fast))).isEqualTo(1);

        Results results = new Results();
        results.smallBaseline = "raw-echo";
        for (Stack stack : List.of(fast, slow)) {
            Results.Row row = results.row(stack);
            Rounds r = rounds.get(stack);
            row.put("p50_us", r.percentile(0.5) / 1e3);
            row.put("p99_us", r.percentile(0.99) / 1e3);
            row.put("p50_ratio", r.pairedRatio(rounds.get(fast)));
            row.put("p99_ratio", 1.0);
            row.put("cpu_us_per_op", r.cpuPerOp() / 1e3);
            row.put("cpu_ratio", r.pairedCpuRatio(rounds.get(fast)));
        }
        results.inFlight.put("slow", Map.of("blocking", 10.0, "1", Double.NaN, "8", Double.NaN, "64", Double.NaN));
        String table = Report.markdown(results, true);
        assertThat(table).contains("| slow |", "| raw-echo |", "not available");
        assertThat(Report.json(results)).contains("\"slow\": {\"label\": \"slow\"", "\"1\": null");
        assertThat(Chart.svg(results)).startsWith("<svg").contains(">slow<");
    }

    /** A stack whose round trip only waits. */
    private static final class Sleeper extends Stack {
        private final long nanos;

        Sleeper(String id, long nanos) {
            super(id, id);
            this.nanos = nanos;
        }

        @Override
        boolean large() {
            return false;
        }

        @Override
        boolean small() {
            return true;
        }

        @Override
        void roundTrip() {
            long end = System.nanoTime() + nanos;
            while (System.nanoTime() < end) {
                Thread.onSpinWait();
            }
        }

        @Override
        public void close() {
        }
    }
}
