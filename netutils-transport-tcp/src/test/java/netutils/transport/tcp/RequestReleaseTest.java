package netutils.transport.tcp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import netutils.api.Connection;
import netutils.api.ConnectionHandler;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.RemoteErrorException;
import netutils.api.RequestHandler;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;

/**
 * {@link ConnectionHandler#ofRequests} and {@link ConnectionHandler#ofConcurrentRequests} close each request once
 * it is answered, so that large requests are received into reused memory: what the handler kept refuses access
 * instead of showing a later request's bytes, and what it copied stays its own.
 */
class RequestReleaseTest {
    /** Above the heap limit, so that requests are received into pooled native memory. */
    private static final int LARGE = 256 * 1024;

    private static Message request(int seed) {
        MemorySegment bytes = MemorySegment.ofArray(new byte[LARGE]);
        for (int i = 0; i < LARGE; i++) {
            bytes.set(ValueLayout.JAVA_BYTE, i, (byte) (seed * 31 + i * 7));
        }
        return Message.of(MessageType.HIDDEN_STATE, Tensor.copyOf(DType.U8, bytes, LARGE));
    }

    private static void assertHolds(Tensor tensor, int seed) {
        byte[] bytes = tensor.toByteArray();
        assertThat(bytes).hasSize(LARGE);
        for (int i = 0; i < LARGE; i += 997) {
            assertThat(bytes[i]).as("byte %d of request %d", i, seed).isEqualTo((byte) (seed * 31 + i * 7));
        }
    }

    /**
     * An echo (the reply shares the request's memory) that also keeps each request, a copy of its tensor and the
     * address of the memory it arrived in, by the request's seed.
     */
    private record Keeper(Map<Integer, Message> kept, Map<Integer, Tensor> copies, Set<Long> addresses)
            implements RequestHandler {
        Keeper() {
            this(new ConcurrentHashMap<>(), new ConcurrentHashMap<>(), ConcurrentHashMap.newKeySet());
        }

        @Override
        public Message handle(Message request) {
            assertThat(request.isPooled()).as("a large request is received into pooled memory").isTrue();
            int seed = Integer.parseInt(request.meta("seed").orElseThrow());
            kept.put(seed, request);
            Tensor data = request.data();
            copies.put(seed, Tensor.copyOf(data.dtype(), data.data(), data.shape()));
            addresses.add(data.data().address());
            return Message.of(MessageType.HIDDEN_STATE, data);
        }
    }

    private static final int REQUESTS = 8;

    /** Sends {@link #REQUESTS} requests, {@code inFlight} at a time, and checks what the handler kept. */
    private static void assertReleasedAfterAnswer(ConnectionHandler handler, Keeper keeper, int inFlight)
            throws Exception {
        try (TcpServer server = TcpServer.bind(0).serve(handler);
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            for (int first = 1; first <= REQUESTS; first += inFlight) {
                Map<Integer, CompletableFuture<Message>> replies = new LinkedHashMap<>();
                for (int seed = first; seed < first + inFlight; seed++) {
                    replies.put(seed, client.requestAsync(request(seed).toBuilder().meta("seed", "" + seed).build()));
                }
                for (var reply : replies.entrySet()) {
                    try (Message answer = reply.getValue().get(30, TimeUnit.SECONDS)) {
                        assertHolds(answer.data(), reply.getKey()); // sent from the request's memory before its close
                    }
                }
            }
        }
        assertThat(keeper.kept()).hasSize(REQUESTS);
        for (int seed = 1; seed <= REQUESTS; seed++) {
            Tensor kept = keeper.kept().get(seed).data();
            awaitClosed(kept);
            assertThatThrownBy(kept::toByteArray).as("request %d, kept past its answer", seed)
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("message that was closed");
            assertHolds(keeper.copies().get(seed), seed);
        }
        // The point of closing: later requests are received into the memory of earlier ones, not fresh memory.
        assertThat(keeper.addresses()).as("distinct memory the %d requests arrived in", REQUESTS)
                .hasSizeLessThanOrEqualTo(inFlight + 1);
    }

    /**
     * The server closes a request just after sending its reply, so the client may hold the reply a moment before
     * the request is closed: wait for it (a request that is never closed fails here after ten seconds).
     */
    private static void awaitClosed(Tensor kept) throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!kept.toString().contains("released") && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
    }

    @Test
    void ofRequestsClosesEachRequestOnceItsReplyIsSentAndCopiesStayValid() throws Exception {
        Keeper keeper = new Keeper();
        assertReleasedAfterAnswer(ConnectionHandler.ofRequests(keeper), keeper, 1);
    }

    @Test
    void ofConcurrentRequestsClosesEachRequestOnceItsReplyIsSent() throws Exception {
        Keeper keeper = new Keeper();
        assertReleasedAfterAnswer(ConnectionHandler.ofConcurrentRequests(keeper, 4), keeper, 4);
    }

    @Test
    void aRequestIsClosedAlsoWhenTheHandlerFailsOrAnswersNothing() throws Exception {
        List<Message> kept = new CopyOnWriteArrayList<>();
        ConnectionHandler handler = ConnectionHandler.ofRequests(request -> {
            kept.add(request);
            if (request.meta("fail").isPresent()) {
                throw new IllegalArgumentException("refused on purpose");
            }
            return null; // a request answered with nothing
        });
        try (TcpServer server = TcpServer.bind(0).serve(handler);
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            assertThatThrownBy(() -> client.request(request(1).toBuilder().meta("fail", "yes").build()))
                    .isInstanceOf(RemoteErrorException.class).hasMessageContaining("refused on purpose");
            client.send(request(2));
            // Answered in order: once this call is answered, the request sent before it has been handled.
            assertThatThrownBy(() -> client.request(request(3).toBuilder().meta("fail", "yes").build()))
                    .isInstanceOf(RemoteErrorException.class);
        }
        assertThat(kept).hasSize(3);
        for (Message request : kept) {
            awaitClosed(request.data());
            assertThatThrownBy(() -> request.data().toByteArray()).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("message that was closed");
        }
    }
}
