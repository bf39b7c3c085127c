package netutils.examples;

import java.net.BindException;
import java.net.InetSocketAddress;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServer;

/**
 * The example server: accepts many clients at once and answers every message type as
 * {@link ModelStageHandler} describes. Answers each request in the serializer it came in, unless
 * {@code --serializer} fixes one.
 *
 * <pre>
 * usage: ExampleServer [--host 127.0.0.1] [--port 5000] [--serializer json|msgpack|kryo|...]
 * </pre>
 */
public final class ExampleServer {
    static final String USAGE = "usage: ExampleServer [--host 127.0.0.1] [--port 5000] [--serializer NAME]";

    private ExampleServer() {
    }

    /** Runs until the process is stopped. */
    public static void main(String[] argv) throws Exception {
        Args args = Args.parse(argv, USAGE, "--host", "--port", "--serializer");
        TcpOptions.Builder options = TcpOptions.builder();
        String serializer = args.get("--serializer", null);
        if (serializer != null) {
            try {
                options.serializer(serializer);
            } catch (IllegalArgumentException e) {
                System.err.println("error: " + e.getMessage());
                System.exit(2);
            }
        }
        InetSocketAddress address = new InetSocketAddress(args.get("--host", "127.0.0.1"), args.port("5000"));
        TcpServer server;
        try {
            server = TcpServer.bind(address, options.build());
        } catch (BindException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(1);
            return;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                server.close();
            } catch (java.io.IOException ignored) {
                // exiting anyway
            }
        }));
        server.serve(new ModelStageHandler());
        System.out.println("netutils example server listening on " + server.address().getHostString() + ":" + server.port());
        System.out.flush();
        server.awaitClose();
    }
}
