package netutils.transport.tcp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.ConnectionHandler;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(60)
class TcpRoundTripTest {

    private static final ConnectionHandler ECHO = ConnectionHandler.ofRequests(request -> request);

    @Test
    void allFiveMessageTypesRoundTripOverLoopback() throws Exception {
        try (TcpServer server = TcpServer.bind(0).serve(ECHO);
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            for (Message message : TcpTestSupport.fiveTypes(new Random(1))) {
                client.send(message);
                Message echoed = client.receive();
                assertThat(echoed.type()).isEqualTo(message.type());
                assertThat(echoed.tensors()).isEqualTo(message.tensors());
                for (String name : message.tensors().keySet()) {
                    assertThat(echoed.tensor(name).toByteArray()).isEqualTo(message.tensor(name).toByteArray());
                }
            }
        }
    }

    @Test
    void acceptServesOneConnectionTheOriginalWay() throws Exception {
        try (TcpServer server = TcpServer.bind(0)) {
            Thread serverSide = Thread.ofVirtual().start(() -> {
                try (Connection accepted = server.accept()) {
                    Message request = accepted.receive();
                    accepted.send(Message.of(MessageType.KV_INDEX, Tensor.scalar(request.data().longValue() + 1)));
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            try (Connection client = TcpClient.connect("127.0.0.1", server.port())) {
                Message reply = client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(41)));
                assertThat(reply.data().longValue()).isEqualTo(42);
            }
            serverSide.join();
            assertThat(server.connectionCount()).as("closed connections are forgotten").isZero();
        }
    }

    @Test
    void fiftyConcurrentClientsTimesAHundredMessagesAreAllAnsweredCorrectly() throws Exception {
        ConnectionHandler addOne = ConnectionHandler.ofRequests(request -> {
            float[] values = request.data().toFloatArray();
            for (int i = 0; i < values.length; i++) {
                values[i] += 1f;
            }
            return Message.builder(MessageType.HIDDEN_STATE).tensor("data", Tensor.ofFloats(values, request.data().shape()))
                    .meta("client", request.meta("client").orElseThrow()).build();
        });
        try (TcpServer server = TcpServer.bind(0).serve(addOne);
                ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<Integer>> results = new ArrayList<>();
            for (int c = 0; c < 50; c++) {
                int clientId = c;
                results.add(clients.submit((Callable<Integer>) () -> {
                    int correct = 0;
                    try (Connection connection = TcpClient.connect("127.0.0.1", server.port())) {
                        for (int m = 0; m < 100; m++) {
                            float[] values = new float[256];
                            for (int i = 0; i < values.length; i++) {
                                values[i] = clientId * 1000 + m + i * 0.5f;
                            }
                            Message reply = connection.request(Message.builder(MessageType.HIDDEN_STATE)
                                    .tensor("data", Tensor.ofFloats(values, 1, 256)).meta("client", "" + clientId)
                                    .id(clientId + "-" + m).build());
                            float[] got = reply.data().toFloatArray();
                            boolean ok = reply.replyTo().orElseThrow().equals(clientId + "-" + m)
                                    && reply.meta("client").orElseThrow().equals("" + clientId);
                            for (int i = 0; i < values.length; i++) {
                                ok &= got[i] == values[i] + 1f;
                            }
                            correct += ok ? 1 : 0;
                        }
                    }
                    return correct;
                }));
            }
            int total = 0;
            for (Future<Integer> result : results) {
                total += result.get();
            }
            assertThat(total).isEqualTo(50 * 100);
        }
    }

    @Test
    void receiveWithTimeoutReturnsEmptyAndTheConnectionStaysUsable() throws Exception {
        try (TcpServer server = TcpServer.bind(0)) {
            Thread.ofVirtual().start(() -> {
                try (Connection accepted = server.accept()) {
                    Thread.sleep(300);
                    accepted.send(Message.of(MessageType.KV_INDEX, Tensor.scalar(5)));
                    accepted.receive();
                } catch (Exception ignored) {
                    // the client closes
                }
            });
            try (Connection client = TcpClient.connect("127.0.0.1", server.port())) {
                assertThat(client.receive(Duration.ofMillis(50))).isEmpty();
                assertThat(client.receive(Duration.ofSeconds(10))).get()
                        .extracting(m -> m.data().longValue()).isEqualTo(5L);
            }
        }
    }

    @Test
    void cleanCloseBetweenMessagesIsAConnectionClosedException() throws Exception {
        try (TcpServer server = TcpServer.bind(0)) {
            Thread.ofVirtual().start(() -> {
                try (Connection accepted = server.accept()) {
                    accepted.send(Message.of(MessageType.MASK));
                } catch (IOException ignored) {
                    // nothing to do
                }
            });
            try (Connection client = TcpClient.connect("127.0.0.1", server.port())) {
                assertThat(client.receive().type()).isEqualTo(MessageType.MASK);
                assertThatThrownBy(client::receive).isInstanceOf(ConnectionClosedException.class)
                        .hasMessageContaining("closed the connection");
                assertThat(client.isOpen()).isFalse();
                assertThatThrownBy(() -> client.send(Message.of(MessageType.MASK)))
                        .isInstanceOf(ConnectionClosedException.class);
            }
        }
    }

    @Test
    void receiveIntoCallerOwnedMemoryReusesOneBuffer() throws Exception {
        try (TcpServer server = TcpServer.bind(0).serve(ECHO);
                Connection client = TcpClient.connect("127.0.0.1", server.port());
                java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            java.lang.foreign.MemorySegment buffer = arena.allocate(1 << 20, 64);
            for (Message message : TcpTestSupport.fiveTypes(new Random(9))) {
                client.send(message);
                Message echoed = client.receive(java.lang.foreign.SegmentAllocator.slicingAllocator(buffer));
                assertThat(echoed.tensors()).isEqualTo(message.tensors());
                for (Tensor tensor : echoed.tensors().values()) {
                    // the tensor lives inside the caller's buffer
                    assertThat(tensor.data().address()).isBetween(buffer.address(), buffer.address() + buffer.byteSize());
                }
            }
            java.lang.foreign.MemorySegment tooSmall = arena.allocate(100, 64);
            client.send(Message.of(MessageType.HIDDEN_STATE, Tensor.zeros(netutils.api.DType.F32, 1000)));
            assertThatThrownBy(() -> client.receive(java.lang.foreign.SegmentAllocator.slicingAllocator(tooSmall)))
                    .isInstanceOf(IOException.class)
                    .hasMessageContaining("could not provide 4000 bytes for tensor 'data'");
            assertThat(client.isOpen()).isFalse();
        }
    }

    @Test
    void connectionsAreServedOnTheThreadsTheOptionsSay() throws Exception {
        ConnectionHandler whichThread = ConnectionHandler.ofRequests(request -> Message.builder(MessageType.MASK)
                .meta("virtual", "" + Thread.currentThread().isVirtual()).build());
        TcpServerOptions virtual = TcpServerOptions.builder().connectionThreads(Thread.ofVirtual().factory()).build();
        try (TcpServer byDefault = TcpServer.bind(0).serve(whichThread);
                TcpServer onVirtual = TcpServer.bind(new InetSocketAddress("127.0.0.1", 0), virtual).serve(whichThread);
                Connection first = TcpClient.connect("127.0.0.1", byDefault.port());
                Connection second = TcpClient.connect("127.0.0.1", onVirtual.port())) {
            // By default the first connections get platform threads, which wake sooner (see TcpServerOptions).
            assertThat(first.request(Message.of(MessageType.MASK)).meta("virtual")).contains("false");
            assertThat(second.request(Message.of(MessageType.MASK)).meta("virtual")).contains("true");
        }
    }

    @Test
    void unreachablePeerIsAClearConnectException() throws IOException {
        int port;
        try (ServerSocket probe = new ServerSocket(0)) {
            port = probe.getLocalPort();
        }
        assertThatThrownBy(() -> TcpClient.connect("127.0.0.1", port))
                .isInstanceOf(ConnectException.class).hasMessageContaining("cannot connect to /127.0.0.1:" + port);
    }

    @Test
    void serverAnswersInTheRequestsSerializerAndClosesConnectionsOnClose() throws Exception {
        TcpServer server = TcpServer.bind(new InetSocketAddress("127.0.0.1", 0), TcpOptions.defaults()).serve(ECHO);
        Connection client = TcpClient.connect("127.0.0.1", server.port());
        client.request(Message.of(MessageType.MASK));
        assertThat(server.connectionCount()).isEqualTo(1);
        server.close();
        assertThatThrownBy(client::receive).isInstanceOf(ConnectionClosedException.class);
        client.close();
    }
}
