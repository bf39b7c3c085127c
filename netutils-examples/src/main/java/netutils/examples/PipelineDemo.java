package netutils.examples;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.Arrays;
import netutils.api.Connection;
import netutils.api.ConnectionHandler;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import netutils.transport.tcp.TcpClient;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServer;

/**
 * A split model in three processes' worth of roles, on localhost: the client holds the embeddings, stage 1
 * runs the first layers and forwards each hidden state to stage 2, which runs the last layers; the answer flows
 * back through stage 1. It decodes a number of tokens and prints the per-token round trip through both hops.
 *
 * <pre>
 * usage: PipelineDemo [--tokens 32] [--serializer json|msgpack|kryo]
 * </pre>
 */
public final class PipelineDemo {
    private PipelineDemo() {
    }

    /** Runs the pipeline and prints what each token went through. */
    public static void main(String[] argv) throws Exception {
        Args args = Args.parse(argv, "usage: PipelineDemo [--tokens 32] [--serializer NAME]", "--tokens", "--serializer");
        int tokens = Integer.parseInt(args.get("--tokens", "32"));
        TcpOptions options = TcpOptions.builder().serializer(args.get("--serializer", "json")).build();
        InetSocketAddress loopback = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);

        // Stage 2: the last layers. Answers each hidden state with the transformed one.
        ConnectionHandler lastLayers = ConnectionHandler.ofRequests(request -> Message.builder(MessageType.HIDDEN_STATE)
                .tensor("data", ModelStageHandler.applyLayer(request.data())).meta("stage", "2").build());
        try (TcpServer stage2 = TcpServer.bind(loopback, options).serve(lastLayers);
                TcpServer stage1 = TcpServer.bind(loopback, options).serve(connection -> {
                    // Stage 1: the first layers, with its own connection onward to stage 2.
                    try (Connection next = TcpClient.connect("127.0.0.1", stage2.port(), options)) {
                        ConnectionHandler.ofRequests(request -> {
                            Message forwarded = Message.builder(MessageType.HIDDEN_STATE)
                                    .tensor("data", ModelStageHandler.applyLayer(request.data()))
                                    .id(request.id().orElse(null)).meta("stage", "1").build();
                            Message answer = next.request(forwarded);
                            return answer.toBuilder().replyTo(request).meta("path", "client>stage1>stage2").build();
                        }).handle(connection);
                    }
                });
                Connection client = TcpClient.connect("127.0.0.1", stage1.port(), options)) {
            System.out.printf("pipeline: client -> stage 1 (port %d) -> stage 2 (port %d), serializer %s%n",
                    stage1.port(), stage2.port(), options.serializer().orElse("json"));
            long[] nanos = new long[tokens];
            java.util.Random random = new java.util.Random(1);
            for (int token = 0; token < tokens; token++) {
                float[] embedding = new float[4096];
                for (int i = 0; i < embedding.length; i++) {
                    embedding[i] = (float) random.nextGaussian();
                }
                long start = System.nanoTime();
                Message answer = client.request(Message.builder(MessageType.HIDDEN_STATE)
                        .tensor("data", Tensor.ofBFloat16(embedding, 1, 1, 4096)).id("token-" + token).build());
                nanos[token] = System.nanoTime() - start;
                if (!answer.replyTo().orElse("").equals("token-" + token) || !answer.meta("stage").orElse("").equals("2")) {
                    throw new IllegalStateException("unexpected answer " + answer);
                }
            }
            Arrays.sort(nanos);
            System.out.printf("%d tokens through two hops: median %.1f us, slowest %.1f us per token%n", tokens,
                    nanos[tokens / 2] / 1e3, nanos[tokens - 1] / 1e3);
        }
    }
}
