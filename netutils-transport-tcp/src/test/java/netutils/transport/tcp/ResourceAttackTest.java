package netutils.transport.tcp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.zip.CRC32C;
import netutils.api.Connection;
import netutils.api.ConnectionHandler;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;

/**
 * The cheap resource attacks of a hostile peer: a well-behaved client is served throughout, and memory
 * follows the bytes that arrive, not what a header or envelope claims.
 */
class ResourceAttackTest {
    private static final ConnectionHandler ECHO = ConnectionHandler.ofRequests(request -> request);
    /**
     * The good client's latency bound while attacks run. Unloaded it is served in milliseconds; the bound is
     * generous because these machines are 2 shared cores, and what it must catch is being made to wait for a
     * read timeout (30 s) or turned away.
     */
    private static final Duration SERVED_WITHIN = Duration.ofSeconds(5);

    private static InetSocketAddress loopback() {
        return new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);
    }

    /** A frame header: "NU", version 1, serializer 1 (json), no flags, the body length. */
    private static byte[] header(long bodyLength) {
        return ByteBuffer.allocate(12).put((byte) 0x4E).put((byte) 0x55).put((byte) 1).put((byte) 1).putInt(0)
                .putInt((int) bodyLength).array();
    }

    /** The start of a body whose JSON envelope names one tensor of {@code tensorBytes} bytes. */
    private static byte[] claim(long tensorBytes) {
        byte[] envelope = ("{\"type\":\"KV_cache\",\"meta\":{},\"tensors\":[{\"name\":\"k\",\"dtype\":\"U8\",\"shape\":["
                + tensorBytes + "],\"offset\":0,\"nbytes\":" + tensorBytes + "}]}").getBytes(StandardCharsets.UTF_8);
        long dataStart = (4 + envelope.length + 63) / 64 * 64;
        ByteBuffer frame = ByteBuffer.allocate((int) (12 + dataStart + 1));
        frame.put(header(dataStart + tensorBytes)).putInt(envelope.length).put(envelope);
        frame.position((int) (12 + dataStart)).put((byte) 1); // the first byte of the tensor, then nothing
        return frame.array();
    }

    private static long residentBytes() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    /** Three round trips of a good client, each within the bound. */
    private static void goodClientIsServed(TcpServer server) throws IOException {
        try (Connection good = TcpClient.connect("127.0.0.1", server.port())) {
            for (int i = 0; i < 3; i++) {
                long start = System.nanoTime();
                Message reply = good.request(Message.of(MessageType.HIDDEN_STATE, Tensor.zeros(DType.F32, 2048)),
                        SERVED_WITHIN);
                assertThat(reply.data().byteSize()).isEqualTo(8192);
                assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(SERVED_WITHIN);
            }
        }
    }

    private static List<Socket> open(int count, int port) throws IOException {
        List<Socket> sockets = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            sockets.add(new Socket(InetAddress.getLoopbackAddress(), port));
        }
        return sockets;
    }

    private static void closeAll(List<Socket> sockets) {
        for (Socket socket : sockets) {
            try {
                socket.close();
            } catch (IOException ignored) {
                // cleaning up
            }
        }
    }

    @Test
    void headersClaimingAGigabyteThenTricklingHoldNothingAndAreCutForBeingTooSlow() throws Exception {
        TcpOptions strict = TcpOptions.builder().readTimeout(Duration.ofSeconds(1)).minTransferRate(64 * 1024).build();
        try (TcpServer server = TcpServer.bind(loopback(), strict).serve(ECHO)) {
            List<Socket> attackers = open(2, server.port());
            List<Thread> tricklers = new ArrayList<>();
            try {
                byte[] claim = claim((1L << 30) - (1 << 20)); // just under maxFrameBytes
                long start = System.nanoTime();
                for (Socket attacker : attackers) {
                    // A byte every 300 ms: never a read timeout (1 s), far under the minimum rate.
                    tricklers.add(Thread.ofVirtual().start(() -> {
                        try {
                            for (byte b : claim) {
                                attacker.getOutputStream().write(b);
                                Thread.sleep(300);
                            }
                        } catch (IOException | InterruptedException e) {
                            // cut off by the server: expected
                        }
                    }));
                }
                goodClientIsServed(server);
                for (Socket attacker : attackers) {
                    attacker.setSoTimeout(10_000);
                    InputStream in = attacker.getInputStream();
                    byte[] answer = in.readAllBytes(); // the server's error frame, then the end
                    assertThat(new String(answer, StandardCharsets.UTF_8)).contains("TIMEOUT").contains("too slowly");
                }
                // Cut after the grace period (the 1 s read timeout), long before the trickle would end (5 min).
                assertThat(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start)).isLessThan(10_000);
            } finally {
                closeAll(attackers);
                tricklers.forEach(Thread::interrupt);
            }
        }
    }

    @Test
    void aHeaderTrickledByteByByteIsCutForBeingTooSlow() throws Exception {
        TcpOptions strict = TcpOptions.builder().readTimeout(Duration.ofSeconds(1)).minTransferRate(64 * 1024).build();
        try (TcpServer server = TcpServer.bind(loopback(), strict).serve(ECHO);
                Socket attacker = new Socket(InetAddress.getLoopbackAddress(), server.port())) {
            byte[] header = header(1 << 20);
            long start = System.nanoTime();
            // A byte every 600 ms: never a read timeout (1 s); the whole header would take 7 s. The minimum rate
            // used to apply only once the header was complete, so such a peer held its connection for minutes
            // with a 30 s read timeout.
            Thread trickler = Thread.ofVirtual().start(() -> {
                try {
                    for (byte b : header) {
                        attacker.getOutputStream().write(b);
                        Thread.sleep(600);
                    }
                } catch (IOException | InterruptedException e) {
                    // cut off by the server: expected
                }
            });
            try {
                attacker.setSoTimeout(10_000);
                byte[] answer = attacker.getInputStream().readAllBytes(); // the server's error frame, then the end
                assertThat(new String(answer, StandardCharsets.UTF_8)).contains("TIMEOUT").contains("too slowly");
                assertThat(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start)).isLessThan(5_000);
            } finally {
                trickler.interrupt();
            }
        }
    }

    @Test
    void aFullServerEvictsPeersThatSentPartOfAHeaderAndStopped() throws Exception {
        TcpServerOptions twenty = TcpServerOptions.builder().maxConnections(20).build();
        try (TcpServer server = TcpServer.bind(loopback(), twenty).serve(ECHO)) {
            List<Socket> stuck = open(20, server.port());
            try {
                for (Socket socket : stuck) {
                    socket.getOutputStream().write('N'); // a frame begun, never continued
                }
                Thread.sleep(1200); // evictable after a second without a frame
                // Such connections counted as busy receiving, so none could be evicted and the newcomer was told
                // SERVER_BUSY until each one's read timeout (30 s).
                goodClientIsServed(server);
                assertThat(server.connectionCount()).isLessThanOrEqualTo(20);
            } finally {
                closeAll(stuck);
            }
        }
    }

    @Test
    void aFullServerEvictsTheIdlestConnectionForANewOne() throws Exception {
        TcpServerOptions fifty = TcpServerOptions.builder().maxConnections(50).build();
        try (TcpServer server = TcpServer.bind(loopback(), fifty).serve(ECHO)) {
            List<Socket> idle = open(60, server.port());
            try {
                Thread.sleep(1200); // idle long enough to be evictable
                goodClientIsServed(server);
                assertThat(server.connectionCount()).isLessThanOrEqualTo(50);
            } finally {
                closeAll(idle);
            }
        }
    }

    @Test
    void oneAddressCannotTakeEveryConnection() throws Exception {
        TcpServerOptions options = TcpServerOptions.builder().maxConnectionsPerAddress(20).build();
        try (TcpServer server = TcpServer.bind(loopback(), options).serve(ECHO)) {
            List<Socket> flood = open(40, server.port());
            try {
                AtomicInteger refused = new AtomicInteger();
                List<Thread> readers = new ArrayList<>();
                for (Socket socket : flood) {
                    readers.add(Thread.ofVirtual().start(() -> {
                        try {
                            socket.setSoTimeout(3000);
                            String answer = new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                            if (answer.contains("SERVER_BUSY") && answer.contains("from 127.0.0.1")) {
                                refused.incrementAndGet();
                            }
                        } catch (IOException served) {
                            // one of the twenty served: nothing to read, the wait times out
                        }
                    }));
                }
                for (Thread reader : readers) {
                    reader.join();
                }
                assertThat(refused.get()).as("connections over the per-address limit told so").isEqualTo(20);
            } finally {
                closeAll(flood);
            }
            Thread.sleep(200); // the server notices the twenty closing
            goodClientIsServed(server);
        }
    }

    @Test
    void claimsOfAGigabyteTensorOrASixteenMebibyteEnvelopeCommitLittleUntilTheBytesArrive() throws Exception {
        try (TcpServer server = TcpServer.bind(loopback(), TcpOptions.defaults()).serve(ECHO)) {
            goodClientIsServed(server); // warm up: threads, buffers, classes
            System.gc();
            long before = residentBytes();
            List<Socket> attackers = open(2 + 127, server.port());
            try {
                for (Socket attacker : attackers.subList(0, 2)) {
                    attacker.getOutputStream().write(claim(1L << 30));
                }
                for (Socket attacker : attackers.subList(2, attackers.size())) {
                    OutputStream out = attacker.getOutputStream();
                    out.write(header(16L << 20));
                    out.write(ByteBuffer.allocate(5).putInt((16 << 20) - 8).put((byte) '{').array());
                }
                Thread.sleep(1000);
                long grown = residentBytes() - before;
                assertThat(grown).as("resident memory grown by the claims, bytes").isLessThan(64L << 20);
                goodClientIsServed(server);
            } finally {
                closeAll(attackers);
            }
        }
    }

    @Test
    void junkEnvelopesAreRefusedWhileTheyAreReadAndOthersAreServed() throws Exception {
        byte[] junk = new byte[16 << 20]; // [1,1,1,... : millions of values, far more than any envelope has
        junk[0] = '[';
        for (int i = 1; i + 1 < junk.length; i += 2) {
            junk[i] = '1';
            junk[i + 1] = ',';
        }
        try (TcpServer server = TcpServer.bind(loopback(), TcpOptions.defaults()).serve(ECHO)) {
            List<Socket> attackers = open(16, server.port());
            List<Thread> senders = new ArrayList<>();
            AtomicInteger refused = new AtomicInteger();
            try {
                for (Socket attacker : attackers) {
                    senders.add(Thread.ofVirtual().start(() -> {
                        try {
                            OutputStream out = attacker.getOutputStream();
                            out.write(header(4 + junk.length));
                            out.write(ByteBuffer.allocate(4).putInt(junk.length).array());
                            out.write(junk);
                            attacker.setSoTimeout(10_000);
                            String answer = new String(attacker.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                            if (answer.contains("MALFORMED_ENVELOPE") && answer.contains("values")) {
                                refused.incrementAndGet();
                            }
                        } catch (IOException e) {
                            // the server may close before the whole junk is written
                            refused.incrementAndGet();
                        }
                    }));
                }
                goodClientIsServed(server);
                for (Thread sender : senders) {
                    sender.join(30_000);
                }
                assertThat(refused.get()).isEqualTo(16);
            } finally {
                closeAll(attackers);
            }
        }
    }

    @Test
    void aHostileServerCannotMakeAClientCommitWhatItClaims() throws Exception {
        try (ServerSocket hostile = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                try (Socket socket = hostile.accept()) {
                    socket.getInputStream().read(new byte[64]);
                    socket.getOutputStream().write(claim((1L << 30) - (1 << 20))); // just under maxFrameBytes
                    Thread.sleep(10_000);
                } catch (IOException | InterruptedException e) {
                    // test over
                }
            });
            TcpOptions options = TcpOptions.builder().readTimeout(Duration.ofSeconds(1)).build();
            System.gc();
            long before = residentBytes();
            try (Connection client = TcpClient.connect("127.0.0.1", hostile.getLocalPort(), options)) {
                assertThatThrownBy(() -> client.request(Message.of(MessageType.MASK), Duration.ofSeconds(10)))
                        .isInstanceOf(IOException.class).hasMessageContaining(client.peer())
                        .hasMessageMatching("(?s).*(timed out|too slowly).*");
                assertThat(residentBytes() - before).isLessThan(64L << 20);
            }
        }
    }

    @Test
    void aClosedServerAnswersEveryMessageThatArrivedAndLeavesNoThreadOrDescriptor() throws Exception {
        int threadsBefore = platformThreads();
        long descriptorsBefore = descriptors();
        ConnectionHandler slow = ConnectionHandler.ofRequests(request -> {
            Thread.sleep(5);
            return request;
        });
        TcpServer server = TcpServer.bind(loopback(), TcpOptions.defaults()).serve(slow);
        List<Connection> clients = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            clients.add(TcpClient.connect("127.0.0.1", server.port()));
        }
        List<List<java.util.concurrent.CompletableFuture<Message>>> sent = new ArrayList<>();
        for (Connection client : clients) {
            List<java.util.concurrent.CompletableFuture<Message>> calls = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                calls.add(client.requestAsync(Message.of(MessageType.KV_INDEX, Tensor.scalar(i))));
            }
            sent.add(calls);
        }
        Thread.sleep(100); // every request has arrived; most are still waiting for the slow handler
        server.close();
        for (List<java.util.concurrent.CompletableFuture<Message>> calls : sent) {
            for (int i = 0; i < calls.size(); i++) {
                assertThat(calls.get(i).get(10, TimeUnit.SECONDS).data().longValue()).isEqualTo(i);
            }
        }
        for (Connection client : clients) {
            client.close();
        }
        assertThat(server.connectionCount()).isZero();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while ((platformThreads() > threadsBefore + 2 || descriptors() > descriptorsBefore + 2)
                && System.nanoTime() < deadline) {
            Thread.sleep(50);
        }
        assertThat(descriptors()).as("open descriptors").isLessThanOrEqualTo(descriptorsBefore + 2);
        assertThat(platformThreads()).as("platform threads").isLessThanOrEqualTo(threadsBefore + 2);
    }

    @Test
    void twoHundredClientsTimesFiveHundredMessagesStayInOrderBesideSlowPeers() throws Exception {
        ConnectionHandler checked = ConnectionHandler.ofRequests(request -> Message.builder(MessageType.KV_INDEX)
                .tensor("data", request.data()).meta("crc", crc(request.data())).build());
        TcpOptions strict = TcpOptions.builder().readTimeout(Duration.ofSeconds(1)).minTransferRate(64 * 1024).build();
        TcpServerOptions options = TcpServerOptions.builder().connection(strict).maxConnectionsPerAddress(512).build();
        try (TcpServer server = TcpServer.bind(loopback(), options).serve(checked)) {
            List<Socket> slow = open(20, server.port());
            for (Socket socket : slow) {
                socket.getOutputStream().write(header(1L << 20)); // then a trickle that never comes
            }
            AtomicInteger wrong = new AtomicInteger();
            List<Thread> clients = new ArrayList<>();
            for (int c = 0; c < 200; c++) {
                int id = c;
                clients.add(Thread.ofVirtual().start(() -> {
                    try (Connection client = TcpClient.connect("127.0.0.1", server.port())) {
                        for (int seq = 0; seq < 500; seq++) {
                            Tensor payload = Tensor.ofLongs(new long[] {id, seq, (long) id * seq}, 3);
                            client.send(Message.of(MessageType.KV_INDEX, payload));
                            Message reply = client.receive();
                            long[] back = reply.data().toLongArray();
                            if (back[0] != id || back[1] != seq || !reply.meta("crc").orElse("").equals(crc(payload))) {
                                wrong.incrementAndGet();
                            }
                        }
                    } catch (IOException e) {
                        wrong.addAndGet(1000);
                    }
                }));
            }
            for (Thread client : clients) {
                client.join(120_000);
            }
            assertThat(wrong.get()).as("replies out of order, damaged or missing").isZero();
            closeAll(slow);
        }
    }

    private static String crc(Tensor tensor) {
        CRC32C crc = new CRC32C();
        crc.update(tensor.asByteBuffer());
        return Long.toHexString(crc.getValue());
    }

    private static int platformThreads() {
        return Thread.getAllStackTraces().size();
    }

    private static long descriptors() throws IOException {
        try (var entries = Files.list(Path.of("/proc/self/fd"))) {
            return entries.count();
        }
    }

    @Test
    void aHandlerThatRunsOutOfMemoryEndsItsConnectionAndTheServerGoesOn() throws Exception {
        // What a server that keeps every received KV_cache meets when memory runs out: the Error ends that
        // connection (with its socket and memory), and new connections are accepted and served.
        ConnectionHandler hoarding = ConnectionHandler.ofRequests(request -> {
            if (request.type().equals(MessageType.KV_CACHE)) {
                throw new OutOfMemoryError("simulated: no memory left for another stored KV cache");
            }
            return request;
        });
        try (TcpServer server = TcpServer.bind(loopback(), TcpOptions.defaults()).serve(hoarding)) {
            for (int i = 0; i < 5; i++) {
                try (Connection hoarder = TcpClient.connect("127.0.0.1", server.port())) {
                    Message store = Message.builder(MessageType.KV_CACHE).id("kv-" + i)
                            .tensor("k", Tensor.zeros(DType.BF16, 1, 8, 64, 128)).build();
                    assertThatThrownBy(() -> hoarder.request(store, SERVED_WITHIN)).isInstanceOf(IOException.class);
                }
            }
            goodClientIsServed(server);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (server.connectionCount() > 0 && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertThat(server.connectionCount()).as("the failed connections are closed and forgotten").isZero();
        }
    }

    @Test
    void aThousandClientsVanishingMidAnswerLeaveNoMemoryThreadOrDescriptorBehind() throws Exception {
        ConnectionHandler bigAnswers = ConnectionHandler.ofRequests(request -> request.type().equals(MessageType.MASK)
                ? Message.of(MessageType.KV_CACHE, Tensor.zeros(DType.U8, 4 << 20)) : request);
        try (TcpServer server = TcpServer.bind(loopback(), TcpOptions.defaults()).serve(bigAnswers)) {
            goodClientIsServed(server); // warm up
            System.gc();
            Thread.sleep(200);
            long rssBefore = residentBytes();
            long descriptorsBefore = descriptors();
            int threadsBefore = platformThreads();
            byte[] request = netutils.api.wire.Frames.toRawMessage(Message.of(MessageType.MASK));
            for (int batch = 0; batch < 10; batch++) {
                List<Socket> clients = open(100, server.port());
                for (Socket client : clients) {
                    client.getOutputStream().write(request);
                }
                for (Socket client : clients) {
                    client.getInputStream().read(new byte[4096]); // the answer has begun: vanish mid-answer
                    client.setSoLinger(true, 0);
                }
                closeAll(clients);
            }
            goodClientIsServed(server);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while ((server.connectionCount() > 0 || descriptors() > descriptorsBefore + 2)
                    && System.nanoTime() < deadline) {
                Thread.sleep(50);
            }
            System.gc();
            Thread.sleep(500);
            assertThat(server.connectionCount()).isZero();
            assertThat(descriptors()).as("open descriptors").isLessThanOrEqualTo(descriptorsBefore + 2);
            assertThat(platformThreads()).as("platform threads").isLessThanOrEqualTo(threadsBefore + 2);
            assertThat(residentBytes() - rssBefore).as("resident memory left after 1,000 vanished clients and a GC")
                    .isLessThan(128L << 20);
        }
    }
}
