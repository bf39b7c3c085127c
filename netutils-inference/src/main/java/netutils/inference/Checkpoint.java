package netutils.inference;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SequencedMap;
import java.util.SplittableRandom;
import netutils.inference.internal.Safetensors;

/**
 * Writes a LLaMA-layout checkpoint with weights drawn from a fixed seed: a {@code config.json} and a
 * {@code model.safetensors} that {@link LlamaModel#load} (and any LLaMA loader) reads. Matrices are BF16, as
 * published checkpoints are; norm weights F32. Nothing is downloaded, and the same seed gives the same bytes.
 */
public final class Checkpoint {
    /** The seed the demo's checkpoint is drawn from. */
    public static final long DEMO_SEED = 20240917L;

    private Checkpoint() {
    }

    /**
     * Writes the checkpoint to {@code directory} unless a {@code model.safetensors} is there already; returns
     * whether it wrote one. Safe when several processes race: the files appear whole, by rename. Matrices are
     * BF16, as {@link #write} writes them with {@code "BF16"}.
     *
     * @param directory where {@code config.json} and {@code model.safetensors} go; created if missing
     * @param config the model's shape
     * @param seed the seed the weights are drawn from
     * @return {@code true} if this call wrote the checkpoint, {@code false} if a weights file was already there
     * @throws IOException if the directory or a file cannot be written
     */
    public static boolean ensure(Path directory, ModelConfig config, long seed) throws IOException {
        if (Files.exists(directory.resolve(LlamaModel.WEIGHTS_FILE))) {
            return false;
        }
        write(directory, config, seed, "BF16");
        return true;
    }

    /**
     * Writes a checkpoint of {@code config} drawn from {@code seed}, matrices in {@code matrixDtype} (F32 or BF16).
     * Scales keep activations near unit size through the layers: a projection's weights have standard deviation
     * {@code 1/sqrt(fan_in)}, residual projections half that; norm weights are {@code 1 + N(0, 0.1)}. The token
     * embedding is {@code N(0, 1)} and an untied output head has standard deviation {@code 3/sqrt(hidden_size)}.
     * Existing files are replaced.
     *
     * @param directory where {@code config.json} and {@code model.safetensors} go; created if missing
     * @param config the model's shape
     * @param seed the seed the weights are drawn from; the same seed gives the same bytes
     * @param matrixDtype {@code "F32"} or {@code "BF16"}, the dtype of the matrices (norm weights are always F32)
     * @throws IllegalArgumentException if {@code matrixDtype} is neither
     * @throws IOException if the directory or a file cannot be written
     */
    public static void write(Path directory, ModelConfig config, long seed, String matrixDtype) throws IOException {
        Files.createDirectories(directory);
        SplittableRandom random = new SplittableRandom(seed);
        ModelConfig c = config;
        int d = c.hiddenSize();
        SequencedMap<String, Safetensors.Output> tensors = new LinkedHashMap<>();
        tensors.put("model.embed_tokens.weight", matrix(random, matrixDtype, 1.0, c.vocabSize(), d));
        for (int layer = 0; layer < c.layers(); layer++) {
            String p = "model.layers." + layer + ".";
            tensors.put(p + "input_layernorm.weight", norm(random, d));
            tensors.put(p + "self_attn.q_proj.weight", matrix(random, matrixDtype, 1 / Math.sqrt(d), c.qDim(), d));
            tensors.put(p + "self_attn.k_proj.weight", matrix(random, matrixDtype, 1 / Math.sqrt(d), c.kvDim(), d));
            tensors.put(p + "self_attn.v_proj.weight", matrix(random, matrixDtype, 1 / Math.sqrt(d), c.kvDim(), d));
            tensors.put(p + "self_attn.o_proj.weight", matrix(random, matrixDtype, 0.5 / Math.sqrt(c.qDim()), d, c.qDim()));
            tensors.put(p + "post_attention_layernorm.weight", norm(random, d));
            int m = c.intermediateSize();
            tensors.put(p + "mlp.gate_proj.weight", matrix(random, matrixDtype, 1 / Math.sqrt(d), m, d));
            tensors.put(p + "mlp.up_proj.weight", matrix(random, matrixDtype, 1 / Math.sqrt(d), m, d));
            tensors.put(p + "mlp.down_proj.weight", matrix(random, matrixDtype, 0.5 / Math.sqrt(m), d, m));
        }
        tensors.put("model.norm.weight", norm(random, d));
        if (!c.tieWordEmbeddings()) {
            tensors.put("lm_head.weight", matrix(random, matrixDtype, 3 / Math.sqrt(d), c.vocabSize(), d));
        }
        Files.createDirectories(directory);
        // config.json first: a reader that sees the weights file (the "ensure" test) always finds the config.
        Path config0 = Files.createTempFile(directory, "config", ".part");
        c.write(config0);
        Safetensors.readableByAll(config0);
        Files.move(config0, directory.resolve(LlamaModel.CONFIG_FILE), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        Safetensors.write(directory.resolve(LlamaModel.WEIGHTS_FILE), tensors,
                Map.of("format", "pt", "netutils_seed", Long.toString(seed)));
    }

    private static Safetensors.Output matrix(SplittableRandom random, String dtype, double std, int rows, int columns) {
        float[] values = new float[rows * columns];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) (random.nextGaussian() * std);
        }
        return new Safetensors.Output(dtype, new long[] {rows, columns}, values);
    }

    private static Safetensors.Output norm(SplittableRandom random, int width) {
        float[] values = new float[width];
        for (int i = 0; i < width; i++) {
            values[i] = (float) (1 + 0.1 * random.nextGaussian());
        }
        return new Safetensors.Output("F32", new long[] {width}, values);
    }
}
