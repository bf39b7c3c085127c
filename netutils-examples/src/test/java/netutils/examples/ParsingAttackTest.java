package netutils.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.AbstractMap.SimpleImmutableEntry;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Stream;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.ProtocolException;
import netutils.api.Tensor;
import netutils.api.spi.Serializer;
import netutils.api.wire.Frames;
import netutils.api.wire.Serializers;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The parsing attacks of issue 12 that netutils already held, kept as regressions: each forged frame goes
 * through {@link Frames#fromRawMessage}, as a receiver would read it, and is refused with a
 * {@link ProtocolException} naming what was wrong, allocating next to nothing — or, for valid input that an
 * earlier version refused (names of emoji), is read.
 */
class ParsingAttackTest {
    private static final long MIB = 1 << 20;

    // ------------------------------------------------------------------------------------------ kryo

    @Test
    void kryoEnvelopesNamingAnyClassButTheEnvelopeAreRefused() {
        // 1: a class given by name (Kryo would look it up), then name id 0 and the name in Kryo's ASCII form.
        byte[] name = "java.lang.ProcessBuilder".getBytes(StandardCharsets.US_ASCII);
        name[name.length - 1] |= (byte) 0x80;
        byte[] byName = ByteBuffer.allocate(2 + name.length).put((byte) 1).put((byte) 0).put(name).array();
        refused(3, byName, "kryo envelope names a class outside the registered set: a class given by name");
        // Registration id 57, which nothing has, and Kryo's own default registrations: int (0) and String (1).
        refused(3, new byte[] {57 + 2, 0}, "registration id 57 (only the envelope, id 16, is read)");
        refused(3, new byte[] {2, 5}, "registration id 0 (only the envelope");
        // The String one declares 2^31 - 1 characters in 6 bytes: Kryo would allocate a 4 GiB char[] for it.
        refused(3, new byte[] {3, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, 0x07}, "registration id 1 ");
    }

    // ------------------------------------------------------------------------------------------ cbor

    static Stream<Arguments> cborBombs() {
        return Stream.of(
                Arguments.of("an array of 2^63 - 1 items", bytes(0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)),
                Arguments.of("a map of 2^32 entries", bytes(0xbb, 0, 0, 0, 1, 0, 0, 0, 0)),
                Arguments.of("a byte string of 2^62 bytes", bytes(0x5b, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3)),
                Arguments.of("a text string of 4 GiB", bytes(0x7a, 0xff, 0xff, 0xff, 0xff, 'a')),
                Arguments.of("a key of 1 GiB", bytes(0xa1, 0x7a, 0x40, 0, 0, 0, 'k')),
                Arguments.of("100,000 nested indefinite arrays", repeat(0x9f, 100_000)),
                Arguments.of("100,000 nested one-item maps", nestedMaps(100_000)),
                Arguments.of("100,000 nested tags", repeat(0xc6, 100_000)),
                Arguments.of("an unterminated indefinite map", bytes(0xbf, 0x61, 'k', 0x61, 'v')));
    }

    /** Loads and initialises the decoders, so class loading is not charged to the first bomb. */
    @BeforeAll
    static void warmUp() throws Exception {
        for (Serializer serializer : Serializers.installed()) {
            Frames.fromRawMessage(Frames.toRawMessage(Message.of(MessageType.KV_INDEX, Tensor.scalar(1)), serializer));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cborBombs")
    void cborBombsAreRefusedWithoutAllocatingWhatTheyClaim(String what, byte[] envelope) throws Exception {
        long before = DecoderFuzzTest.Memory.threadAllocated();
        assertThatThrownBy(() -> Frames.fromRawMessage(frame(200, envelope))).as(what)
                .isInstanceOfSatisfying(ProtocolException.class,
                        e -> assertThat(e.kind()).isEqualTo(ProtocolException.Kind.MALFORMED_ENVELOPE))
                .hasMessageContaining("cbor envelope");
        assertThat(DecoderFuzzTest.Memory.threadAllocated() - before).as("bytes allocated to refuse " + what)
                .isLessThan(4 * MIB);
    }

    // ------------------------------------------------------------------------------------------ names

    @ParameterizedTest
    @ValueSource(strings = {"json", "msgpack", "kryo", "cbor"})
    void namesOfEmojiAreCountedInCharactersAsTheProtocolSays(String serializer) throws Exception {
        // 600 emoji are 600 characters (1,200 UTF-16 chars); the limit is 1,024 for tensor names and 256 for types.
        String emoji = "\ud83d\ude00";
        Message message = Message.builder(MessageType.of(emoji.repeat(MessageType.MAX_NAME_LENGTH)))
                .tensor(emoji.repeat(600), Tensor.scalar(1)).tensor(emoji.repeat(Message.MAX_NAME_LENGTH),
                        Tensor.scalar(2)).meta(emoji.repeat(600), emoji).build();
        assertThat(Frames.fromRawMessage(Frames.toRawMessage(message, Serializers.byName(serializer))))
                .isEqualTo(message);
    }

    @Test
    void namesOverTheLimitAreRefusedWhenBuiltAndWhenForged() {
        String emoji = "\ud83d\ude00";
        assertThatThrownBy(() -> Message.builder(MessageType.HIDDEN_STATE).tensor(emoji.repeat(1025),
                Tensor.scalar(1))).hasMessageContaining("1 to 1024 characters, got 1025");
        assertThatThrownBy(() -> MessageType.of(emoji.repeat(257)))
                .hasMessageContaining("1 to 256 characters, got 257");
        Object forged = obj(entry("type", "hidden_state"), entry("tensors", List.of(obj(
                entry("name", emoji.repeat(1025)), entry("dtype", "I64"), entry("shape", List.of()),
                entry("offset", 0L), entry("nbytes", 8L)))));
        refused(1, HostileBytes.json(forged), "tensor 0 has a name of 1025 characters (1..1024 allowed)");
    }

    // ------------------------------------------------------------------------------------------ duplicates

    static Stream<Arguments> duplicateKeys() {
        Object row = obj(entry("name", "data"), entry("dtype", "I64"), entry("shape", List.of()), entry("offset", 0L),
                entry("nbytes", 8L));
        Object rowNamedTwice = obj(entry("name", "data"), entry("name", "evil"), entry("dtype", "I64"),
                entry("shape", List.of()), entry("offset", 0L), entry("nbytes", 8L));
        List<Arguments> cases = new ArrayList<>();
        Map<String, Object> forgeries = Map.of(
                // msgpack used to concatenate two tensor lists, JSON to keep the last: two readers, two messages.
                "key 'tensors' appears twice", obj(entry("type", "KV_index"), entry("tensors", List.of(row)),
                        entry("tensors", List.of(row))),
                "key 'type' appears twice", obj(entry("type", "KV_index"), entry("type", "error"),
                        entry("tensors", List.of(row))),
                "meta: key 'code' appears twice", obj(entry("type", "KV_index"), entry("meta",
                        obj(entry("code", "a"), entry("code", "b"))), entry("tensors", List.of(row))),
                "tensors[0]: key 'name' appears twice", obj(entry("type", "KV_index"),
                        entry("tensors", List.of(rowNamedTwice))));
        Map<Integer, Function<Object, byte[]>> writers = Map.of(1, HostileBytes::json, 2, HostileBytes::msgpack,
                200, HostileBytes::cbor);
        forgeries.forEach((message, tree) -> writers.forEach((id, writer) ->
                cases.add(Arguments.of(Serializers.findById(id).map(Serializer::name).orElseThrow(), message,
                        writer.apply(tree), id))));
        return cases.stream();
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("duplicateKeys")
    void aKeyTwiceIsRefusedByEverySelfDescribingSerializer(String serializer, String message, byte[] envelope, int id) {
        refused(id, envelope, message);
    }

    @Test
    void theSameEnvelopesWithoutTheDuplicateAreRead() throws Exception {
        Object row = obj(entry("name", "data"), entry("dtype", "I64"), entry("shape", List.of()), entry("offset", 0L),
                entry("nbytes", 8L));
        Object tree = obj(entry("type", "KV_index"), entry("meta", obj(entry("code", "a"))),
                entry("tensors", List.of(row)));
        for (Map.Entry<Integer, Function<Object, byte[]>> writer : Map.<Integer, Function<Object, byte[]>>of(
                1, HostileBytes::json, 2, HostileBytes::msgpack, 200, HostileBytes::cbor).entrySet()) {
            Message message = Frames.fromRawMessage(frame(writer.getKey(), writer.getValue().apply(tree)));
            assertThat(message.type()).isEqualTo(MessageType.KV_INDEX);
            assertThat(message.meta("code")).contains("a");
        }
    }

    // ------------------------------------------------------------------------------------------ helpers

    private static void refused(int serializerId, byte[] envelope, String expected) {
        assertThatThrownBy(() -> Frames.fromRawMessage(frame(serializerId, envelope)))
                .isInstanceOf(ProtocolException.class).hasMessageContaining(expected);
    }

    /**
     * A whole frame around {@code envelope}: header, envelope length, envelope, padding, and a data area of
     * 64 bytes whose first 8 hold the I64 scalar 42 (for the tensor the forged envelopes declare).
     */
    static byte[] frame(int serializerId, byte[] envelope) {
        int dataStart = (int) Frames.align(4 + envelope.length);
        ByteBuffer frame = ByteBuffer.allocate(Frames.HEADER_LENGTH + dataStart + 64);
        frame.putShort((short) Frames.MAGIC).put((byte) Frames.VERSION).put((byte) serializerId).put((byte) 0)
                .put(new byte[3]).putInt(dataStart + 64).putInt(envelope.length).put(envelope);
        frame.position(Frames.HEADER_LENGTH + dataStart);
        frame.put((byte) 42);
        return frame.array();
    }

    private static HostileBytes.Obj obj(Map.Entry<String, Object>... entries) {
        return new HostileBytes.Obj(List.of(entries));
    }

    private static Map.Entry<String, Object> entry(String key, Object value) {
        return new SimpleImmutableEntry<>(key, value);
    }

    private static byte[] bytes(int... values) {
        byte[] out = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = (byte) values[i];
        }
        return out;
    }

    private static byte[] repeat(int value, int times) {
        byte[] out = new byte[times];
        java.util.Arrays.fill(out, (byte) value);
        return out;
    }

    private static byte[] nestedMaps(int depth) {
        byte[] out = new byte[depth * 3];
        for (int i = 0; i < depth; i++) {
            out[3 * i] = (byte) 0xa1; // a map of one entry
            out[3 * i + 1] = 0x61;    // whose key is a one-byte text string
            out[3 * i + 2] = 'k';     // "k", and whose value is the next map
        }
        return out;
    }
}
