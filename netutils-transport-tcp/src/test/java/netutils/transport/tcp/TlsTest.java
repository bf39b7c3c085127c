package netutils.transport.tcp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteOrder;
import java.security.KeyStore;
import java.time.Duration;
import java.time.Instant;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.ConnectionHandler;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.RemoteErrorException;
import netutils.api.Tensor;
import netutils.transport.tcp.internal.TcpConnection;
import org.bouncycastle.asn1.x509.GeneralName;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * TLS and mutual TLS over loopback with certificates made in the test ({@link TestPki}): round trips, refused
 * certificates with messages that say why, and plaintext/TLS mismatches that fail at once.
 */
@Timeout(120)
class TlsTest {
    private static final char[] PASSWORD = TestPki.PASSWORD;
    private static final ConnectionHandler ECHO = ConnectionHandler.ofRequests(request -> request);
    /** Mismatches must fail long before any timeout of the options (10 s handshake, 30 s read). */
    private static final Duration FAST = Duration.ofSeconds(3);

    private static TestPki ca;
    private static TestPki otherCa;
    private static KeyStore serverKeys;

    @BeforeAll
    static void makeCertificates() throws Exception {
        ca = TestPki.authority("netutils test CA");
        otherCa = TestPki.authority("some other CA");
        serverKeys = ca.server();
        // One TLS call before any test, so that timings measure the failures, not class loading and a cold JIT.
        try (TcpServer server = tlsServer(serverTls(serverKeys).build(), ECHO);
                Connection client = TcpClient.connect("127.0.0.1", server.port(), clientOptions(clientTls().build()))) {
            client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(0)));
        }
    }

    // ---------------------------------------------------------------- round trips

    @Test
    void serverOnlyTlsCarriesEveryTypeALargeTensorAndManySmallCalls() throws Exception {
        try (TcpServer server = tlsServer(serverTls(serverKeys).build(), ECHO);
                Connection client = TcpClient.connect("127.0.0.1", server.port(), clientOptions(clientTls().build()))) {
            SSLSession session = session(client);
            assertThat(session.getProtocol()).isEqualTo("TLSv1.3");
            assertThat(session.getPeerPrincipal().getName()).isEqualTo("CN=localhost");
            roundTrips(client);
        }
    }

    @Test
    void overTlsTooASenderCutOffByTheServersLimitLearnsTheServersReason() throws Exception {
        TcpOptions small = TcpOptions.builder().tls(serverTls(serverKeys).build()).maxFrameBytes(1 << 20).build();
        try (TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), small)
                .serve(ECHO);
                Connection client = TcpClient.connect("127.0.0.1", server.port(), clientOptions(clientTls().build()))) {
            Message big = Message.of(MessageType.KV_CACHE, Tensor.zeros(DType.U8, 64 << 20));
            assertThatThrownBy(() -> client.request(big, Duration.ofSeconds(30))).isInstanceOf(RemoteErrorException.class)
                    .hasMessageContaining("FRAME_TOO_LARGE").hasMessageContaining("exceeds the limit of 1,048,576 bytes");
        }
    }

    @Test
    void overTlsTheIdleTimeoutAndAGracefulCloseEndWaitingConnectionsToo() throws Exception {
        // A TLS reader waits in a blocking read of ciphertext; the idle timeout and close() end that wait from outside.
        TcpServerOptions options = TcpServerOptions.builder().connection(TcpOptions.builder()
                .tls(serverTls(serverKeys).build()).build()).idleTimeout(Duration.ofMillis(400)).build();
        TcpServer server = TcpServer.bind(new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), 0),
                options).serve(ECHO);
        try (Connection idle = TcpClient.connect("127.0.0.1", server.port(), clientOptions(clientTls().build()));
                Connection waiting = TcpClient.connect("127.0.0.1", server.port(), clientOptions(clientTls().build()))) {
            assertThat(waiting.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(1))).data().longValue()).isEqualTo(1);
            assertThatThrownBy(() -> idle.receive(Duration.ofSeconds(5))).isInstanceOf(ConnectionClosedException.class);
            assertThat(waiting.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(2))).data().longValue()).isEqualTo(2);
            long start = System.nanoTime();
            server.close();
            assertThat(java.util.concurrent.TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start)).isLessThan(2000);
            assertThatThrownBy(() -> waiting.receive(Duration.ofSeconds(5))).isInstanceOf(ConnectionClosedException.class);
        } finally {
            server.close();
        }
    }

    @Test
    void mutualTlsCarriesTheSameAndTheServerSeesWhoTheClientIs() throws Exception {
        // The server answers with the name in the client's certificate: proof that it was asked for and checked.
        ConnectionHandler echoWithClientName = connection -> {
            String clientName = session(connection).getPeerPrincipal().getName();
            ConnectionHandler.ofRequests(request -> request.meta().isEmpty() && request.tensors().size() == 1
                    && request.type().equals(MessageType.KV_INDEX)
                    ? Message.builder(MessageType.KV_INDEX).tensor("data", request.data()).meta("client", clientName)
                            .build()
                    : request).handle(connection);
        };
        TlsOptions serverTls = serverTls(serverKeys).trustStore(ca.trustStore()).requireClientCertificate().build();
        TlsOptions clientTls = clientTls().keyStore(ca.client("stage-1"), PASSWORD).build();
        try (TcpServer server = tlsServer(serverTls, echoWithClientName);
                Connection client = TcpClient.connect("localhost", server.port(), clientOptions(clientTls))) {
            Message who = client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(7)));
            assertThat(who.meta("client")).contains("CN=stage-1");
            assertThat(session(client).getLocalPrincipal().getName()).isEqualTo("CN=stage-1");
            roundTrips(client);
        }
    }

    /** Five types, a 64 MiB tensor verified byte for byte, then 2,000 small request/responses. */
    private static void roundTrips(Connection client) throws IOException {
        for (Message message : TcpTestSupport.fiveTypes(new Random(3))) {
            Message echoed = client.request(message);
            assertThat(echoed.type()).isEqualTo(message.type());
            for (String name : message.tensors().keySet()) {
                assertThat(echoed.tensor(name).toByteArray()).isEqualTo(message.tensor(name).toByteArray());
            }
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment big = arena.allocate(64L << 20, 64);
            ValueLayout.OfLong le = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
            for (long i = 0; i < big.byteSize() / 8; i++) {
                big.set(le, i * 8, i * 0x9E3779B97F4A7C15L);
            }
            try (Message echoed = client.request(Message.of(MessageType.KV_CACHE,
                    Tensor.wrap(DType.U8, big, big.byteSize())))) {
                assertThat(echoed.data().data().mismatch(big)).as("first differing byte of the 64 MiB tensor")
                        .isEqualTo(-1);
            }
        }
        Random random = new Random(4);
        for (int i = 0; i < 2000; i++) {
            Tensor hidden = TcpTestSupport.random(DType.BF16, random, 1, 1, 512 + random.nextInt(4096));
            Message reply = client.request(Message.builder(MessageType.HIDDEN_STATE).tensor("data", hidden)
                    .meta("seq", Integer.toString(i)).build());
            assertThat(reply.meta("seq")).contains(Integer.toString(i));
            assertThat(reply.data().toByteArray()).isEqualTo(hidden.toByteArray());
        }
    }

    // ---------------------------------------------------------------- refused certificates

    @Test
    void aServerCertificateFromAnUntrustedAuthorityIsRefusedSayingSo() throws Exception {
        try (TcpServer server = tlsServer(serverTls(otherCa.server()).build(), ECHO)) {
            assertThatThrownBy(() -> TcpClient.connect("127.0.0.1", server.port(), clientOptions(clientTls().build())))
                    .isInstanceOf(SSLHandshakeException.class)
                    .hasMessageContaining("TLS handshake with server 127.0.0.1:" + server.port())
                    .hasMessageContaining("the server's certificate is not trusted");
        }
    }

    @Test
    void anExpiredServerCertificateIsRefusedSayingSo() throws Exception {
        KeyStore expired = ca.issue("localhost", Instant.now().minus(Duration.ofDays(10)),
                Instant.now().minus(Duration.ofDays(1)), new GeneralName(GeneralName.iPAddress, "127.0.0.1"));
        try (TcpServer server = tlsServer(serverTls(expired).build(), ECHO)) {
            assertThatThrownBy(() -> TcpClient.connect("127.0.0.1", server.port(), clientOptions(clientTls().build())))
                    .isInstanceOf(SSLHandshakeException.class)
                    .hasMessageContaining("server 127.0.0.1:" + server.port())
                    .hasMessageContaining("the server's certificate has expired");
        }
    }

    @Test
    void aCertificateForAnotherHostIsRefusedUnlessThatNameIsAskedFor() throws Exception {
        KeyStore otherHost = ca.issue("stage.example", Instant.now().minus(Duration.ofHours(1)),
                Instant.now().plus(Duration.ofDays(1)), new GeneralName(GeneralName.dNSName, "stage.example"));
        java.util.List<String> namesAsked = new java.util.concurrent.CopyOnWriteArrayList<>();
        ConnectionHandler recordSni = connection -> {
            ((javax.net.ssl.ExtendedSSLSession) session(connection)).getRequestedServerNames()
                    .forEach(name -> namesAsked.add(((javax.net.ssl.SNIHostName) name).getAsciiName()));
            ECHO.handle(connection);
        };
        try (TcpServer server = tlsServer(serverTls(otherHost).build(), recordSni)) {
            assertThatThrownBy(() -> TcpClient.connect("127.0.0.1", server.port(), clientOptions(clientTls().build())))
                    .isInstanceOf(SSLHandshakeException.class)
                    .hasMessageContaining("does not name the host this client connected to")
                    .hasMessageContaining("127.0.0.1");
            // The same server, reached by address but verified against the name its certificate has.
            try (Connection client = TcpClient.connect("127.0.0.1", server.port(),
                    clientOptions(clientTls().serverName("stage.example").build()))) {
                assertThat(client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(1))).data().longValue())
                        .isEqualTo(1);
            }
            assertThat(namesAsked).as("the SNI the server saw (an address is never sent as SNI)")
                    .containsExactly("stage.example");
        }
    }

    @Test
    void mutualTlsRefusesAClientWithoutACertificateSayingSo() throws Exception {
        TlsOptions serverTls = serverTls(serverKeys).trustStore(ca.trustStore()).requireClientCertificate().build();
        try (TcpServer server = tlsServer(serverTls, ECHO)) {
            // TLS 1.3 ends the client's side of the handshake before the server has checked it: the refusal may
            // arrive at connect or at the first call. Either way it must say what is missing.
            long start = System.nanoTime();
            assertThatThrownBy(() -> {
                try (Connection client = TcpClient.connect("127.0.0.1", server.port(), clientOptions(clientTls().build()))) {
                    client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(1)), Duration.ofSeconds(20));
                }
            }).satisfies(TlsTest::isTlsFailure)
                    .hasMessageContaining("TLS session with server 127.0.0.1:" + server.port())
                    .hasMessageContaining("the server requires a client certificate signed by a certificate authority "
                            + "it trusts, and this client sent none");
            assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(FAST);
            assertThat(server.connectionCount()).isZero();
        }
    }

    @Test
    void mutualTlsRefusesAClientCertificateFromAnUntrustedAuthority() throws Exception {
        TlsOptions serverTls = serverTls(serverKeys).trustStore(ca.trustStore()).requireClientCertificate().build();
        TlsOptions stranger = clientTls().keyStore(otherCa.client("intruder"), PASSWORD).build();
        try (TcpServer server = tlsServer(serverTls, ECHO)) {
            assertThatThrownBy(() -> {
                try (Connection client = TcpClient.connect("127.0.0.1", server.port(), clientOptions(stranger))) {
                    client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(1)), Duration.ofSeconds(20));
                }
            }).satisfies(TlsTest::isTlsFailure)
                    // Its certificate's CA is not one the server names, so the client has none to send.
                    .hasMessageContaining("the server requires a client certificate signed by a certificate authority "
                            + "it trusts, and this client sent none");
        }
    }

    @Test
    void mutualTlsRefusesAnExpiredClientCertificateSayingSo() throws Exception {
        TlsOptions serverTls = serverTls(serverKeys).trustStore(ca.trustStore()).requireClientCertificate().build();
        KeyStore expired = ca.issue("stage-1", Instant.now().minus(Duration.ofDays(10)),
                Instant.now().minus(Duration.ofDays(1)));
        try (TcpServer server = tlsServer(serverTls, ECHO)) {
            assertThatThrownBy(() -> {
                try (Connection client = TcpClient.connect("127.0.0.1", server.port(),
                        clientOptions(clientTls().keyStore(expired, PASSWORD).build()))) {
                    client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(1)), Duration.ofSeconds(20));
                }
            }).satisfies(TlsTest::isTlsFailure)
                    .hasMessageContaining("the server refused this client's certificate (alert certificate_unknown): "
                            + "this client's certificate has expired");
        }
    }

    @Test
    void aTls12OnlyPeerIsRefusedUnlessTls12IsAllowed() throws Exception {
        // A plain JDK TLS server that speaks TLS 1.2 only (netutils' own server cannot be made to).
        javax.net.ssl.SSLContext context = serverTls(serverKeys).build().context();
        try (SSLServerSocket tls12 = (SSLServerSocket) context.getServerSocketFactory().createServerSocket(0, 50,
                InetAddress.getLoopbackAddress())) {
            tls12.setEnabledProtocols(new String[] {"TLSv1.2"});
            Thread acceptor = Thread.ofVirtual().start(() -> {
                for (int i = 0; i < 2; i++) {
                    try (SSLSocket socket = (SSLSocket) tls12.accept()) {
                        socket.startHandshake();
                        socket.getInputStream().read(); // until the client closes
                    } catch (IOException expected) {
                        // the first client refuses TLS 1.2
                    }
                }
            });
            assertThatThrownBy(() -> TcpClient.connect("127.0.0.1", tls12.getLocalPort(),
                    clientOptions(clientTls().build())))
                    .isInstanceOf(SSLHandshakeException.class)
                    .hasMessageContaining("no TLS version in common")
                    .hasMessageContaining("allowTls12");
            try (Connection client = TcpClient.connect("127.0.0.1", tls12.getLocalPort(),
                    clientOptions(clientTls().allowTls12().build()))) {
                assertThat(session(client).getProtocol()).isEqualTo("TLSv1.2");
            }
            acceptor.join(10_000);
        }
    }

    // ---------------------------------------------------------------- plaintext against TLS

    @Test
    void aPlaintextClientAgainstATlsServerFailsAtOnceWithTlsRequired() throws Exception {
        try (TcpServer server = tlsServer(serverTls(serverKeys).build(), ECHO);
                Connection plaintext = TcpClient.connect("127.0.0.1", server.port())) {
            long start = System.nanoTime();
            // The server's error frame answers no call (it could not read the request's id), so the call fails
            // with the connection, carrying the server's error.
            assertThatThrownBy(() -> plaintext.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(1))))
                    .hasMessageContaining("peer reported TLS_REQUIRED: the server at 127.0.0.1:" + server.port()
                            + " speaks TLS only and this client sent plaintext");
            assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(FAST);
        }
    }

    @Test
    void aTlsClientAgainstAPlaintextServerFailsAtOnceSayingTheServerDoesNotSpeakTls() throws Exception {
        try (TcpServer plaintext = TcpServer.bind(0).serve(ECHO)) {
            long start = System.nanoTime();
            assertThatThrownBy(() -> TcpClient.connect("127.0.0.1", plaintext.port(), clientOptions(clientTls().build())))
                    .isInstanceOf(SSLHandshakeException.class)
                    .hasMessageContaining("the server 127.0.0.1:" + plaintext.port() + " does not speak TLS")
                    .hasMessageContaining("plaintext netutils frame");
            assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(FAST);
        }
    }

    @Test
    void aPlaintextServerNamesATlsClientHelloForWhatItIs() throws Exception {
        TcpOptions tlsClient = clientOptions(clientTls().build());
        try (TcpServer plaintext = TcpServer.bind(0)) {
            Thread client = Thread.ofVirtual().start(() -> {
                try (Connection ignored = TcpClient.connect("127.0.0.1", plaintext.port(), tlsClient)) {
                    // refused
                } catch (IOException expected) {
                    // the other test checks the client's side
                }
            });
            try (Connection accepted = plaintext.accept()) {
                assertThatThrownBy(accepted::receive)
                        .isInstanceOfSatisfying(netutils.api.ProtocolException.class,
                                e -> assertThat(e.kind()).isEqualTo(netutils.api.ProtocolException.Kind.BAD_MAGIC))
                        .hasMessageContaining("the peer speaks TLS");
            }
            client.join(10_000);
        }
    }

    @Test
    void aPeerThatIsNoTlsClientAtAllIsNamedByItsFirstBytes() throws Exception {
        try (java.nio.channels.ServerSocketChannel listener = java.nio.channels.ServerSocketChannel.open()
                .bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
                Socket http = new Socket("127.0.0.1", ((InetSocketAddress) listener.getLocalAddress()).getPort());
                java.nio.channels.SocketChannel accepted = listener.accept()) {
            http.getOutputStream().write("GET / HTTP/1.1\r\n\r\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            assertThatThrownBy(() -> TcpConnection.open(accepted, clientOptions(serverTls(serverKeys).build()), null,
                    null))
                    .isInstanceOf(SSLHandshakeException.class)
                    .hasMessageContaining("the client 127.0.0.1:" + http.getLocalPort() + " does not speak TLS: it "
                            + "opened with bytes 47 45 54 20 2F 20 48 54 (\"GET / HT\")");
        }
    }

    @Test
    void acceptSkipsAClientThatFailsItsHandshakeAndReturnsTheNextOne() throws Exception {
        TcpOptions tlsClient = clientOptions(clientTls().build());
        try (TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0),
                clientOptions(serverTls(serverKeys).build())); Socket stranger = new Socket("127.0.0.1", server.port())) {
            stranger.getOutputStream().write("hello?\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            Thread goodClient = Thread.ofVirtual().start(() -> {
                try (Connection client = TcpClient.connect("127.0.0.1", server.port(), tlsClient)) {
                    assertThat(client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(9))).data().longValue())
                            .isEqualTo(9);
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                }
            });
            try (Connection accepted = server.accept()) {
                Message request = accepted.receive();
                accepted.send(Message.builder(request.type()).tensor("data", request.data()).replyTo(request).build());
            }
            stranger.setSoTimeout(5000);
            assertThat(stranger.getInputStream().read()).as("the stranger's connection is closed").isEqualTo(-1);
            goodClient.join(10_000);
        }
    }

    // ---------------------------------------------------------------- the wait between frames, closing

    /**
     * Ciphertext arrives a few bytes at a time through a relay while the client waits in slices of a few
     * milliseconds: waits that time out in the middle of a TLS record must keep what they got.
     */
    @Test
    void timedWaitsThatEndMidRecordLoseNoCiphertext() throws Exception {
        ConnectionHandler slowAnswers = connection -> {
            Message request = connection.receive();
            for (int i = 0; i < 3; i++) {
                connection.send(Message.builder(MessageType.HIDDEN_STATE).tensor("data", request.data())
                        .meta("n", Integer.toString(i)).build());
            }
            connection.receive(Duration.ofSeconds(30));
        };
        try (TcpServer server = tlsServer(serverTls(serverKeys).build(), slowAnswers);
                SlowRelay relay = new SlowRelay(server.port(), 37, Duration.ofMillis(1));
                Connection client = TcpClient.connect("127.0.0.1", relay.port(), clientOptions(clientTls().build()))) {
            Tensor hidden = TcpTestSupport.random(DType.F32, new Random(5), 1, 1, 1024);
            client.send(Message.of(MessageType.HIDDEN_STATE, hidden));
            int emptyWaits = 0;
            for (int i = 0; i < 3; i++) {
                Optional<Message> reply;
                while ((reply = client.receive(Duration.ofMillis(2))).isEmpty()) {
                    emptyWaits++;
                }
                assertThat(reply.get().meta("n")).contains(Integer.toString(i));
                assertThat(reply.get().data().toByteArray()).isEqualTo(hidden.toByteArray());
            }
            assertThat(emptyWaits).as("waits that timed out while records trickled in").isGreaterThan(20);
            assertThat(relay.chunks.get()).as("pieces the relay cut the answers into").isGreaterThan(300);
        }
    }

    @Test
    void aServerThatClosesEndsTheClientsSessionCleanly() throws Exception {
        ConnectionHandler answerOnceThenClose = connection -> connection.send(connection.receive());
        try (TcpServer server = tlsServer(serverTls(serverKeys).build(), answerOnceThenClose);
                Connection client = TcpClient.connect("127.0.0.1", server.port(), clientOptions(clientTls().build()))) {
            assertThat(client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(5))).data().longValue()).isEqualTo(5);
            assertThatThrownBy(client::receive).isInstanceOf(ConnectionClosedException.class)
                    .hasMessageContaining("closed the connection");
        }
    }

    @Test
    void closingWhileThePeerDoesNotReadIsNotHeldUpByCloseNotify() throws Exception {
        java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
        ConnectionHandler neverReads = connection -> {
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        };
        try (TcpServer server = tlsServer(serverTls(serverKeys).build(), neverReads);
                Arena arena = Arena.ofShared()) {
            Connection client = TcpClient.connect("127.0.0.1", server.port(), clientOptions(clientTls().build()));
            MemorySegment big = arena.allocate(64L << 20, 64); // far more than the socket buffers hold
            java.util.concurrent.atomic.AtomicReference<Throwable> writerEnded = new java.util.concurrent.atomic.AtomicReference<>();
            Thread writer = Thread.ofVirtual().start(() -> {
                try {
                    client.send(Message.of(MessageType.KV_CACHE, Tensor.wrap(DType.U8, big, big.byteSize())));
                } catch (Throwable e) {
                    writerEnded.set(e);
                }
            });
            Thread.sleep(500); // the writer fills the socket buffers and blocks
            assertThat(writer.isAlive()).as("the writer is blocked: the server does not read").isTrue();
            long start = System.nanoTime();
            client.close();
            writer.join(5_000);
            assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(2));
            assertThat(writer.isAlive()).isFalse();
            assertThat(writerEnded.get()).isInstanceOf(IOException.class);
            release.countDown();
        }
    }

    @Test
    void optionsRefuseWhatTheyCannotHonour() {
        assertThatThrownBy(() -> new TlsOptions(TlsOptions.builder().build().context(), java.util.List.of("TLSv1.1"),
                true, Optional.empty(), false, Duration.ofSeconds(1)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("TLSv1.1 is not allowed");
        assertThatThrownBy(() -> TlsOptions.builder().keyStore(serverKeys, "wrong".toCharArray()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("wrong password");
        TlsOptions defaults = TlsOptions.builder().build();
        assertThat(defaults.protocols()).containsExactly("TLSv1.3");
        assertThat(defaults.hostnameVerification()).isTrue();
        assertThat(defaults.requireClientCertificate()).isFalse();
        assertThat(TcpOptions.defaults().tls()).isEmpty();
        assertThat(TlsOptions.session(netutils.api.testing.InMemoryConnection.pair().client())).isEmpty();
        assertThat(TcpOptions.builder().tls(defaults).build().toBuilder().plaintext().build()).isEqualTo(TcpOptions.defaults());
    }

    // ---------------------------------------------------------------- helpers

    /**
     * Raised by the TLS layer itself, or by a call that failed because the TLS session did (a call in flight fails
     * with the connection, naming the cause).
     */
    private static void isTlsFailure(Throwable failure) {
        boolean tls = false;
        for (Throwable t = failure; t != null; t = t.getCause()) {
            tls |= t instanceof SSLException;
        }
        assertThat(tls).as("an SSLException in the cause chain of " + failure).isTrue();
    }

    private static TlsOptions.Builder serverTls(KeyStore keys) {
        return TlsOptions.builder().keyStore(keys, PASSWORD);
    }

    private static TlsOptions.Builder clientTls() throws Exception {
        return TlsOptions.builder().trustStore(ca.trustStore());
    }

    private static TcpOptions clientOptions(TlsOptions tls) {
        return TcpOptions.builder().tls(tls).build();
    }

    private static TcpServer tlsServer(TlsOptions tls, ConnectionHandler handler) throws IOException {
        return TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0),
                TcpOptions.builder().tls(tls).build()).serve(handler);
    }

    private static SSLSession session(Connection connection) {
        return TlsOptions.session(connection).orElseThrow();
    }

    /** Forwards one connection; the server's bytes go back in pieces of at most {@code piece} bytes, with pauses. */
    private static final class SlowRelay implements AutoCloseable {
        final AtomicInteger chunks = new AtomicInteger();
        private final ServerSocket listener;
        private final Thread thread;

        SlowRelay(int upstreamPort, int piece, Duration pause) throws IOException {
            listener = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
            thread = Thread.ofVirtual().start(() -> {
                try (Socket down = listener.accept(); Socket up = new Socket("127.0.0.1", upstreamPort)) {
                    down.setTcpNoDelay(true);
                    up.setTcpNoDelay(true);
                    Thread toServer = Thread.ofVirtual().start(() -> pump(down, up, Integer.MAX_VALUE, Duration.ZERO));
                    pump(up, down, piece, pause);
                    toServer.join();
                } catch (IOException | InterruptedException ignored) {
                    // the test is over
                }
            });
        }

        private void pump(Socket from, Socket to, int piece, Duration pause) {
            byte[] buffer = new byte[64 * 1024];
            try {
                InputStream in = from.getInputStream();
                OutputStream out = to.getOutputStream();
                int count;
                while ((count = in.read(buffer, 0, Math.min(buffer.length, piece))) > 0) {
                    out.write(buffer, 0, count);
                    out.flush();
                    chunks.incrementAndGet();
                    if (!pause.isZero()) {
                        Thread.sleep(pause);
                    }
                }
                to.shutdownOutput();
            } catch (IOException | InterruptedException ignored) {
                // one side closed
            }
        }

        int port() {
            return listener.getLocalPort();
        }

        @Override
        public void close() throws IOException {
            listener.close();
            thread.interrupt();
        }
    }
}
