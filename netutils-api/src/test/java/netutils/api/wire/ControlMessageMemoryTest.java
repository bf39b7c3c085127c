package netutils.api.wire;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.SegmentAllocator;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.RemoteErrorException;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;

/**
 * Messages that the connection consumes itself (keepalive pings and pongs, error messages turned into exceptions)
 * never reach a caller who could close them: the connection must give their pooled memory back itself. A peer that
 * attaches a tensor to them would otherwise hold that memory until the garbage collector finds it.
 */
class ControlMessageMemoryTest {
    private static final long TENSOR_BYTES = 1 << 20; // pooled in chunks (over Tensor.HEAP_LIMIT): shows in lentBytes

    /** A connection whose peer is this test: it "receives" the messages queued here, in pooled memory as decoded. */
    private static final class ScriptedConnection extends AbstractConnection {
        final BlockingQueue<Message> arriving = new LinkedBlockingQueue<>();
        final List<Message> sent = new CopyOnWriteArrayList<>();

        ScriptedConnection() {
            super("scripted peer", Duration.ofSeconds(10), Duration.ZERO, Duration.ZERO);
        }

        /** Queues {@code builder}'s message with a 1 MiB tensor lent from the shared pool, as a decoder makes it. */
        void arrives(Message.Builder builder) {
            TensorPool.Lending lending = TensorPool.SHARED.lend("scripted peer");
            Tensor junk = Tensor.wrap(DType.U8, lending.allocate(TENSOR_BYTES, 64), TENSOR_BYTES);
            arriving.add(builder.tensor("junk", junk).lease(lending.lease()).build());
        }

        @Override
        protected void writeMessage(Message message) {
            sent.add(message);
        }

        @Override
        protected Message readMessage(long waitNanos, SegmentAllocator tensorMemory) throws java.io.IOException {
            try {
                return arriving.poll(waitNanos, TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new java.io.InterruptedIOException();
            }
        }

        @Override
        protected void closeTransport() {
        }
    }

    @Test
    void aPingOrPongCarryingATensorGivesItsMemoryBackAtOnce() throws Exception {
        long before = TensorPool.SHARED.lentBytes();
        try (ScriptedConnection connection = new ScriptedConnection()) {
            connection.arrives(Message.builder(AbstractConnection.PING).id("p1"));
            connection.arrives(Message.builder(AbstractConnection.PONG).replyTo("p0"));
            assertThat(TensorPool.SHARED.lentBytes()).isEqualTo(before + 2 * TENSOR_BYTES);

            assertThat(connection.receive(Duration.ofMillis(200))).as("control messages are not handed over").isEmpty();
            assertThat(TensorPool.SHARED.lentBytes()).as("pooled bytes still lent").isEqualTo(before);
            assertThat(connection.sent).singleElement().satisfies(pong -> {
                assertThat(pong.type()).isEqualTo(AbstractConnection.PONG);
                assertThat(pong.replyTo()).contains("p1");
            });
        }
    }

    @Test
    void anErrorCarryingATensorGivesItsMemoryBackWhenItBecomesAnException() throws Exception {
        long before = TensorPool.SHARED.lentBytes();
        try (ScriptedConnection connection = new ScriptedConnection()) {
            // answering a call: the call fails with the peer's error
            CompletableFuture<Message> call = connection.requestAsync(Message.builder(MessageType.KV_INDEX).build());
            String id = connection.sent.getFirst().id().orElseThrow();
            connection.arrives(Message.error("BAD_INPUT", "no").toBuilder().replyTo(id));
            assertThatThrownBy(() -> call.get(10, TimeUnit.SECONDS)).isInstanceOf(ExecutionException.class)
                    .cause().isInstanceOf(RemoteErrorException.class).hasMessageContaining("BAD_INPUT");
            assertThat(TensorPool.SHARED.lentBytes()).as("pooled bytes still lent after a failed call")
                    .isEqualTo(before);

            // answering nothing: the receiver gets the exception
            connection.arrives(Message.error("GOING_AWAY", "bye").toBuilder());
            assertThatThrownBy(connection::receive).isInstanceOf(RemoteErrorException.class)
                    .hasMessageContaining("GOING_AWAY");
            assertThat(TensorPool.SHARED.lentBytes()).as("pooled bytes still lent after a raised error")
                    .isEqualTo(before);
        }
    }
}
