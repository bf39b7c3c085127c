package netutils.inference;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The shape of a LLaMA-architecture model, as in a Hugging Face {@code config.json} ({@code hidden_size},
 * {@code num_hidden_layers}, ...).
 *
 * @param hiddenSize the width of the hidden state ({@code hidden_size})
 * @param intermediateSize the width of the SwiGLU MLP ({@code intermediate_size})
 * @param layers the number of decoder layers ({@code num_hidden_layers})
 * @param heads query heads ({@code num_attention_heads})
 * @param kvHeads key/value heads, fewer than {@code heads} for grouped-query attention ({@code num_key_value_heads})
 * @param headDim the width of one head ({@code head_dim}, by default {@code hidden_size / num_attention_heads})
 * @param vocabSize the number of tokens ({@code vocab_size})
 * @param maxPositions the longest sequence, the KV cache's capacity ({@code max_position_embeddings})
 * @param rmsNormEps the epsilon of every RMSNorm ({@code rms_norm_eps})
 * @param ropeTheta the base of the rotary frequencies ({@code rope_theta})
 * @param tieWordEmbeddings whether the output head reuses the token embedding ({@code tie_word_embeddings})
 */
public record ModelConfig(int hiddenSize, int intermediateSize, int layers, int heads, int kvHeads, int headDim,
        int vocabSize, int maxPositions, float rmsNormEps, float ropeTheta, boolean tieWordEmbeddings) {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** Checks that the sizes fit together (heads divide evenly into KV groups, and so on). */
    public ModelConfig {
        positive("hidden_size", hiddenSize);
        positive("intermediate_size", intermediateSize);
        positive("num_hidden_layers", layers);
        positive("num_attention_heads", heads);
        positive("num_key_value_heads", kvHeads);
        positive("head_dim", headDim);
        positive("vocab_size", vocabSize);
        positive("max_position_embeddings", maxPositions);
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("num_attention_heads " + heads + " is not a multiple of num_key_value_heads "
                    + kvHeads);
        }
        if (headDim % 2 != 0) {
            throw new IllegalArgumentException("head_dim must be even for rotary embeddings, got " + headDim);
        }
        if (!(rmsNormEps > 0) || !(ropeTheta > 0)) {
            throw new IllegalArgumentException("rms_norm_eps and rope_theta must be positive, got " + rmsNormEps + ", "
                    + ropeTheta);
        }
    }

    /**
     * {@return the small model the demo and the tests write: 6 layers, 256 wide, 8 query and 2 KV heads, 4,096
     * tokens, 512 positions}
     */
    public static ModelConfig demo() {
        return new ModelConfig(256, 688, 6, 8, 2, 32, 4096, 512, 1e-5f, 10000f, false);
    }

    /**
     * Reads a Hugging Face {@code config.json}. {@code hidden_size}, {@code intermediate_size},
     * {@code num_hidden_layers}, {@code num_attention_heads} and {@code vocab_size} are required; the others
     * default as in {@code transformers}' {@code LlamaConfig}: {@code num_key_value_heads} to the query heads,
     * {@code head_dim} to {@code hidden_size / num_attention_heads}, {@code max_position_embeddings} to 2048,
     * {@code rms_norm_eps} to 1e-6, {@code rope_theta} to 10000 and {@code tie_word_embeddings} to false.
     *
     * @param configJson the {@code config.json} file
     * @return the configuration it describes
     * @throws IOException if the file cannot be read, is not JSON, or lacks a required number
     * @throws IllegalArgumentException if the sizes do not fit together (see the constructor)
     */
    public static ModelConfig read(Path configJson) throws IOException {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readString(configJson));
        } catch (JacksonException e) {
            throw new IOException(configJson + " is not valid JSON: " + e.getOriginalMessage(), e);
        }
        int hidden = required(root, "hidden_size", configJson).asInt();
        int heads = required(root, "num_attention_heads", configJson).asInt();
        return new ModelConfig(hidden,
                required(root, "intermediate_size", configJson).asInt(),
                required(root, "num_hidden_layers", configJson).asInt(),
                heads,
                root.has("num_key_value_heads") ? root.get("num_key_value_heads").asInt() : heads,
                root.has("head_dim") ? root.get("head_dim").asInt() : hidden / heads,
                required(root, "vocab_size", configJson).asInt(),
                root.has("max_position_embeddings") ? root.get("max_position_embeddings").asInt() : 2048,
                root.has("rms_norm_eps") ? (float) root.get("rms_norm_eps").asDouble() : 1e-6f,
                root.has("rope_theta") ? (float) root.get("rope_theta").asDouble() : 10000f,
                root.has("tie_word_embeddings") && root.get("tie_word_embeddings").asBoolean());
    }

    /**
     * Writes this configuration as a Hugging Face {@code config.json} for {@code LlamaForCausalLM}, replacing the
     * file if it exists; {@link #read} reads it.
     *
     * @param configJson the file to write
     * @throws IOException if the file cannot be written
     */
    public void write(Path configJson) throws IOException {
        Map<String, Object> map = new LinkedHashMap<>();
        map.put("architectures", new String[] {"LlamaForCausalLM"});
        map.put("model_type", "llama");
        map.put("hidden_size", hiddenSize);
        map.put("intermediate_size", intermediateSize);
        map.put("num_hidden_layers", layers);
        map.put("num_attention_heads", heads);
        map.put("num_key_value_heads", kvHeads);
        map.put("head_dim", headDim);
        map.put("vocab_size", vocabSize);
        map.put("max_position_embeddings", maxPositions);
        map.put("rms_norm_eps", rmsNormEps);
        map.put("rope_theta", ropeTheta);
        map.put("tie_word_embeddings", tieWordEmbeddings);
        map.put("hidden_act", "silu");
        map.put("torch_dtype", "bfloat16");
        Files.writeString(configJson, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(map) + "\n");
    }

    /** {@return the width of the query projection's output: {@code heads * headDim}} */
    public int qDim() {
        return heads * headDim;
    }

    /** {@return the width of the key and value projections' output: {@code kvHeads * headDim}} */
    public int kvDim() {
        return kvHeads * headDim;
    }

    private static JsonNode required(JsonNode root, String key, Path file) throws IOException {
        JsonNode node = root.get(key);
        if (node == null || !node.isNumber()) {
            throw new IOException(file + " has no numeric \"" + key + "\"");
        }
        return node;
    }

    private static void positive(String name, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(name + " must be positive, got " + value);
        }
    }
}
