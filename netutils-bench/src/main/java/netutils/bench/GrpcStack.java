package netutils.bench;

import io.grpc.CallOptions;
import io.grpc.Drainable;
import io.grpc.KnownLength;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * gRPC-java as a user would set it up without protobuf: unary calls of a {@link MethodDescriptor} whose
 * marshaller moves {@code byte[]} as they are, the maximum inbound message size raised to fit 256 MiB, plaintext
 * HTTP/2 over the Netty transport gRPC ships (with its own epoll). Tuned as gRPC's performance notes advise:
 * the marshaller's stream is {@link Drainable} and {@link KnownLength} (one bulk write, one exact-size array on
 * parse, as protobuf's marshaller does), and the server runs its handlers on the transport thread
 * ({@code directExecutor}: these handlers never block). The sink answers each request with its length.
 */
final class GrpcStack extends Stack {
    private static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(byte[] value) {
            return new BytesStream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
            try {
                if (stream instanceof KnownLength) {
                    byte[] bytes = new byte[stream.available()];
                    if (stream.readNBytes(bytes, 0, bytes.length) != bytes.length) {
                        throw new IOException("short message");
                    }
                    return bytes;
                }
                return stream.readAllBytes();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    };

    private static final MethodDescriptor<byte[], byte[]> SINK = method("Sink");
    private static final MethodDescriptor<byte[], byte[]> ECHO = method("Echo");

    private final boolean large;
    private final Server server;
    private final ManagedChannel channel;
    private final byte[] message;

    /** A sink for messages of {@code payload}'s size, or an 8 KiB echo when {@code payload} is null. */
    GrpcStack(String id, String label, MemorySegment payload, int small) throws IOException {
        super(id, label);
        this.large = payload != null;
        // A byte[] is what this marshaller sends: the payload is copied to the heap once, outside the measurement.
        message = large ? payload.toArray(ValueLayout.JAVA_BYTE) : new byte[small];
        int maxMessage = message.length + (1 << 20);
        ServerServiceDefinition service = ServerServiceDefinition.builder("bench")
                .addMethod(SINK, ServerCalls.asyncUnaryCall((byte[] request, StreamObserver<byte[]> answer) -> {
                    Placement.serverThread();
                    answer.onNext(ByteBuffer.allocate(4).putInt(0, request.length).array());
                    answer.onCompleted();
                }))
                .addMethod(ECHO, ServerCalls.asyncUnaryCall((byte[] request, StreamObserver<byte[]> answer) -> {
                    Placement.serverThread();
                    answer.onNext(request);
                    answer.onCompleted();
                }))
                .build();
        server = NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))
                .directExecutor().maxInboundMessageSize(maxMessage).addService(service).build().start();
        channel = NettyChannelBuilder.forAddress(new InetSocketAddress(InetAddress.getLoopbackAddress(), server.getPort()))
                .usePlaintext().maxInboundMessageSize(maxMessage).build();
    }

    private static MethodDescriptor<byte[], byte[]> method(String name) {
        return MethodDescriptor.<byte[], byte[]>newBuilder().setType(MethodDescriptor.MethodType.UNARY)
                .setFullMethodName(MethodDescriptor.generateFullMethodName("bench", name))
                .setRequestMarshaller(BYTES).setResponseMarshaller(BYTES).build();
    }

    /** A byte[] that gRPC drains into its buffers in one write and knows the length of. */
    private static final class BytesStream extends ByteArrayInputStream implements Drainable, KnownLength {
        BytesStream(byte[] bytes) {
            super(bytes);
        }

        @Override
        public int drainTo(OutputStream target) throws IOException {
            int n = count - pos;
            target.write(buf, pos, n);
            pos = count;
            return n;
        }
    }

    @Override
    boolean large() {
        return large;
    }


    @Override
    void sendLarge() {
        byte[] answer = ClientCalls.blockingUnaryCall(channel, SINK, CallOptions.DEFAULT, message);
        if (ByteBuffer.wrap(answer).getInt() != message.length) {
            throw new IllegalStateException(id + ": bad answer");
        }
    }

    @Override
    void roundTrip() {
        byte[] answer = ClientCalls.blockingUnaryCall(channel, ECHO, CallOptions.DEFAULT, message);
        if (answer.length != message.length) {
            throw new IllegalStateException(id + ": bad answer");
        }
    }

    /** One asynchronous 8 KiB call, for the calls-in-flight row. */
    CompletableFuture<?> callAsync() {
        CompletableFuture<byte[]> done = new CompletableFuture<>();
        ClientCalls.asyncUnaryCall(channel.newCall(ECHO, CallOptions.DEFAULT), message, new StreamObserver<byte[]>() {
            @Override
            public void onNext(byte[] value) {
                done.complete(value);
            }

            @Override
            public void onError(Throwable t) {
                done.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
                // onNext completed it
            }
        });
        return done;
    }

    @Override
    public void close() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
}
