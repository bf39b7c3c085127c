package netutils.bench;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Method;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.ConnectionHandler;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import netutils.transport.tcp.TcpClient;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServerOptions;
import netutils.transport.tcp.TcpServer;

/**
 * Everything the benchmark knows about netutils, through its public API only, in one class so that it is easy
 * to adapt when the API moves. Two parts of the API are looked up at run time because they are being added:
 * {@link #release} (an explicit release of a received message's pooled memory: {@code Message.close()} or
 * {@code release()}) and {@link #requestAsync} ({@code Connection.requestAsync(Message)}); without them the
 * benchmark says "not available" instead of measuring something else under their name.
 */
final class NetutilsStack extends Stack {
    /** How the 256 MiB sink receives. */
    enum Receive {
        /** {@code receive()}, then the message is released (where the API can) as the README shows. */
        DEFAULT,
        /** {@code receive()}, and the message is only dropped, never released. */
        DEFAULT_NOT_RELEASED,
        /** {@code receive(SegmentAllocator)} into one reused buffer, as the raw socket reads. */
        REUSED,
        /**
         * A server made with {@code ConnectionHandler.ofRequests}, the README's server pattern: the handler only
         * answers, and the adapter closes each request once answered.
         */
        HANDLER
    }

    private static final MethodHandle RELEASE = releaseMethod();
    private static final MethodHandle REQUEST_ASYNC = requestAsyncMethod();

    private final Receive receive;
    private final TcpServer server;
    private final Connection client;
    private final Message message;

    /**
     * A sink receiving {@code payload}-sized {@code KV_cache} messages as {@code receive} says, or, when
     * {@code receive} is null, an 8 KiB {@code hidden_state} echo. Default options apart from the client's
     * serializer, and virtual server threads only when {@code virtualServer}.
     */
    NetutilsStack(String id, String label, String serializer, Receive receive, boolean virtualServer, MemorySegment payload,
            MemorySegment sinkMemory, int small) throws IOException {
        super(id, label);
        this.receive = receive;
        // The default server threads: platform threads for the first connections, virtual beyond. The
        // "virtual-thread server" variant asks for virtual threads only, to show what that choice costs.
        TcpServerOptions.Builder serverOptions = TcpServerOptions.builder();
        if (virtualServer) {
            serverOptions.connectionThreads(Thread.ofVirtual().factory());
        }
        ConnectionHandler handler;
        if (receive == null) {
            handler = ConnectionHandler.ofRequests(request -> {
                Placement.serverThread();
                return Message.of(MessageType.HIDDEN_STATE, request.data());
            });
        } else if (receive == Receive.HANDLER) {
            handler = ConnectionHandler.ofRequests(request -> {
                Placement.serverThread();
                return received(request.tensorBytes());
            });
        } else {
            handler = connection -> sink(connection, receive, sinkMemory);
        }
        server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), serverOptions.build()).serve(handler);
        client = TcpClient.connect("127.0.0.1", server.port(), TcpOptions.builder().serializer(serializer).build());
        message = receive != null
                ? Message.of(MessageType.KV_CACHE, Tensor.wrap(DType.BF16, payload, payload.byteSize() / 2))
                : Message.of(MessageType.HIDDEN_STATE, Tensor.zeros(DType.F16, 1, 1, small / 2));
    }

    private static void sink(Connection connection, Receive receive, MemorySegment sinkMemory) throws IOException {
        try {
            while (true) {
                Message request = receive == Receive.REUSED
                        ? connection.receive(SegmentAllocator.slicingAllocator(sinkMemory))
                        : connection.receive();
                Placement.serverThread();
                long bytes = request.tensorBytes();
                if (receive == Receive.DEFAULT) {
                    release(request);
                }
                connection.send(received(bytes));
            }
        } catch (ConnectionClosedException done) {
            // the benchmark finished
        }
    }

    /** A sink's answer: how many tensor bytes the message it answers brought, which the client checks. */
    private static Message received(long bytes) {
        return Message.builder(MessageType.KV_INDEX).meta("bytes", Long.toString(bytes)).build();
    }

    @Override
    boolean large() {
        return receive != null;
    }


    @Override
    void sendLarge() throws IOException {
        Message reply = client.request(message);
        String bytes = reply.meta("bytes").orElse("");
        release(reply);
        if (!bytes.equals(Long.toString(message.tensorBytes()))) {
            throw new IllegalStateException(id + ": server saw " + bytes + " bytes");
        }
    }

    @Override
    void roundTrip() throws IOException {
        Message reply = client.request(message);
        long bytes = reply.data().byteSize();
        release(reply);
        if (bytes != message.tensorBytes()) {
            throw new IllegalStateException(id + ": bad answer " + reply);
        }
    }

    @Override
    public void close() throws IOException {
        client.close();
        server.close();
    }

    // ------------------------------------------------------------------ parts of the API being added

    /** Whether a received message can be released explicitly (issue 10). */
    static boolean canRelease() {
        return RELEASE != null;
    }

    /** Releases a received message's memory where the API has a way to; otherwise leaves it to the GC. */
    static void release(Message message) {
        if (RELEASE == null) {
            return;
        }
        try {
            RELEASE.invoke(message);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable e) {
            throw new IllegalStateException("release failed", e);
        }
    }

    private static MethodHandle releaseMethod() {
        for (String name : new String[] {"close", "release"}) {
            try {
                Method method = Message.class.getMethod(name);
                return MethodHandles.publicLookup().unreflect(method).asType(MethodType.methodType(void.class, Message.class));
            } catch (NoSuchMethodException | IllegalAccessException absent) {
                // not in this version of the API
            }
        }
        return null;
    }

    /** Whether {@code Connection.requestAsync(Message)} exists (issue 11). */
    static boolean hasRequestAsync() {
        return REQUEST_ASYNC != null;
    }

    /** One asynchronous 8 KiB call on this echo stack's connection; its answer is released when it arrives. */
    CompletableFuture<?> callAsync() {
        try {
            @SuppressWarnings("unchecked")
            CompletionStage<Message> answer = (CompletionStage<Message>) REQUEST_ASYNC.invoke(client, message);
            return answer.thenAccept(NetutilsStack::release).toCompletableFuture();
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable e) {
            return CompletableFuture.failedFuture(e);
        }
    }

    private static MethodHandle requestAsyncMethod() {
        try {
            Method method = Connection.class.getMethod("requestAsync", Message.class);
            if (!CompletionStage.class.isAssignableFrom(method.getReturnType())) {
                return null;
            }
            return MethodHandles.publicLookup().unreflect(method)
                    .asType(MethodType.methodType(Object.class, Connection.class, Message.class));
        } catch (NoSuchMethodException | IllegalAccessException absent) {
            return null;
        }
    }

    // ------------------------------------------------------------------ memory probe (child JVM and its sender)

    /** The receiving side of the memory probe: default options, default {@code receive()}, one message at a time. */
    static final class ProbeServer implements AutoCloseable {
        private final TcpServer server;
        private Connection connection;

        ProbeServer() throws IOException {
            // Frames up to the protocol's limit: the 1 GiB probe is exactly at the default maximum otherwise.
            server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0),
                    TcpOptions.builder().maxFrameBytes(2L << 30).build());
        }

        int port() {
            return server.port();
        }

        void accept() throws IOException {
            connection = server.accept();
        }

        /** Receives one message, reads its last byte (so every page is really there), releases it, answers. */
        byte receiveOne() throws IOException {
            Message message = connection.receive();
            Tensor tensor = message.data();
            byte last = tensor.data().get(ValueLayout.JAVA_BYTE, tensor.byteSize() - 1);
            release(message);
            connection.send(Message.of(MessageType.KV_INDEX));
            return last;
        }

        @Override
        public void close() throws IOException {
            if (connection != null) {
                connection.close();
            }
            server.close();
        }
    }

    /** The probe's sender: {@code count} messages of {@code data}, each answered before the next. */
    static void sendToProbe(int port, MemorySegment data, int count) throws IOException {
        try (Connection connection = TcpClient.connect("127.0.0.1", port,
                TcpOptions.builder().maxFrameBytes(2L << 30).build())) {
            Message message = Message.of(MessageType.KV_CACHE, Tensor.wrap(DType.U8, data, data.byteSize()));
            for (int i = 0; i < count; i++) {
                release(connection.request(message));
            }
        }
    }
}
