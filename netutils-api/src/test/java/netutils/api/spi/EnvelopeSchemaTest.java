package netutils.api.spi;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import netutils.api.DType;
import netutils.api.ProtocolException;
import netutils.api.ProtocolException.Kind;
import org.junit.jupiter.api.Test;

/** The envelope schema on its own, without bytes or sockets: trees in, envelopes out, and the table rules. */
class EnvelopeSchemaTest {
    private static final Envelope SAMPLE = new Envelope("KV_cache", "req-1", null, Map.of("layer", "3"), List.of(
            new Envelope.Entry("k", "BF16", new long[] {1, 8, 16}, 0, 256),
            new Envelope.Entry("v", "BF16", new long[] {1, 8, 16}, 256, 256)));

    @Test
    void treeRoundTripsWithTheProtocolsKeysInOrder() throws ProtocolException {
        Map<String, Object> tree = EnvelopeSchema.toTree(SAMPLE);
        assertThat(tree.keySet()).containsExactly("type", "id", "meta", "tensors");
        @SuppressWarnings("unchecked")
        Map<String, Object> row = (Map<String, Object>) ((List<?>) tree.get("tensors")).get(1);
        assertThat(row.keySet()).containsExactly("name", "dtype", "shape", "offset", "nbytes");
        assertThat(EnvelopeSchema.fromTree(tree)).isEqualTo(SAMPLE);
    }

    @Test
    void valuesOfTheWrongKindAreNamedByPath() {
        Map<String, Object> tree = EnvelopeSchema.toTree(SAMPLE);
        tree.put("type", 3L);
        assertThatThrownBy(() -> EnvelopeSchema.fromTree(tree)).isInstanceOf(ProtocolException.class)
                .hasMessage("type must be a string, got an integer");
        Map<String, Object> negative = EnvelopeSchema.toTree(SAMPLE);
        @SuppressWarnings("unchecked")
        Map<String, Object> row = (Map<String, Object>) ((List<?>) negative.get("tensors")).get(0);
        row.put("shape", List.of(1L, -8L));
        assertThatThrownBy(() -> EnvelopeSchema.fromTree(negative))
                .hasMessageContaining("tensors[0].shape[1] must be a non-negative 64-bit integer, got -8");
        row.put("shape", List.of(1L, 2.5));
        assertThatThrownBy(() -> EnvelopeSchema.fromTree(negative)).hasMessageContaining("got 2.5");
        assertThatThrownBy(() -> EnvelopeSchema.fromTree(List.of())).hasMessageContaining("envelope must be a map");
    }

    @Test
    void unknownKeysInAFrameEnvelopeAreSkippedForNewerPeers() throws ProtocolException {
        Map<String, Object> tree = new LinkedHashMap<>(EnvelopeSchema.toTree(SAMPLE));
        tree.put("trace", "abc");
        assertThat(EnvelopeSchema.fromTree(tree)).isEqualTo(SAMPLE);
    }

    @Test
    void tableRulesNameTheTensorAndTheRule() throws ProtocolException {
        assertThat(EnvelopeSchema.checkTable(SAMPLE.tensors(), 512)).containsExactly(DType.BF16, DType.BF16);
        assertKind(List.of(entry("a", "F32", 4, 0, 15)), 64, Kind.BAD_TENSOR, "declares 15 bytes but F32 [4] needs 16");
        assertKind(List.of(entry("a", "F99", 4, 0, 16)), 64, Kind.BAD_TENSOR, "unknown dtype 'F99'");
        assertKind(List.of(entry("a", "U8", 4, 3, 4)), 64, Kind.BAD_TENSOR, "not a non-negative multiple of 64");
        assertKind(List.of(entry("a", "U8", 100, 0, 100), entry("b", "U8", 1, 64, 1)), 256, Kind.BAD_TENSOR,
                "overlaps tensor 'a'");
        assertKind(List.of(entry("a", "U8", 100, 0, 100)), 64, Kind.BAD_TENSOR, "data area has 64 bytes");
        assertKind(List.of(entry("a", "U8", 1, 0, 1), entry("a", "U8", 1, 64, 1)), 128, Kind.MALFORMED_ENVELOPE,
                "appears twice");
        assertKind(List.of(new Envelope.Entry("r", "U8", new long[9], 0, 0)), 64, Kind.BAD_TENSOR, "rank 9");
    }

    @Test
    void namesAreCountedInCharactersNotUtf16Units() throws ProtocolException {
        String emoji = "\uD83D\uDE00".repeat(1024); // 1,024 characters, 2,048 UTF-16 units
        assertThat(EnvelopeSchema.checkTable(List.of(entry(emoji, "U8", 1, 0, 1)), 64)).hasSize(1);
        assertKind(List.of(entry(emoji + "x", "U8", 1, 0, 1)), 64, Kind.MALFORMED_ENVELOPE, "1025 characters");
    }

    private static Envelope.Entry entry(String name, String dtype, long dim, long offset, long nbytes) {
        return new Envelope.Entry(name, dtype, new long[] {dim}, offset, nbytes);
    }

    private static void assertKind(List<Envelope.Entry> entries, long dataLength, Kind kind, String text) {
        assertThatThrownBy(() -> EnvelopeSchema.checkTable(entries, dataLength)).isInstanceOf(ProtocolException.class)
                .hasMessageContaining(text).extracting(e -> ((ProtocolException) e).kind()).isEqualTo(kind);
    }
}
