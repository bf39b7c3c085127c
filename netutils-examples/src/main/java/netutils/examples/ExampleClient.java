package netutils.examples;

import java.io.IOException;
import java.io.PrintStream;
import java.net.ConnectException;
import java.net.SocketTimeoutException;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import netutils.api.Connection;
import netutils.api.wire.Frames;
import netutils.api.Message;
import netutils.api.PeerText;
import netutils.api.wire.Serializers;
import netutils.api.Tensor;
import netutils.api.spi.Serializer;
import netutils.transport.tcp.TcpClient;
import netutils.transport.tcp.TcpOptions;

/**
 * The example client: connects, sends one message of each of the five types with realistic shapes and dtypes
 * (BF16, F16 and F32 hidden states, C64 rotary frequencies, an I64 KV index, a per-layer KV cache, a causal
 * mask) and prints each answer in a table.
 *
 * <pre>
 * usage: ExampleClient [--host 127.0.0.1] [--port 5000] [--serializer json|msgpack|kryo|...]
 * </pre>
 */
public final class ExampleClient {
    static final String USAGE = "usage: ExampleClient [--host 127.0.0.1] [--port 5000] [--serializer NAME]";

    private ExampleClient() {
    }

    /** Exits 0 when every message was answered, 1 when the server cannot be reached or fails. */
    public static void main(String[] argv) {
        Args args = Args.parse(argv, USAGE, "--host", "--port", "--serializer");
        String host = args.get("--host", "127.0.0.1");
        int port = args.port("5000");
        Serializer serializer;
        try {
            serializer = Serializers.byName(args.get("--serializer", Serializers.DEFAULT_NAME));
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(2);
            return;
        }
        try {
            run(host, port, serializer, System.out);
        } catch (ConnectException | SocketTimeoutException e) {
            System.err.println("error: cannot reach a netutils server at " + host + ":" + port + " (" + e.getMessage()
                    + "). Is the server running? Start one with ExampleServer --port " + port);
            System.exit(1);
        } catch (IOException e) {
            // RemoteErrorException and ProtocolException messages are already printable; other I/O errors are
            // the JDK's, but may quote the host name the user typed: printable all the same.
            System.err.println("error: the exchange with " + host + ":" + port + " failed: "
                    + PeerText.printable(e.getMessage()));
            System.exit(1);
        }
    }

    /** Sends the sample messages to {@code host:port} and prints the table to {@code out}. */
    public static void run(String host, int port, Serializer serializer, PrintStream out) throws IOException {
        TcpOptions options = TcpOptions.builder().serializer(serializer.name()).build();
        try (Connection connection = TcpClient.connect(host, port, options)) {
            out.printf("connected to %s, serializer %s%n%n", connection.peer(), serializer.name());
            String format = "%-13s %-42s %12s %9s  %s%n";
            out.printf(format, "type", "tensors sent", "wire bytes", "rtt ms", "answer");
            out.printf(format, "-".repeat(13), "-".repeat(42), "-".repeat(12), "-".repeat(9), "-".repeat(40));
            for (Message request : ModelStageHandler.sampleMessages()) {
                long wireBytes = Frames.frameLength(request, serializer, false);
                long start = System.nanoTime();
                Message reply = connection.request(request);
                double millis = (System.nanoTime() - start) / 1e6;
                if (!reply.replyTo().equals(request.id())) {
                    throw new IOException("answer " + PeerText.printable(reply.toString(), 512) + " does not answer "
                            + request.id().orElse("?"));
                }
                out.printf(format, request.type(), describe(request.tensors()), String.format("%,d", wireBytes),
                        String.format("%.2f", millis), summarize(reply));
            }
        }
    }

    private static String describe(Map<String, Tensor> tensors) {
        if (tensors.size() > 2) {
            Tensor first = tensors.values().iterator().next();
            return tensors.size() + " x " + first.dtype() + Arrays.toString(first.shape());
        }
        return tensors.entrySet().stream()
                .map(e -> e.getKey() + " " + e.getValue().dtype() + Arrays.toString(e.getValue().shape()))
                .collect(Collectors.joining(", "));
    }

    /**
     * One line about the server's answer. Everything in it is the server's text, and a hostile server may send
     * escape sequences or forged lines, so the line is made printable and capped before it reaches the terminal.
     */
    static String summarize(Message reply) {
        List<String> parts = new java.util.ArrayList<>();
        reply.tensors().forEach((name, tensor) -> parts.add(name + " " + tensor.dtype() + Arrays.toString(tensor.shape())));
        reply.meta().forEach((key, value) -> parts.add(key + "=" + value));
        return PeerText.printable(reply.type() + " " + String.join(", ", parts), 512);
    }
}
