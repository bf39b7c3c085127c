package netutils.serde.json;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import netutils.api.spi.Envelope;
import org.junit.jupiter.api.Test;

/** The fast path of writing JSON envelopes writes exactly Jackson's bytes, and leaves the rest to Jackson. */
class AsciiEnvelopeWriterTest {
    private static final JsonSerializer JSON = new JsonSerializer();

    @Test
    void writesJacksonsBytesOrGivesUp() throws Exception {
        Random random = new Random(7);
        int fast = 0;
        int givenUp = 0;
        for (int i = 0; i < 5000; i++) {
            Envelope envelope = randomEnvelope(random, i);
            byte[] jackson = JsonSerializer.writeWithJackson(envelope);
            byte[] ascii = AsciiEnvelopeWriter.write(envelope);
            if (ascii == null) {
                givenUp++;
                assertThat(allStrings(envelope)).as("only strings outside printable ASCII, quotes and backslashes"
                        + " are left to Jackson").anyMatch(s -> s.chars().anyMatch(
                                c -> c < 0x20 || c > 0x7e || c == '"' || c == '\\'));
            } else {
                fast++;
                assertThat(new String(ascii, StandardCharsets.UTF_8)).isEqualTo(new String(jackson, StandardCharsets.UTF_8));
            }
            assertThat(JSON.writeEnvelope(envelope)).isEqualTo(jackson);
            assertThat(JSON.readEnvelope(JSON.writeEnvelope(envelope))).isEqualTo(envelope);
        }
        assertThat(fast).as("envelopes written by the fast path").isGreaterThan(500);
        assertThat(givenUp).as("envelopes left to Jackson").isGreaterThan(500);
    }

    private static List<String> allStrings(Envelope envelope) {
        List<String> strings = new ArrayList<>(List.of(envelope.type()));
        if (envelope.id() != null) {
            strings.add(envelope.id());
        }
        if (envelope.replyTo() != null) {
            strings.add(envelope.replyTo());
        }
        envelope.meta().forEach((key, value) -> {
            strings.add(key);
            strings.add(value);
        });
        envelope.tensors().forEach(entry -> {
            strings.add(entry.name());
            strings.add(entry.dtype());
        });
        return strings;
    }

    private static Envelope randomEnvelope(Random random, int i) {
        Map<String, String> meta = new LinkedHashMap<>();
        for (int m = random.nextInt(3); m > 0; m--) {
            meta.put(text(random), text(random));
        }
        List<Envelope.Entry> tensors = new ArrayList<>();
        long offset = 0;
        for (int t = random.nextInt(4); t > 0; t--) {
            long[] shape = new long[random.nextInt(5)];
            for (int d = 0; d < shape.length; d++) {
                shape[d] = switch (random.nextInt(4)) {
                    case 0 -> random.nextLong() & Long.MAX_VALUE;
                    case 1 -> random.nextInt(10);
                    case 2 -> Long.MAX_VALUE;
                    default -> random.nextInt(5000);
                };
            }
            tensors.add(new Envelope.Entry("t" + t + text(random), random.nextBoolean() ? "F32" : "BF16", shape, offset,
                    random.nextBoolean() ? 0 : random.nextLong() & Long.MAX_VALUE));
            offset += 64L * random.nextInt(1000);
        }
        return new Envelope(text(random) + "x", random.nextBoolean() ? "c1-" + i : null,
                random.nextBoolean() ? text(random) : null, meta, tensors);
    }

    private static String text(Random random) {
        String[] pieces = {"", "a", "hidden_state", "key", "~", " ", "é", "日本", "\"q\"", "\\", "\n", "\u007f", "😀", "/"};
        StringBuilder out = new StringBuilder();
        for (int i = random.nextInt(3); i >= 0; i--) {
            // mostly plain text, as real envelopes are
            out.append(random.nextInt(3) == 0 ? pieces[random.nextInt(pieces.length)] : pieces[random.nextInt(6)]);
        }
        return out.toString();
    }
}
