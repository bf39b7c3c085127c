package netutils.bench;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
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
import netutils.transport.tcp.TlsOptions;

/**
 * What TLS costs netutils, measured against plaintext netutils in the same run, interleaved round by round: the
 * throughput of one 256 MiB {@code KV_cache} message (received into reused memory, acknowledged), the p50/p99
 * round trip of an 8 KiB {@code hidden_state} request and answer, and the time to connect (TCP plus, for TLS,
 * the handshake) and make a first call. TLS is TLS 1.3 with the JDK's defaults (AES-GCM with the CPU's AES
 * instructions) and an EC P-256 certificate made with {@code keytool} for the run; mutual TLS costs the same once
 * connected, so only its connect time is shown.
 *
 * <pre>
 * usage: TlsBench [--quick]
 * ./mvnw -q -DskipTests package exec:exec@tls-bench -pl netutils-bench -am
 * </pre>
 */
public final class TlsBench {
    private static final long LARGE = 256L << 20;
    private static final int SMALL = 8 << 10;
    private static final char[] PASSWORD = "netutils-bench".toCharArray();

    private TlsBench() {
    }

    /** Runs the comparison and prints it. */
    public static void main(String[] args) throws Exception {
        boolean quick = Arrays.asList(args).contains("--quick");
        int warmupLarge = quick ? 3 : 8;
        int measuredLarge = quick ? 6 : 20;
        int warmupSmall = quick ? 5_000 : 30_000;
        int measuredSmall = quick ? 5_000 : 30_000;
        int rounds = quick ? 5 : 10;
        int connects = quick ? 20 : 60;
        System.out.printf("netutils TLS benchmark: %d cores, JDK %s, load average %.2f%n",
                Runtime.getRuntime().availableProcessors(), Runtime.version(), loadAverage());

        Path dir = Files.createTempDirectory("netutils-tls-bench");
        Path keyStoreFile = dir.resolve("server.p12");
        makeCertificate(keyStoreFile);
        KeyStore keys = TlsOptions.loadKeyStore(keyStoreFile, PASSWORD);
        TlsOptions serverTls = TlsOptions.builder().keyStore(keys, PASSWORD).build();
        TlsOptions clientTls = TlsOptions.builder().trustStore(keys).build();
        TlsOptions mutualServerTls = TlsOptions.builder().keyStore(keys, PASSWORD).trustStore(keys)
                .requireClientCertificate().build();
        TlsOptions mutualClientTls = TlsOptions.builder().keyStore(keys, PASSWORD).trustStore(keys).build();
        Files.delete(keyStoreFile);
        Files.delete(dir);

        MemorySegment payload = Arena.global().allocate(LARGE, 64);
        for (long i = 0; i < LARGE; i += 8) {
            payload.set(ValueLayout.JAVA_LONG_UNALIGNED, i, i * 0x9E3779B97F4A7C15L);
        }
        List<Side> sides = List.of(new Side("plaintext", null, null, payload), new Side("tls", serverTls, clientTls, payload));
        try {
            TlsOptions.session(sides.get(1).echo).ifPresent(session -> System.out.printf("TLS: %s, %s%n",
                    session.getProtocol(), session.getCipherSuite()));
            System.out.printf("%n1. one 256 MiB message, client to server: %d warm-up + %d measured each, interleaved%n",
                    warmupLarge, measuredLarge);
            // One message per side per round: adjacent messages make the pairs whose ratios count.
            Map<String, List<Long>> large = interleave(sides, warmupLarge, measuredLarge, measuredLarge, Side::sendLarge);
            double[] throughput = new double[sides.size()];
            for (int i = 0; i < sides.size(); i++) {
                long median = percentile(large.get(sides.get(i).name), 0.5);
                throughput[i] = LARGE / (1024.0 * 1024.0) / (median / 1e9);
                System.out.printf("   %-10s %7.0f MiB/s (median)%n", sides.get(i).name, throughput[i]);
            }
            System.out.printf("   tls / plaintext: %.2f of the medians; %s%n", throughput[1] / throughput[0],
                    roundRatios(large, measuredLarge, measuredLarge, true));

            System.out.printf("%n2. 8 KiB hidden_state request/response: %d warm-up + %d measured each, interleaved%n",
                    warmupSmall, measuredSmall);
            Map<String, List<Long>> small = interleave(sides, warmupSmall, measuredSmall, rounds, Side::roundTrip);
            for (Side side : sides) {
                List<Long> nanos = small.get(side.name);
                System.out.printf("   %-10s p50 %6.1f us   p99 %6.1f us%n", side.name, percentile(nanos, 0.5) / 1e3,
                        percentile(nanos, 0.99) / 1e3);
            }
            System.out.printf("   tls / plaintext p50: %.2f, p99: %.2f; p50 %s%n",
                    (double) percentile(small.get("tls"), 0.5) / percentile(small.get("plaintext"), 0.5),
                    (double) percentile(small.get("tls"), 0.99) / percentile(small.get("plaintext"), 0.99),
                    roundRatios(small, rounds, measuredSmall, false));
        } finally {
            for (Side side : sides) {
                side.close();
            }
        }

        System.out.printf("%n3. connect and first 8 KiB call on a new connection: %d each, interleaved%n", connects);
        Map<String, List<Long>> connect = new LinkedHashMap<>();
        String[] names = {"plaintext", "tls", "mutual-tls"};
        TlsOptions[][] tls = {{null, null}, {serverTls, clientTls}, {mutualServerTls, mutualClientTls}};
        List<TcpServer> servers = new ArrayList<>();
        try {
            for (int i = 0; i < names.length; i++) {
                servers.add(echoServer(tls[i][0]));
                connect.put(names[i], new ArrayList<>());
            }
            Message request = Message.of(MessageType.HIDDEN_STATE, Tensor.zeros(DType.F16, 1, 1, SMALL / 2));
            for (int n = -5; n < connects; n++) { // 5 unmeasured for the JIT
                for (int i = 0; i < names.length; i++) {
                    long start = System.nanoTime();
                    try (Connection connection = TcpClient.connect("127.0.0.1", servers.get(i).port(), options(tls[i][1]))) {
                        connection.request(request);
                    }
                    if (n >= 0) {
                        connect.get(names[i]).add(System.nanoTime() - start);
                    }
                }
            }
        } finally {
            for (TcpServer server : servers) {
                server.close();
            }
        }
        for (String name : names) {
            System.out.printf("   %-10s median %7.2f ms%n", name, percentile(connect.get(name), 0.5) / 1e6);
        }
        System.out.printf("%nload average at the end %.2f%n", loadAverage());
    }

    /** Runs {@code warmup} then {@code measured} operations per side, the sides taking turns in {@code rounds}. */
    private static Map<String, List<Long>> interleave(List<Side> sides, int warmup, int measured, int rounds,
            Operation operation) throws IOException {
        Map<String, List<Long>> nanos = new LinkedHashMap<>();
        for (Side side : sides) {
            nanos.put(side.name, new ArrayList<>());
        }
        int warmupPerRound = Math.max(1, warmup / rounds);
        int measuredPerRound = Math.max(1, measured / rounds);
        for (int round = 0; round < rounds; round++) {
            for (Side side : sides) {
                for (int i = 0; i < warmupPerRound; i++) {
                    operation.run(side);
                }
            }
        }
        for (int round = 0; round < rounds; round++) {
            for (Side side : sides) {
                List<Long> list = nanos.get(side.name);
                for (int i = 0; i < measuredPerRound; i++) {
                    long start = System.nanoTime();
                    operation.run(side);
                    list.add(System.nanoTime() - start);
                }
            }
        }
        return nanos;
    }

    /**
     * tls/plaintext round by round (throughput: plaintext time / tls time; latency: tls p50 / plaintext p50), whose
     * median resists the machine's drift better than a ratio of overall medians.
     */
    private static String roundRatios(Map<String, List<Long>> nanos, int rounds, int measured, boolean throughput) {
        int perRound = Math.max(1, measured / rounds);
        List<Double> ratios = new ArrayList<>();
        for (int round = 0; round < rounds; round++) {
            long plain = percentile(nanos.get("plaintext").subList(round * perRound, (round + 1) * perRound), 0.5);
            long tls = percentile(nanos.get("tls").subList(round * perRound, (round + 1) * perRound), 0.5);
            ratios.add(throughput ? (double) plain / tls : (double) tls / plain);
        }
        ratios.sort(null);
        return String.format("median of %d per-round ratios %.2f (range %.2f-%.2f)", rounds,
                ratios.get(rounds / 2), ratios.get(0), ratios.get(rounds - 1));
    }

    private static long percentile(List<Long> values, double p) {
        long[] sorted = values.stream().mapToLong(Long::longValue).sorted().toArray();
        return sorted[Math.min(sorted.length - 1, (int) (sorted.length * p))];
    }

    private interface Operation {
        void run(Side side) throws IOException;
    }

    private static TcpOptions options(TlsOptions tls) {
        TcpOptions.Builder builder = TcpOptions.builder().maxFrameBytes(LARGE + (1 << 20));
        if (tls != null) {
            builder.tls(tls);
        }
        return builder.build();
    }

    private static TcpServer echoServer(TlsOptions tls) throws IOException {
        return TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), options(tls))
                .serve(ConnectionHandler.ofRequests(request -> Message.of(MessageType.HIDDEN_STATE, request.data())));
    }

    /** A sink server and an echo server with their client connections, plaintext or TLS (server default threads). */
    private static final class Side implements AutoCloseable {
        final String name;
        private final TcpServer sinkServer;
        private final TcpServer echoServer;
        private final Connection sink;
        private final Connection echo;
        private final Message large;
        private final Message small;

        Side(String name, TlsOptions serverTls, TlsOptions clientTls, MemorySegment payload) throws IOException {
            this.name = name;
            TcpOptions serverOptions = options(serverTls);
            long frameLimit = serverOptions.maxFrameBytes();
            ConnectionHandler acknowledge = connection -> {
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment buffer = arena.allocate(frameLimit, 64);
                    while (true) {
                        Message request = connection.receive(SegmentAllocator.slicingAllocator(buffer));
                        connection.send(Message.builder(MessageType.KV_INDEX).meta("bytes", "" + request.tensorBytes())
                                .build());
                    }
                } catch (ConnectionClosedException done) {
                    // the benchmark finished
                }
            };
            InetSocketAddress loopback = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);
            sinkServer = TcpServer.bind(loopback, serverOptions).serve(acknowledge);
            echoServer = echoServer(serverTls);
            sink = TcpClient.connect("127.0.0.1", sinkServer.port(), options(clientTls));
            echo = TcpClient.connect("127.0.0.1", echoServer.port(), options(clientTls));
            large = Message.of(MessageType.KV_CACHE, Tensor.wrap(DType.BF16, payload, payload.byteSize() / 2));
            small = Message.of(MessageType.HIDDEN_STATE, Tensor.zeros(DType.F16, 1, 1, SMALL / 2));
        }

        void sendLarge() throws IOException {
            Message reply = sink.request(large);
            if (!reply.meta("bytes").orElse("").equals("" + large.tensorBytes())) {
                throw new IllegalStateException(name + ": server saw " + reply);
            }
        }

        void roundTrip() throws IOException {
            try (Message reply = echo.request(small)) {
                if (reply.data().byteSize() != small.tensorBytes()) {
                    throw new IllegalStateException(name + ": bad answer " + reply);
                }
            }
        }

        @Override
        public void close() throws IOException {
            sink.close();
            echo.close();
            sinkServer.close();
            echoServer.close();
        }
    }

    /** An EC P-256 certificate for 127.0.0.1 and localhost, with its key, from the JDK's own keytool. */
    private static void makeCertificate(Path keyStore) throws IOException, InterruptedException {
        Path keytool = Path.of(System.getProperty("java.home"), "bin", "keytool");
        Process process = new ProcessBuilder(keytool.toString(), "-genkeypair", "-alias", "server", "-keyalg", "EC",
                "-groupname", "secp256r1", "-dname", "CN=localhost", "-ext", "SAN=ip:127.0.0.1,dns:localhost",
                "-validity", "2", "-storetype", "PKCS12", "-keystore", keyStore.toString(),
                "-storepass", new String(PASSWORD), "-keypass", new String(PASSWORD))
                .redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes());
        if (!process.waitFor(60, TimeUnit.SECONDS) || process.exitValue() != 0) {
            throw new IOException("keytool failed: " + output);
        }
    }

    private static double loadAverage() {
        try {
            return Double.parseDouble(Files.readString(Path.of("/proc/loadavg")).split(" ")[0]);
        } catch (IOException | RuntimeException e) {
            return Double.NaN;
        }
    }
}
