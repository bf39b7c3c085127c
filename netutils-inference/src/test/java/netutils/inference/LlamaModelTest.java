package netutils.inference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import netutils.inference.internal.Ops;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LlamaModelTest {

    @Test
    void freqsCisIsTheDirectFormula() {
        ModelConfig c = TestModels.SMALL;
        float[] table = LlamaModel.freqsCis(c, 5, 20);
        int half = c.headDim() / 2;
        for (int t = 0; t < 20; t++) {
            for (int i = 0; i < half; i++) {
                double angle = (5 + t) * Math.pow(c.ropeTheta(), -2.0 * i / c.headDim());
                assertThat((double) table[(t * half + i) * 2]).isCloseTo(Math.cos(angle), org.assertj.core.data.Offset.offset(2e-6));
                assertThat((double) table[(t * half + i) * 2 + 1]).isCloseTo(Math.sin(angle), org.assertj.core.data.Offset.offset(2e-6));
            }
        }
    }

    @Test
    void ropeEqualsHuggingFaceRotateHalf() {
        int heads = 3;
        int hd = 8;
        SplittableRandom random = new SplittableRandom(3);
        float[] x = new float[heads * hd];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) random.nextGaussian();
        }
        ModelConfig c = new ModelConfig(24, 32, 1, 3, 3, hd, 10, 64, 1e-5f, 10000f, false);
        float[] cis = LlamaModel.freqsCis(c, 17, 1);
        float[] rotated = x.clone();
        Ops.rope(rotated, 0, heads, hd, cis, 0);
        // q * cos + rotate_half(q) * sin, with cos/sin repeated over both halves: transformers' apply_rotary_pos_emb.
        for (int h = 0; h < heads; h++) {
            for (int j = 0; j < hd; j++) {
                int i = j % (hd / 2);
                double angle = 17 * Math.pow(10000.0, -2.0 * i / hd);
                double rotateHalf = j < hd / 2 ? -x[h * hd + j + hd / 2] : x[h * hd + j - hd / 2];
                double expected = x[h * hd + j] * Math.cos(angle) + rotateHalf * Math.sin(angle);
                assertThat((double) rotated[h * hd + j]).isCloseTo(expected, org.assertj.core.data.Offset.offset(1e-5));
            }
        }
    }

    @Test
    void attentionWithCacheEqualsAttentionOverTheFullSequence() throws IOException {
        LlamaModel model = LlamaModel.load(TestModels.small());
        int[] tokens = {5, 17, 300, 2, 99, 511, 0, 42, 7, 8};
        ModelConfig c = model.config();
        // Whole sequence in one step.
        float[] full = model.embed(tokens);
        model.forwardLayers(full, tokens.length, 0, LlamaModel.freqsCis(c, 0, tokens.length),
                AttentionMask.causal(tokens.length, 0), model.newCache());
        // Prefill of 4, then one token at a time against the cache.
        KvCache cache = model.newCache();
        int d = c.hiddenSize();
        float[] prefix = model.embed(Arrays.copyOf(tokens, 4));
        model.forwardLayers(prefix, 4, 0, LlamaModel.freqsCis(c, 0, 4), AttentionMask.causal(4, 0), cache);
        assertThat(prefix).containsExactly(Arrays.copyOf(full, 4 * d));
        for (int p = 4; p < tokens.length; p++) {
            float[] one = model.embed(new int[] {tokens[p]});
            model.forwardLayers(one, 1, p, LlamaModel.freqsCis(c, p, 1), AttentionMask.causal(1, p), cache);
            // Masked keys add exact zeros to the softmax sum, so the two orders give the same bits.
            assertThat(one).as("position %d", p).containsExactly(Arrays.copyOfRange(full, p * d, (p + 1) * d));
        }
        assertThat(cache.length()).isEqualTo(tokens.length);
        assertThat(model.logits(full, tokens.length)).containsExactly(model.logits(
                Arrays.copyOfRange(full, (tokens.length - 1) * d, tokens.length * d), 1));
    }

    @Test
    void maskedFutureKeysDoNotChangeEarlierOutputs() throws IOException {
        LlamaModel model = LlamaModel.load(TestModels.small());
        ModelConfig c = model.config();
        float[] a = model.embed(new int[] {1, 2, 3, 4});
        float[] b = model.embed(new int[] {1, 2, 3, 400});
        model.forwardLayers(a, 4, 0, LlamaModel.freqsCis(c, 0, 4), AttentionMask.causal(4, 0), model.newCache());
        model.forwardLayers(b, 4, 0, LlamaModel.freqsCis(c, 0, 4), AttentionMask.causal(4, 0), model.newCache());
        int d = c.hiddenSize();
        assertThat(Arrays.copyOf(a, 3 * d)).containsExactly(Arrays.copyOf(b, 3 * d));
        assertThat(Arrays.copyOfRange(a, 3 * d, 4 * d)).isNotEqualTo(Arrays.copyOfRange(b, 3 * d, 4 * d));
    }

    @Test
    void slicesComposeToTheWholeModel() throws IOException {
        Path dir = TestModels.small();
        LlamaModel whole = LlamaModel.load(dir);
        ModelConfig c = whole.config();
        int[] prompt = {10, 20, 30};
        float[] expected = whole.embed(prompt);
        whole.forwardLayers(expected, 3, 0, LlamaModel.freqsCis(c, 0, 3), AttentionMask.causal(3, 0), whole.newCache());
        float[] hidden = null;
        for (int s = 0; s < 3; s++) {
            LlamaModel part = LlamaModel.load(dir, LlamaModel.Slice.ofStage(c, s, 3));
            if (s == 0) {
                hidden = part.embed(prompt);
            } else {
                assertThatThrownBy(() -> part.embed(prompt)).hasMessageContaining("no token embedding");
            }
            part.forwardLayers(hidden, 3, 0, LlamaModel.freqsCis(c, 0, 3), AttentionMask.causal(3, 0), part.newCache());
        }
        assertThat(hidden).containsExactly(expected);
        assertThat(LlamaModel.Slice.ofStage(c, 1, 3).layers()).isEqualTo("1:2");
        assertThatThrownBy(() -> LlamaModel.Slice.ofStage(c, 0, 5)).hasMessageContaining("2 to 4 stages");
    }

    @Test
    void generationIsTheSameForEverySplitInF32AndRoundsAtTheBoundariesInBf16() throws IOException {
        LlamaModel whole = LlamaModel.load(TestModels.small());
        int[] prompt = {3, 1, 4, 1, 5};
        Generation two = whole.generate(prompt, 12, Sampling.greedy(), 2, "F32");
        Generation four = whole.generate(prompt, 12, Sampling.greedy(), 4, "F32");
        assertThat(four.tokens()).containsExactly(two.tokens());
        for (int i = 0; i < 12; i++) {
            assertThat(four.logits()[i]).containsExactly(two.logits()[i]);
        }
        Generation bf16 = whole.generate(prompt, 12, Sampling.greedy(), 2, "BF16");
        assertThat(bf16.logits()[0]).isNotEqualTo(two.logits()[0]);
        float max = 0;
        for (int i = 0; i < bf16.logits()[0].length; i++) {
            max = Math.max(max, Math.abs(bf16.logits()[0][i] - two.logits()[0][i]));
        }
        assertThat(max).as("BF16 rounding of the hidden state moves logits a little").isLessThan(0.5f);
    }

    @Test
    void seededSamplingIsReproducibleAndGreedyIsTheArgmax() {
        float[] logits = {0.1f, 2.5f, -1f, 2.5f, 0.3f};
        assertThat(Sampling.greedy().sample(logits, 7)).isEqualTo(1);
        Sampling seeded = Sampling.parse("seeded:42:1.0:3");
        int[] draws = new int[200];
        int[] counts = new int[5];
        for (int p = 0; p < draws.length; p++) {
            draws[p] = seeded.sample(logits, p);
            counts[draws[p]]++;
            assertThat(seeded.sample(logits, p)).isEqualTo(draws[p]);
        }
        assertThat(counts[2]).as("outside the top 3").isZero();
        assertThat(counts[0]).as("outside the top 3").isZero();
        assertThat(counts[1]).isPositive();
        assertThat(counts[3]).isPositive();
        assertThat(Sampling.parse(seeded.toString())).isEqualTo(seeded);
        assertThatThrownBy(() -> Sampling.parse("nucleus")).hasMessageContaining("greedy or seeded");
    }

    @Test
    void checkpointsAreReproducibleFromTheirSeed(@TempDir Path dir) throws IOException {
        Path a = dir.resolve("a");
        Path b = dir.resolve("b");
        assertThat(Checkpoint.ensure(a, TestModels.SMALL, 11)).isTrue();
        assertThat(Checkpoint.ensure(a, TestModels.SMALL, 11)).isFalse();
        Checkpoint.write(b, TestModels.SMALL, 11, "BF16");
        assertThat(Files.mismatch(a.resolve("model.safetensors"), b.resolve("model.safetensors"))).isEqualTo(-1L);
        assertThat(ModelConfig.read(a.resolve("config.json"))).isEqualTo(TestModels.SMALL);
    }

    @Test
    void loaderNamesAMissingOrMisshapenTensor(@TempDir Path dir) throws IOException {
        Checkpoint.write(dir, TestModels.SMALL, 1, "F32");
        ModelConfig wider = new ModelConfig(64, 192, 4, 4, 2, 16, 512, 128, 1e-5f, 10000f, false);
        wider.write(dir.resolve("config.json"));
        assertThatThrownBy(() -> LlamaModel.load(dir)).isInstanceOf(IOException.class)
                .hasMessageContaining("model.layers.0.mlp.gate_proj.weight").hasMessageContaining("[160, 64]")
                .hasMessageContaining("[192, 64]");
    }
}
