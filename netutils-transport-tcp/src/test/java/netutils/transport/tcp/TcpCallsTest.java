package netutils.transport.tcp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.ConnectionHandler;
import netutils.api.DType;
import netutils.api.DeadlineExceededException;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.RemoteErrorException;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;

/** Correlated calls, deadlines, keepalive and reconnect over real loopback sockets. */
class TcpCallsTest {
    private static final MessageType SILENT = MessageType.of("silent");
    private static final MessageType SLOW = MessageType.of("slow");

    /** Answers with the request's value plus one, after a random delay; "silent" gets no answer, "slow" a late one. */
    private static final ConnectionHandler OUT_OF_ORDER = ConnectionHandler.ofConcurrentRequests(request -> {
        if (request.type().equals(SILENT)) {
            return null;
        }
        if (request.type().equals(SLOW)) {
            Thread.sleep(600);
        } else {
            Thread.sleep(ThreadLocalRandom.current().nextInt(3));
        }
        return Message.builder(MessageType.KV_INDEX).tensor("data", Tensor.scalar(request.data().longValue() + 1))
                .meta("caller", request.meta("caller").orElse("?")).build();
    }, 64);

    @Test
    void thirtyTwoThreadsTimesAThousandCallsEachGetExactlyTheirOwnReply() throws Exception {
        try (TcpServer server = TcpServer.bind(0).serve(OUT_OF_ORDER);
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            Set<String> answered = ConcurrentHashMap.newKeySet();
            AtomicInteger wrong = new AtomicInteger();
            List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < 32; t++) {
                String caller = "t" + t;
                threads.add(Thread.ofPlatform().start(() -> {
                    for (int i = 0; i < 1000; i++) {
                        long value = (long) caller.hashCode() * 10_000 + i;
                        try {
                            Message reply = client.request(Message.builder(MessageType.KV_INDEX)
                                    .tensor("data", Tensor.scalar(value)).meta("caller", caller).build(),
                                    Duration.ofSeconds(30));
                            if (reply.data().longValue() != value + 1 || !reply.meta("caller").orElse("").equals(caller)
                                    || !answered.add(caller + "/" + i)) {
                                wrong.incrementAndGet();
                            }
                        } catch (IOException e) {
                            wrong.incrementAndGet();
                        }
                    }
                }));
            }
            for (Thread thread : threads) {
                thread.join();
            }
            assertThat(wrong.get()).as("replies that were wrong, duplicated or missing").isZero();
            assertThat(answered).hasSize(32_000);
            assertThat(client.lateReplies()).isZero();
        }
    }

    @Test
    void aCallWithoutAnswerEndsAtItsDeadlineAndTheConnectionGoesOn() throws Exception {
        try (TcpServer server = TcpServer.bind(0).serve(OUT_OF_ORDER);
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            long start = System.nanoTime();
            assertThatThrownBy(() -> client.request(Message.of(SILENT), Duration.ofMillis(300)))
                    .isInstanceOf(DeadlineExceededException.class).hasMessageContaining("within PT0.3S");
            long elapsedMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            assertThat(elapsedMillis).isBetween(300L, 400L);
            assertThat(client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(1))).data().longValue())
                    .isEqualTo(2);
            assertThat(client.isOpen()).isTrue();
        }
    }

    @Test
    void aLateReplyIsDroppedAndCountedNotGivenToTheNextCaller() throws Exception {
        aLateReplyIsDroppedAndCounted(OUT_OF_ORDER);
    }

    /** A "slow" call gives up after 100 ms; the calls made while its reply is on the way get their own. */
    private static void aLateReplyIsDroppedAndCounted(ConnectionHandler peer) throws Exception {
        try (TcpServer server = TcpServer.bind(0).serve(peer);
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            assertThatThrownBy(() -> client.request(Message.of(SLOW, Tensor.scalar(100)), Duration.ofMillis(100)))
                    .isInstanceOf(DeadlineExceededException.class);
            for (int i = 0; i < 20; i++) {
                assertThat(client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(i))).data().longValue())
                        .isEqualTo(i + 1);
                Thread.sleep(40);
            }
            assertThat(client.lateReplies()).isEqualTo(1);
            assertThat(client.receive(Duration.ofMillis(50))).as("the late reply is not delivered").isEmpty();
        }
    }

    @Test
    void aLateReplyFromAPeerThatAnswersInOrderWithoutReplyToIsNotGivenToTheNextCall() throws Exception {
        // The original Python module answers in order and never sets reply_to. After a call gave up waiting, such
        // a peer still owes it an answer: that answer used to complete the next call (a silently wrong reply).
        ConnectionHandler inOrderWithoutReplyTo = connection -> {
            while (true) {
                try (Message request = connection.receive()) {
                    if (request.type().equals(SLOW)) {
                        Thread.sleep(600);
                    }
                    connection.send(Message.of(MessageType.KV_INDEX, Tensor.scalar(request.data().longValue() + 1)));
                } catch (ConnectionClosedException | InterruptedException done) {
                    return;
                }
            }
        };
        aLateReplyIsDroppedAndCounted(inOrderWithoutReplyTo);
    }

    @Test
    void anInOrderPeersAnswerToAPlainSendGoesToReceiveNotToTheNextCall() throws Exception {
        // The original module answers every message, in order, without reply_to: also those sent with send(). Its
        // answer to a send() used to complete the next call, which returned 30 for a request of 4 (silently).
        ConnectionHandler timesTenInOrder = connection -> {
            while (true) {
                try (Message request = connection.receive()) {
                    connection.send(Message.of(MessageType.KV_INDEX, Tensor.scalar(request.data().longValue() * 10)));
                } catch (ConnectionClosedException done) {
                    return;
                }
            }
        };
        try (TcpServer server = TcpServer.bind(0).serve(timesTenInOrder);
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            client.send(Message.of(MessageType.KV_INDEX, Tensor.scalar(3)));
            assertThat(valueOf(client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(4))))).isEqualTo(40);
            assertThat(valueOf(client.receive())).isEqualTo(30);

            // sends before, between and after calls in flight
            client.send(Message.of(MessageType.KV_INDEX, Tensor.scalar(1)));
            client.send(Message.of(MessageType.KV_INDEX, Tensor.scalar(2)));
            CompletableFuture<Message> five = client.requestAsync(Message.of(MessageType.KV_INDEX, Tensor.scalar(5)));
            client.send(Message.of(MessageType.KV_INDEX, Tensor.scalar(6)));
            long seven = valueOf(client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(7))));
            client.send(Message.of(MessageType.KV_INDEX, Tensor.scalar(8)));
            assertThat(valueOf(five.get(10, TimeUnit.SECONDS))).isEqualTo(50);
            assertThat(seven).isEqualTo(70);
            List<Long> received = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                received.add(valueOf(client.receive()));
            }
            assertThat(received).containsExactly(10L, 20L, 60L, 80L);
            assertThat(client.lateReplies()).isZero();
        }
    }

    private static long valueOf(Message message) {
        try (message) {
            return message.data().longValue();
        }
    }

    @Test
    void aHandlerFailureWhoseTextHoldsHalfACharacterIsStillAnswered() throws Exception {
        // User code cut a string inside an emoji: the detail holds a lone surrogate, which messages refuse. The
        // error is sent with U+FFFD in its place (the caller waited for its whole deadline, or lost the connection).
        String cut = "prompt: hi \ud83d\ude00".substring(0, 12);
        for (ConnectionHandler failing : List.of(
                ConnectionHandler.ofRequests(request -> {
                    throw new IllegalStateException("bad " + cut);
                }),
                ConnectionHandler.ofConcurrentRequests(request -> {
                    throw new IllegalStateException("bad " + cut);
                }, 4))) {
            try (TcpServer server = TcpServer.bind(0).serve(failing);
                    Connection client = TcpClient.connect("127.0.0.1", server.port())) {
                assertThatThrownBy(() -> client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(1)),
                        Duration.ofSeconds(10))).isInstanceOf(RemoteErrorException.class)
                        .hasMessageContaining("HANDLER_FAILED").hasMessageContaining("bad prompt: hi \uFFFD");
                assertThat(client.isOpen()).isTrue();
            }
        }
    }

    @Test
    void asyncCallsCompleteFailAtTheirDeadlineAndCanBeCancelled() throws Exception {
        try (TcpServer server = TcpServer.bind(0).serve(OUT_OF_ORDER);
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            List<CompletableFuture<Message>> calls = new ArrayList<>();
            for (int i = 0; i < 200; i++) {
                calls.add(client.requestAsync(Message.of(MessageType.KV_INDEX, Tensor.scalar(i))));
            }
            CompletableFuture<Message> silent = client.requestAsync(Message.of(SILENT), Duration.ofMillis(200));
            CompletableFuture<Message> cancelled = client.requestAsync(Message.of(SLOW, Tensor.scalar(0)));
            cancelled.cancel(true);
            for (int i = 0; i < calls.size(); i++) {
                assertThat(calls.get(i).get(10, TimeUnit.SECONDS).data().longValue()).isEqualTo(i + 1);
            }
            assertThatThrownBy(() -> silent.get(5, TimeUnit.SECONDS)).isInstanceOf(ExecutionException.class)
                    .cause().isInstanceOf(DeadlineExceededException.class);
            long waitUntil = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (client.lateReplies() == 0 && System.nanoTime() < waitUntil) {
                client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(7)));
                Thread.sleep(50);
            }
            assertThat(client.lateReplies()).as("the cancelled call's reply was dropped").isEqualTo(1);
        }
    }

    @Test
    void aHandlerFailureAnswersThatCallOnlyAndTheConnectionGoesOn() throws Exception {
        ConnectionHandler picky = ConnectionHandler.ofRequests(request -> {
            if (request.data().longValue() < 0) {
                throw new IllegalArgumentException("negative position " + request.data().longValue());
            }
            return request;
        });
        try (TcpServer server = TcpServer.bind(0).serve(picky);
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            assertThatThrownBy(() -> client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(-3))))
                    .isInstanceOf(RemoteErrorException.class).hasMessageContaining("negative position -3");
            assertThat(client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(3))).data().longValue())
                    .isEqualTo(3);
        }
    }

    @Test
    void aPeerThatStopsAnsweringIsDetectedByKeepaliveWithoutAnyCall() throws Exception {
        // A blackhole: accepts and then neither reads nor writes, like a frozen process or a dead route.
        try (ServerSocket blackhole = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                try (Socket ignored = blackhole.accept()) {
                    Thread.sleep(30_000);
                } catch (IOException | InterruptedException e) {
                    // test over
                }
            });
            TcpOptions keepalive = TcpOptions.builder().keepalive(Duration.ofMillis(200), Duration.ofMillis(300)).build();
            try (Connection client = TcpClient.connect("127.0.0.1", blackhole.getLocalPort(), keepalive)) {
                long start = System.nanoTime();
                // A thread waiting in receive() learns why the connection ended, not only that it did.
                CompletableFuture<Throwable> receiving = CompletableFuture.supplyAsync(() -> {
                    try {
                        client.receive();
                        return null;
                    } catch (IOException e) {
                        return e;
                    }
                });
                while (client.isOpen() && System.nanoTime() - start < TimeUnit.SECONDS.toNanos(5)) {
                    Thread.sleep(10);
                }
                assertThat(receiving.get(5, TimeUnit.SECONDS)).isInstanceOf(ConnectionClosedException.class)
                        .hasMessageContaining("did not answer a keepalive ping");
                long detectedMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
                assertThat(client.isOpen()).isFalse();
                assertThat(detectedMillis).as("interval + timeout, plus a tick").isBetween(450L, 1000L);
                assertThatThrownBy(() -> client.send(Message.of(MessageType.MASK)))
                        .isInstanceOf(ConnectionClosedException.class).hasMessageContaining("keepalive");
            }
        }
    }

    @Test
    void aPeerThatDiesIsDetectedAtOnceByTheCallWaitingForIt() throws Exception {
        try (ServerSocket dying = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                try (Socket socket = dying.accept()) {
                    InputStream in = socket.getInputStream();
                    in.read(new byte[12]); // the request has begun: now die
                    Thread.sleep(200);
                    socket.setSoLinger(true, 0); // a reset, as when a process is killed
                } catch (IOException | InterruptedException e) {
                    // test over
                }
            });
            try (Connection client = TcpClient.connect("127.0.0.1", dying.getLocalPort())) {
                long start = System.nanoTime();
                assertThatThrownBy(() -> client.request(Message.of(MessageType.MASK), Duration.ofSeconds(20)))
                        .isInstanceOf(ConnectionClosedException.class).hasMessageContaining(client.peer());
                assertThat(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start)).isLessThan(2000);
                assertThat(client.isOpen()).isFalse();
                assertThatThrownBy(() -> client.send(Message.of(MessageType.MASK)))
                        .isInstanceOf(ConnectionClosedException.class).hasMessageContaining(client.peer());
            }
        }
    }

    @Test
    void aReconnectingClientFailsCallsInFlightAndCarriesOnOnceTheServerIsBack() throws Exception {
        ConnectionHandler slowEcho = ConnectionHandler.ofRequests(request -> {
            Thread.sleep(20);
            return request;
        });
        // A crash, not a graceful stop: no grace for the messages in flight.
        TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0),
                TcpServerOptions.builder().shutdownGrace(Duration.ZERO).build()).serve(slowEcho);
        int port = server.port();
        List<ConnectionState> states = new CopyOnWriteArrayList<>();
        ReconnectPolicy fast = new ReconnectPolicy(Duration.ofMillis(50), Duration.ofMillis(200), 0.2, 0);
        InetSocketAddress address = new InetSocketAddress(InetAddress.getLoopbackAddress(), port);
        try (Connection client = TcpClient.connect(List.of(address), TcpOptions.defaults(), fast, states::add)) {
            assertThat(client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(1))).data().longValue()).isEqualTo(1);
            CompletableFuture<Message> inFlight = client.requestAsync(Message.of(MessageType.KV_INDEX, Tensor.scalar(2)));
            server.close();
            assertThatThrownBy(() -> inFlight.get(5, TimeUnit.SECONDS)).cause()
                    .isInstanceOf(ConnectionClosedException.class).hasMessageContaining("not resent");
            Thread.sleep(300); // the client tries and fails while nothing listens
            try (TcpServer again = TcpServer.bind(address, TcpOptions.defaults()).serve(slowEcho)) {
                assertThat(client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(3)), Duration.ofSeconds(10))
                        .data().longValue()).isEqualTo(3);
                assertThat(client.isOpen()).isTrue();
            }
        }
        assertThat(states).containsExactly(ConnectionState.CONNECTED, ConnectionState.RECONNECTING,
                ConnectionState.CONNECTED, ConnectionState.CLOSED);
    }

    @Test
    void aFrameThatTakesLongerThanTheKeepaliveTimeoutToArriveIsNotMistakenForADeadPeer() throws Exception {
        byte[] frame = netutils.api.wire.Frames.toRawMessage(
                Message.of(MessageType.KV_CACHE, Tensor.zeros(netutils.api.DType.U8, 300_000)));
        try (ServerSocket slowLink = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                try (Socket socket = slowLink.accept()) {
                    // About 1.5 s for the frame: five keepalive timeouts, and still 200 KB/s.
                    for (int at = 0; at < frame.length; at += 20_000) {
                        socket.getOutputStream().write(frame, at, Math.min(20_000, frame.length - at));
                        Thread.sleep(100);
                    }
                    Thread.sleep(5_000);
                } catch (IOException | InterruptedException e) {
                    // test over
                }
            });
            TcpOptions keepalive = TcpOptions.builder().keepalive(Duration.ofMillis(200), Duration.ofMillis(300)).build();
            try (Connection client = TcpClient.connect("127.0.0.1", slowLink.getLocalPort(), keepalive);
                    Message big = client.receive()) {
                assertThat(big.data().byteSize()).isEqualTo(300_000);
            }
        }
    }

    @Test
    void aServerBusyInAHandlerForLongerThanTheClientsKeepaliveStillAnswersItsPings() throws Exception {
        ConnectionHandler busy = ConnectionHandler.ofRequests(request -> {
            Thread.sleep(4_000); // computing, not reading
            return request;
        });
        TcpOptions keepalive = TcpOptions.builder().keepalive(Duration.ofMillis(1000), Duration.ofMillis(1500)).build();
        try (TcpServer server = TcpServer.bind(0).serve(busy);
                Connection client = TcpClient.connect("127.0.0.1", server.port(), keepalive)) {
            Message reply = client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(5)), Duration.ofSeconds(20));
            assertThat(reply.data().longValue()).isEqualTo(5);
            assertThat(client.isOpen()).isTrue();
        }
    }

    @Test
    void aReplyReadByAThreadReceivingIntoItsOwnMemoryStillAnswersItsCall() throws Exception {
        // The server answers each request, then sends a message of its own. The client's thread that receives into
        // its own memory often reads the reply first: the call must get it (in memory of its own), and the
        // receiver the other message.
        MessageType push = MessageType.of("push");
        ConnectionHandler answerThenPush = connection -> {
            try {
                while (true) {
                    Message request = connection.receive();
                    connection.send(Message.builder(MessageType.KV_INDEX).tensor("data", request.data())
                            .meta("k", "v").replyTo(request).build());
                    connection.send(Message.of(push, Tensor.scalar(7)));
                }
            } catch (ConnectionClosedException done) {
                // the client left
            }
        };
        try (TcpServer server = TcpServer.bind(0).serve(answerThenPush);
                Connection client = TcpClient.connect("127.0.0.1", server.port());
                java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            java.lang.foreign.MemorySegment own = arena.allocate(1 << 16, 64);
            for (int i = 0; i < 30; i++) {
                CompletableFuture<Message> call = client.requestAsync(Message.of(MessageType.KV_INDEX, Tensor.scalar(i)));
                Message pushed = client.receive(java.lang.foreign.SegmentAllocator.slicingAllocator(own));
                assertThat(pushed.type()).isEqualTo(push);
                assertThat(pushed.data().longValue()).isEqualTo(7);
                assertThat(pushed.data().data().address() - own.address()).as("in the receiver's memory")
                        .isBetween(0L, own.byteSize() - 8);
                Message reply = call.get(10, TimeUnit.SECONDS);
                assertThat(reply.data().longValue()).isEqualTo(i);
                assertThat(reply.meta("k")).contains("v");
            }
        }
    }

    @Test
    void aMessageReadByAnotherThreadFirstStillArrivesInTheReceiversMemory() throws Exception {
        // The server pushes a message, then answers the client's request: the requesting thread reads the push
        // first and queues it in pooled memory (as the background reader that answers pings while a receiver is
        // busy does). receive(allocator) must still put its tensors in the caller's memory, where a caller that
        // reads its buffer rather than the message looks.
        byte[] payload = new byte[1 << 20];
        ThreadLocalRandom.current().nextBytes(payload);
        ConnectionHandler pushThenAnswer = connection -> {
            try {
                while (true) {
                    Message request = connection.receive();
                    if (request.data().longValue() == 1) {
                        connection.send(Message.of(MessageType.KV_CACHE,
                                Tensor.ofBytes(DType.U8, payload, payload.length)));
                    }
                    connection.send(Message.builder(MessageType.KV_INDEX).tensor("data", request.data())
                            .replyTo(request).build());
                }
            } catch (ConnectionClosedException done) {
                // the client left
            }
        };
        try (TcpServer server = TcpServer.bind(0).serve(pushThenAnswer);
                Connection client = TcpClient.connect("127.0.0.1", server.port());
                Arena arena = Arena.ofConfined()) {
            // the first answer shows that this peer sets reply_to, so the push is not taken for the second's
            for (long call = 0; call < 2; call++) {
                assertThat(client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(call))).data().longValue())
                        .isEqualTo(call);
            }
            MemorySegment own = arena.allocate(2 << 20, 4096);
            Message message = client.receive(SegmentAllocator.slicingAllocator(own));
            long at = message.data().data().address() - own.address();
            assertThat(at).as("offset of the tensor in the receiver's memory").isBetween(0L, own.byteSize() - payload.length);
            assertThat(own.asSlice(at, payload.length).toArray(ValueLayout.JAVA_BYTE)).isEqualTo(payload);
        }
    }
}
