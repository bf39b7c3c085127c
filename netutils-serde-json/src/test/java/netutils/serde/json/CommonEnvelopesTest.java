package netutils.serde.json;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import netutils.api.ProtocolException;
import netutils.api.spi.Envelope;
import org.junit.jupiter.api.Test;

/**
 * The fast path of reading JSON envelopes must read exactly what the tree path reads, and give up (so that the
 * tree path reads and reports) on everything else.
 */
class CommonEnvelopesTest {
    private static final JsonSerializer JSON = new JsonSerializer();

    @Test
    void randomEnvelopesReadTheSameOnBothPaths() {
        Random random = new Random(42);
        for (int i = 0; i < 3000; i++) {
            Map<String, String> meta = new LinkedHashMap<>();
            for (int m = random.nextInt(4); m > 0; m--) {
                meta.put(text(random), text(random));
            }
            List<Envelope.Entry> tensors = new ArrayList<>();
            long offset = 0;
            for (int t = random.nextInt(5); t > 0; t--) {
                long[] shape = new long[random.nextInt(5)];
                for (int d = 0; d < shape.length; d++) {
                    shape[d] = random.nextInt(3) == 0 ? random.nextLong() & Long.MAX_VALUE : random.nextInt(5000);
                }
                long nbytes = random.nextLong() & Long.MAX_VALUE;
                tensors.add(new Envelope.Entry("t" + t + text(random), random.nextBoolean() ? "F32" : "BF16", shape,
                        offset, nbytes));
                offset += 64L * random.nextInt(1000);
            }
            Envelope envelope = new Envelope(text(random) + "x", random.nextBoolean() ? "c1-" + i : null,
                    random.nextBoolean() ? text(random) : null, meta, tensors);
            byte[] bytes = JSON.writeEnvelope(envelope);
            Envelope fast = JsonSerializer.CommonEnvelopes.read(bytes);
            assertThat(fast).as("the usual form is read by the fast path").isNotNull();
            assertThat(fast).isEqualTo(TreePath.read(bytes)).isEqualTo(envelope);
        }
    }

    @Test
    void unusualInputGoesToTheTreePathWhichReadsOrRefusesIt() throws Exception {
        String[] inputs = {
            "{\"type\":\"a\",\"extra\":{\"x\":[1,2]},\"tensors\":[]}",            // unknown key: skipped by the tree
            "{\"type\":\"a\",\"id\":null}",                                        // null id: absent for the tree
            "{\"type\":\"a\",\"meta\":null,\"tensors\":null}",
            "{\"type\":\"a\",\"tensors\":[{\"name\":\"x\",\"dtype\":\"F32\",\"shape\":[1],\"offset\":0,\"nbytes\":4,"
                    + "\"note\":\"new\"}]}",                                        // unknown tensor key
            "{\"type\":\"a\",\"type\":\"b\"}",                                     // duplicate
            "{\"type\":\"a\",\"meta\":{\"k\":\"1\",\"k\":\"2\"}}",
            "{\"type\":\"a\",\"meta\":{\"k\":1}}",
            "{\"type\":1}",
            "{\"id\":\"x\"}",
            "[\"type\"]",
            "{\"type\":\"a\"} trailing",
            "{\"type\":\"a\",\"tensors\":[{\"name\":\"x\",\"dtype\":\"F32\",\"shape\":[-1],\"offset\":0,\"nbytes\":4}]}",
            "{\"type\":\"a\",\"tensors\":[{\"name\":\"x\",\"dtype\":\"F32\",\"shape\":[1.5],\"offset\":0,\"nbytes\":4}]}",
            "{\"type\":\"a\",\"tensors\":[{\"name\":\"x\",\"dtype\":\"F32\",\"shape\":[1],\"offset\":0,"
                    + "\"nbytes\":99999999999999999999}]}",
            "{\"type\":\"a\",\"tensors\":[{\"name\":\"x\",\"dtype\":\"F32\",\"shape\":[1],\"offset\":0}]}",
            "{\"type\":\"a\",\"tensors\":[{\"name\":\"x\",\"name\":\"y\",\"dtype\":\"F32\",\"shape\":[1],\"offset\":0,"
                    + "\"nbytes\":4}]}",
            "{\"type\":\"a\",\"tensors\":[\"x\"]}",
            "{\"type\":\"a\",",
            "",
        };
        for (String input : inputs) {
            byte[] bytes = input.getBytes(StandardCharsets.UTF_8);
            assertThat(JsonSerializer.CommonEnvelopes.read(bytes)).as(input).isNull();
            Object expected = TreePath.read(bytes);
            if (expected instanceof Envelope envelope) {
                assertThat(JSON.readEnvelope(bytes)).as(input).isEqualTo(envelope);
            } else {
                assertThatThrownBy(() -> JSON.readEnvelope(bytes)).as(input).isInstanceOf(ProtocolException.class)
                        .hasMessage(((String) expected).substring("error: ".length()));
            }
        }
    }

    private static String text(Random random) {
        String[] pieces = {"", "a", "é", "日本", "\"q\"", "\\", "\n", "😀", "key"};
        StringBuilder out = new StringBuilder();
        for (int i = random.nextInt(4); i >= 0; i--) {
            out.append(pieces[random.nextInt(pieces.length)]);
        }
        return out.toString();
    }
}
