package netutils.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import netutils.api.Message;
import netutils.api.ProtocolException;
import netutils.api.wire.Serializers;
import netutils.api.spi.Serializer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import netutils.api.wire.Frames;

/**
 * Random damage to valid frames of every serializer: each damaged frame must either still decode (the damage hit
 * tensor bytes or padding) or be refused with a {@link ProtocolException}; never another exception type, never
 * an attempt to allocate what the damage claims.
 */
class MalformedFrameFuzzTest {

    @ParameterizedTest
    @ValueSource(strings = {"json", "msgpack", "kryo", "cbor"})
    void damagedFramesAreRefusedCleanly(String name) {
        Serializer serializer = Serializers.byName(name);
        List<byte[]> frames = new ArrayList<>();
        InteropValues.expectedMessages().values().stream().limit(20)
                .forEach(message -> frames.add(Frames.toRawMessage(message, serializer)));
        Random random = new Random(name.hashCode());
        int refused = 0;
        for (int i = 0; i < 4000; i++) {
            byte[] frame = frames.get(random.nextInt(frames.size())).clone();
            byte[] damaged = damage(frame, random);
            try {
                Frames.fromRawMessage(damaged);
            } catch (ProtocolException expected) {
                assertThat(expected.getMessage()).isNotBlank();
                refused++;
            } catch (RuntimeException | Error wrong) {
                throw new AssertionError("frame damaged at try " + i + " raised " + wrong, wrong);
            }
        }
        assertThat(refused).as("most damage is caught").isGreaterThan(1000);
    }

    /** Flips bytes in the header and envelope (where it matters), truncates, or appends. */
    private static byte[] damage(byte[] frame, Random random) {
        int envelopeEnd = Math.min(frame.length, 16 + (((frame[12] & 0xFF) << 24) | ((frame[13] & 0xFF) << 16)
                | ((frame[14] & 0xFF) << 8) | (frame[15] & 0xFF)));
        switch (random.nextInt(4)) {
            case 0 -> {
                int flips = 1 + random.nextInt(3);
                for (int f = 0; f < flips; f++) {
                    frame[random.nextInt(Math.max(1, envelopeEnd))] ^= (byte) (1 << random.nextInt(8));
                }
                return frame;
            }
            case 1 -> {
                frame[random.nextInt(Math.max(1, envelopeEnd))] = (byte) random.nextInt(256);
                return frame;
            }
            case 2 -> {
                return java.util.Arrays.copyOf(frame, random.nextInt(frame.length));
            }
            default -> {
                byte[] longer = java.util.Arrays.copyOf(frame, frame.length + 1 + random.nextInt(100));
                return longer;
            }
        }
    }
}
