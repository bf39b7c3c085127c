package netutils.bench;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.ConnectionHandler;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import netutils.transport.tcp.TcpClient;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServer;

/**
 * Python against Java on loopback, in one run: one 256 MiB F32 {@code KV_cache} message Python to Java and Java to
 * Python, each as a ratio to Java to Java measured in the same rounds, and the p50/p99 of an 8 KiB
 * {@code hidden_state} round trip from a Python client to a Java server next to a Java client. Receivers on both
 * sides put tensors into memory they reuse (the fair case: fresh memory per message measures the kernel's page
 * faults, see the README). The Python side is {@code python/benchmarks/java_peer.py}, run with {@code --python}
 * (default {@code /usr/bin/python3}) from the repository root.
 *
 * <pre>
 * ./mvnw -q -DskipTests package exec:exec@python-bench -pl netutils-bench -am
 * </pre>
 */
public final class PythonBench {
    private static final long MIB = 1 << 20;

    private PythonBench() {
    }

    /** Runs the benchmark; options {@code --python P --rounds N --count N --mib N --rtt N --rtt-warmup N}. */
    public static void main(String[] args) throws Exception {
        String python = "/usr/bin/python3";
        int rounds = 5;
        int count = 4;
        int mib = 256;
        int rtt = 5_000;
        int rttWarmup = 20_000;
        for (int i = 0; i < args.length; i += 2) {
            String value = i + 1 < args.length ? args[i + 1] : "";
            switch (args[i]) {
                case "--python" -> python = value;
                case "--rounds" -> rounds = Integer.parseInt(value);
                case "--count" -> count = Integer.parseInt(value);
                case "--mib" -> mib = Integer.parseInt(value);
                case "--rtt" -> rtt = Integer.parseInt(value);
                case "--rtt-warmup" -> rttWarmup = Integer.parseInt(value);
                default -> throw new IllegalArgumentException("unknown option " + args[i]
                        + " (known: --python --rounds --count --mib --rtt --rtt-warmup)");
            }
        }
        Path script = Path.of("python", "benchmarks", "java_peer.py").toAbsolutePath();
        if (!Files.isRegularFile(script)) {
            throw new IllegalStateException("run from the repository root: " + script + " is missing");
        }
        Peer peer = new Peer(python, script);
        long bytes = mib * MIB;
        System.out.printf(Locale.ROOT, "PythonBench: %d MiB F32 message, %d rounds of %d messages per direction; "
                + "8 KiB round trips: %d warm-up, %d per round%n", mib, rounds, count, rttWarmup, rtt);

        try (Arena arena = Arena.ofShared();
                TcpServer javaSink = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0),
                        TcpOptions.defaults()).serve(sinkHandler(bytes))) {
            MemorySegment data = arena.allocate(bytes, 64);
            for (long i = 0; i < bytes / 4; i++) {
                data.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, i);
            }
            Message big = Message.of(MessageType.KV_CACHE, Tensor.wrap(DType.F32, data, bytes / 4));
            Process pythonSink = peer.start("serve", "--mib", "" + mib);
            try (Connection toJava = TcpClient.connect("127.0.0.1", javaSink.port());
                    Connection toPython = TcpClient.connect("127.0.0.1", peer.port(pythonSink))) {
                send(toJava, big, 3);
                send(toPython, big, 3);
                double[] pyToJava = new double[rounds];
                double[] javaToPy = new double[rounds];
                System.out.println("round  java->java MiB/s  python->java MiB/s  java->python MiB/s  py->j ratio  j->py ratio");
                for (int r = 0; r < rounds; r++) {
                    double jj = send(toJava, big, count);
                    double pj = peer.number(peer.run("send", "--port", "" + javaSink.port(), "--count", "" + count,
                            "--mib", "" + mib), "send_mibps ([0-9.]+)", 1);
                    double jp = send(toPython, big, count);
                    pyToJava[r] = pj / jj;
                    javaToPy[r] = jp / jj;
                    System.out.printf(Locale.ROOT, "%5d  %17.0f  %18.0f  %18.0f  %11.2f  %11.2f%n", r + 1, jj, pj, jp,
                            pyToJava[r], javaToPy[r]);
                }
                System.out.printf(Locale.ROOT, "median ratio: python->java %.2f, java->python %.2f (of java->java)%n",
                        Benchmark.median(pyToJava), Benchmark.median(javaToPy));
            } finally {
                pythonSink.destroy();
                pythonSink.waitFor(10, TimeUnit.SECONDS);
            }

            try (Connection client = TcpClient.connect("127.0.0.1", javaSink.port())) {
                Message small = Message.of(MessageType.HIDDEN_STATE, Tensor.zeros(DType.F32, 1, 2048));
                for (int i = 0; i < rttWarmup; i++) {
                    client.request(small);
                }
                int latencyRounds = 3;
                double[][] java = new double[latencyRounds][];
                double[][] py = new double[latencyRounds][];
                System.out.println("round  java p50 us  java p99 us  python p50 us  python p99 us  p50 ratio");
                for (int r = 0; r < latencyRounds; r++) {
                    java[r] = roundTrips(client, small, rtt);
                    String out = peer.run("rtt", "--port", "" + javaSink.port(), "--warmup", "" + rttWarmup / 4,
                            "--count", "" + rtt);
                    py[r] = new double[] {peer.number(out, "p50 ([0-9.]+)", 1), peer.number(out, "p99 ([0-9.]+)", 1)};
                    System.out.printf(Locale.ROOT, "%5d  %11.1f  %11.1f  %13.1f  %13.1f  %9.2f%n", r + 1, java[r][0],
                            java[r][1], py[r][0], py[r][1], py[r][0] / java[r][0]);
                }
                double[] ratios = new double[latencyRounds];
                for (int r = 0; r < latencyRounds; r++) {
                    ratios[r] = py[r][0] / java[r][0];
                }
                System.out.printf(Locale.ROOT, "median p50 ratio python client / java client: %.2f%n", Benchmark.median(ratios));
            }
        }
    }

    /** Receives every message into one reused buffer; acks large ones with their size, echoes small ones. */
    private static ConnectionHandler sinkHandler(long bytes) {
        return connection -> {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment buffer = arena.allocate(bytes + 4096, 64);
                buffer.fill((byte) 0); // fault the pages in once, as a receiver that reuses memory has
                while (true) {
                    Message message;
                    try {
                        message = connection.receive(SegmentAllocator.slicingAllocator(buffer));
                    } catch (ConnectionClosedException closed) {
                        return;
                    }
                    long size = message.tensorBytes();
                    connection.send(size > 64 * 1024 ? Message.of(MessageType.KV_INDEX, Tensor.scalar(size)) : message);
                }
            }
        };
    }

    /** Sends {@code count} messages, each answered by an ack; MiB/s. */
    private static double send(Connection connection, Message message, int count) throws IOException {
        long start = System.nanoTime();
        for (int i = 0; i < count; i++) {
            long acked = connection.request(message).data().longValue();
            if (acked != message.tensorBytes()) {
                throw new IllegalStateException("peer acknowledged " + acked + " bytes, not " + message.tensorBytes());
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        return count * message.tensorBytes() / (double) MIB / seconds;
    }

    /** p50 and p99 in microseconds. */
    private static double[] roundTrips(Connection client, Message message, int count) throws IOException {
        long[] nanos = new long[count];
        for (int i = 0; i < count; i++) {
            long start = System.nanoTime();
            client.request(message);
            nanos[i] = System.nanoTime() - start;
        }
        Arrays.sort(nanos);
        return new double[] {nanos[count / 2] / 1e3, nanos[Math.min(count - 1, (int) (count * 0.99))] / 1e3};
    }


    /** Runs java_peer.py with the package on PYTHONPATH. */
    private record Peer(String python, Path script) {
        ProcessBuilder builder(String... args) {
            List<String> command = new ArrayList<>(List.of(python, script.toString()));
            command.addAll(List.of(args));
            ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
            builder.environment().put("PYTHONPATH", script.getParent().getParent().toString());
            return builder;
        }

        Process start(String... args) throws IOException {
            return builder(args).start();
        }

        int port(Process server) throws IOException {
            BufferedReader out = new BufferedReader(new InputStreamReader(server.getInputStream(), StandardCharsets.UTF_8));
            String line = out.readLine();
            Matcher m = Pattern.compile("listening on (\\d+)").matcher(String.valueOf(line));
            if (!m.find()) {
                throw new IllegalStateException("python sink did not start: " + line);
            }
            return Integer.parseInt(m.group(1));
        }

        String run(String... args) throws IOException, InterruptedException {
            Process process = start(args);
            String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!process.waitFor(300, TimeUnit.SECONDS) || process.exitValue() != 0) {
                throw new IllegalStateException("java_peer.py " + String.join(" ", args) + " failed:\n" + out);
            }
            return out;
        }

        double number(String output, String pattern, int group) {
            Matcher m = Pattern.compile(pattern).matcher(output);
            if (!m.find()) {
                throw new IllegalStateException("no '" + pattern + "' in python output:\n" + output);
            }
            return Double.parseDouble(m.group(group));
        }
    }
}
