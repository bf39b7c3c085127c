package netutils.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

class TensorTest {

    @Test
    void floatsAreStoredLittleEndianRowMajor() {
        Tensor tensor = Tensor.ofFloats(new float[] {1f, 2f, 3f, 4f, 5f, 6f}, 2, 3);
        assertThat(tensor.dtype()).isEqualTo(DType.F32);
        assertThat(tensor.shape()).containsExactly(2, 3);
        assertThat(tensor.byteSize()).isEqualTo(24);
        ByteBuffer le = ByteBuffer.wrap(tensor.toByteArray()).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(le.getFloat(4)).isEqualTo(2f);
        assertThat(tensor.toFloatArray()).containsExactly(1f, 2f, 3f, 4f, 5f, 6f);
    }

    @Test
    void everyArrayFactoryRoundTrips() {
        assertThat(Tensor.ofDoubles(new double[] {1.5, -2}, 2).toDoubleArray()).containsExactly(1.5, -2);
        assertThat(Tensor.ofLongs(new long[] {Long.MIN_VALUE, 7}, 2).toLongArray()).containsExactly(Long.MIN_VALUE, 7);
        assertThat(Tensor.ofInts(new int[] {-1, 2, 3}, 3).toIntArray()).containsExactly(-1, 2, 3);
        assertThat(Tensor.ofShorts(new short[] {-5, 9}, 1, 2).toShortArray()).containsExactly((short) -5, (short) 9);
        assertThat(Tensor.ofBooleans(new boolean[] {true, false, true}, 3).toBooleanArray()).containsExactly(true, false, true);
        assertThat(Tensor.ofHalfFloats(new float[] {0.5f, -2f, 65504f}, 3).toFloatArray()).containsExactly(0.5f, -2f, 65504f);
        assertThat(Tensor.ofBFloat16(new float[] {1f, -3.5f, 256f}, 3).toFloatArray()).containsExactly(1f, -3.5f, 256f);
        assertThat(Tensor.ofComplex(new float[] {1f, 0f, 0f, 1f}, 2).toFloatArray()).containsExactly(1f, 0f, 0f, 1f);
    }

    @Test
    void bfloat16RoundsToNearestEven() {
        // 1 + 2^-8 lies halfway between two bfloat16 values; it rounds to the even one, 1.0.
        float halfway = Float.intBitsToFloat(0x3F808000);
        float above = Float.intBitsToFloat(0x3F808001);
        assertThat(Tensor.ofBFloat16(new float[] {halfway, above}, 2).toFloatArray())
                .containsExactly(1f, Float.intBitsToFloat(0x3F810000));
    }

    @Test
    void scalarIsRankZeroI64() {
        Tensor position = Tensor.scalar(42);
        assertThat(position.rank()).isZero();
        assertThat(position.elementCount()).isEqualTo(1);
        assertThat(position.dtype()).isEqualTo(DType.I64);
        assertThat(position.longValue()).isEqualTo(42);
    }

    @Test
    void emptyTensorsAreAllowed() {
        Tensor empty = Tensor.ofFloats(new float[0], 0, 4);
        assertThat(empty.byteSize()).isZero();
        assertThat(empty.toFloatArray()).isEmpty();
    }

    @Test
    void byteSizeMustMatchTheShape() {
        MemorySegment seven = MemorySegment.ofArray(new byte[7]);
        assertThatThrownBy(() -> Tensor.wrap(DType.F32, seven, 2))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("needs 8 bytes, data has 7");
        assertThatThrownBy(() -> Tensor.ofFloats(new float[3], 2, 2))
                .hasMessageContaining("shape [2, 2] has 4 elements, got 3");
    }

    @Test
    void shapesAreChecked() {
        assertThatThrownBy(() -> Tensor.zeros(DType.U8, 1, 1, 1, 1, 1, 1, 1, 1, 1)).hasMessageContaining("rank 9");
        assertThatThrownBy(() -> Tensor.zeros(DType.U8, 2, -1)).hasMessageContaining("negative");
        assertThatThrownBy(() -> Tensor.zeros(DType.F64, Long.MAX_VALUE, 2)).hasMessageContaining("overflows");
    }

    @Test
    void dataIsReadOnlyAndArraysAreCopied() {
        float[] values = {1f, 2f};
        Tensor tensor = Tensor.ofFloats(values, 2);
        values[0] = 99f;
        assertThat(tensor.toFloatArray()[0]).isEqualTo(1f);
        assertThat(tensor.data().isReadOnly()).isTrue();
    }

    @Test
    void wrapDoesNotCopy() {
        MemorySegment segment = MemorySegment.ofArray(new byte[8]);
        Tensor tensor = Tensor.wrap(DType.I64, segment);
        segment.set(ValueLayout.JAVA_BYTE, 0, (byte) 5);
        assertThat(tensor.longValue()).isEqualTo(5);
    }

    @Test
    void equalityComparesDtypeShapeAndBytes() {
        Tensor a = Tensor.ofInts(new int[] {1, 2}, 2);
        assertThat(a).isEqualTo(Tensor.ofInts(new int[] {1, 2}, 2));
        assertThat(a).isNotEqualTo(Tensor.ofInts(new int[] {1, 3}, 2));
        assertThat(a).isNotEqualTo(Tensor.ofInts(new int[] {1, 2}, 1, 2));
        assertThat(a).isNotEqualTo(Tensor.ofBytes(DType.F32, a.toByteArray(), 2));
    }

    @Test
    void accessorsRefuseTheWrongDtype() {
        assertThatThrownBy(() -> Tensor.ofInts(new int[] {1}, 1).toLongArray())
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("toLongArray needs I64, this tensor is I32");
    }

    @Test
    void dtypesHaveWireNamesAndWidths() {
        assertThat(DType.fromWireName("BF16")).isEqualTo(DType.BF16);
        assertThat(DType.C64.byteWidth()).isEqualTo(8);
        assertThat(DType.F8_E4M3.byteWidth()).isEqualTo(1);
        assertThatThrownBy(() -> DType.fromWireName("F128")).hasMessageContaining("unknown dtype 'F128'");
    }
}
