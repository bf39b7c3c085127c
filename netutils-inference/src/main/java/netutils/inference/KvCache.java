package netutils.inference;

import java.util.Arrays;

/**
 * The keys and values one generation has computed so far, for the layers of one {@link LlamaModel} slice.
 * Rows are positions; each row holds {@code kvHeads * headDim} values (already rotated keys). Capacity grows
 * as positions are added, up to the model's {@code max_position_embeddings}. Not thread-safe: one step of
 * one generation at a time.
 */
public final class KvCache {
    private final int firstLayer;
    private final int rowWidth;
    private final int maxPositions;
    private final float[][] keys;
    private final float[][] values;
    private int length;

    KvCache(int firstLayer, int layerCount, int rowWidth, int maxPositions) {
        this.firstLayer = firstLayer;
        this.rowWidth = rowWidth;
        this.maxPositions = maxPositions;
        this.keys = new float[layerCount][];
        this.values = new float[layerCount][];
        for (int i = 0; i < layerCount; i++) {
            keys[i] = new float[Math.min(maxPositions, 64) * rowWidth];
            values[i] = new float[keys[i].length];
        }
    }

    /** {@return the number of positions held: the position of the next token} */
    public int length() {
        return length;
    }

    /** {@return the most positions this cache can hold, the model's {@code max_position_embeddings}} */
    public int capacity() {
        return maxPositions;
    }

    /** {@return the index, in the whole model, of the first layer held} */
    public int firstLayer() {
        return firstLayer;
    }

    /** {@return how many layers are held: the layers of the model slice the cache belongs to} */
    public int layerCount() {
        return keys.length;
    }

    /**
     * Forgets positions from {@code newLength} on (a step that restarts at an earlier position overwrites them).
     *
     * @param newLength how many positions to keep, at most {@link #length()}
     * @throws IllegalArgumentException if {@code newLength} is negative or more than {@link #length()}
     */
    public void truncate(int newLength) {
        if (newLength < 0 || newLength > length) {
            throw new IllegalArgumentException("cannot truncate a cache of " + length + " positions to " + newLength);
        }
        length = newLength;
    }

    /** {@return the bytes the held positions take as F32 keys and values, over all layers held} */
    public long bytes() {
        return 2L * keys.length * length * rowWidth * Float.BYTES;
    }

    float[] keys(int layer) {
        return keys[layer - firstLayer];
    }

    float[] values(int layer) {
        return values[layer - firstLayer];
    }

    /** Stores {@code rows} rows of keys and values for {@code layer} starting at {@code position}. */
    void put(int layer, int position, int rows, float[] k, float[] v) {
        ensureCapacity(position + rows);
        int i = layer - firstLayer;
        System.arraycopy(k, 0, keys[i], position * rowWidth, rows * rowWidth);
        System.arraycopy(v, 0, values[i], position * rowWidth, rows * rowWidth);
    }

    /** Marks positions up to {@code newLength} as filled (after every layer stored its rows). */
    void extendTo(int newLength) {
        if (newLength > maxPositions) {
            throw new IllegalArgumentException(newLength + " positions exceed the cache's capacity of " + maxPositions);
        }
        length = Math.max(length, newLength);
    }

    private void ensureCapacity(int positions) {
        if (positions > maxPositions) {
            throw new IllegalArgumentException(positions + " positions exceed the cache's capacity of " + maxPositions);
        }
        if (keys.length > 0 && keys[0].length < positions * rowWidth) {
            int grown = Math.min(maxPositions, Math.max(positions, keys[0].length / rowWidth * 2));
            for (int i = 0; i < keys.length; i++) {
                keys[i] = Arrays.copyOf(keys[i], grown * rowWidth);
                values[i] = Arrays.copyOf(values[i], grown * rowWidth);
            }
        }
    }

    /**
     * Keys ({@code which == 0}) or values of {@code layer}, positions {@code [from, to)}, in the Hugging Face
     * {@code past_key_values} layout {@code [kvHeads, positions, headDim]}.
     */
    float[] export(int layer, int which, int from, int to, int kvHeads, int headDim) {
        float[] source = which == 0 ? keys(layer) : values(layer);
        int count = to - from;
        float[] out = new float[kvHeads * count * headDim];
        for (int h = 0; h < kvHeads; h++) {
            for (int p = 0; p < count; p++) {
                System.arraycopy(source, (from + p) * rowWidth + h * headDim, out, (h * count + p) * headDim, headDim);
            }
        }
        return out;
    }

    /** The reverse of {@link #export}: stores {@code [kvHeads, count, headDim]} at positions from {@code from}. */
    void load(int layer, int which, int from, int count, float[] data, int kvHeads, int headDim) {
        ensureCapacity(from + count);
        float[] target = which == 0 ? keys(layer) : values(layer);
        for (int h = 0; h < kvHeads; h++) {
            for (int p = 0; p < count; p++) {
                System.arraycopy(data, (h * count + p) * headDim, target, (from + p) * rowWidth + h * headDim, headDim);
            }
        }
    }
}
