package netutils.serde.json;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.ConnectionHandler;
import netutils.api.testing.InMemoryConnection;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.RemoteErrorException;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;

class InMemoryConnectionTest {

    @Test
    void handlersCanBeTestedWithoutSockets() throws Exception {
        ConnectionHandler doubler = ConnectionHandler.ofRequests(request -> Message.of(MessageType.KV_INDEX,
                Tensor.scalar(request.data().longValue() * 2)));
        try (Connection client = InMemoryConnection.serve(doubler)) {
            Message reply = client.request(Message.builder(MessageType.KV_INDEX).tensor("data", Tensor.scalar(21)).id("q").build());
            assertThat(reply.data().longValue()).isEqualTo(42);
            assertThat(reply.replyTo()).contains("q");
        }
    }

    @Test
    void everyMessageRoundTripsThroughTheCodec() throws Exception {
        InMemoryConnection.Pair pair = InMemoryConnection.pair();
        for (Message message : Samples.fiveTypes()) {
            pair.client().send(message);
            assertThat(pair.server().receive()).isEqualTo(message);
        }
    }

    @Test
    void timeoutsCloseAndErrorsBehaveLikeTcp() throws Exception {
        InMemoryConnection.Pair pair = InMemoryConnection.pair();
        assertThat(pair.server().receive(Duration.ofMillis(20))).isEmpty();
        pair.server().send(Message.error("BAD_MAGIC", "nope"));
        assertThatThrownBy(() -> pair.client().receive()).isInstanceOf(RemoteErrorException.class)
                .hasMessageContaining("BAD_MAGIC: nope");
        pair.client().close();
        assertThatThrownBy(() -> pair.server().receive()).isInstanceOf(ConnectionClosedException.class);
        assertThatThrownBy(() -> pair.server().receive()).isInstanceOf(ConnectionClosedException.class);
    }

    @Test
    void handlerFailureReachesTheClientAsAnError() {
        Connection client = InMemoryConnection.serve(ConnectionHandler.ofRequests(request -> {
            throw new IllegalStateException("model not loaded");
        }));
        assertThatThrownBy(() -> client.request(Message.of(MessageType.MASK)))
                .isInstanceOf(RemoteErrorException.class).hasMessageContaining("HANDLER_FAILED: model not loaded");
    }
}
