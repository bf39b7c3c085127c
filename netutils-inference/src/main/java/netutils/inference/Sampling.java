package netutils.inference;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * How the last stage picks the next token from its logits: {@link #greedy()} (the largest logit, the lowest
 * index on ties) or {@link #seeded} (softmax of {@code logits / temperature} over the {@code topK} largest,
 * drawn with a generator seeded from {@code seed} and the token's position, so a replay draws the same).
 *
 * @param seeded whether to sample; {@code false} is greedy
 * @param seed the seed of a seeded draw
 * @param temperature divides the logits before the softmax (seeded only, positive)
 * @param topK how many of the largest logits take part (seeded only, positive)
 */
public record Sampling(boolean seeded, long seed, float temperature, int topK) {
    /** Checks the parameters of a seeded draw. */
    public Sampling {
        if (seeded && (!(temperature > 0) || topK <= 0)) {
            throw new IllegalArgumentException("seeded sampling needs a positive temperature and top_k, got "
                    + temperature + ", " + topK);
        }
    }

    /** {@return greedy sampling: always the largest logit, the lowest index on ties} */
    public static Sampling greedy() {
        return new Sampling(false, 0, 1, 1);
    }

    /**
     * A seeded draw among the {@code topK} largest logits at {@code temperature}.
     *
     * @param seed the seed; with the token's position, it fixes each draw
     * @param temperature divides the logits before the softmax; positive, lower is closer to greedy
     * @param topK how many of the largest logits may be drawn; positive
     * @return the sampling
     * @throws IllegalArgumentException if {@code temperature} or {@code topK} is not positive
     */
    public static Sampling seeded(long seed, float temperature, int topK) {
        return new Sampling(true, seed, temperature, topK);
    }

    /**
     * Parses {@code greedy} or {@code seeded:SEED[:TEMPERATURE[:TOP_K]]} (defaults 0.8 and 40).
     *
     * @param text the sampling as {@link #toString()} writes it, e.g. from a command line
     * @return the sampling it names
     * @throws IllegalArgumentException naming what does not parse
     */
    public static Sampling parse(String text) {
        if (text.equals("greedy")) {
            return greedy();
        }
        String[] parts = text.split(":");
        if (parts[0].equals("seeded") && parts.length >= 2 && parts.length <= 4) {
            try {
                return seeded(Long.parseLong(parts[1]), parts.length > 2 ? Float.parseFloat(parts[2]) : 0.8f,
                        parts.length > 3 ? Integer.parseInt(parts[3]) : 40);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("sampling '" + text + "' has a number that does not parse");
            }
        }
        throw new IllegalArgumentException("sampling must be greedy or seeded:SEED[:TEMPERATURE[:TOP_K]], not '" + text + "'");
    }

    /** The form {@link #parse} reads. */
    @Override
    public String toString() {
        return seeded ? "seeded:" + seed + ":" + temperature + ":" + topK : "greedy";
    }

    /**
     * The token to emit at {@code position} (the position it will occupy) from {@code logits}.
     *
     * @param logits one logit per vocabulary entry, from the model's output head
     * @param position the position the token will occupy, which seeds a seeded draw together with the seed
     * @return the index of the chosen token in the vocabulary
     */
    public int sample(float[] logits, int position) {
        if (!seeded) {
            int best = 0;
            for (int i = 1; i < logits.length; i++) {
                if (logits[i] > logits[best]) {
                    best = i;
                }
            }
            return best;
        }
        int k = Math.min(topK, logits.length);
        Integer[] order = new Integer[logits.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> logits[a] != logits[b] ? Float.compare(logits[b], logits[a]) : Integer.compare(a, b));
        double[] weights = new double[k];
        double total = 0;
        for (int i = 0; i < k; i++) {
            weights[i] = Math.exp((logits[order[i]] - logits[order[0]]) / (double) temperature);
            total += weights[i];
        }
        double draw = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + position).nextDouble() * total;
        for (int i = 0; i < k; i++) {
            draw -= weights[i];
            if (draw < 0) {
                return order[i];
            }
        }
        return order[k - 1];
    }
}
