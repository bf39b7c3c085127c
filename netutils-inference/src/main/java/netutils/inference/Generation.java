package netutils.inference;

/**
 * The outcome of a generation: the generated tokens and, for each, the logits it was chosen from.
 *
 * @param tokens the generated tokens, in order (the prompt not included)
 * @param logits {@code logits[i]} is the {@code vocab_size} logits token {@code i} was sampled from
 */
public record Generation(int[] tokens, float[][] logits) {
}
