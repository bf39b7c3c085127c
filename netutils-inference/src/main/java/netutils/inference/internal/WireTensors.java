package netutils.inference.internal;

import netutils.api.DType;
import netutils.api.Tensor;

/** Float arrays to tensors of a chosen float dtype (the API has one factory per dtype). */
public final class WireTensors {
    private WireTensors() {
    }

    /** {@code values} as a tensor of {@code dtype} (F32, BF16 or F16), rounded to nearest for the 16-bit ones. */
    public static Tensor of(DType dtype, float[] values, long... shape) {
        return switch (dtype) {
            case F32 -> Tensor.ofFloats(values, shape);
            case BF16 -> Tensor.ofBFloat16(values, shape);
            case F16 -> Tensor.ofHalfFloats(values, shape);
            default -> throw new IllegalArgumentException("a hidden state is F32, BF16 or F16, not " + dtype);
        };
    }
}
