package netutils.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;
import netutils.api.ConnectionHandler;
import netutils.api.Message;
import netutils.transport.tcp.TcpServer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The example programs as a user runs them: separate JVMs on the module path, no extra flags. Their stderr
 * must stay free of JVM warnings (sun.misc.Unsafe, illegal access, automatic modules).
 */
@Timeout(120)
class ExampleProgramsTest {

    private static final String MODULE_PATH = ChildJvms.modulePath();

    private static Process start(String mainClass, String... args) throws IOException {
        return new ProcessBuilder(ChildJvms.command(List.of(), mainClass, args)).start();
    }

    private static String read(java.io.InputStream in) throws IOException {
        return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"json", "msgpack", "kryo", "cbor"})
    void clientAndServerInSeparateJvmsExchangeAllFiveTypesWithoutWarnings(String serializer) throws Exception {
        assertThat(MODULE_PATH).as("tests run on the module path").isNotBlank();
        int port = freePort();
        java.io.File serverErrors = java.io.File.createTempFile("example-server", ".err");
        serverErrors.deleteOnExit();
        Process server = new ProcessBuilder(ChildJvms.command(List.of(), "netutils.examples.ExampleServer", "--port",
                "" + port)).redirectError(serverErrors).start();
        try {
            String banner = new java.io.BufferedReader(new java.io.InputStreamReader(server.getInputStream())).readLine();
            assertThat(banner).contains("listening on 127.0.0.1:" + port);
            Process client = start("netutils.examples.ExampleClient", "--port", "" + port, "--serializer", serializer);
            String out = read(client.getInputStream());
            String err = read(client.getErrorStream());
            assertThat(client.waitFor(60, TimeUnit.SECONDS)).isTrue();
            assertThat(client.exitValue()).as("client stderr: %s", err).isZero();
            assertThat(out).contains("serializer " + serializer)
                    .contains("hidden_state", "CIS", "KV_index", "KV_cache", "mask", "causal=true", "position stored");
            assertThat(err).doesNotContain("WARNING");
        } finally {
            server.destroy();
            assertThat(server.waitFor(30, TimeUnit.SECONDS)).isTrue();
            String serverErr = java.nio.file.Files.readString(serverErrors.toPath());
            assertThat(serverErr).doesNotContain("WARNING");
        }
    }

    @Test
    void demoRunsServerAndClientInOneCommand() throws Exception {
        Process demo = start("netutils.examples.Demo", "--serializer", "msgpack");
        String out = read(demo.getInputStream());
        String err = read(demo.getErrorStream());
        assertThat(demo.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(demo.exitValue()).as(err).isZero();
        assertThat(out).contains("all five message types answered.");
        assertThat(err).doesNotContain("WARNING");
    }

    @Test
    void pipelineDemoPassesTokensThroughTwoStages() throws Exception {
        Process demo = start("netutils.examples.PipelineDemo", "--tokens", "20", "--serializer", "kryo");
        String out = read(demo.getInputStream());
        String err = read(demo.getErrorStream());
        assertThat(demo.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(demo.exitValue()).as(err).isZero();
        assertThat(out).contains("20 tokens through two hops");
        assertThat(err).doesNotContain("WARNING");
    }

    @Test
    void clientWithoutAServerPrintsAClearMessageNotAStackTrace() throws Exception {
        Process client = start("netutils.examples.ExampleClient", "--port", "" + freePort());
        String err = read(client.getErrorStream());
        assertThat(client.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(client.exitValue()).isEqualTo(1);
        assertThat(err).contains("cannot reach a netutils server at 127.0.0.1").contains("Is the server running?")
                .doesNotContain("Exception").doesNotContain("\tat ");
    }

    @Test
    void aHostileServersErrorReachesTheTerminalCappedAndWithoutEscapes() throws Exception {
        // 1.4 MB of "clear screen, red" and a forged success line, as the error detail of the first answer.
        String hostile = "\u001b[2J\u001b[31m".repeat(200_000) + "\n2026-01-01 INFO all five message types answered.\n";
        try (TcpServer server = TcpServer.bind(0).serve(connection -> {
            connection.receive();
            connection.send(Message.error("HANDLER_FAILED\u001b[0m", hostile));
        })) {
            Process client = start("netutils.examples.ExampleClient", "--port", "" + server.port());
            String out = read(client.getInputStream());
            String err = read(client.getErrorStream());
            assertThat(client.waitFor(60, TimeUnit.SECONDS)).isTrue();
            assertThat(client.exitValue()).isEqualTo(1);
            assertThat(err).startsWith("error: the exchange with 127.0.0.1:" + server.port()
                    + " failed: peer reported HANDLER_FAILED\\u001B[0m: \\u001B[2J\\u001B[31m")
                    .contains("more characters cut]").doesNotContain("\u001b").hasLineCount(1);
            assertThat(err.length()).as("capped at 4 KiB of detail").isLessThan(4096 + 300);
            assertThat(out).doesNotContain("\u001b");
        }
    }

    @Test
    void aHostileServersAnswersArePrintedWithoutTheirEscapesAndForgedLines() throws Exception {
        try (TcpServer server = TcpServer.bind(0).serve(ConnectionHandler.ofRequests(request ->
                Message.builder(request.type()).meta("note", "\u001b]0;owned\u0007\r\nmask  forged row  ok")
                        .build()))) {
            Process client = start("netutils.examples.ExampleClient", "--port", "" + server.port());
            String out = read(client.getInputStream());
            String err = read(client.getErrorStream());
            assertThat(client.waitFor(60, TimeUnit.SECONDS)).isTrue();
            assertThat(client.exitValue()).as(err).isZero();
            assertThat(out).doesNotContain("\u001b").doesNotContain("\r")
                    .contains("note=\\u001B]0;owned\\u0007\\u000D\\u000Amask  forged row  ok");
            // The header, the rule, the blank line after "connected", and one row per sample message.
            assertThat(out.lines().count()).isEqualTo(4 + ModelStageHandler.sampleMessages().size());
        }
    }
}
