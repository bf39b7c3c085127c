package netutils.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import netutils.api.Message;
import netutils.api.ProtocolException;
import netutils.api.wire.Serializers;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import netutils.api.wire.Frames;

/**
 * The wire format is language-neutral: a Python reader/writer written from docs/PROTOCOL.md (interop/python)
 * and Java exchange frames both ways, and a Python client talks to the Java example server.
 */
@Timeout(120)
class PythonInteropTest {
    private static final Path INTEROP = Path.of("..", "interop", "python").toAbsolutePath().normalize();
    private static String python;

    @BeforeAll
    static void findPython() throws Exception {
        for (String candidate : new String[] {"/usr/bin/python3", "python3"}) {
            try {
                Process probe = new ProcessBuilder(candidate, "-c", "import msgpack, numpy").redirectErrorStream(true).start();
                if (probe.waitFor(30, TimeUnit.SECONDS) && probe.exitValue() == 0) {
                    python = candidate;
                    return;
                }
            } catch (IOException notThere) {
                // try the next
            }
        }
        String missing = "no python3 with msgpack and numpy (apt-get install python3-msgpack python3-numpy)";
        if (System.getenv("CI") != null) {
            throw new IllegalStateException(missing + ": CI must run the interop tests");
        }
        Assumptions.abort(missing + "; interop tests skipped outside CI");
    }

    private static String runPython(String script, String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of(python, INTEROP.resolve(script).toString()));
        command.addAll(List.of(args));
        Process process = new ProcessBuilder(command).directory(INTEROP.toFile()).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(process.waitFor(90, TimeUnit.SECONDS)).isTrue();
        assertThat(process.exitValue()).as("%s said:%n%s", script, output).isZero();
        return output;
    }

    @Test
    void pythonDecodesJavasJsonAndMsgpackFramesOfEveryTypeAndDtype(@TempDir Path dir) throws Exception {
        for (String serializer : new String[] {"json", "msgpack"}) {
            for (Map.Entry<String, Message> entry : InteropValues.expectedMessages().entrySet()) {
                Files.write(dir.resolve(serializer + "_" + entry.getKey() + ".frame"),
                        Frames.toRawMessage(entry.getValue(), Serializers.byName(serializer)));
            }
        }
        String output = runPython("check_frames.py", dir.toString());
        assertThat(output).contains("python checked 130 frames written by Java, 0 problems");
    }

    @Test
    void javaDecodesPythonsFramesOfEveryTypeAndDtype(@TempDir Path dir) throws Exception {
        runPython("write_frames.py", dir.toString());
        int checked = 0;
        int withChecksum = 0;
        for (String serializer : new String[] {"json", "msgpack"}) {
            for (Map.Entry<String, Message> entry : InteropValues.expectedMessages().entrySet()) {
                byte[] frame = Files.readAllBytes(dir.resolve(serializer + "_" + entry.getKey() + ".frame"));
                assertThat(frame[3]).isEqualTo((byte) Serializers.byName(serializer).id());
                withChecksum += frame[4] & 1;
                Message decoded = decode(frame, entry.getKey());
                Message expected = entry.getValue();
                assertThat(decoded.type()).isEqualTo(expected.type());
                assertThat(decoded.id()).isEqualTo(expected.id());
                assertThat(decoded.meta()).containsEntry("writer", "python");
                assertThat(decoded.tensors()).as(entry.getKey()).isEqualTo(expected.tensors());
                checked++;
            }
        }
        assertThat(checked).isEqualTo(130);
        assertThat(withChecksum).isEqualTo(65);
    }

    private static Message decode(byte[] frame, String what) throws ProtocolException {
        try {
            return Frames.fromRawMessage(frame);
        } catch (ProtocolException e) {
            throw new AssertionError(what + ": " + e.getMessage(), e);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"json", "msgpack"})
    void pythonClientTalksToTheJavaExampleServer(String serializer) throws Exception {
        try (TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0),
                TcpOptions.defaults()).serve(new ModelStageHandler())) {
            String output = runPython("client.py", "--port", "" + server.port(), "--serializer", serializer);
            assertThat(output).contains("python client: 5 of 5 answers correct");
        }
    }
}
