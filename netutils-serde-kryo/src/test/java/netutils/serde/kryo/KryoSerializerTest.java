package netutils.serde.kryo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import netutils.api.ProtocolException;
import netutils.api.wire.Serializers;
import netutils.api.spi.Envelope;
import org.junit.jupiter.api.Test;

class KryoSerializerTest {
    private final KryoSerializer serializer = new KryoSerializer();

    private static Envelope sample() {
        return new Envelope("hidden_state", null, "q7", Map.of("layer", "16"), List.of(
                new Envelope.Entry("data", "F16", new long[] {1, 16, 4096}, 0, 131072)));
    }

    @Test
    void isFoundThroughServiceLoader() {
        assertThat(Serializers.byName("kryo")).isInstanceOf(KryoSerializer.class);
        assertThat(Serializers.findById(3)).containsInstanceOf(KryoSerializer.class);
    }

    @Test
    void envelopeRoundTrips() throws ProtocolException {
        Envelope envelope = sample();
        assertThat(serializer.readEnvelope(serializer.writeEnvelope(envelope))).isEqualTo(envelope);
    }

    @Test
    void theBytesAreWhatARegisteredKryoInstanceWritesAndReads() throws ProtocolException {
        // The serializer calls the envelope codec without a Kryo instance; the wire format stays Kryo's own.
        Kryo kryo = new Kryo();
        kryo.setRegistrationRequired(true);
        kryo.setReferences(false);
        kryo.register(Envelope.class, new KryoSerializer.EnvelopeCodec(), KryoSerializer.ENVELOPE_REGISTRATION);
        Random random = new Random(7);
        for (int i = 0; i < 2_000; i++) {
            Envelope envelope = randomEnvelope(random, i);
            Output output = new Output(256, -1);
            kryo.writeClassAndObject(output, envelope);
            byte[] kryos = output.toBytes();
            byte[] ours = serializer.writeEnvelope(envelope);
            assertThat(ours).as("envelope %d", i).isEqualTo(kryos);
            assertThat(kryo.readClassAndObject(new Input(ours))).as("envelope %d", i).isEqualTo(envelope);
            assertThat(serializer.readEnvelope(kryos)).as("envelope %d", i).isEqualTo(envelope);
        }
    }

    @Test
    void aNegativeNumberIsRefusedWithItsPath() {
        Output output = new Output(64);
        output.writeVarInt(KryoSerializer.ENVELOPE_REGISTRATION + 2, true);
        writeString(output, "hidden_state");
        output.writeBoolean(false);
        output.writeBoolean(false);
        output.writeVarInt(0, true); // no meta
        output.writeVarInt(2, true); // two tensors
        for (int t = 0; t < 2; t++) {
            writeString(output, "t" + t);
            writeString(output, "F32");
            output.writeVarInt(2, true);
            output.writeVarLong(4, true);
            output.writeVarLong(t == 1 ? -5 : 4, true);
            output.writeVarLong(0, true);
            output.writeVarLong(64, true);
        }
        assertThatThrownBy(() -> serializer.readEnvelope(output.toBytes()))
                .isInstanceOf(ProtocolException.class)
                .hasMessageContaining("tensors[1].shape[1] must be a non-negative integer, got -5");
    }

    @Test
    void classIdOutsideTheRegisteredSetIsRefused() {
        Output output = new Output(16);
        output.writeVarInt(57 + 2, true); // Kryo writes registration ids shifted by 2
        assertThatThrownBy(() -> serializer.readEnvelope(output.toBytes()))
                .isInstanceOfSatisfying(ProtocolException.class,
                        e -> assertThat(e.kind()).isEqualTo(ProtocolException.Kind.MALFORMED_ENVELOPE))
                .hasMessageContaining("names a class outside the registered set")
                .hasMessageContaining("57");
    }

    @Test
    void classNameOutsideTheRegisteredSetIsRefusedNotLoaded() {
        Output output = new Output(64);
        output.writeVarInt(1, true); // Kryo's marker for "class given by name"
        output.writeVarInt(0, true); // name id
        output.writeString("java.lang.ProcessBuilder");
        assertThatThrownBy(() -> serializer.readEnvelope(output.toBytes()))
                .isInstanceOf(ProtocolException.class)
                .hasMessageContaining("outside the registered set");
    }

    @Test
    void hugeDeclaredLengthsAreRefusedBeforeAllocating() {
        Output output = new Output(32);
        output.writeVarInt(KryoSerializer.ENVELOPE_REGISTRATION + 2, true);
        output.writeVarInt(Integer.MAX_VALUE, true); // the type string's length
        assertThatThrownBy(() -> serializer.readEnvelope(output.toBytes()))
                .hasMessageContaining("type declares 2147483647 items but only 0 bytes remain");
    }

    @Test
    void truncatedEnvelopeIsRefused() {
        byte[] bytes = serializer.writeEnvelope(sample());
        assertThatThrownBy(() -> serializer.readEnvelope(java.util.Arrays.copyOf(bytes, bytes.length - 3)))
                .isInstanceOf(ProtocolException.class).hasMessageContaining("kryo envelope");
    }

    @Test
    void kryosOwnDefaultRegistrationsAreRefusedBeforeTheyRead() {
        // Registration id 1 + 2 is Kryo's String, registered by default: its reader would allocate a char[] of the
        // declared length (here 2^31 - 1 characters, 4 GiB) before noticing that only 6 bytes exist.
        byte[] stringBomb = {3, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, 0x07};
        assertThatThrownBy(() -> serializer.readEnvelope(stringBomb))
                .isInstanceOfSatisfying(ProtocolException.class,
                        e -> assertThat(e.kind()).isEqualTo(ProtocolException.Kind.MALFORMED_ENVELOPE))
                .hasMessageContaining("registration id 1 (only the envelope, id 16, is read)");
        assertThatThrownBy(() -> serializer.readEnvelope(new byte[] {0}))
                .hasMessageContaining("holds null, not an envelope");
        assertThatThrownBy(() -> serializer.readEnvelope(new byte[0])).hasMessageContaining("kryo envelope is empty");
    }

    @Test
    void aMetaKeyTwiceIsRefusedNotLastOneWins() {
        Output output = new Output(64);
        output.writeVarInt(KryoSerializer.ENVELOPE_REGISTRATION + 2, true);
        writeString(output, "hidden_state");
        output.writeBoolean(false); // no id
        output.writeBoolean(false); // no reply_to
        output.writeVarInt(2, true);
        for (String value : new String[] {"first", "second"}) {
            writeString(output, "model");
            writeString(output, value);
        }
        output.writeVarInt(0, true); // no tensors
        assertThatThrownBy(() -> serializer.readEnvelope(output.toBytes()))
                .isInstanceOf(ProtocolException.class).hasMessageContaining("meta: key 'model' appears twice");
    }

    private static Envelope randomEnvelope(Random random, int i) {
        String[] texts = {"", "a", "hidden_state", "é", "日本", "\"q\"", "\n", "😀", "x".repeat(300)};
        Map<String, String> meta = new LinkedHashMap<>();
        for (int m = random.nextInt(4); m > 0; m--) {
            meta.put(texts[random.nextInt(texts.length)] + m, texts[random.nextInt(texts.length)]);
        }
        List<Envelope.Entry> tensors = new ArrayList<>();
        for (int t = random.nextInt(4) + (random.nextInt(20) == 0 ? 130 : 0); t > 0; t--) {
            long[] shape = new long[random.nextInt(5)];
            for (int d = 0; d < shape.length; d++) {
                shape[d] = random.nextBoolean() ? random.nextInt(200) : random.nextLong() & Long.MAX_VALUE;
            }
            tensors.add(new Envelope.Entry("t" + t, random.nextBoolean() ? "F32" : "BF16", shape,
                    64L * random.nextInt(100_000), random.nextLong() & Long.MAX_VALUE));
        }
        return new Envelope(texts[random.nextInt(texts.length)] + "x", random.nextBoolean() ? "c1-" + i : null,
                random.nextBoolean() ? texts[random.nextInt(texts.length)] : null, meta, tensors);
    }

    private static void writeString(Output output, String value) {
        byte[] utf8 = value.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        output.writeVarInt(utf8.length, true);
        output.writeBytes(utf8);
    }
}
