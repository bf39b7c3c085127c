package netutils.transport.tcp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.ConnectionHandler;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;

/**
 * How server connections end: a server's reader waits for the next frame in a plain blocking read (no polling),
 * so the idle timeout and a graceful shutdown have to end that wait from outside, and must neither lose a
 * message that has arrived nor leave a waiting connection behind.
 */
class TcpLifecycleTest {
    private static final InetSocketAddress LOOPBACK = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);

    @Test
    void aConnectionThatSendsNothingIsClosedAfterTheIdleTimeoutAndAnActiveOneIsNot() throws Exception {
        ConnectionHandler echo = ConnectionHandler.ofRequests(request -> request);
        try (TcpServer server = TcpServer.bind(LOOPBACK, TcpServerOptions.builder().idleTimeout(Duration.ofMillis(400))
                .build()).serve(echo);
                Connection idle = TcpClient.connect("127.0.0.1", server.port());
                Connection busy = TcpClient.connect("127.0.0.1", server.port())) {
            long start = System.nanoTime();
            // The busy client calls every 100 ms for 1.2 s: three idle timeouts, never idle for one.
            for (int i = 0; i < 12; i++) {
                assertThat(busy.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(i))).data().longValue()).isEqualTo(i);
                Thread.sleep(100);
            }
            assertThat(busy.isOpen()).isTrue();
            // The idle one was closed by the server: its receive sees the end at once, well before 1.2 s had passed.
            assertThatThrownBy(() -> idle.receive(Duration.ofSeconds(5)))
                    .isInstanceOf(ConnectionClosedException.class).hasMessageContaining("closed the connection");
            assertThat(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start)).isLessThan(5000);
            assertThat(server.connectionCount()).isEqualTo(1);
        }
    }

    @Test
    void closingTheServerAnswersTheRequestsThatArrivedAndEndsWaitingConnectionsAtOnce() throws Exception {
        CountDownLatch handling = new CountDownLatch(1);
        ConnectionHandler slow = ConnectionHandler.ofRequests(request -> {
            if (request.type().equals(MessageType.MASK)) {
                handling.countDown();
                Thread.sleep(500); // the server is told to close meanwhile
            }
            return request;
        });
        TcpServer server = TcpServer.bind(LOOPBACK, TcpServerOptions.builder().shutdownGrace(Duration.ofSeconds(20))
                .build()).serve(slow);
        try (Connection waiting = TcpClient.connect("127.0.0.1", server.port());
                Connection calling = TcpClient.connect("127.0.0.1", server.port())) {
            assertThat(waiting.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(1))).data().longValue()).isEqualTo(1);
            CompletableFuture<Message> inHandler = calling.requestAsync(Message.of(MessageType.MASK, Tensor.scalar(2)));
            CompletableFuture<Message> queued = calling.requestAsync(Message.of(MessageType.KV_INDEX, Tensor.scalar(3)));
            assertThat(handling.await(10, TimeUnit.SECONDS)).isTrue();
            long start = System.nanoTime();
            server.close();
            long closeMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            // Both requests had arrived before close: both are answered, the second after the slow first one.
            assertThat(inHandler.get(5, TimeUnit.SECONDS).data().longValue()).isEqualTo(2);
            assertThat(queued.get(5, TimeUnit.SECONDS).data().longValue()).isEqualTo(3);
            // close() waited for the slow handler only, not for the grace period: the idle connection's wait was
            // ended at once, without polling.
            assertThat(closeMillis).isBetween(300L, 5000L);
            assertThatThrownBy(() -> waiting.receive(Duration.ofSeconds(5)))
                    .isInstanceOf(ConnectionClosedException.class);
            assertThat(server.connectionCount()).isZero();
        }
    }

    @Test
    void interruptingAClientWaitingForAMessageEndsTheWaitAndClosesTheConnection() throws Exception {
        ConnectionHandler silent = connection -> {
            while (connection.isOpen()) {
                connection.receive(Duration.ofMillis(100));
            }
        };
        try (TcpServer server = TcpServer.bind(LOOPBACK, TcpServerOptions.builder().build()).serve(silent);
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            CompletableFuture<Throwable> outcome = new CompletableFuture<>();
            Thread waiting = Thread.ofPlatform().start(() -> {
                try {
                    client.receive();
                    outcome.complete(null);
                } catch (Throwable e) {
                    outcome.complete(e);
                }
            });
            Thread.sleep(200); // in its wait
            waiting.interrupt();
            // As with a blocking socket: the wait ends at once (it must not spin) and the connection is closed.
            assertThat(outcome.get(5, TimeUnit.SECONDS)).isInstanceOf(java.io.InterruptedIOException.class)
                    .hasMessageContaining("interrupted");
            waiting.join(5000);
            assertThat(waiting.isAlive()).isFalse();
            assertThat(client.isOpen()).isFalse();
        }
    }
}
