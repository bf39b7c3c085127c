package netutils.api.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class ReceiveMemoryTest {

    @Test
    void smallAllocationsAreAlignedDisjointSlicesAndLargeOnesStandAlone() {
        ReceiveMemory memory = new ReceiveMemory();
        List<MemorySegment> small = new ArrayList<>();
        for (int i = 0; i < 200; i++) { // over several slabs
            MemorySegment segment = memory.allocate(8192 + i, 64);
            assertThat(segment.byteSize()).isEqualTo(8192 + i);
            assertThat(segment.address() % 64).isZero();
            segment.fill((byte) i);
            small.add(segment);
        }
        for (int i = 0; i < small.size(); i++) {
            MemorySegment segment = small.get(i);
            assertThat(segment.get(ValueLayout.JAVA_BYTE, 0)).isEqualTo((byte) i);
            assertThat(segment.get(ValueLayout.JAVA_BYTE, segment.byteSize() - 1)).isEqualTo((byte) i);
        }
        MemorySegment large = memory.allocate(ReceiveMemory.SMALL + 1, 64);
        assertThat(large.byteSize()).isEqualTo(ReceiveMemory.SMALL + 1);
        assertThat(memory.allocate(0, 64).byteSize()).isZero();
    }
}
