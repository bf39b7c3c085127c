package netutils.serde.kryo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.esotericsoftware.kryo.io.Output;
import java.util.List;
import java.util.Map;
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
}
