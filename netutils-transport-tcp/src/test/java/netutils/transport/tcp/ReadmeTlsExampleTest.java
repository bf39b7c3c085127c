package netutils.transport.tcp;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.List;
import netutils.api.Connection;
import netutils.api.ConnectionHandler;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The README's TLS example compiles (it is {@link #readmeExample}, word for word) and runs. */
@Timeout(60)
class ReadmeTlsExampleTest {

    @Test
    void theReadmeTlsExampleRunsWithKeyStoresOnDisk(@TempDir Path dir) throws Exception {
        // The key stores the README's keytool commands make, with the password they use.
        char[] password = "changeit-please".toCharArray();
        TestPki ca = TestPki.authority("my-netutils-ca");
        save(ca.server(), TestPki.PASSWORD, dir.resolve("server.p12"), password);
        save(ca.client("client"), TestPki.PASSWORD, dir.resolve("client.p12"), password);
        save(ca.trustStore(), null, dir.resolve("trust.p12"), password);
        System.setProperty("netutils.keys", dir.toString());
        try {
            readmeExample(); // fails if any step of the handshake or the call does
        } finally {
            System.clearProperty("netutils.keys");
        }
    }

    @Test
    void theReadmeShowsThisExampleWordForWord() throws Exception {
        List<String> source = Files.readAllLines(Path.of("src/test/java/netutils/transport/tcp/ReadmeTlsExampleTest.java"));
        String example = between(source, "// README start", "// README end");
        List<String> readme = Files.readAllLines(Path.of("../README.md"));
        String section = between(readme.subList(readme.indexOf("### TLS and mutual TLS"), readme.size()), "```java", "```");
        assertThat(section).isEqualTo(example);
    }

    private static void readmeExample() throws Exception {
        // README start
        Path dir = Path.of(System.getProperty("netutils.keys", "keys"));
        char[] password = System.getenv().getOrDefault("NETUTILS_KEY_PASSWORD", "changeit-please").toCharArray();
        KeyStore trust = TlsOptions.loadKeyStore(dir.resolve("trust.p12"), password); // the CA's certificate

        // The server: its certificate and key; with the last two lines, only clients with a certificate
        // signed by that CA get in (mutual TLS).
        TlsOptions serverTls = TlsOptions.builder()
                .keyStore(TlsOptions.loadKeyStore(dir.resolve("server.p12"), password), password)
                .trustStore(trust)
                .requireClientCertificate()
                .build();
        InetSocketAddress address = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0); // or (5000): all interfaces
        try (TcpServer server = TcpServer.bind(address, TcpOptions.builder().tls(serverTls).build())) {
            server.serve(connection -> {
                // Under mutual TLS the handler knows who the client is.
                String client = TlsOptions.session(connection).orElseThrow().getPeerPrincipal().getName();
                System.out.println(client + " connected"); // CN=client
                ConnectionHandler.ofRequests(request -> request).handle(connection);
            });

            // The client: the CA it trusts (default: the JDK's), and its own certificate for mutual TLS.
            // It checks that the server's certificate names the host it connects to ("localhost" here).
            TlsOptions clientTls = TlsOptions.builder()
                    .trustStore(trust)
                    .keyStore(TlsOptions.loadKeyStore(dir.resolve("client.p12"), password), password)
                    .build();
            try (Connection connection = TcpClient.connect("localhost", server.port(),
                    TcpOptions.builder().tls(clientTls).build())) {
                Message reply = connection.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(42)));
                System.out.println("answer " + reply.data().longValue()); // 42
            }
        }
        // README end
    }

    /** The lines strictly between the first line that is {@code start} and the next that is {@code end}, dedented. */
    private static String between(List<String> lines, String start, String end) {
        int from = -1;
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).strip().equals(start)) {
                from = i + 1;
                break;
            }
        }
        assertThat(from).as("a line with " + start).isPositive();
        int to = from;
        while (!lines.get(to).strip().equals(end)) {
            to++;
        }
        List<String> block = lines.subList(from, to);
        int indent = block.stream().filter(line -> !line.isBlank())
                .mapToInt(line -> line.length() - line.stripLeading().length()).min().orElse(0);
        StringBuilder text = new StringBuilder();
        for (String line : block) {
            text.append(line.isBlank() ? "" : line.substring(indent)).append('\n');
        }
        return text.toString();
    }

    /** Saves {@code store} with its key (if any) under {@code password}, as keytool makes them. */
    private static void save(KeyStore store, char[] keyPassword, Path file, char[] password) throws Exception {
        KeyStore copy = KeyStore.getInstance("PKCS12");
        copy.load(null, null);
        for (String alias : java.util.Collections.list(store.aliases())) {
            if (store.isKeyEntry(alias)) {
                copy.setKeyEntry(alias, store.getKey(alias, keyPassword), password, store.getCertificateChain(alias));
            } else {
                copy.setCertificateEntry(alias, store.getCertificate(alias));
            }
        }
        try (OutputStream out = Files.newOutputStream(file)) {
            copy.store(out, password);
        }
    }
}
