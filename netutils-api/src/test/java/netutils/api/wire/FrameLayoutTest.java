package netutils.api.wire;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import netutils.api.DType;
import netutils.api.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Where {@link FrameEncoder} puts large tensors (docs/PROTOCOL.md, "Where a writer puts large tensors"): never where
 * the copy into socket pages runs 1 to 63 bytes ahead of the tensor's memory, nor where a copy into page-aligned
 * memory would. Positions below are from the start of the frame; the data area starts at the second argument.
 */
class FrameLayoutTest {
    private static final long BIG = FrameEncoder.PLACED_MIN_BYTES;
    private final Arena arena = Arena.ofConfined();

    @AfterEach
    void free() {
        arena.close();
    }

    /** A native tensor of {@code bytes} whose memory starts {@code pageOffset} bytes past a page boundary. */
    private Tensor nativeAt(long pageOffset, long bytes) {
        MemorySegment pages = arena.allocate(bytes + 8192, 4096);
        return Tensor.wrap(DType.U8, pages.asSlice(pageOffset, bytes), bytes);
    }

    private static Tensor heap(long bytes) {
        return Tensor.ofBytes(DType.U8, new byte[(int) bytes], bytes);
    }

    @Test
    void aSenderCopyRunningJustAheadOfItsSourceMovesTheTensorOn() {
        // memory 64 bytes past a page, first place 76 into the frame: the copy runs 12 bytes ahead
        assertThat(FrameEncoder.layout(List.of(nativeAt(64, BIG)), 76, null)).containsExactly(64);
        // first place 140 into the frame: 76 ahead, fine
        assertThat(FrameEncoder.layout(List.of(nativeAt(64, BIG)), 140, null)).containsExactly(0);
    }

    @Test
    void aReceiverCopyIntoPageAlignedMemoryMovesTheTensorOn() {
        // heap memory has no address the sender's copy starts from; position 4044 is 52 bytes before a page
        assertThat(FrameEncoder.layout(List.of(heap(BIG)), 4044, null)).containsExactly(64);
        assertThat(FrameEncoder.layout(List.of(heap(BIG)), 3980, null)).containsExactly(0);
    }

    @Test
    void bothConditionsInARowTakeTwoMoves() {
        // 3980 runs 12 ahead of memory at 3968; 4044 is 52 before a page; 4108 is fine for both
        assertThat(FrameEncoder.layout(List.of(nativeAt(3968, BIG)), 3980, null)).containsExactly(128);
    }

    @Test
    void smallTensorsAndAnUnknownDataStartKeepThePlainLayout() {
        Tensor small = nativeAt(64, BIG - 1);
        assertThat(FrameEncoder.layout(List.of(small), 76, null)).containsExactly(0);
        assertThat(FrameEncoder.layout(List.of(small, nativeAt(64, BIG)), -1, null)).containsExactly(0, BIG);
        // placed after a small tensor: BIG starts at 76 + BIG, which runs 12 ahead of memory at 64
        assertThat(FrameEncoder.layout(List.of(small, nativeAt(64, BIG)), 76, null)).containsExactly(0, BIG + 64);
    }

    @Test
    void noOffsetGoesBelowTheLastTry() {
        assertThat(FrameEncoder.layout(List.of(heap(BIG), heap(8)), 140, new long[] {192, 0}))
                .containsExactly(192, 192 + BIG);
    }
}
