package netutils.serde.json;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Random;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.ProtocolException;
import netutils.api.spi.Envelope;
import netutils.api.spi.Serializer;
import netutils.api.wire.Frames;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Jackson's limits for envelopes and message text come from the SDK's own (docs/PROTOCOL.md, EnvelopeSchema),
 * tried with the inputs of the attacks in issue 12: a 16 MiB junk envelope and 100,000-deep nesting.
 */
@Timeout(60)
class JsonLimitsTest {
    private static final int MIB = 1 << 20;
    private final Serializer json = new JsonSerializer();

    @Test
    void sixteenMebibytesOfJunkAreRefusedAtTheFirstBadByteWithoutATree() throws Exception {
        byte[] junk = new byte[16 * MIB];
        new Random(12).nextBytes(junk);
        junk[0] = '{';
        long before = allocated();
        assertThatThrownBy(() -> json.readEnvelope(junk)).isInstanceOfSatisfying(ProtocolException.class,
                e -> assertThat(e.kind()).isEqualTo(ProtocolException.Kind.MALFORMED_ENVELOPE))
                .hasMessageStartingWith("json envelope does not parse");
        assertThat(allocated() - before).as("bytes allocated to refuse it").isLessThan(MIB);
    }

    @Test
    void sixteenMebibytesOfWellFormedJunkAreRefusedWhileTheyAreRead() throws Exception {
        // The worst shape measured: millions of empty objects under a key the envelope does not have. A tree of
        // it costs about 26x the input; the reader stops at EnvelopeSchema.MAX_VALUES instead, long before.
        StringBuilder text = new StringBuilder(16 * MIB).append("{\"type\":\"x\",\"junk\":[{}");
        while (text.length() < 16 * MIB - 8) {
            text.append(",{}");
        }
        byte[] envelope = text.append("]}").toString().getBytes(StandardCharsets.UTF_8);
        long before = allocated();
        assertThatThrownBy(() -> json.readEnvelope(envelope)).isInstanceOf(ProtocolException.class)
                .hasMessageContaining("more than " + netutils.api.spi.EnvelopeSchema.MAX_VALUES + " values");
        assertThat(allocated() - before).as("bytes allocated to refuse %,d", envelope.length)
                .isLessThan(4L * envelope.length);
    }

    @Test
    void aHundredThousandNestedArraysAreRefusedAtTheLimitInEnvelopesAndText() throws Exception {
        String deep = "[".repeat(100_000) + "]".repeat(100_000);
        byte[] envelope = ("{\"type\":\"x\",\"meta\":" + deep + "}").getBytes(StandardCharsets.UTF_8);
        String text = "{\"type\":\"x\",\"tensors\":" + deep + "}";
        // once before measuring: loading and initialising the readers' classes is not what is measured (run alone,
        // this test counted 16 MB of it)
        assertThatThrownBy(() -> json.readEnvelope(envelope)).isInstanceOf(ProtocolException.class);
        assertThatThrownBy(() -> Frames.fromJson(text)).isInstanceOf(ProtocolException.class);
        long before = allocated();
        assertThatThrownBy(() -> json.readEnvelope(envelope)).isInstanceOf(ProtocolException.class)
                .hasMessageContaining("nesting depth (9) exceeds the maximum allowed (8");
        assertThatThrownBy(() -> Frames.fromJson(text)).isInstanceOf(ProtocolException.class)
                .hasMessageContaining("exceeds the maximum allowed (8");
        assertThat(allocated() - before).isLessThan(MIB);
    }

    @Test
    void eightLevelsOfNestingAreStillRead() throws Exception {
        // {"meta": ...} is level 1; seven more arrays make eight: the deepest an envelope reader must accept.
        byte[] envelope = ("{\"type\":\"x\",\"junk\":" + "[".repeat(7) + "]".repeat(7) + "}")
                .getBytes(StandardCharsets.UTF_8);
        assertThat(json.readEnvelope(envelope).type()).isEqualTo("x");
    }

    @Test
    void numbersLongerThanAnyLongOrDoubleAreRefusedBeforeTheyAreParsed() {
        byte[] envelope = ("{\"type\":\"x\",\"tensors\":[{\"name\":\"t\",\"dtype\":\"U8\",\"shape\":[1],\"offset\":0,"
                + "\"nbytes\":" + "9".repeat(5000) + "}]}").getBytes(StandardCharsets.UTF_8);
        assertThatThrownBy(() -> json.readEnvelope(envelope)).isInstanceOf(ProtocolException.class)
                .hasMessageContaining("Number value length").hasMessageContaining("exceeds the maximum allowed (32");
        byte[] justOver = "{\"type\":\"x\",\"id\":null,\"junk\":9223372036854775808}".getBytes(StandardCharsets.UTF_8);
        assertThatThrownBy(() -> json.readEnvelope(justOver)).hasMessageContaining("junk is 9223372036854775808, "
                + "an integer over 64 bits, which no envelope field holds");
        assertThatThrownBy(() -> Frames.fromJson("{\"type\":\"x\",\"id\":12345678901234567890123}"))
                .hasMessageContaining("id is 12345678901234567890123, an integer over 64 bits");
    }

    @Test
    void namesAreBoundedByTheLongestMetadataKeyNotByJacksonsDefault() throws Exception {
        // A metadata key may have 1,024 characters: 1,024 emoji are 4,096 bytes of UTF-8, and must be read.
        String key = "\ud83d\ude00".repeat(Message.MAX_NAME_LENGTH);
        Envelope envelope = new Envelope("x", null, null, Map.of(key, "v"), List.of());
        assertThat(json.readEnvelope(json.writeEnvelope(envelope)).meta()).containsEntry(key, "v");
        Message message = Message.builder(MessageType.of("x")).meta(key, "v".repeat(25_000_000)).build();
        assertThat(Frames.fromJson(Frames.toJson(message))).isEqualTo(message);
        // A longer name can be no key of a valid message: refused as it is read, not after.
        byte[] longName = ("{\"type\":\"x\",\"meta\":{\"" + "k".repeat(4097) + "\":\"v\"}}")
                .getBytes(StandardCharsets.UTF_8);
        assertThatThrownBy(() -> json.readEnvelope(longName)).isInstanceOf(ProtocolException.class)
                .hasMessageContaining("Name length (4097) exceeds the maximum allowed (4096");
    }

    /** Heap bytes this thread allocated so far, through reflection (this module does not read java.management). */
    static long allocated() throws ReflectiveOperationException {
        Object threads = Class.forName("java.lang.management.ManagementFactory").getMethod("getThreadMXBean")
                .invoke(null);
        return (long) Class.forName("com.sun.management.ThreadMXBean").getMethod("getCurrentThreadAllocatedBytes")
                .invoke(threads);
    }
}
