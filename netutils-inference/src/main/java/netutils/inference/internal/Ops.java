package netutils.inference.internal;

/**
 * The model's arithmetic on float arrays. Every reduction runs in one fixed order on one thread, so a
 * computation gives the same bits wherever it runs: that is what lets a split pipeline match the
 * single-process model bit for bit.
 */
public final class Ops {
    private Ops() {
    }

    /**
     * {@code out[r][o] = sum_i x[r][i] * w[o][i]} for {@code rows} rows: a linear layer with a PyTorch
     * {@code [out, in]} weight. Dot products use four interleaved partial sums (a fixed order, and four times
     * the instruction-level parallelism of one sum).
     */
    public static void matmul(float[] x, int rows, int in, float[] w, int outDim, float[] out) {
        for (int r = 0; r < rows; r++) {
            int xOff = r * in;
            for (int o = 0; o < outDim; o++) {
                out[r * outDim + o] = dot(x, xOff, w, o * in, in);
            }
        }
    }

    /** The dot product of {@code n} values of {@code a} from {@code aOff} and {@code b} from {@code bOff}. */
    public static float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        float s0 = 0;
        float s1 = 0;
        float s2 = 0;
        float s3 = 0;
        int i = 0;
        for (; i + 3 < n; i += 4) {
            s0 += a[aOff + i] * b[bOff + i];
            s1 += a[aOff + i + 1] * b[bOff + i + 1];
            s2 += a[aOff + i + 2] * b[bOff + i + 2];
            s3 += a[aOff + i + 3] * b[bOff + i + 3];
        }
        for (; i < n; i++) {
            s0 += a[aOff + i] * b[bOff + i];
        }
        return (s0 + s1) + (s2 + s3);
    }

    /** RMSNorm of each of {@code rows} rows: {@code weight * x / sqrt(mean(x^2) + eps)}, as LLaMA computes it. */
    public static void rmsNorm(float[] x, int rows, int width, float[] weight, float eps, float[] out) {
        for (int r = 0; r < rows; r++) {
            int off = r * width;
            float sum = dot(x, off, x, off, width);
            float scale = (float) (1.0 / Math.sqrt(sum / width + eps));
            for (int i = 0; i < width; i++) {
                out[off + i] = weight[i] * (x[off + i] * scale);
            }
        }
    }

    /** SiLU (x * sigmoid(x)) of {@code gate}, times {@code up}, into {@code gate}: the SwiGLU activation. */
    public static void swiglu(float[] gate, float[] up, int n) {
        for (int i = 0; i < n; i++) {
            float g = gate[i];
            gate[i] = (float) (g / (1.0 + Math.exp(-g))) * up[i];
        }
    }

    /**
     * Rotates pairs {@code (x[i], x[i + headDim/2])} of each head by the complex number {@code cis[i]}: the
     * Hugging Face LLaMA layout ({@code rotate_half}), which is what checkpoints with these key names expect.
     *
     * @param x {@code heads * headDim} values of one position
     * @param cis interleaved (cos, sin) pairs of that position, {@code headDim / 2} of them, from {@code cisOff}
     */
    public static void rope(float[] x, int xOff, int heads, int headDim, float[] cis, int cisOff) {
        int half = headDim / 2;
        for (int h = 0; h < heads; h++) {
            int base = xOff + h * headDim;
            for (int i = 0; i < half; i++) {
                float re = x[base + i];
                float im = x[base + i + half];
                float c = cis[cisOff + 2 * i];
                float s = cis[cisOff + 2 * i + 1];
                x[base + i] = re * c - im * s;
                x[base + i + half] = re * s + im * c;
            }
        }
    }

    /** Softmax of {@code n} values in place, subtracting the maximum first (rows of all -inf are refused earlier). */
    public static void softmax(float[] x, int off, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        float sum = 0;
        for (int i = 0; i < n; i++) {
            float e = (float) Math.exp(x[off + i] - max);
            x[off + i] = e;
            sum += e;
        }
        for (int i = 0; i < n; i++) {
            x[off + i] /= sum;
        }
    }

    /** The bfloat16 nearest to {@code value} (ties to even), as its 16 bits; NaN stays a quiet NaN. */
    public static short toBFloat16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) ((bits >>> 16) | 0x40);
        }
        return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
    }

    /** Rounds every value to the nearest bfloat16 (what a BF16 {@code hidden_state} on the wire does to it). */
    public static void roundToBFloat16(float[] values) {
        for (int i = 0; i < values.length; i++) {
            values[i] = Float.intBitsToFloat(toBFloat16(values[i]) << 16);
        }
    }
}
