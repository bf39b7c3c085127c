package netutils.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import netutils.api.Connection;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.ProtocolException;
import netutils.api.Tensor;
import netutils.api.wire.Frames;
import netutils.api.wire.Serializers;
import netutils.transport.tcp.TcpClient;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Java and the Python package ({@code python/netutils}) exchange frames and JSON texts of every type and dtype
 * both ways; a Python client talks to the Java example server, and a Java client to a Python server, with JSON
 * and MessagePack envelopes, bfloat16 as torch tensors on the Python side.
 */
@Timeout(180)
class PythonInteropTest {
    private static final Path PYTHON_ROOT = Path.of("..", "python").toAbsolutePath().normalize();
    private static final Path INTEROP = PYTHON_ROOT.resolve("tests").resolve("interop");
    private static String python;
    private static boolean hasTorch;

    @BeforeAll
    static void findPython() throws Exception {
        for (String candidate : new String[] {"/usr/bin/python3", "python3"}) {
            if (probe(candidate, "import msgpack, numpy")) {
                python = candidate;
                hasTorch = probe(candidate, "import torch");
                return;
            }
        }
        String missing = "no python3 with msgpack and numpy (apt-get install python3-msgpack python3-numpy)";
        if (System.getenv("CI") != null) {
            throw new IllegalStateException(missing + ": CI must run the interop tests");
        }
        Assumptions.abort(missing + "; interop tests skipped outside CI");
    }

    private static boolean probe(String candidate, String code) {
        try {
            Process probe = new ProcessBuilder(candidate, "-c", code).redirectErrorStream(true).start();
            return probe.waitFor(60, TimeUnit.SECONDS) && probe.exitValue() == 0;
        } catch (IOException | InterruptedException notThere) {
            return false;
        }
    }

    private static void requireTorch() {
        if (!hasTorch && System.getenv("CI") != null) {
            throw new IllegalStateException("python3 has no torch: CI must run the bfloat16 torch interop tests "
                    + "(apt-get install python3-torch)");
        }
        Assumptions.assumeTrue(hasTorch, "python3-torch not installed; torch interop skipped outside CI");
    }

    private static ProcessBuilder pythonProcess(String script, String... args) {
        List<String> command = new ArrayList<>(List.of(python, INTEROP.resolve(script).toString()));
        command.addAll(List.of(args));
        ProcessBuilder builder = new ProcessBuilder(command).directory(PYTHON_ROOT.toFile()).redirectErrorStream(true);
        builder.environment().put("PYTHONPATH", PYTHON_ROOT.toString());
        builder.environment().put("PYTHONDONTWRITEBYTECODE", "1");
        return builder;
    }

    private static String runPython(String script, String... args) throws Exception {
        Process process = pythonProcess(script, args).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(process.waitFor(120, TimeUnit.SECONDS)).isTrue();
        assertThat(process.exitValue()).as("%s said:%n%s", script, output).isZero();
        return output;
    }

    @Test
    void pythonDecodesJavasFramesAndJsonTextsOfEveryTypeAndDtype(@TempDir Path dir) throws Exception {
        for (String serializer : new String[] {"json", "msgpack"}) {
            for (Map.Entry<String, Message> entry : InteropValues.expectedMessages().entrySet()) {
                Files.write(dir.resolve(serializer + "_" + entry.getKey() + ".frame"),
                        Frames.toRawMessage(entry.getValue(), Serializers.byName(serializer)));
            }
        }
        for (Map.Entry<String, Message> entry : InteropValues.expectedMessages().entrySet()) {
            Message withMeta = entry.getValue().toBuilder().meta("writer", "java").build();
            Files.writeString(dir.resolve(entry.getKey() + ".json"), Frames.toJson(withMeta));
        }
        String output = runPython("check_frames.py", dir.toString());
        assertThat(output).contains("python checked 130 frames and 65 JSON texts written by Java, 0 problems");
    }

    @Test
    void javaDecodesPythonsFramesAndJsonTextsOfEveryTypeAndDtype(@TempDir Path dir) throws Exception {
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
        for (Map.Entry<String, Message> entry : InteropValues.expectedMessages().entrySet()) {
            String text = Files.readString(dir.resolve(entry.getKey() + ".json"));
            Message expected = entry.getValue().toBuilder().meta("writer", "python")
                    .replyTo("r-" + entry.getKey()).build();
            Message decoded = Frames.fromJson(text);
            assertThat(decoded).as(entry.getKey()).isEqualTo(expected);
            assertThat(Frames.toJson(decoded)).as("Java writes %s back byte for byte", entry.getKey()).isEqualTo(text);
        }
    }

    private static Message decode(byte[] frame, String what) throws ProtocolException {
        try {
            return Frames.fromRawMessage(frame);
        } catch (ProtocolException e) {
            throw new AssertionError(what + ": " + e.getMessage(), e);
        }
    }

    @ParameterizedTest
    @CsvSource({"json,false", "msgpack,false", "msgpack,true"})
    void pythonClientTalksToTheJavaExampleServer(String serializer, boolean checksum) throws Exception {
        try (TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0),
                TcpOptions.defaults()).serve(new ModelStageHandler())) {
            List<String> args = new ArrayList<>(List.of("--port", "" + server.port(), "--serializer", serializer));
            if (checksum) {
                args.add("--checksum");
            }
            String output = runPython("java_server_client.py", args.toArray(String[]::new));
            int expected = hasTorch ? 6 : 5; // the sixth is a torch.bfloat16 hidden state
            assertThat(output).contains("python client: " + expected + " of " + expected + " answers correct");
        }
    }

    @ParameterizedTest
    @CsvSource({"json,false", "msgpack,false", "json,true"})
    void javaClientTalksToAPythonServer(String serializer, boolean checksum) throws Exception {
        Process server = pythonProcess("python_server.py", "--port", "0").start();
        try {
            BufferedReader out = new BufferedReader(new InputStreamReader(server.getInputStream(), StandardCharsets.UTF_8));
            String first = out.readLine();
            Matcher listening = Pattern.compile("listening on (\\d+)").matcher(String.valueOf(first));
            assertThat(listening.find()).as("python server said: %s", first).isTrue();
            int port = Integer.parseInt(listening.group(1));
            TcpOptions options = TcpOptions.builder().serializer(serializer).checksum(checksum).build();
            int answered = 0;
            try (Connection client = TcpClient.connect("127.0.0.1", port, options)) {
                for (Map.Entry<String, Message> entry : InteropValues.expectedMessages().entrySet()) {
                    Message reply = client.request(entry.getValue());
                    assertThat(reply.type()).isEqualTo(entry.getValue().type());
                    assertThat(reply.replyTo()).contains(entry.getKey());
                    assertThat(reply.meta()).containsEntry("serializer", serializer).containsEntry("writer", "python");
                    assertThat(reply.tensors()).as(entry.getKey()).isEqualTo(entry.getValue().tensors());
                    answered++;
                }
            }
            assertThat(answered).isEqualTo(65);
        } finally {
            server.destroy();
            server.waitFor(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void bfloat16TravelsAsTorchBfloat16BothWays() throws Exception {
        requireTorch();
        Process server = pythonProcess("python_server.py", "--port", "0").start();
        try {
            BufferedReader out = new BufferedReader(new InputStreamReader(server.getInputStream(), StandardCharsets.UTF_8));
            Matcher listening = Pattern.compile("listening on (\\d+)").matcher(String.valueOf(out.readLine()));
            assertThat(listening.find()).isTrue();
            float[] values = new float[4 * 64];
            for (int i = 0; i < values.length; i++) {
                values[i] = (i % 37) * 0.375f - 6.5f; // exact in bfloat16, and so are their doubles
            }
            for (String serializer : new String[] {"json", "msgpack"}) {
                try (Connection client = TcpClient.connect("127.0.0.1", Integer.parseInt(listening.group(1)),
                        TcpOptions.builder().serializer(serializer).build())) {
                    Message reply = client.request(Message.builder(MessageType.HIDDEN_STATE)
                            .tensor("data", Tensor.ofBFloat16(values, 1, 4, 64)).id("bf16").build());
                    assertThat(reply.meta()).containsEntry("received", "torch.bfloat16");
                    Tensor doubled = reply.data();
                    assertThat(doubled.dtype()).isEqualTo(DType.BF16);
                    assertThat(doubled.shape()).containsExactly(1, 4, 64);
                    float[] got = doubled.toFloatArray();
                    for (int i = 0; i < values.length; i++) {
                        assertThat(got[i]).as("element %d", i).isEqualTo(values[i] * 2);
                    }
                }
            }
        } finally {
            server.destroy();
            server.waitFor(10, TimeUnit.SECONDS);
        }
    }
}
