package netutils.serde.msgpack;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import netutils.api.ProtocolException;
import netutils.api.spi.Envelope;
import org.junit.jupiter.api.Test;

/**
 * The byte-level paths write msgpack-core's exact bytes, and read only what the general path (msgpack-core and the
 * tree) reads to the same envelope.
 */
class CanonicalEnvelopesTest {
    private static final MsgpackSerializer MSGPACK = new MsgpackSerializer();

    /** What the general path reads, or the message of the error it reports. */
    private static Object generalPath(byte[] bytes) {
        try {
            return MsgpackSerializer.readWithUnpacker(bytes);
        } catch (ProtocolException e) {
            return "error: " + e.getMessage();
        }
    }

    @Test
    void writesMsgpackCoresBytesAndReadsThemBack() throws Exception {
        Random random = new Random(5);
        int fast = 0;
        int givenUp = 0;
        for (int i = 0; i < 5000; i++) {
            Envelope envelope = randomEnvelope(random, i);
            byte[] general = MsgpackSerializer.writeWithPacker(envelope);
            byte[] canonical = CanonicalEnvelopes.write(envelope);
            if (canonical == null) {
                givenUp++;
            } else {
                fast++;
                assertThat(canonical).as(envelope.toString()).isEqualTo(general);
                assertThat(CanonicalEnvelopes.read(canonical)).isEqualTo(envelope);
            }
            assertThat(MSGPACK.readEnvelope(MSGPACK.writeEnvelope(envelope))).isEqualTo(envelope)
                    .isEqualTo(generalPath(general));
        }
        assertThat(fast).isGreaterThan(500);
        assertThat(givenUp).isGreaterThan(500);
    }

    @Test
    void acceptsOnlyWhatTheGeneralPathReadsTheSame() {
        Random random = new Random(13);
        int mutatedAccepted = 0;
        for (int i = 0; i < 3000; i++) {
            Envelope envelope = new Envelope("t" + i, random.nextBoolean() ? "c1-" + i : null,
                    random.nextBoolean() ? "r" + random.nextInt(100) : null,
                    random.nextBoolean() ? Map.of("k", "v" + i) : Map.of(),
                    random.nextBoolean() ? List.of() : List.of(new Envelope.Entry("data", "BF16",
                            new long[] {random.nextInt(300), random.nextLong() & Long.MAX_VALUE}, 64L * i, i)));
            byte[] canonical = MSGPACK.writeEnvelope(envelope);
            assertThat(CanonicalEnvelopes.read(canonical)).isEqualTo(envelope);
            for (int m = 0; m < 10; m++) {
                byte[] bytes = mutate(canonical, random);
                Envelope read = CanonicalEnvelopes.read(bytes);
                if (read != null) {
                    if (!Arrays.equals(bytes, canonical)) {
                        mutatedAccepted++;
                    }
                    assertThat(generalPath(bytes)).as(Arrays.toString(bytes)).isEqualTo(read);
                }
            }
        }
        assertThat(mutatedAccepted).as("mutations the reader accepted (and the general path read the same)")
                .isGreaterThan(10);
    }

    @Test
    void givesUpOnOtherFormatsWhichTheGeneralPathStillReads() throws Exception {
        // {"type": "a", "meta": {}, "tensors": [{"name":"x","dtype":"F32","shape":[5],"offset":0,"nbytes":4}]} with
        // the 5 as an int8 (0xd0 0x05) and then as a uint16 (0xcd 0x00 0x05): valid MessagePack, not the smallest form
        for (byte[] five : List.of(new byte[] {(byte) 0xd0, 5}, new byte[] {(byte) 0xcd, 0, 5})) {
            List<Byte> bytes = new ArrayList<>();
            add(bytes, (byte) 0x83);
            add(bytes, pack("type"), pack("a"), pack("meta"), new byte[] {(byte) 0x80}, pack("tensors"));
            add(bytes, (byte) 0x91, (byte) 0x85);
            add(bytes, pack("name"), pack("x"), pack("dtype"), pack("F32"), pack("shape"), new byte[] {(byte) 0x91}, five,
                    pack("offset"), new byte[] {0}, pack("nbytes"), new byte[] {4});
            byte[] array = new byte[bytes.size()];
            for (int i = 0; i < array.length; i++) {
                array[i] = bytes.get(i);
            }
            assertThat(CanonicalEnvelopes.read(array)).isNull();
            assertThat(MSGPACK.readEnvelope(array).tensors().get(0).shape()).containsExactly(5);
        }
    }

    private static void add(List<Byte> out, byte... bytes) {
        for (byte b : bytes) {
            out.add(b);
        }
    }

    private static void add(List<Byte> out, byte[]... parts) {
        for (byte[] part : parts) {
            add(out, part);
        }
    }

    private static byte[] pack(String ascii) {
        byte[] out = new byte[ascii.length() + 1];
        out[0] = (byte) (0xa0 | ascii.length());
        for (int i = 0; i < ascii.length(); i++) {
            out[i + 1] = (byte) ascii.charAt(i);
        }
        return out;
    }

    private static Envelope randomEnvelope(Random random, int i) {
        Map<String, String> meta = new LinkedHashMap<>();
        for (int m = random.nextInt(3) + (random.nextInt(20) == 0 ? 17 : 0); m > 0; m--) {
            meta.put(text(random) + m, text(random));
        }
        List<Envelope.Entry> tensors = new ArrayList<>();
        for (int t = random.nextInt(4) + (random.nextInt(20) == 0 ? 20 : 0); t > 0; t--) {
            long[] shape = new long[random.nextInt(5) + (random.nextInt(20) == 0 ? 16 : 0)];
            for (int d = 0; d < shape.length; d++) {
                shape[d] = switch (random.nextInt(6)) {
                    case 0 -> random.nextLong() & Long.MAX_VALUE;
                    case 1 -> random.nextInt(128);
                    case 2 -> 128 + random.nextInt(200);
                    case 3 -> 256 + random.nextInt(70000);
                    case 4 -> (1L << 32) - 1 - random.nextInt(3);
                    default -> Long.MAX_VALUE;
                };
            }
            tensors.add(new Envelope.Entry("t" + t + text(random), random.nextBoolean() ? "F32" : "BF16", shape,
                    64L * random.nextInt(1000), random.nextBoolean() ? 0 : random.nextLong() & Long.MAX_VALUE));
        }
        return new Envelope(text(random) + "x", random.nextBoolean() ? "c1-" + i : null,
                random.nextBoolean() ? text(random) : null, meta, tensors);
    }

    private static String text(Random random) {
        String[] pieces = {"", "a", "hidden_state", "key", "~", " ", "é", "日本", "\"q\"", "\\", "\n", "😀",
            "a-rather-long-piece-of-text-past-31-bytes"};
        StringBuilder out = new StringBuilder();
        for (int i = random.nextInt(3); i >= 0; i--) {
            out.append(random.nextInt(3) == 0 ? pieces[random.nextInt(pieces.length)] : pieces[random.nextInt(6)]);
        }
        if (random.nextInt(30) == 0) {
            out.append("x".repeat(250)); // past str8's 255 sometimes
        }
        return out.toString();
    }

    /** One to three random edits: a byte replaced, deleted, or inserted. */
    private static byte[] mutate(byte[] bytes, Random random) {
        byte[] out = bytes.clone();
        for (int edits = 1 + random.nextInt(3); edits > 0 && out.length > 1; edits--) {
            int at = random.nextInt(out.length);
            byte b = (byte) (random.nextBoolean() ? random.nextInt(256) : out[random.nextInt(out.length)]);
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
