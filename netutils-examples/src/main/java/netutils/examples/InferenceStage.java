package netutils.examples;

import java.net.BindException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import netutils.inference.LlamaModel;
import netutils.inference.ModelConfig;
import netutils.inference.StageServer;
import netutils.transport.tcp.TcpOptions;

/**
 * One stage server of a split model: loads its layers from a checkpoint and serves them to any number of
 * generations until stopped. {@code --stage I/N} picks the slice (stage 0 is the head, which
 * {@link InferenceDemo} runs; the last stage also applies the final norm and the output head).
 *
 * <pre>
 * usage: InferenceStage --checkpoint DIR --stage I/N [--host 127.0.0.1] [--port 0] [--serializer NAME]
 * </pre>
 * It prints one line, {@code stage I/N (layers a:b) listening on HOST:PORT}, once it serves.
 */
public final class InferenceStage {
    static final String USAGE = "usage: InferenceStage --checkpoint DIR --stage I/N [--host 127.0.0.1] [--port 0]"
            + " [--serializer NAME]";

    private InferenceStage() {
    }

    /** Serves until the process is stopped. */
    public static void main(String[] argv) throws Exception {
        Args args = Args.parse(argv, USAGE, "--checkpoint", "--stage", "--host", "--port", "--serializer");
        String checkpoint = args.get("--checkpoint", null);
        String stageText = args.get("--stage", null);
        if (checkpoint == null || stageText == null || !stageText.matches("\\d+/\\d+")) {
            System.err.println("--checkpoint DIR and --stage I/N are required\n" + USAGE);
            System.exit(2);
        }
        String[] stage = stageText.split("/");
        Path dir = Path.of(checkpoint);
        ModelConfig config = ModelConfig.read(dir.resolve(LlamaModel.CONFIG_FILE));
        LlamaModel.Slice slice;
        try {
            slice = LlamaModel.Slice.ofStage(config, Integer.parseInt(stage[0]), Integer.parseInt(stage[1]));
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(2);
            return;
        }
        if (slice.embedding()) {
            System.err.println("error: stage 0 is the head; InferenceDemo runs it");
            System.exit(2);
        }
        LlamaModel model = LlamaModel.load(dir, slice);
        // A stage has a few long-lived, latency-bound connections: the server's default gives the first ones
        // platform threads, which wake faster than virtual ones.
        TcpOptions server = TcpOptions.defaults();
        TcpOptions client = TcpOptions.builder().serializer(args.get("--serializer", "json")).build();
        StageServer stageServer;
        try {
            stageServer = StageServer.start(model, new InetSocketAddress(args.get("--host", "127.0.0.1"), args.port("0")),
                    server, client);
        } catch (BindException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(1);
            return;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                stageServer.close();
            } catch (java.io.IOException ignored) {
                // exiting anyway
            }
        }));
        System.out.println("stage " + stageText + " (layers " + slice.layers() + (slice.head() ? ", final norm + head" : "")
                + ") listening on " + stageServer.address().getHostString() + ":" + stageServer.port());
        System.out.flush();
        stageServer.awaitClose();
    }
}
