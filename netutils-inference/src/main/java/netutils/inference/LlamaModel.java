package netutils.inference;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Objects;
import netutils.inference.internal.Ops;
import netutils.inference.internal.Safetensors;

/**
 * A LLaMA-architecture decoder, or a slice of one, in plain Java: token embedding, decoder layers (RMSNorm,
 * grouped-query causal attention with rotary position embedding and a {@link KvCache}, RMSNorm, SwiGLU MLP,
 * each with a residual connection), final RMSNorm and output head.
 *
 * <p>Weights come from a directory holding a Hugging Face {@code config.json} and a {@code model.safetensors}
 * with LLaMA's key names ({@code model.embed_tokens.weight}, {@code model.layers.N.self_attn.q_proj.weight},
 * ..., {@code model.norm.weight}, {@code lm_head.weight}) in F32, BF16 or F16; a slice loads only its own
 * tensors. Rotary embedding pairs element {@code i} with {@code i + head_dim/2} of each head, as Hugging Face's
 * LLaMA does, and takes its rotations from a complex {@code freqs_cis} table ({@link #freqsCis}).
 *
 * <p>All arithmetic is float32 in a fixed order on the calling thread (see {@code Ops}), so the same inputs
 * give the same bits in any process: a model split over processes computes exactly what it computes whole.
 * Instances are immutable and may be shared between threads; a {@link KvCache} may not.
 */
public final class LlamaModel {
    /** The checkpoint's weights file inside the model directory. */
    public static final String WEIGHTS_FILE = "model.safetensors";
    /** The configuration file inside the model directory. */
    public static final String CONFIG_FILE = "config.json";

    /**
     * Which part of the model a process holds.
     *
     * @param firstLayer the first decoder layer
     * @param endLayer one past the last decoder layer
     * @param embedding whether the slice starts with the token embedding (the head of a pipeline)
     * @param head whether it ends with the final norm and output head (the last stage)
     */
    public record Slice(int firstLayer, int endLayer, boolean embedding, boolean head) {
        /** Checks the layer range. */
        public Slice {
            if (firstLayer < 0 || endLayer < firstLayer) {
                throw new IllegalArgumentException("bad layer range " + firstLayer + ":" + endLayer);
            }
        }

        /**
         * The whole model.
         *
         * @param config the model's shape
         * @return the slice of every layer, with the embedding and the head
         */
        public static Slice whole(ModelConfig config) {
            return new Slice(0, config.layers(), true, true);
        }

        /**
         * Stage {@code stage} of {@code stages} processes: layers {@code [stage*L/stages, (stage+1)*L/stages)},
         * the embedding on stage 0 and the head on the last.
         *
         * @param config the model's shape
         * @param stage which stage, from 0
         * @param stages how many processes the model is split over
         * @return the slice that stage holds
         * @throws IllegalArgumentException unless {@code 2 <= stages <= layers} and {@code 0 <= stage < stages}
         */
        public static Slice ofStage(ModelConfig config, int stage, int stages) {
            if (stages < 2 || stages > config.layers()) {
                throw new IllegalArgumentException("a model of " + config.layers() + " layers splits into 2 to "
                        + config.layers() + " stages, not " + stages);
            }
            if (stage < 0 || stage >= stages) {
                throw new IllegalArgumentException("stage " + stage + " is not in 0.." + (stages - 1));
            }
            int layers = config.layers();
            return new Slice(stage * layers / stages, (stage + 1) * layers / stages, stage == 0, stage == stages - 1);
        }

        /** {@return the layer range as {@code "first:end"}, as the protocol writes it} */
        public String layers() {
            return firstLayer + ":" + endLayer;
        }
    }

    private record Layer(float[] attnNorm, float[] wq, float[] wk, float[] wv, float[] wo, float[] mlpNorm,
            float[] wGate, float[] wUp, float[] wDown) {
    }

    private final ModelConfig config;
    private final Slice slice;
    private final float[] embedding;
    private final Layer[] layers;
    private final float[] finalNorm;
    private final float[] lmHead;

    private LlamaModel(ModelConfig config, Slice slice, float[] embedding, Layer[] layers, float[] finalNorm,
            float[] lmHead) {
        this.config = config;
        this.slice = slice;
        this.embedding = embedding;
        this.layers = layers;
        this.finalNorm = finalNorm;
        this.lmHead = lmHead;
    }

    /**
     * Loads the whole model from {@code directory}.
     *
     * @param directory a directory holding {@value #CONFIG_FILE} and {@value #WEIGHTS_FILE}
     * @return the model, every layer with the embedding and the head
     * @throws IOException if a file cannot be read, or names the file and tensor that is missing or has the
     *     wrong shape or dtype
     */
    public static LlamaModel load(Path directory) throws IOException {
        ModelConfig config = ModelConfig.read(directory.resolve(CONFIG_FILE));
        return load(directory, Slice.whole(config));
    }

    /**
     * Loads the tensors of {@code slice} from {@code directory}.
     *
     * @param directory a directory holding {@value #CONFIG_FILE} and {@value #WEIGHTS_FILE}
     * @param slice the layers to load, and whether to load the embedding and the head
     * @return the model slice, holding only its own weights
     * @throws IOException naming the file and tensor that is missing or has the wrong shape or dtype
     * @throws IllegalArgumentException if the slice reaches beyond the model's layers
     */
    public static LlamaModel load(Path directory, Slice slice) throws IOException {
        ModelConfig c = ModelConfig.read(directory.resolve(CONFIG_FILE));
        if (slice.endLayer() > c.layers()) {
            throw new IllegalArgumentException("layers " + slice.layers() + " are beyond the model's " + c.layers());
        }
        try (Safetensors file = Safetensors.open(directory.resolve(WEIGHTS_FILE))) {
            int d = c.hiddenSize();
            float[] embedding = null;
            if (slice.embedding() || (slice.head() && c.tieWordEmbeddings())) {
                embedding = file.floats("model.embed_tokens.weight", c.vocabSize(), d);
            }
            Layer[] layers = new Layer[slice.endLayer() - slice.firstLayer()];
            for (int i = 0; i < layers.length; i++) {
                String p = "model.layers." + (slice.firstLayer() + i) + ".";
                layers[i] = new Layer(
                        file.floats(p + "input_layernorm.weight", d),
                        file.floats(p + "self_attn.q_proj.weight", c.qDim(), d),
                        file.floats(p + "self_attn.k_proj.weight", c.kvDim(), d),
                        file.floats(p + "self_attn.v_proj.weight", c.kvDim(), d),
                        file.floats(p + "self_attn.o_proj.weight", d, c.qDim()),
                        file.floats(p + "post_attention_layernorm.weight", d),
                        file.floats(p + "mlp.gate_proj.weight", c.intermediateSize(), d),
                        file.floats(p + "mlp.up_proj.weight", c.intermediateSize(), d),
                        file.floats(p + "mlp.down_proj.weight", d, c.intermediateSize()));
            }
            float[] finalNorm = null;
            float[] lmHead = null;
            if (slice.head()) {
                finalNorm = file.floats("model.norm.weight", d);
                lmHead = c.tieWordEmbeddings() && !file.has("lm_head.weight") ? embedding
                        : file.floats("lm_head.weight", c.vocabSize(), d);
            }
            return new LlamaModel(c, slice, slice.embedding() ? embedding : null, layers, finalNorm, lmHead);
        }
    }

    /** {@return the model's configuration, read from its {@value #CONFIG_FILE}} */
    public ModelConfig config() {
        return config;
    }

    /** {@return the part of the model this instance holds} */
    public Slice slice() {
        return slice;
    }

    /** {@return a new, empty cache for this slice's layers, for one generation} */
    public KvCache newCache() {
        return new KvCache(slice.firstLayer(), layers.length, config.kvDim(), config.maxPositions());
    }

    /**
     * The embedding rows of {@code tokens}: {@code tokens.length * hidden_size} values.
     *
     * @param tokens token ids, each in {@code [0, vocab_size)}
     * @return a new array of the tokens' embedding rows, one after another: the hidden state for
     *     {@link #forwardLayers}
     * @throws IllegalStateException if this slice has no embedding
     * @throws IllegalArgumentException for a token outside the vocabulary
     */
    public float[] embed(int[] tokens) {
        if (embedding == null) {
            throw new IllegalStateException("this slice (" + slice + ") has no token embedding");
        }
        int d = config.hiddenSize();
        float[] out = new float[tokens.length * d];
        for (int t = 0; t < tokens.length; t++) {
            if (tokens[t] < 0 || tokens[t] >= config.vocabSize()) {
                throw new IllegalArgumentException("token " + tokens[t] + " is outside the vocabulary 0.."
                        + (config.vocabSize() - 1));
            }
            System.arraycopy(embedding, tokens[t] * d, out, t * d, d);
        }
        return out;
    }

    /**
     * The rotary table rows for positions {@code [start, start + count)}: {@code count * head_dim/2} complex
     * numbers {@code cis(p * theta^(-2i/head_dim))} as interleaved (cos, sin) floats, Meta's
     * {@code precompute_freqs_cis}.
     *
     * @param config the model's shape, which gives {@code head_dim} and {@code rope_theta}
     * @param start the first position
     * @param count how many positions
     * @return a new array of {@code count * head_dim} floats: for each position, {@code head_dim/2} (cos, sin)
     *     pairs
     */
    public static float[] freqsCis(ModelConfig config, int start, int count) {
        int half = config.headDim() / 2;
        float[] out = new float[count * half * 2];
        for (int i = 0; i < half; i++) {
            float frequency = (float) (1.0 / Math.pow(config.ropeTheta(), (2.0 * i) / config.headDim()));
            for (int t = 0; t < count; t++) {
                float angle = (start + t) * frequency;
                out[(t * half + i) * 2] = (float) Math.cos(angle);
                out[(t * half + i) * 2 + 1] = (float) Math.sin(angle);
            }
        }
        return out;
    }

    /**
     * Runs this slice's decoder layers over {@code tokens} new positions starting at {@code position}, updating
     * {@code hidden} ({@code tokens * hidden_size} values) in place and storing keys and values in
     * {@code cache}, whose length becomes {@code position + tokens}.
     *
     * @param hidden the hidden state of the new positions, row by row; replaced by this slice's output
     * @param tokens how many new positions {@code hidden} holds
     * @param position the position of the first new one; cached positions from there on are forgotten first
     * @param cis the rotary rows of these positions ({@code tokens * head_dim/2} interleaved complex values)
     * @param mask additive attention mask {@code [tokens, position + tokens]}: 0 where a query may see a key,
     *     {@code -inf} where it may not
     * @param cache this generation's cache for this slice's layers, from {@link #newCache()}
     * @throws IllegalArgumentException if the sizes disagree or {@code position} is beyond the cache's length
     */
    public void forwardLayers(float[] hidden, int tokens, int position, float[] cis, float[] mask, KvCache cache) {
        int d = config.hiddenSize();
        int keys = position + tokens;
        check(hidden.length == tokens * d, "hidden has " + hidden.length + " values, not " + tokens + " x " + d);
        check(cis.length == tokens * config.headDim(), "cis has " + cis.length / 2 + " complex values, not " + tokens
                + " x " + config.headDim() / 2);
        check(mask.length == tokens * keys, "mask has " + mask.length + " values, not " + tokens + " x " + keys);
        check(position <= cache.length(), "position " + position + " is beyond the cache's " + cache.length()
                + " positions");
        check(cache.firstLayer() == slice.firstLayer() && cache.layerCount() == layers.length,
                "the cache holds other layers than this slice");
        check(keys <= cache.capacity(), keys + " positions exceed the cache's capacity of " + cache.capacity());
        cache.truncate(position);
        for (int i = 0; i < layers.length; i++) {
            forwardLayer(slice.firstLayer() + i, layers[i], hidden, tokens, position, cis, mask, cache);
        }
        cache.extendTo(keys);
    }

    private void forwardLayer(int index, Layer w, float[] hidden, int tokens, int position, float[] cis, float[] mask,
            KvCache cache) {
        ModelConfig c = config;
        int d = c.hiddenSize();
        int hd = c.headDim();
        int qDim = c.qDim();
        int kvDim = c.kvDim();
        int keys = position + tokens;
        float[] normed = new float[tokens * d];
        Ops.rmsNorm(hidden, tokens, d, w.attnNorm(), c.rmsNormEps(), normed);
        float[] q = new float[tokens * qDim];
        float[] k = new float[tokens * kvDim];
        float[] v = new float[tokens * kvDim];
        Ops.matmul(normed, tokens, d, w.wq(), qDim, q);
        Ops.matmul(normed, tokens, d, w.wk(), kvDim, k);
        Ops.matmul(normed, tokens, d, w.wv(), kvDim, v);
        for (int t = 0; t < tokens; t++) {
            Ops.rope(q, t * qDim, c.heads(), hd, cis, t * hd);
            Ops.rope(k, t * kvDim, c.kvHeads(), hd, cis, t * hd);
        }
        cache.put(index, position, tokens, k, v);
        float[] cachedK = cache.keys(index);
        float[] cachedV = cache.values(index);
        float scale = (float) (1.0 / Math.sqrt(hd));
        int group = c.heads() / c.kvHeads();
        float[] attended = new float[tokens * qDim];
        float[] scores = new float[keys];
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < c.heads(); h++) {
                int kvHead = h / group;
                int qOff = t * qDim + h * hd;
                for (int s = 0; s < keys; s++) {
                    scores[s] = Ops.dot(q, qOff, cachedK, s * kvDim + kvHead * hd, hd) * scale + mask[t * keys + s];
                }
                Ops.softmax(scores, 0, keys);
                for (int s = 0; s < keys; s++) {
                    float p = scores[s];
                    int vOff = s * kvDim + kvHead * hd;
                    for (int j = 0; j < hd; j++) {
                        attended[qOff + j] += p * cachedV[vOff + j];
                    }
                }
            }
        }
        float[] projected = new float[tokens * d];
        Ops.matmul(attended, tokens, qDim, w.wo(), d, projected);
        for (int i = 0; i < hidden.length; i++) {
            hidden[i] += projected[i];
        }
        Ops.rmsNorm(hidden, tokens, d, w.mlpNorm(), c.rmsNormEps(), normed);
        int m = c.intermediateSize();
        float[] gate = new float[tokens * m];
        float[] up = new float[tokens * m];
        Ops.matmul(normed, tokens, d, w.wGate(), m, gate);
        Ops.matmul(normed, tokens, d, w.wUp(), m, up);
        Ops.swiglu(gate, up, gate.length);
        Ops.matmul(gate, tokens, m, w.wDown(), d, projected);
        for (int i = 0; i < hidden.length; i++) {
            hidden[i] += projected[i];
        }
    }

    /**
     * The output logits ({@code vocab_size} values) of the last of {@code tokens} rows of {@code hidden}: final
     * RMSNorm, then the output head.
     *
     * @param hidden the hidden state after the last decoder layer, {@code tokens * hidden_size} values
     * @param tokens how many rows {@code hidden} holds; only the last one is used
     * @return a new array of {@code vocab_size} logits, for the token after the last row
     * @throws IllegalStateException if this slice has no head
     * @throws IllegalArgumentException if {@code hidden} does not hold {@code tokens} rows
     */
    public float[] logits(float[] hidden, int tokens) {
        if (lmHead == null) {
            throw new IllegalStateException("this slice (" + slice + ") has no output head");
        }
        int d = config.hiddenSize();
        check(hidden.length == tokens * d, "hidden has " + hidden.length + " values, not " + tokens + " x " + d);
        float[] last = new float[d];
        System.arraycopy(hidden, (tokens - 1) * d, last, 0, d);
        float[] normed = new float[d];
        Ops.rmsNorm(last, 1, d, finalNorm, config.rmsNormEps(), normed);
        float[] logits = new float[config.vocabSize()];
        Ops.matmul(normed, 1, d, lmHead, config.vocabSize(), logits);
        return logits;
    }

    /**
     * Generates in this process exactly as a pipeline of {@code stages} processes does: prompt prefill, then
     * one token at a time, with the hidden state rounded to {@code wire} precision wherever it would cross
     * from one process to the next. This is the reference a distributed run must equal bit for bit.
     *
     * @param prompt the prompt's token ids, each in {@code [0, vocab_size)}
     * @param newTokens how many tokens to generate
     * @param sampling how each token is picked from its logits
     * @param stages how many processes the pipeline to reproduce has, from 2 to the number of layers
     * @param wire {@code "F32"} (exact) or {@code "BF16"}
     * @return the generated tokens and the logits each was picked from
     * @throws IllegalStateException if this is not the whole model
     * @throws IllegalArgumentException if {@code wire} is neither, or {@code stages} is out of range
     */
    public Generation generate(int[] prompt, int newTokens, Sampling sampling, int stages, String wire) {
        Objects.requireNonNull(sampling, "sampling");
        if (!slice.embedding() || !slice.head() || slice.firstLayer() != 0 || slice.endLayer() != config.layers()) {
            throw new IllegalStateException("generate needs the whole model, this is " + slice);
        }
        boolean bf16 = switch (wire) {
            case "F32" -> false;
            case "BF16" -> true;
            default -> throw new IllegalArgumentException("wire dtype must be F32 or BF16, not " + wire);
        };
        LlamaModel[] parts = new LlamaModel[stages];
        KvCache[] caches = new KvCache[stages];
        for (int s = 0; s < stages; s++) {
            Slice part = Slice.ofStage(config, s, stages);
            parts[s] = new LlamaModel(config, part, embedding, java.util.Arrays.copyOfRange(layers, part.firstLayer(),
                    part.endLayer()), finalNorm, lmHead);
            caches[s] = parts[s].newCache();
        }
        int[] tokens = new int[newTokens];
        float[][] logits = new float[newTokens][];
        int[] input = prompt.clone();
        int position = 0;
        for (int step = 0; step < newTokens; step++) {
            float[] hidden = embed(input);
            float[] cis = freqsCis(config, position, input.length);
            float[] mask = AttentionMask.causal(input.length, position);
            for (int s = 0; s < stages; s++) {
                if (s > 0 && bf16) {
                    Ops.roundToBFloat16(hidden);
                }
                parts[s].forwardLayers(hidden, input.length, position, cis, mask, caches[s]);
            }
            logits[step] = logits(hidden, input.length);
            position += input.length;
            tokens[step] = sampling.sample(logits[step], position);
            input = new int[] {tokens[step]};
        }
        return new Generation(tokens, logits);
    }

    private static void check(boolean condition, String problem) {
        if (!condition) {
            throw new IllegalArgumentException(problem);
        }
    }
}
