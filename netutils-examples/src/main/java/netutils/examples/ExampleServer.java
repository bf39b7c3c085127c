package netutils.examples;

import java.net.BindException;
import java.net.InetSocketAddress;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServer;

/**
 * The example server: accepts many clients at once and answers every message type as
 * {@link ModelStageHandler} describes. Answers each request in the serializer it came in, unless
 * {@code --serializer} fixes one. Listens on {@code 127.0.0.1}, this machine only, unless {@code --host} says
 * otherwise ({@code --host 0.0.0.0}: every interface). SIGINT and SIGTERM close the server and free the port.
 *
 * <pre>
 * usage: ExampleServer [--host 127.0.0.1] [--port 5000] [--serializer json|msgpack|kryo|...]
 * </pre>
 */
public final class ExampleServer {
    static final String USAGE = """
            usage: ExampleServer [--host 127.0.0.1] [--port 5000] [--serializer NAME]
              --host ADDRESS  where to listen. The default, 127.0.0.1, accepts connections from this machine only.
                              --host 0.0.0.0 listens on every interface: any host that can reach this machine
                              can then connect, and this example speaks plaintext without authentication
                              (netutils has TLS and mutual TLS, TcpOptions.tls; this example does not turn it on).
              Ctrl-C (SIGINT) or kill (SIGTERM) closes the server and frees the port.""";

    private ExampleServer() {
    }

    /** What the listening address means for who can connect: said at startup, so nobody exposes a port unaware. */
    static String reach(InetSocketAddress address) {
        java.net.InetAddress host = address.getAddress();
        if (host.isLoopbackAddress()) {
            return " (this machine only; --host 0.0.0.0 listens on every interface)";
        }
        if (host.isAnyLocalAddress()) {
            return " (EVERY interface: any host that can reach this machine can connect; this example speaks"
                    + " plaintext without authentication (no TLS), so keep this port behind a firewall)";
        }
        return " (the interface of " + host.getHostAddress() + ": hosts that can reach it can connect)";
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
        // The address as the user wrote it: a wildcard bound on a dual-stack host reads back as "0:0:0:0:0:0:0:0".
        String where = (server.address().getAddress().isAnyLocalAddress() ? args.get("--host", "0.0.0.0")
                : server.address().getHostString()) + ":" + server.port();
        // SIGINT and SIGTERM run the JVM's shutdown hooks: close the server there, so the port is free and every
        // client sees its connection end, and say so (a server that vanishes silently looks like a crash).
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("netutils example server: shutdown requested (SIGINT or SIGTERM), closing " + where);
            long start = System.nanoTime();
            try {
                server.close();
                System.out.printf("netutils example server: closed %s in %d ms%n", where,
                        (System.nanoTime() - start) / 1_000_000);
            } catch (java.io.IOException | RuntimeException e) {
                System.out.println("netutils example server: closing " + where + " failed: " + e);
            }
            System.out.flush();
        }, "example-server-shutdown"));
        server.serve(new ModelStageHandler());
        System.out.println("netutils example server listening on " + where + reach(server.address()));
        System.out.flush();
        server.awaitClose();
    }
}
