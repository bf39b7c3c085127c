package netutils.api;

/**
 * The two OCP 8-bit float formats: decoding through a 256-entry table, encoding by rounding to the nearest
 * representable value (ties to the even code), as PyTorch's {@code float8_e4m3fn} and {@code float8_e5m2} do.
 */
enum Float8 {
    /** 4 exponent bits (bias 7), 3 mantissa bits; no infinity, NaN is S.1111.111, largest finite 448. */
    E4M3(4, 3, false),
    /** 5 exponent bits (bias 15), 2 mantissa bits; IEEE-like with infinities, largest finite 57344. */
    E5M2(5, 2, true);

    private final float[] decoded = new float[256];
    /** Non-negative finite values in code order, which is ascending value order. */
    private final float[] positive;
    private final byte overflow;

    Float8(int exponentBits, int mantissaBits, boolean hasInfinity) {
        int bias = (1 << (exponentBits - 1)) - 1;
        int maxExponent = (1 << exponentBits) - 1;
        int finiteCodes = 0;
        for (int code = 0; code < 256; code++) {
            int sign = code >>> 7;
            int exponent = (code >>> mantissaBits) & maxExponent;
            int mantissa = code & ((1 << mantissaBits) - 1);
            float value;
            if (exponent == maxExponent && (hasInfinity || mantissa == (1 << mantissaBits) - 1)) {
                value = hasInfinity && mantissa == 0 ? Float.POSITIVE_INFINITY : Float.NaN;
            } else if (exponent == 0) {
                value = Math.scalb((float) mantissa, 1 - bias - mantissaBits);
            } else {
                value = Math.scalb((float) ((1 << mantissaBits) | mantissa), exponent - bias - mantissaBits);
            }
            decoded[code] = sign == 1 ? -value : value;
            if (sign == 0 && Float.isFinite(value)) {
                finiteCodes++;
            }
        }
        positive = java.util.Arrays.copyOf(decoded, finiteCodes);
        overflow = (byte) (hasInfinity ? (maxExponent << mantissaBits) : 0x7F);
    }

    float decode(byte code) {
        return decoded[code & 0xFF];
    }

    byte encode(float value) {
        if (Float.isNaN(value)) {
            return (byte) 0x7F;
        }
        int sign = Float.floatToRawIntBits(value) < 0 ? 0x80 : 0;
        float magnitude = Math.abs(value);
        int last = positive.length - 1;
        int code;
        if (magnitude >= positive[last]) {
            // Beyond the largest finite value: it still rounds down to it up to half a step above.
            float halfStep = (positive[last] - positive[last - 1]) / 2;
            code = magnitude < positive[last] + halfStep ? last : -1;
        } else {
            int above = java.util.Arrays.binarySearch(positive, magnitude);
            if (above >= 0) {
                code = above;
            } else {
                above = -above - 1; // positive[above - 1] < magnitude < positive[above]
                float down = magnitude - positive[above - 1];
                float up = positive[above] - magnitude;
                code = down < up ? above - 1 : up < down ? above : ((above & 1) == 0 ? above : above - 1);
            }
        }
        return (byte) (sign | (code < 0 ? overflow : code));
    }
}
