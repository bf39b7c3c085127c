package netutils.inference.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SequencedMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {

    @Test
    void f32AndBf16RoundTrip(@TempDir Path dir) throws IOException {
        float[] values = {1.0f, -2.5f, 3.14159f, 1e-8f, 65504f, -0.0f};
        SequencedMap<String, Safetensors.Output> tensors = new LinkedHashMap<>();
        tensors.put("a.f32", new Safetensors.Output("F32", new long[] {2, 3}, values));
        tensors.put("b.bf16", new Safetensors.Output("BF16", new long[] {6}, values));
        Path file = dir.resolve("t.safetensors");
        Safetensors.write(file, tensors, Map.of("format", "pt"));
        byte[] bytes = Files.readAllBytes(file);
        long headerLength = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        assertThat(headerLength % 8).as("data is 8-byte aligned").isZero();
        assertThat(new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8)).contains("\"__metadata__\"")
                .contains("\"data_offsets\":[24,36]");
        try (Safetensors read = Safetensors.open(file)) {
            assertThat(read.entries().keySet()).containsExactly("a.f32", "b.bf16");
            assertThat(read.floats("a.f32", 2, 3)).containsExactly(values);
            float[] rounded = values.clone();
            Ops.roundToBFloat16(rounded);
            assertThat(read.floats("b.bf16", 6)).containsExactly(rounded);
            assertThat(rounded[2]).isEqualTo(3.140625f); // bfloat16 keeps 8 significant bits
            assertThatThrownBy(() -> read.floats("a.f32", 3, 2)).hasMessageContaining("[2, 3]").hasMessageContaining("[3, 2]");
            assertThatThrownBy(() -> read.floats("c", 1)).hasMessageContaining("no tensor 'c'");
        }
    }

    @Test
    void damagedFilesAreRefusedWithTheReason(@TempDir Path dir) throws IOException {
        Path shortFile = dir.resolve("short");
        Files.write(shortFile, new byte[] {1, 2, 3});
        assertThatThrownBy(() -> Safetensors.open(shortFile)).hasMessageContaining("shorter than the 8-byte header length");
        Path hugeHeader = dir.resolve("huge");
        Files.write(hugeHeader, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40).array());
        assertThatThrownBy(() -> Safetensors.open(hugeHeader)).hasMessageContaining("header length 1099511627776");
        Path outside = dir.resolve("outside");
        byte[] json = "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}".getBytes(StandardCharsets.UTF_8);
        ByteBuffer file = ByteBuffer.allocate(8 + json.length + 8).order(ByteOrder.LITTLE_ENDIAN).putLong(json.length).put(json);
        Files.write(outside, file.array());
        assertThatThrownBy(() -> Safetensors.open(outside)).hasMessageContaining("tensor 'x'")
                .hasMessageContaining("outside the 8-byte data area");
        Path mismatch = dir.resolve("mismatch");
        byte[] json2 = "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}".getBytes(StandardCharsets.UTF_8);
        Files.write(mismatch, ByteBuffer.allocate(8 + json2.length + 16).order(ByteOrder.LITTLE_ENDIAN).putLong(json2.length)
                .put(json2).array());
        assertThatThrownBy(() -> Safetensors.open(mismatch)).hasMessageContaining("(12 bytes) but its data_offsets span 16");
    }
}
