package netutils.transport.tcp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
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

    /** An echo (the reply shares the request's memory) that also keeps each request and a copy of its tensor. */
    private record Keeper(List<Message> kept, List<Tensor> copies) implements RequestHandler {
        Keeper() {
            this(new CopyOnWriteArrayList<>(), new CopyOnWriteArrayList<>());
        }

        @Override
        public Message handle(Message request) {
            assertThat(request.isPooled()).as("a large request is received into pooled memory").isTrue();
            kept.add(request);
            Tensor data = request.data();
            copies.add(Tensor.copyOf(data.dtype(), data.data(), data.shape()));
            return Message.of(MessageType.HIDDEN_STATE, data);
        }
    }

    private static void assertReleasedAfterAnswer(ConnectionHandler handler, Keeper keeper) throws Exception {
        try (TcpServer server = TcpServer.bind(0).serve(handler);
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            for (int seed = 1; seed <= 4; seed++) {
                try (Message reply = client.request(request(seed))) {
                    assertHolds(reply.data(), seed); // sent from the request's memory before it was closed
                }
            }
        }
        assertThat(keeper.kept()).hasSize(4);
        for (int seed = 1; seed <= 4; seed++) {
            Tensor kept = keeper.kept().get(seed - 1).data();
            awaitClosed(kept);
            assertThatThrownBy(kept::toByteArray).as("request %d, kept past its answer", seed)
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("message that was closed");
            assertHolds(keeper.copies().get(seed - 1), seed);
        }
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
        assertReleasedAfterAnswer(ConnectionHandler.ofRequests(keeper), keeper);
    }

    @Test
    void ofConcurrentRequestsClosesEachRequestOnceItsReplyIsSent() throws Exception {
        Keeper keeper = new Keeper();
        assertReleasedAfterAnswer(ConnectionHandler.ofConcurrentRequests(keeper, 4), keeper);
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
