package netutils.transport.tcp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import netutils.api.Connection;
import netutils.api.ConnectionHandler;
import netutils.api.DType;
import netutils.api.FrameTooLargeException;
import netutils.api.wire.Frames;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.wire.Serializers;
import netutils.api.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Frames at the 32-bit limit over real loopback TCP, every byte verified. Needs about 9 GiB of memory;
 * tagged heavy (CI runs it; {@code -Dtest.excludedGroups=heavy} leaves it out locally).
 */
@Tag("heavy")
@Timeout(600)
class HugeFrameTest {
    private static final long VALUE_SEED = 0x9E3779B97F4A7C15L;

    private final Arena arena = Arena.ofShared();

    @AfterEach
    void freeMemory() {
        arena.close();
        System.gc(); // received tensors are GC-managed; let them go before the next test
    }

    /** A position-dependent pattern, so a byte in the wrong place is caught as surely as a wrong byte. */
    private static long patternAt(long position) {
        long z = (position + 1) * VALUE_SEED;
        z = (z ^ (z >>> 31)) * 0xBF58476D1CE4E5B9L;
        return z ^ (z >>> 29);
    }

    private static final ValueLayout.OfLong LONG_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

    /** The pattern's byte at {@code position}: byte {@code position % 8} of the little-endian long there. */
    private static byte patternByte(long position) {
        return (byte) (patternAt(position & ~7L) >>> ((position & 7) * 8));
    }

    private static void fill(MemorySegment segment) {
        long longs = segment.byteSize() / 8;
        for (long i = 0; i < longs; i++) {
            segment.set(LONG_LE, i * 8, patternAt(i * 8));
        }
        for (long i = longs * 8; i < segment.byteSize(); i++) {
            segment.set(ValueLayout.JAVA_BYTE, i, patternByte(i));
        }
    }

    /** The number of bytes that differ from the pattern. */
    private static long mismatches(MemorySegment segment) {
        long bad = 0;
        long longs = segment.byteSize() / 8;
        for (long i = 0; i < longs; i++) {
            bad += segment.get(LONG_LE, i * 8) == patternAt(i * 8) ? 0 : 1;
        }
        for (long i = longs * 8; i < segment.byteSize(); i++) {
            bad += segment.get(ValueLayout.JAVA_BYTE, i) == patternByte(i) ? 0 : 1;
        }
        return bad;
    }

    /** A server that checks every tensor of each message against the pattern and answers with the verdict. */
    private static TcpServer verifyingServer(TcpOptions options) throws java.io.IOException {
        return TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), options)
                .serve(ConnectionHandler.ofRequests(request -> {
                    Message.Builder verdict = Message.builder(MessageType.KV_INDEX);
                    request.tensors().forEach((name, tensor) -> verdict
                            .meta(name + ".bytes", "" + tensor.byteSize())
                            .meta(name + ".mismatches", "" + mismatches(tensor.data())));
                    return verdict.build();
                }));
    }

    @Test
    void frameWithAMaximalBodyOf4294967295BytesCrossesLoopbackIntact() throws Exception {
        // One U8 tensor sized so that header + body is exactly 12 + 4,294,967,295 bytes.
        MemorySegment data = arena.allocate(Frames.MAX_BODY_LENGTH, 64);
        fill(data);
        Message message = null;
        for (long dataStart = 64; message == null; dataStart += 64) {
            long size = Frames.MAX_BODY_LENGTH - dataStart;
            // With its id already set: a call would otherwise add one, and the envelope would grow past the size.
            Message candidate = Message.builder(MessageType.KV_CACHE).id("maximal")
                    .tensor("cache", Tensor.wrap(DType.U8, data.asSlice(0, size), size)).build();
            try {
                if (Frames.frameLength(candidate, Serializers.defaultSerializer(), false) == 12 + Frames.MAX_BODY_LENGTH) {
                    message = candidate;
                }
            } catch (FrameTooLargeException envelopeDoesNotFitYet) {
                // a larger data-area start leaves more room for the envelope
            }
        }
        long tensorBytes = message.tensor("cache").byteSize();
        assertThat(tensorBytes).isGreaterThan(4_294_967_000L);
        TcpOptions options = TcpOptions.builder().maxFrameBytes(Frames.MAX_BODY_LENGTH).checksum(true)
                .readTimeout(Duration.ofSeconds(120)).writeTimeout(Duration.ofSeconds(120)).build();
        try (TcpServer server = verifyingServer(options);
                Connection client = TcpClient.connect("127.0.0.1", server.port(), options)) {
            Message verdict = client.request(message);
            assertThat(verdict.meta("cache.bytes")).contains("" + tensorBytes);
            assertThat(verdict.meta("cache.mismatches")).contains("0");
        }
    }

    @Test
    void singleTensorOver2GiBCrossesLoopbackIntact() throws Exception {
        long bigBytes = (5L << 29) + 12; // 2.5 GiB + 12: over Integer.MAX_VALUE, not a multiple of 64
        MemorySegment big = arena.allocate(bigBytes, 64);
        fill(big);
        MemorySegment small = arena.allocate(1000, 64);
        fill(small);
        Message message = Message.builder(MessageType.KV_CACHE)
                .tensor("layer0.k", Tensor.wrap(DType.BF16, big, 1, 2, bigBytes / 4))
                .tensor("position", Tensor.wrap(DType.U8, small, 1000))
                .build();
        TcpOptions options = TcpOptions.builder().serializer("json").maxFrameBytes(Frames.MAX_BODY_LENGTH)
                .readTimeout(Duration.ofSeconds(120)).writeTimeout(Duration.ofSeconds(120)).build();
        try (TcpServer server = verifyingServer(options);
                Connection client = TcpClient.connect("127.0.0.1", server.port(), options)) {
            Message verdict = client.request(message);
            assertThat(verdict.meta("layer0.k.bytes")).contains("" + bigBytes);
            assertThat(verdict.meta("layer0.k.mismatches")).contains("0");
            assertThat(verdict.meta("position.mismatches")).contains("0");
        }
    }

    @Test
    void messageOverTheFrameLimitIsRefusedBeforeAnythingIsSent() throws Exception {
        // Two tensors of 2 GiB + 2 GiB: the data alone passes 2^32 - 1. Nothing may reach the server.
        MemorySegment half = arena.allocate(1L << 31, 64);
        Message tooBig = Message.builder(MessageType.KV_CACHE)
                .tensor("k", Tensor.wrap(DType.U8, half, 1L << 31))
                .tensor("v", Tensor.wrap(DType.U8, half, 1L << 31)).build();
        try (TcpServer server = verifyingServer(TcpOptions.builder().maxFrameBytes(Frames.MAX_BODY_LENGTH).build());
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            assertThatThrownBy(() -> client.send(tooBig)).isInstanceOfSatisfying(FrameTooLargeException.class,
                    e -> assertThat(e.excessBytes()).isEqualTo(e.bodyLength() - Frames.MAX_BODY_LENGTH).isPositive())
                    .hasMessageContaining("over the 4,294,967,295-byte maximum");
            // The connection is untouched: the next message goes through.
            Message ok = client.request(Message.of(MessageType.MASK, Tensor.wrap(DType.U8, half.asSlice(0, 64), 64)));
            assertThat(ok.meta("data.bytes")).contains("64");
            assertThat(client.isOpen()).isTrue();
        }
    }
}
