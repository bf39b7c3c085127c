package netutils.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import netutils.api.Connection;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import netutils.transport.tcp.TcpClient;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The launchers in {@code bin/} as a user runs them: the process started is the server itself (the script
 * {@code exec}s the JVM), and a signal to it closes the server, ends its clients' connections, frees the port and
 * ends the process — unlike {@code ./mvnw exec:exec}, whose example JVM outlives a killed Maven.
 */
@Timeout(120)
class LauncherTest {
    private static final Path BIN = Path.of("..", "bin").toAbsolutePath().normalize();

    /** Whether this process ignores SIGINT (signal 2: bit 1 of the SigIgn mask in /proc/self/status). */
    private static boolean ignoresSigint() throws IOException {
        Path status = Path.of("/proc/self/status");
        if (!Files.isReadable(status)) {
            return false;
        }
        return Files.readAllLines(status).stream().filter(line -> line.startsWith("SigIgn:"))
                .map(line -> Long.parseUnsignedLong(line.substring("SigIgn:".length()).trim(), 16))
                .anyMatch(mask -> (mask & (1L << (2 - 1))) != 0);
    }

    @ParameterizedTest
    @ValueSource(strings = {"TERM", "INT"})
    void theLaunchedServerIsTheProcessAndASignalClosesItAndFreesThePort(String signal) throws Exception {
        // A background job of a shell without job control starts with SIGINT ignored, and so does everything it
        // starts: no JVM launched from here could see the signal (found when the build ran as such a job).
        assumeFalse(signal.equals("INT") && ignoresSigint(), "SIGINT is ignored in this environment (inherited by "
                + "every process started from it), so the server cannot receive it; SIGTERM is tested");
        int port = freePort();
        Process server = launch("netutils-example-server", "--port", "" + port);
        List<String> output = new ArrayList<>();
        try {
            BufferedReader out = new BufferedReader(new InputStreamReader(server.getInputStream(), StandardCharsets.UTF_8));
            String banner = out.readLine();
            assertThat(banner).as("first line of the server").isNotNull()
                    .contains("listening on 127.0.0.1:" + port).contains("this machine only");
            assertThat(server.info().command().orElse("")).as("the script exec'd the JVM")
                    .endsWith("/bin/java");

            // The client launcher against it, and one client that stays connected through the shutdown.
            Process client = launch("netutils-example-client", "--port", "" + port, "--serializer", "cbor");
            String table = new String(client.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertThat(client.waitFor(60, TimeUnit.SECONDS)).isTrue();
            assertThat(client.exitValue()).as(table).isZero();
            assertThat(table).contains("serializer cbor", "causal=true");
            try (Connection connected = TcpClient.connect("127.0.0.1", port)) {
                assertThat(connected.request(Message.builder(MessageType.KV_INDEX).tensor("data", Tensor.scalar(3))
                        .id("before").build()).meta("ack")).contains("position stored");

                new ProcessBuilder("kill", "-" + signal, "" + server.pid()).inheritIO().start().waitFor();
                assertThat(server.waitFor(30, TimeUnit.SECONDS)).as("server ended after SIG%s", signal).isTrue();
                for (String line = out.readLine(); line != null; line = out.readLine()) {
                    output.add(line);
                }
                Throwable end = catchThrowable(() -> connected.receive(java.time.Duration.ofSeconds(10)));
                assertThat(end).as("the server closed this client's connection").isInstanceOf(IOException.class);
            }
            assertThat(output).as("what the server said").anySatisfy(line -> assertThat(line)
                    .contains("shutdown requested (SIGINT or SIGTERM), closing 127.0.0.1:" + port));
            assertThat(output).anySatisfy(line -> assertThat(line).contains("closed 127.0.0.1:" + port + " in"));
            // The JVM exits with 128 + the signal's number after running its shutdown hooks.
            assertThat(server.exitValue()).isEqualTo(signal.equals("TERM") ? 143 : 130);
            assertThat(ProcessHandle.of(server.pid())).as("no process left").isEmpty();
            try (ServerSocket again = new ServerSocket()) {
                again.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port));
                assertThat(again.getLocalPort()).as("the port is free again").isEqualTo(port);
            }
        } finally {
            server.destroyForcibly();
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"--help", "--bogus"})
    void theServersUsageSaysWhereItListens(String option) throws Exception {
        Process server = launch("netutils-example-server", option);
        String out = new String(server.getInputStream().readAllBytes(), StandardCharsets.UTF_8)
                + new String(server.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(server.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(out).contains("127.0.0.1, accepts connections from this machine only")
                .contains("--host 0.0.0.0 listens on every interface");
    }

    /** Runs a launcher with the JDK running the tests, as a user's shell would. */
    private static Process launch(String launcher, String... args) throws IOException {
        Path script = BIN.resolve(launcher);
        assertThat(Files.isExecutable(script)).as("%s is executable", script).isTrue();
        List<String> command = new ArrayList<>(List.of(script.toString()));
        command.addAll(List.of(args));
        ProcessBuilder builder = new ProcessBuilder(command);
        builder.environment().put("JAVA_HOME", System.getProperty("java.home"));
        return builder.start();
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }
}
