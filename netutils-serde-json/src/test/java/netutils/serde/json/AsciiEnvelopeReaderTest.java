package netutils.serde.json;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import netutils.api.spi.Envelope;
import org.junit.jupiter.api.Test;

/**
 * The byte-level reader of the canonical form reads what the writer writes, and whatever else it accepts, Jackson's
 * tree path reads to the same envelope: it never accepts what the general path refuses.
 */
class AsciiEnvelopeReaderTest {
    private static final JsonSerializer JSON = new JsonSerializer();

    @Test
    void readsWhatTheWriterWrites() {
        Envelope plain = new Envelope("hidden_state", "c1-17", "s2-4", Map.of("layer", "3"),
                List.of(new Envelope.Entry("data", "F16", new long[] {1, 1, 4096}, 0, 8192),
                        new Envelope.Entry("cis", "F32", new long[] {}, 8192, 0)));
        byte[] bytes = AsciiEnvelopeWriter.write(plain);
        assertThat(AsciiEnvelopeReader.read(bytes)).isEqualTo(plain).isEqualTo(TreePath.read(bytes));
        Envelope bare = new Envelope("ping", null, null, Map.of(), List.of());
        assertThat(AsciiEnvelopeReader.read(AsciiEnvelopeWriter.write(bare))).isEqualTo(bare);
    }

    @Test
    void acceptsOnlyWhatJacksonReadsTheSame() throws Exception {
        Random random = new Random(11);
        int accepted = 0;
        int mutated = 0;
        for (int i = 0; i < 3000; i++) {
            Envelope envelope = new Envelope("t" + i, random.nextBoolean() ? "c1-" + i : null,
                    random.nextBoolean() ? "r" + random.nextInt(100) : null,
                    random.nextBoolean() ? Map.of("k", "v" + i) : Map.of(),
                    random.nextBoolean() ? List.of() : List.of(new Envelope.Entry("data", "BF16",
                            new long[] {random.nextInt(3), random.nextLong() & Long.MAX_VALUE}, 64L * i, i)));
            byte[] canonical = JSON.writeEnvelope(envelope);
            boolean huge = envelope.tensors().stream().anyMatch(e -> Arrays.stream(e.shape()).anyMatch(d -> d >= 1e18));
            // numbers of 19 digits are Jackson's to read
            assertThat(AsciiEnvelopeReader.read(canonical)).isEqualTo(huge ? null : envelope);
            assertThat(JSON.readEnvelope(canonical)).isEqualTo(envelope).isEqualTo(TreePath.read(canonical));
            for (int m = 0; m < 10; m++) {
                byte[] bytes = mutate(canonical, random);
                Envelope read = AsciiEnvelopeReader.read(bytes);
                if (read != null) {
                    accepted++;
                    if (!Arrays.equals(bytes, canonical)) {
                        mutated++;
                    }
                    assertThat(TreePath.read(bytes)).as(new String(bytes, StandardCharsets.ISO_8859_1)).isEqualTo(read);
                }
            }
        }
        assertThat(accepted).isGreaterThan(100);
        assertThat(mutated).as("mutations the reader accepted (and Jackson read the same)").isGreaterThan(10);
    }

    @Test
    void givesUpOnWhatItLeavesToJackson() throws Exception {
        String[] inputs = {
            "{\"type\": \"a\",\"meta\":{},\"tensors\":[]}",                        // whitespace
            "{\"type\":\"a\\u0062\",\"meta\":{},\"tensors\":[]}",                   // an escape
            "{\"type\":\"é\",\"meta\":{},\"tensors\":[]}",                          // UTF-8
            "{\"meta\":{},\"type\":\"a\",\"tensors\":[]}",                          // another key order
            "{\"type\":\"a\",\"meta\":{\"k\":\"1\",\"k\":\"2\"},\"tensors\":[]}",   // a duplicate meta key
            "{\"type\":\"a\",\"meta\":{},\"tensors\":[{\"name\":\"x\",\"dtype\":\"F32\",\"shape\":[01],"
                    + "\"offset\":0,\"nbytes\":4}]}",                                // a leading zero
            "{\"type\":\"a\",\"meta\":{},\"tensors\":[{\"name\":\"x\",\"dtype\":\"F32\",\"shape\":[1],"
                    + "\"offset\":0,\"nbytes\":9223372036854775807}]}",              // 19 digits
            "{\"type\":\"a\",\"meta\":{},\"tensors\":[{\"name\":\"x\",\"dtype\":\"F32\",\"shape\":[1],"
                    + "\"offset\":0,\"nbytes\":99999999999999999999}]}",
            "{\"type\":\"a\",\"meta\":{},\"tensors\":[{\"name\":\"x\",\"dtype\":\"F32\",\"shape\":[1.0],"
                    + "\"offset\":0,\"nbytes\":4}]}",
            "{\"type\":\"a\",\"meta\":{},\"tensors\":[]} ",                          // trailing bytes
            "{\"type\":\"a\",\"meta\":{},\"tensors\":[]",                            // truncated
            "{\"type\":\"a\",\"meta\":{}}",                                          // no tensors key
        };
        for (String input : inputs) {
            byte[] bytes = input.getBytes(StandardCharsets.UTF_8);
            assertThat(AsciiEnvelopeReader.read(bytes)).as(input).isNull();
            Object expected = TreePath.read(bytes);
            if (expected instanceof Envelope envelope) {
                assertThat(JSON.readEnvelope(bytes)).as(input).isEqualTo(envelope);
            }
        }
        byte[] long19 = inputs[6].getBytes(StandardCharsets.UTF_8);
        assertThat(JSON.readEnvelope(long19).tensors().get(0).nbytes()).isEqualTo(Long.MAX_VALUE);
    }

    /** One to three random edits: a byte replaced by a JSON-ish one, deleted, or inserted. */
    private static byte[] mutate(byte[] bytes, Random random) {
        byte[] alphabet = "{}[]:,\"\\0123456789-.eE atnulx".getBytes(StandardCharsets.US_ASCII);
        byte[] out = bytes.clone();
        for (int edits = 1 + random.nextInt(3); edits > 0 && out.length > 1; edits--) {
            int at = random.nextInt(out.length);
            byte b = alphabet[random.nextInt(alphabet.length)];
            switch (random.nextInt(3)) {
                case 0 -> out[at] = b;
                case 1 -> {
                    byte[] shorter = new byte[out.length - 1];
                    System.arraycopy(out, 0, shorter, 0, at);
                    System.arraycopy(out, at + 1, shorter, at, out.length - at - 1);
                    out = shorter;
                }
                default -> {
                    byte[] longer = new byte[out.length + 1];
                    System.arraycopy(out, 0, longer, 0, at);
                    longer[at] = b;
                    System.arraycopy(out, at, longer, at + 1, out.length - at);
                    out = longer;
                }
            }
        }
        return out;
    }
}
