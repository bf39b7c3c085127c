package netutils.examples;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import netutils.api.wire.Serializers;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServer;

/**
 * Runs the example server and the example client together on localhost, in one process: the README's
 * first command. {@code --serializer NAME} chooses the client's serializer (the server answers in kind).
 */
public final class Demo {
    private Demo() {
    }

    /** Starts the server on a free loopback port, runs the client against it, stops. */
    public static void main(String[] argv) throws Exception {
        Args args = Args.parse(argv, "usage: Demo [--serializer NAME]", "--serializer");
        String serializer = args.get("--serializer", Serializers.DEFAULT_NAME);
        try (TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0),
                TcpOptions.defaults()).serve(new ModelStageHandler())) {
            System.out.println("example server listening on " + server.address().getHostString() + ":" + server.port());
            ExampleClient.run("127.0.0.1", server.port(), Serializers.byName(serializer), System.out);
        }
        System.out.println();
        System.out.println("all five message types answered.");
    }
}
