package netutils.api.wire;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import netutils.api.ProtocolException;

class FrameHeaderTest {

    private static ByteBuffer bytes(String hex) {
        return ByteBuffer.wrap(HexFormat.of().parseHex(hex.replace(" ", "")));
    }

    @Test
    void encodesTheDocumentedLayout() {
        FrameHeader header = FrameHeader.of(2, true, 0x01020304L);
        assertThat(HexFormat.of().formatHex(header.toBytes())).isEqualTo("4e5501020100000001020304");
    }

    @ParameterizedTest
    @ValueSource(longs = {0L, 1L, 0x7FFF_FFFFL, 0x8000_0000L, Frames.MAX_BODY_LENGTH})
    void bodyLengthsAtTheBoundariesRoundTrip(long length) throws ProtocolException {
        FrameHeader header = FrameHeader.of(1, false, length);
        FrameHeader decoded = FrameHeader.decode(ByteBuffer.wrap(header.toBytes()), Frames.MAX_BODY_LENGTH);
        assertThat(decoded).isEqualTo(header);
        assertThat(decoded.bodyLength()).isEqualTo(length);
        assertThat(decoded.frameLength()).isEqualTo(12 + length);
    }

    @Test
    void maximumLengthIsReadUnsigned() throws ProtocolException {
        FrameHeader decoded = FrameHeader.decode(bytes("4E55 01 01 00 000000 FFFFFFFF"), Frames.MAX_BODY_LENGTH);
        assertThat(decoded.bodyLength()).isEqualTo(4_294_967_295L);
    }

    @Test
    void decodeAdvancesThePosition() throws ProtocolException {
        ByteBuffer buffer = bytes("4E55 01 03 01 000000 00000010 AA");
        FrameHeader header = FrameHeader.decode(buffer, 100);
        assertThat(buffer.position()).isEqualTo(12);
        assertThat(header.serializerId()).isEqualTo(3);
        assertThat(header.hasChecksum()).isTrue();
        assertThat(header.frameLength()).isEqualTo(12 + 16 + 4);
    }

    @Test
    void badMagicIsRefused() {
        assertThatThrownBy(() -> FrameHeader.decode(bytes("4E56 01 01 00 000000 00000000"), 100))
                .isInstanceOfSatisfying(ProtocolException.class, e -> assertThat(e.kind()).isEqualTo(ProtocolException.Kind.BAD_MAGIC))
                .hasMessageContaining("bad magic 0x4E56");
    }

    @Test
    void unknownVersionIsRefused() {
        assertThatThrownBy(() -> FrameHeader.decode(bytes("4E55 02 01 00 000000 00000000"), 100))
                .isInstanceOfSatisfying(ProtocolException.class, e -> assertThat(e.kind()).isEqualTo(ProtocolException.Kind.UNSUPPORTED_VERSION))
                .hasMessageContaining("unsupported protocol version 2");
    }

    @Test
    void reservedFlagBitsAreRefused() {
        assertThatThrownBy(() -> FrameHeader.decode(bytes("4E55 01 01 02 000000 00000000"), 100))
                .isInstanceOfSatisfying(ProtocolException.class, e -> assertThat(e.kind()).isEqualTo(ProtocolException.Kind.RESERVED_BITS_SET))
                .hasMessageContaining("reserved flag bits set: flags 0x02");
    }

    @Test
    void reservedBytesAreRefused() {
        assertThatThrownBy(() -> FrameHeader.decode(bytes("4E55 01 01 00 000100 00000000"), 100))
                .isInstanceOfSatisfying(ProtocolException.class, e -> assertThat(e.kind()).isEqualTo(ProtocolException.Kind.RESERVED_BITS_SET))
                .hasMessageContaining("reserved header bytes 5..7 must be zero, got 0x000100");
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 4, 127})
    void reservedSerializerIdsAreRefused(int id) {
        String hex = "4E5501" + String.format("%02X", id) + "00000000" + "00000000";
        assertThatThrownBy(() -> FrameHeader.decode(bytes(hex), 100))
                .isInstanceOfSatisfying(ProtocolException.class, e -> assertThat(e.kind()).isEqualTo(ProtocolException.Kind.UNKNOWN_SERIALIZER))
                .hasMessageContaining("serializer id " + id + " is reserved");
    }

    @Test
    void lengthOverTheReceiversLimitIsRefused() {
        assertThatThrownBy(() -> FrameHeader.decode(bytes("4E55 01 01 00 000000 00000065"), 100))
                .isInstanceOfSatisfying(ProtocolException.class, e -> assertThat(e.kind()).isEqualTo(ProtocolException.Kind.FRAME_TOO_LARGE))
                .hasMessageContaining("frame body of 101 bytes exceeds the limit of 100 bytes");
    }

    @Test
    void shortInputIsTruncated() {
        assertThatThrownBy(() -> FrameHeader.decode(bytes("4E55 01"), 100))
                .isInstanceOfSatisfying(ProtocolException.class, e -> assertThat(e.kind()).isEqualTo(ProtocolException.Kind.TRUNCATED));
    }

    @Test
    void everyProblemHasItsOwnMessage() {
        String[] frames = {"4E56 01 01 00 000000 00000000", "4E55 02 01 00 000000 00000000",
            "4E55 01 01 80 000000 00000000", "4E55 01 04 00 000000 00000000", "4E55 01 01 00 000000 FFFFFFFF"};
        java.util.Set<String> messages = new java.util.HashSet<>();
        for (String frame : frames) {
            try {
                FrameHeader.decode(bytes(frame), 100);
            } catch (ProtocolException e) {
                messages.add(e.kind() + ": " + e.getMessage());
            }
        }
        assertThat(messages).hasSize(frames.length);
    }
}
