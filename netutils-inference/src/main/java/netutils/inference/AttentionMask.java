package netutils.inference;

import java.util.Arrays;
import netutils.api.DType;
import netutils.api.Tensor;

/**
 * The attention mask forms a peer may send, and the causal mask of a step. A mask has {@code rows} queries
 * (the step's new positions) by {@code columns} keys (every cached position plus the new ones); it comes in
 * two forms:
 *
 * <ul>
 * <li>additive, F32, F16 or BF16, as PyTorch code builds it: {@code 0} where a query may see a key, {@code -inf}
 *     (or the dtype's lowest finite value, which Hugging Face uses) where it may not;</li>
 * <li>{@link DType#BOOL}: {@code true} where a query may see a key, as {@code scaled_dot_product_attention}
 *     reads it.</li>
 * </ul>
 * Shapes {@code [rows, columns]}, {@code [1, rows, columns]} and {@code [1, 1, rows, columns]} are accepted.
 */
public final class AttentionMask {
    private AttentionMask() {
    }

    /** Whether this value of an additive mask hides its key: {@code -inf}, or at most the dtype's lowest value. */
    static boolean hides(float additive, DType dtype) {
        float lowest = switch (dtype) {
            case F16 -> -65504f;
            case BF16 -> -3.3895314e38f;
            default -> -Float.MAX_VALUE;
        };
        return additive <= lowest;
    }

    /**
     * The additive causal mask of a step of {@code rows} new positions after {@code position} cached ones:
     * {@code rows x (position + rows)} values, 0 where {@code column <= position + row}, {@code -inf} elsewhere.
     *
     * @param rows how many new positions the step computes
     * @param position how many positions are cached before the step: the position of its first new token
     * @return the mask, row-major, {@code position + rows} columns per row
     */
    public static float[] causal(int rows, int position) {
        int columns = position + rows;
        float[] mask = new float[rows * columns];
        for (int r = 0; r < rows; r++) {
            Arrays.fill(mask, r * columns + position + r + 1, (r + 1) * columns, Float.NEGATIVE_INFINITY);
        }
        return mask;
    }

    /**
     * The {@code [rows, columns]} of a mask tensor of an accepted shape.
     *
     * @param mask a mask tensor from a peer
     * @return a two-element array: the number of query rows, then the number of key columns
     * @throws IllegalArgumentException if the shape is not one of the accepted ones
     */
    public static int[] rowsAndColumns(Tensor mask) {
        long[] shape = mask.shape();
        boolean ok = shape.length >= 2 && shape.length <= 4;
        for (int i = 0; ok && i < shape.length - 2; i++) {
            ok = shape[i] == 1;
        }
        if (!ok || shape[shape.length - 1] > Integer.MAX_VALUE || shape[shape.length - 2] > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("mask shape " + Arrays.toString(shape)
                    + " is not [rows, columns], [1, rows, columns] or [1, 1, rows, columns]");
        }
        return new int[] {(int) shape[shape.length - 2], (int) shape[shape.length - 1]};
    }

    /**
     * Which keys each query may see, row-major, whatever the mask's form.
     *
     * @param mask a BOOL or additive mask tensor
     * @return one flag per element of the mask, {@code true} where the query may see the key
     * @throws IllegalArgumentException if the dtype is not BOOL, F32, F16 or BF16 (saying which it is), or an
     *     additive value is NaN or positive (a 1/0 mask sent as floats)
     */
    public static boolean[] visible(Tensor mask) {
        DType dtype = mask.dtype();
        if (dtype == DType.BOOL) {
            return mask.toBooleanArray();
        }
        requireFloat(dtype);
        float[] values = mask.toFloatArray();
        boolean[] visible = new boolean[values.length];
        for (int i = 0; i < values.length; i++) {
            checkAdditive(values[i], i);
            visible[i] = !hides(values[i], dtype);
        }
        return visible;
    }

    /**
     * The mask as additive float32 values, ready to add to attention scores: BOOL becomes 0 / {@code -inf},
     * an additive mask is widened, and values at or below the dtype's lowest finite value become {@code -inf}
     * (so F16's {@code -65504} hides a key as surely as float32's {@code -inf}).
     *
     * @param mask a BOOL or additive mask tensor
     * @return one float32 value per element of the mask, row-major: 0 (or the mask's own value) where the query
     *     may see the key, {@code -inf} where it may not
     * @throws IllegalArgumentException as {@link #visible}
     */
    public static float[] additive(Tensor mask) {
        DType dtype = mask.dtype();
        if (dtype == DType.BOOL) {
            boolean[] visible = mask.toBooleanArray();
            float[] out = new float[visible.length];
            for (int i = 0; i < out.length; i++) {
                out[i] = visible[i] ? 0f : Float.NEGATIVE_INFINITY;
            }
            return out;
        }
        requireFloat(dtype);
        float[] values = mask.toFloatArray();
        for (int i = 0; i < values.length; i++) {
            checkAdditive(values[i], i);
            if (hides(values[i], dtype)) {
                values[i] = Float.NEGATIVE_INFINITY;
            }
        }
        return values;
    }

    /**
     * An additive mask holds 0 or a negative value: NaN is refused, and so is a positive value, which is what a
     * 1/0 mask (1 where a query may see a key) looks like. Taken as additive, such a mask would add 1 and 0 to the
     * scores and hide nothing: a silently wrong attention.
     */
    private static void checkAdditive(float value, int index) {
        if (Float.isNaN(value)) {
            throw new IllegalArgumentException("mask value " + index + " is NaN");
        }
        if (value > 0) {
            throw new IllegalArgumentException("mask value " + index + " is " + value + ": an additive mask holds 0 where"
                    + " a query may see a key and -inf (or a large negative value) where it may not, never a positive"
                    + " value; a mask of 1 (visible) and 0 (hidden) is a boolean mask: send it as BOOL");
        }
    }

    private static void requireFloat(DType dtype) {
        if (dtype != DType.F32 && dtype != DType.F16 && dtype != DType.BF16) {
            throw new IllegalArgumentException("a mask is BOOL or an additive F32, F16 or BF16 mask, not " + dtype);
        }
    }
}
