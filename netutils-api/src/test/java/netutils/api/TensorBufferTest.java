package netutils.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

/** Tensors behave like buffers, and typed conversions take the dtype as an argument. */
class TensorBufferTest {

    @Test
    void smallAndLargeTensorsAreByteBuffers() {
        for (int size : new int[] {0, 4, Tensor.HEAP_LIMIT, Tensor.HEAP_LIMIT + 4, 1 << 20}) {
            float[] values = new float[size / 4];
            for (int i = 0; i < values.length; i++) {
                values[i] = i * 0.5f;
            }
            Tensor tensor = Tensor.ofFloats(values, values.length);
            ByteBuffer buffer = tensor.asByteBuffer();
            assertThat(buffer.order()).isEqualTo(ByteOrder.LITTLE_ENDIAN);
            assertThat(buffer.isReadOnly()).isTrue();
            assertThat(buffer.remaining()).isEqualTo(size);
            if (values.length > 1) {
                assertThat(buffer.getFloat(4)).isEqualTo(0.5f);
            }
            if (size > Tensor.HEAP_LIMIT) {
                assertThat(tensor.data().isNative()).isTrue();
                assertThat(tensor.data().address() % Tensor.ALIGNMENT).isZero();
            }
        }
    }

    @Test
    void tensorsWrappedAroundOtherArraysAreCopiedIntoABuffer() {
        Tensor wrapped = Tensor.wrap(DType.F32, MemorySegment.ofArray(new float[] {1f, 2f}), 2);
        assertThat(wrapped.asByteBuffer().getFloat(4)).isEqualTo(2f);
    }

    @Test
    void copyToFillsSegmentsAndBuffers() {
        Tensor tensor = Tensor.ofInts(new int[] {1, 2, 3}, 3);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment destination = arena.allocate(12);
            tensor.copyTo(destination);
            assertThat(destination.mismatch(tensor.data())).isEqualTo(-1);
            assertThatThrownBy(() -> tensor.copyTo(arena.allocate(8))).hasMessageContaining("8 bytes");
        }
        ByteBuffer buffer = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        buffer.putInt(99);
        tensor.copyTo(buffer);
        assertThat(buffer.position()).isEqualTo(16);
        assertThat(buffer.getInt(12)).isEqualTo(3);
    }

    @Test
    void ofTakesTheDtypeAndToFloatArrayReadsEveryFloatDtype() {
        float[] values = {0f, 1f, -2f, 0.5f};
        for (DType dtype : new DType[] {DType.F32, DType.F64, DType.F16, DType.BF16, DType.F8_E4M3, DType.F8_E5M2}) {
            Tensor tensor = Tensor.of(dtype, values, 2, 2);
            assertThat(tensor.dtype()).isEqualTo(dtype);
            assertThat(tensor.byteSize()).isEqualTo(4L * dtype.byteWidth());
            assertThat(tensor.toFloatArray()).as(dtype.toString()).containsExactly(values);
        }
        assertThat(Tensor.of(DType.C64, new float[] {1f, -1f}, 1).toFloatArray()).containsExactly(1f, -1f);
        assertThatThrownBy(() -> Tensor.of(DType.I32, values, 4)).hasMessageContaining("I32 is not one");
        assertThatThrownBy(() -> Tensor.ofInts(new int[] {1}, 1).toFloatArray())
                .hasMessageContaining("a floating-point dtype");
    }

    @Test
    void eightBitFloatsRoundToNearestAndSaturateAsPyTorchDoes() {
        // E4M3 (fn): largest finite 448, no infinity; values past the rounding range become NaN.
        float[] e4m3 = Tensor.of(DType.F8_E4M3, new float[] {448f, 460f, 480f, 0.3f, -1e-9f, Float.NaN}, 6)
                .toFloatArray();
        assertThat(e4m3[0]).isEqualTo(448f);
        assertThat(e4m3[1]).isEqualTo(448f);
        assertThat(e4m3[2]).isNaN();
        assertThat(e4m3[3]).isEqualTo(0.3125f); // 0.3 lies between 0.28125 and 0.3125, nearer the latter
        assertThat(e4m3[4]).isEqualTo(-0f);
        assertThat(e4m3[5]).isNaN();
        // E5M2: IEEE-like, largest finite 57344, overflow to infinity.
        float[] e5m2 = Tensor.of(DType.F8_E5M2, new float[] {57344f, 1e6f, -1e6f, 3f, 1.125f}, 5).toFloatArray();
        assertThat(e5m2).containsExactly(57344f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 3f, 1f);
        // Every code decodes and re-encodes to itself (NaNs aside).
        for (DType dtype : new DType[] {DType.F8_E4M3, DType.F8_E5M2}) {
            byte[] codes = new byte[256];
            for (int i = 0; i < 256; i++) {
                codes[i] = (byte) i;
            }
            float[] decoded = Tensor.ofBytes(dtype, codes, 256).toFloatArray();
            byte[] again = Tensor.of(dtype, decoded, 256).toByteArray();
            for (int i = 0; i < 256; i++) {
                if (!Float.isNaN(decoded[i])) {
                    assertThat(again[i]).as(dtype + " code " + i).isEqualTo(codes[i]);
                }
            }
        }
    }
}
