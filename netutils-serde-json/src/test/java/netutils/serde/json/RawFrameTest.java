package netutils.serde.json;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import netutils.api.FrameTooLargeException;
import netutils.api.wire.Frames;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.ProtocolException;
import netutils.api.ProtocolException.Kind;
import netutils.api.wire.Serializers;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;

/** The frame codec without sockets: bytes in, messages out. */
class RawFrameTest {

    /** A frame around a hand-written JSON envelope and data area. */
    static byte[] frame(String envelopeJson, byte[] data) {
        byte[] envelope = envelopeJson.getBytes(StandardCharsets.UTF_8);
        int dataStart = (int) Frames.align(4 + envelope.length);
        int body = dataStart + data.length;
        ByteBuffer out = ByteBuffer.allocate(12 + body);
        out.putShort((short) 0x4E55).put((byte) 1).put((byte) 1).putInt(0).putInt(body);
        out.putInt(envelope.length).put(envelope);
        out.position(12 + dataStart).put(data);
        return out.array();
    }

    static void assertRefused(byte[] frame, Kind kind, String text) {
        assertThatThrownBy(() -> Frames.fromRawMessage(frame))
                .isInstanceOfSatisfying(ProtocolException.class, e -> assertThat(e.kind()).isEqualTo(kind))
                .hasMessageContaining(text);
    }

    @Test
    void anEnvelopeWithALoneSurrogateIsRefusedNotPassedOn() {
        assertRefused(frame("{\"type\":\"a\",\"meta\":{\"k\":\"\\ud800\"}}", new byte[0]), Kind.MALFORMED_ENVELOPE,
                "not valid Unicode");
        assertRefused(frame("{\"type\":\"a\",\"tensors\":[{\"name\":\"\\udc00\",\"dtype\":\"U8\",\"shape\":[1],"
                + "\"offset\":0,\"nbytes\":1}]}", new byte[] {7}), Kind.MALFORMED_ENVELOPE, "not valid Unicode");
    }

    @Test
    void everyDtypeAndTypeRoundTripsAsARawFrame() throws ProtocolException {
        for (Message message : Samples.everyDtype()) {
            assertThat(Frames.fromRawMessage(Frames.toRawMessage(message))).isEqualTo(message);
        }
        for (Message message : Samples.fiveTypes()) {
            assertThat(Frames.fromRawMessage(Frames.toRawMessage(message))).isEqualTo(message);
        }
    }

    @Test
    void layoutFollowsTheProtocol() {
        Message message = Message.builder(MessageType.MASK).tensor("a", Tensor.ofBytes(netutils.api.DType.U8, new byte[] {1, 2, 3}, 3))
                .tensor("b", Tensor.ofBytes(netutils.api.DType.U8, new byte[] {9}, 1)).build();
        ByteBuffer frame = ByteBuffer.wrap(Frames.toRawMessage(message));
        assertThat(frame.getShort(0)).isEqualTo((short) 0x4E55);
        assertThat(frame.get(3)).isEqualTo((byte) 1);
        long body = Integer.toUnsignedLong(frame.getInt(8));
        int envelopeLength = frame.getInt(12);
        int dataStart = 12 + (int) Frames.align(4 + envelopeLength);
        assertThat(frame.get(dataStart)).isEqualTo((byte) 1);
        assertThat(frame.get(dataStart + 2)).isEqualTo((byte) 3);
        assertThat(frame.get(dataStart + 64)).isEqualTo((byte) 9); // the second tensor starts at the next 64
        assertThat(body).isEqualTo(dataStart - 12 + 65);
        String envelope = new String(frame.array(), 16, envelopeLength, StandardCharsets.UTF_8);
        assertThat(envelope).contains("\"offset\":64").contains("\"nbytes\":1");
    }

    /**
     * A large tensor never starts where copying it is slow: not 1 to 63 bytes (mod 4096) past its sender's address,
     * nor 1 to 63 bytes before a page boundary of the frame (a receiver's page-aligned memory). docs/PROTOCOL.md,
     * "Where a writer puts large tensors"; FrameLayoutTest has each condition on its own.
     */
    @Test
    void largeTensorsArePlacedWhereCopyingThemIsFast() throws ProtocolException {
        try (Arena arena = Arena.ofConfined()) {
            int size = 64 * 1024;
            MemorySegment memory = arena.allocate(size + 4096, 4096);
            for (int i = 0; i < memory.byteSize(); i++) {
                memory.set(ValueLayout.JAVA_BYTE, i, (byte) (i * 31 + 7));
            }
            java.util.regex.Pattern offsetField = java.util.regex.Pattern.compile("\"offset\":(\\d+)");
            int moved = 0;
            for (int shift = 0; shift < 4096; shift += 8) {
                // envelopes of every length mod 64 (moving a tensor can lengthen the envelope past a multiple of
                // 64, which moves the data area) and near 4 KiB (the receiver's condition)
                int step = shift / 8;
                for (String pad : new String[] {"x".repeat(step % 64), "x".repeat(3780 + step % 128)}) {
                    MemorySegment data = memory.asSlice(shift, size);
                    Message message = Message.builder(MessageType.KV_CACHE).meta("pad", pad)
                            .tensor("small", Tensor.ofBytes(netutils.api.DType.U8, new byte[] {5}, 1))
                            .tensor("cache", Tensor.wrap(netutils.api.DType.U8, data, size)).build();
                    boolean checksum = step % 2 == 1;
                    byte[] frame = Frames.toRawSegment(message, Serializers.defaultSerializer(), checksum)
                            .toArray(ValueLayout.JAVA_BYTE);
                    int envelopeLength = ByteBuffer.wrap(frame).getInt(12);
                    String envelope = new String(frame, 16, envelopeLength, StandardCharsets.UTF_8);
                    java.util.regex.Matcher offsets = offsetField.matcher(envelope);
                    assertThat(offsets.find()).isTrue();
                    assertThat(offsets.group(1)).isEqualTo("0");
                    assertThat(offsets.find()).isTrue();
                    long offset = Long.parseLong(offsets.group(1));
                    assertThat(offset % 64).isZero();
                    assertThat(offset).isBetween(64L, 320L);
                    moved += offset > 64 ? 1 : 0;
                    long position = 12 + Frames.align(4 + envelopeLength) + offset;
                    assertThat(Math.floorMod(position - data.address(), 4096L)).as("sender copy, shift %d", shift)
                            .matches(ahead -> ahead == 0 || ahead >= 64, "0 or at least 64");
                    assertThat(Math.floorMod(-position, 4096L)).as("receiver copy, shift %d", shift)
                            .matches(ahead -> ahead == 0 || ahead >= 64, "0 or at least 64");
                    assertThat(ByteBuffer.wrap(frame).getInt(8)).isEqualTo((int) (position - 12 + size));
                    Message back = Frames.fromRawMessage(frame);
                    assertThat(back).isEqualTo(message);
                }
            }
            assertThat(moved).as("tensors moved off the first place").isPositive();
        }
    }

    @Test
    void checksumIsWrittenAndVerified() throws ProtocolException {
        Message message = Samples.fiveTypes().get(0);
        MemorySegment segment = Frames.toRawSegment(message, Serializers.defaultSerializer(), true);
        byte[] frame = segment.toArray(ValueLayout.JAVA_BYTE);
        assertThat(frame[4]).isEqualTo((byte) 1);
        assertThat(Frames.fromRawMessage(frame)).isEqualTo(message);
        frame[frame.length - 100] ^= 0x10; // one bit of tensor data
        assertRefused(frame, Kind.CHECKSUM_MISMATCH, "body checksum mismatch");
    }

    @Test
    void truncatedAndTrailingBytesAreRefused() {
        byte[] frame = Frames.toRawMessage(Samples.fiveTypes().get(2));
        // Refused from the header, before anything is sized by the lengths it declares.
        assertRefused(Arrays.copyOf(frame, frame.length - 1), Kind.TRUNCATED,
                "raw message of 147 bytes is cut short: its header declares a 148-byte frame");
        assertRefused(Arrays.copyOf(frame, 5), Kind.TRUNCATED, "frame header");
        assertRefused(Arrays.copyOf(frame, frame.length + 3), Kind.TRAILING_BYTES, "3 bytes after the end");
        assertRefused(new byte[0], Kind.TRUNCATED, "empty");
    }

    @Test
    void tensorWhoseSizeDisagreesWithItsShapeIsRefused() {
        byte[] frame = frame("{\"type\":\"mask\",\"tensors\":[{\"name\":\"m\",\"dtype\":\"F32\",\"shape\":[2,3],"
                + "\"offset\":0,\"nbytes\":20}]}", new byte[20]);
        assertRefused(frame, Kind.BAD_TENSOR, "tensor 'm' declares 20 bytes but F32 [2, 3] needs 24");
    }

    @Test
    void tensorTableErrorsAreNamed() {
        assertRefused(frame("{\"type\":\"mask\",\"tensors\":[{\"name\":\"m\",\"dtype\":\"F128\",\"shape\":[1],"
                + "\"offset\":0,\"nbytes\":16}]}", new byte[16]), Kind.BAD_TENSOR, "unknown dtype 'F128'");
        assertRefused(frame("{\"type\":\"mask\",\"tensors\":[{\"name\":\"m\",\"dtype\":\"U8\",\"shape\":[1],"
                + "\"offset\":3,\"nbytes\":1}]}", new byte[4]), Kind.BAD_TENSOR, "offset 3");
        assertRefused(frame("{\"type\":\"mask\",\"tensors\":[{\"name\":\"m\",\"dtype\":\"U8\",\"shape\":[100],"
                + "\"offset\":0,\"nbytes\":100}]}", new byte[10]), Kind.BAD_TENSOR, "data area has 10 bytes");
        assertRefused(frame("{\"type\":\"mask\",\"tensors\":[{\"name\":\"a\",\"dtype\":\"U8\",\"shape\":[70],"
                + "\"offset\":0,\"nbytes\":70},{\"name\":\"b\",\"dtype\":\"U8\",\"shape\":[1],\"offset\":64,\"nbytes\":1}]}",
                new byte[128]), Kind.BAD_TENSOR, "overlaps tensor 'a'");
        assertRefused(frame("{\"type\":\"mask\",\"tensors\":[{\"name\":\"m\",\"dtype\":\"U8\",\"shape\":[-1],"
                + "\"offset\":0,\"nbytes\":1}]}", new byte[1]), Kind.MALFORMED_ENVELOPE, "shape[0] must be a non-negative");
    }

    @Test
    void envelopeErrorsAreNamed() {
        assertRefused(frame("{\"type\": 5}", new byte[0]), Kind.MALFORMED_ENVELOPE, "type must be a string");
        assertRefused(frame("[1,2]", new byte[0]), Kind.MALFORMED_ENVELOPE, "envelope must be a map, got an array");
        assertRefused(frame("{\"type\":\"mask\"", new byte[0]), Kind.MALFORMED_ENVELOPE, "does not parse");
        byte[] lying = frame("{\"type\":\"mask\"}", new byte[0]);
        ByteBuffer.wrap(lying).putInt(12, 1_000_000);
        assertRefused(lying, Kind.MALFORMED_ENVELOPE, "runs past the end");
        byte[] tiny = {0x4E, 0x55, 1, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0};
        assertRefused(tiny, Kind.MALFORMED_ENVELOPE, "too short to hold the 4-byte envelope length");
    }

    @Test
    void missingSerializerNamesTheModuleToAdd() {
        byte[] frame = frame("{\"type\":\"mask\"}", new byte[0]);
        frame[3] = 2; // msgpack, not installed in this module's tests
        assertRefused(frame, Kind.UNKNOWN_SERIALIZER, "add netutils-serde-msgpack");
        frame[3] = (byte) 200;
        assertRefused(frame, Kind.UNKNOWN_SERIALIZER, "user serializer id 200, which is not installed");
    }

    @Test
    void bodyLengthZeroParsesAsAHeaderButNotAsAMessage() {
        byte[] frame = {0x4E, 0x55, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0};
        assertRefused(frame, Kind.MALFORMED_ENVELOPE, "frame body of 0 bytes");
    }

    @Test
    void tooLargeMessageIsRefusedBeforeEncodingAndSaysByHowMuch(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
            throws java.io.IOException {
        // A sparse file mapping gives a 4 GiB tensor without committing 4 GiB of memory; encoding must not touch it.
        long size = Frames.MAX_BODY_LENGTH; // the data alone fills the frame; the envelope pushes it over
        try (java.nio.channels.FileChannel file = java.nio.channels.FileChannel.open(dir.resolve("sparse"),
                java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.READ,
                java.nio.file.StandardOpenOption.WRITE, java.nio.file.StandardOpenOption.SPARSE);
                java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            MemorySegment mapped = file.map(java.nio.channels.FileChannel.MapMode.READ_WRITE, 0, size, arena);
            Message message = Message.of(MessageType.KV_CACHE, Tensor.wrap(netutils.api.DType.U8, mapped, size));
            assertThatThrownBy(() -> Frames.toRawSegment(message, Serializers.defaultSerializer(), false))
                    .isInstanceOfSatisfying(FrameTooLargeException.class, e -> {
                        assertThat(e.excessBytes()).isPositive().isLessThan(256);
                        assertThat(e.getMessage()).contains(String.format("%,d bytes over the 4,294,967,295-byte maximum",
                                e.excessBytes()));
                    });
        }
    }

    @Test
    void tensorMemoryThatCannotBeCommittedIsReportedAsSuchNotAsABadAddress() throws Exception {
        // When the RAM file system behind pooled memory fills up during a receive, the kernel refuses the page and
        // the socket read fails with EFAULT: "java.io.IOException: Bad address" told the user nothing.
        byte[] frame = Frames.toRawMessage(Message.of(MessageType.KV_CACHE, Tensor.zeros(netutils.api.DType.U8, 1 << 20)));
        netutils.api.wire.FrameSource full = new netutils.api.wire.FrameSource() {
            private final netutils.api.wire.SegmentSource bytes = new netutils.api.wire.SegmentSource(
                    MemorySegment.ofArray(frame));

            @Override
            public boolean readFrameStart(ByteBuffer header) throws java.io.IOException {
                return bytes.readFrameStart(header);
            }

            @Override
            public long readFully(MemorySegment destination) throws java.io.IOException {
                if (destination.isNative()) {
                    throw new java.io.IOException("Bad address");
                }
                return bytes.readFully(destination);
            }
        };
        netutils.api.wire.FrameDecoder.Limits limits = new netutils.api.wire.FrameDecoder.Limits(1L << 30, 1 << 24);
        netutils.api.wire.FrameHeader header = netutils.api.wire.FrameDecoder.readHeader(full, limits);
        assertThatThrownBy(() -> netutils.api.wire.FrameDecoder.readBody(full, header, limits, null, "test"))
                .isInstanceOf(java.io.IOException.class)
                .hasMessageContaining("cannot store the bytes of tensor 'data' (1048576 bytes)")
                .hasMessageContaining("probably full").hasMessageContaining("-Dnetutils.memory.dir");
    }
}
