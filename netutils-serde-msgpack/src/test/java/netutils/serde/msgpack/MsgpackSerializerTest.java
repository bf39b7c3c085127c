package netutils.serde.msgpack;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Map;
import netutils.api.ProtocolException;
import netutils.api.wire.Serializers;
import netutils.api.spi.Envelope;
import org.junit.jupiter.api.Test;
import org.msgpack.core.MessageBufferPacker;
import org.msgpack.core.MessagePack;

class MsgpackSerializerTest {
    private final MsgpackSerializer serializer = new MsgpackSerializer();

    private static Envelope sample() {
        return new Envelope("KV_cache", "r1", null, Map.of("model", "m"), List.of(
                new Envelope.Entry("layer0.k", "BF16", new long[] {1, 8, 16, 128}, 0, 32768),
                new Envelope.Entry("pos", "I64", new long[0], 32768, 8)));
    }

    @Test
    void isFoundThroughServiceLoader() {
        assertThat(Serializers.byName("msgpack")).isInstanceOf(MsgpackSerializer.class);
        assertThat(Serializers.findById(2)).containsInstanceOf(MsgpackSerializer.class);
    }

    @Test
    void envelopeRoundTrips() throws ProtocolException {
        Envelope envelope = sample();
        assertThat(serializer.readEnvelope(serializer.writeEnvelope(envelope))).isEqualTo(envelope);
    }

    @Test
    void writesAPlainMapThatOtherLibrariesRead() throws Exception {
        byte[] bytes = serializer.writeEnvelope(sample());
        var value = MessagePack.newDefaultUnpacker(bytes).unpackValue().asMapValue().map();
        assertThat(value.keySet().toString()).contains("type", "id", "meta", "tensors");
    }

    @Test
    void hugeDeclaredCountsAreRefusedBeforeAllocating() throws Exception {
        MessageBufferPacker packer = MessagePack.newDefaultBufferPacker();
        packer.packMapHeader(2).packString("type").packString("mask").packString("tensors").packArrayHeader(Integer.MAX_VALUE);
        assertThatThrownBy(() -> serializer.readEnvelope(packer.toByteArray()))
                .isInstanceOfSatisfying(ProtocolException.class,
                        e -> assertThat(e.kind()).isEqualTo(ProtocolException.Kind.MALFORMED_ENVELOPE))
                .hasMessageContaining("tensors declares 2147483647 elements but only 0 bytes remain");
    }

    @Test
    void hugeDeclaredStringIsRefused() throws Exception {
        MessageBufferPacker packer = MessagePack.newDefaultBufferPacker();
        packer.packMapHeader(1).packString("type").packRawStringHeader(1 << 30);
        assertThatThrownBy(() -> serializer.readEnvelope(packer.toByteArray()))
                .hasMessageContaining("type declares a string of 1073741824 bytes");
    }

    @Test
    void wrongTypesAndGarbageAreNamed() throws Exception {
        MessageBufferPacker packer = MessagePack.newDefaultBufferPacker();
        packer.packMapHeader(1).packString("type").packInt(3);
        assertThatThrownBy(() -> serializer.readEnvelope(packer.toByteArray())).hasMessageContaining("type must be a string, got an integer");
        assertThatThrownBy(() -> serializer.readEnvelope(new byte[] {(byte) 0xc1})).isInstanceOf(ProtocolException.class);
        assertThatThrownBy(() -> serializer.readEnvelope(new byte[0])).hasMessageContaining("envelope is empty");
        MessageBufferPacker negative = MessagePack.newDefaultBufferPacker();
        negative.packMapHeader(2).packString("type").packString("mask").packString("tensors").packArrayHeader(1)
                .packMapHeader(5).packString("name").packString("a").packString("dtype").packString("U8")
                .packString("shape").packArrayHeader(1).packLong(-4).packString("offset").packLong(0)
                .packString("nbytes").packLong(0);
        assertThatThrownBy(() -> serializer.readEnvelope(negative.toByteArray()))
                .hasMessageContaining("tensors[0].shape[0] must be a non-negative 64-bit integer, got -4");
    }

    @Test
    void aStringThatIsNotUtf8IsRefusedNotTurnedIntoReplacementCharacters() throws Exception {
        // ED A0 80 is a lone surrogate (U+D800) in CESU-8 form, C3 28 a broken sequence: both used to read as U+FFFD
        for (byte[] bad : new byte[][] {{(byte) 0xED, (byte) 0xA0, (byte) 0x80}, {(byte) 0xC3, 0x28}}) {
            MessageBufferPacker packer = MessagePack.newDefaultBufferPacker();
            packer.packMapHeader(2).packString("type").packString("mask").packString("meta").packMapHeader(1)
                    .packString("k").packRawStringHeader(bad.length).addPayload(bad);
            assertThatThrownBy(() -> serializer.readEnvelope(packer.toByteArray())).isInstanceOf(ProtocolException.class)
                    .hasMessageContaining("meta.k is not valid UTF-8");
        }
    }

    @Test
    void duplicateKeysAreRefusedNotMerged() throws Exception {
        MessageBufferPacker packer = MessagePack.newDefaultBufferPacker();
        packer.packMapHeader(3).packString("type").packString("mask")
                .packString("tensors").packArrayHeader(0)
                .packString("tensors").packArrayHeader(0);
        assertThatThrownBy(() -> serializer.readEnvelope(packer.toByteArray())).isInstanceOf(ProtocolException.class)
                .hasMessageContaining("key 'tensors' appears twice");
    }

    @Test
    void anEnvelopeCutInsideAValueSaysWhatWasWrong() {
        // a map of one entry whose value never comes: msgpack-core's exception has no message of its own
        byte[] cut = {(byte) 0x81, (byte) 0xA4, 't', 'y', 'p', 'e'};
        assertThatThrownBy(() -> serializer.readEnvelope(cut)).isInstanceOf(ProtocolException.class)
                .hasMessageContaining("msgpack envelope does not parse: ")
                .hasMessageNotContaining("parse: null");
    }
}
