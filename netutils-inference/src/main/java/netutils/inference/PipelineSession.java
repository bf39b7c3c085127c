package netutils.inference;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import netutils.api.Connection;
import netutils.api.DType;
import netutils.api.wire.Frames;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.RemoteErrorException;
import netutils.api.Tensor;
import netutils.inference.internal.WireTensors;
import netutils.transport.tcp.TcpClient;
import netutils.transport.tcp.TcpOptions;

/**
 * The head of a pipeline, driving one generation: it holds stage 0 of the model (the token embedding and the
 * first layers) and, per step, runs them and sends {@code KV_index}, {@code CIS}, {@code mask} and
 * {@code hidden_state} to the first {@link StageServer}, which passes them on; the last stage's answer (the
 * next token, with its logits if asked) comes back through every stage with their timings.
 *
 * <pre>{@code
 * LlamaModel head = LlamaModel.load(dir, LlamaModel.Slice.ofStage(config, 0, 3));
 * try (PipelineSession session = PipelineSession.builder(head, List.of(stage1, stage2)).build()) {
 *     PipelineSession.Step step = session.prefill(prompt);
 *     for (int i = 0; i < 32; i++) {
 *         step = session.next(step.token());
 *     }
 * }
 * }</pre>
 * Not thread-safe: one generation, one thread.
 */
public final class PipelineSession implements AutoCloseable {

    /**
     * What one step cost and produced.
     *
     * @param token the token the last stage chose
     * @param logits its logits, when asked for ({@link Builder#returnLogits}), else {@code null}
     * @param tokens how many positions the step processed (the prompt's length for the prefill, then 1)
     * @param wallNanos the whole step as the head saw it
     * @param computeNanos per process (head first): time in the model's arithmetic
     * @param hopNanos per hop (head to stage 1 first): the round trip over that hop minus everything computed
     *     and waited for beyond it — encoding, sending, receiving and decoding the step's messages and the answer
     * @param hopBytes per hop: frame bytes by message type ({@code KV_index}, {@code CIS}, {@code mask},
     *     {@code hidden_state}, and {@code answer} for the way back)
     */
    public record Step(int token, float[] logits, int tokens, long wallNanos, long[] computeNanos, long[] hopNanos,
            List<Map<String, Long>> hopBytes) {
    }

    /**
     * A finished migration.
     *
     * @param stage the pipeline place whose cache moved (1 = first stage after the head)
     * @param from the server that held the cache
     * @param to the server that holds it now
     * @param positions how many positions moved
     * @param bytes the {@code KV_cache} frames' bytes
     * @param messages how many {@code KV_cache} messages carried them
     * @param nanos the time the move took, as the head saw it
     */
    public record Migration(int stage, String from, String to, int positions, long bytes, int messages, long nanos) {
    }

    private final LlamaModel head;
    private final List<String> route;
    private final TcpOptions options;
    private final DType wire;
    private final Sampling sampling;
    private boolean returnLogits;
    private final String session;
    private final String split;
    private final KvCache cache;
    private Connection first;
    private int position;

    private PipelineSession(Builder b) {
        this.head = b.head;
        this.route = new ArrayList<>(b.stages);
        this.options = b.options;
        this.wire = b.wire;
        this.sampling = b.sampling;
        this.returnLogits = b.returnLogits;
        this.session = b.session != null ? b.session : UUID.randomUUID().toString();
        List<String> layers = new ArrayList<>();
        int processes = route.size() + 1;
        for (int i = 0; i < processes; i++) {
            layers.add(LlamaModel.Slice.ofStage(head.config(), i, processes).layers());
        }
        this.split = String.join(",", layers);
        this.cache = head.newCache();
    }

    /**
     * A builder for a generation through {@code stages} ({@code host:port} of each stage server, in order) with
     * {@code head} holding stage 0 of {@code stages.size() + 1}.
     *
     * @param head the model slice this process runs: stage 0 of {@code stages.size() + 1}, with the embedding
     * @param stages the stage servers' addresses as {@code host:port}, in pipeline order; at least one
     * @return a builder with the defaults: default TCP options, F32 on the wire, greedy sampling, no logits
     * @throws IllegalArgumentException if {@code stages} is empty or {@code head} is not that slice
     */
    public static Builder builder(LlamaModel head, List<String> stages) {
        return new Builder(head, stages);
    }

    /** {@return the session id, in every message's metadata} */
    public String id() {
        return session;
    }

    /**
     * Whether the following steps' answers carry the logits (F32 {@code [1, vocab_size]}) or the token only.
     *
     * @param returnLogits {@code true} to have the logits in each following {@link Step}, {@code false} for the
     *     token only
     */
    public void returnLogits(boolean returnLogits) {
        this.returnLogits = returnLogits;
    }

    /** {@return the positions processed so far: the position of the next token} */
    public int position() {
        return position;
    }

    /** {@return the stage servers' {@code host:port}, in order, as they are now (a migration replaces one)} */
    public List<String> route() {
        return List.copyOf(route);
    }

    /**
     * Runs the prompt through the pipeline (a session's first step) and returns the first generated token.
     *
     * @param prompt the prompt's token ids; not empty
     * @return the first generated token, with the step's timings and bytes
     * @throws IllegalStateException if the prefill was already done
     * @throws IllegalArgumentException if the prompt is empty
     * @throws IOException if a stage cannot be reached, fails or answers with something else than a token (a
     *     {@link RemoteErrorException} when a stage reports an error); the connection to stage 1 is closed and
     *     the next step connects again
     */
    public Step prefill(int[] prompt) throws IOException {
        if (position != 0) {
            throw new IllegalStateException("session " + session + " is past its prefill, at position " + position);
        }
        if (prompt.length == 0) {
            throw new IllegalArgumentException("the prompt is empty");
        }
        return step(prompt);
    }

    /**
     * Feeds back the last generated token and returns the next.
     *
     * @param token the token to append, normally the one the previous step returned
     * @return the next generated token, with the step's timings and bytes
     * @throws IllegalStateException if there was no prefill yet
     * @throws IOException as {@link #prefill}
     */
    public Step next(int token) throws IOException {
        if (position == 0) {
            throw new IllegalStateException("prefill first");
        }
        return step(new int[] {token});
    }

    private Step step(int[] tokens) throws IOException {
        long begin = System.nanoTime();
        int n = tokens.length;
        ModelConfig config = head.config();
        float[] hidden = head.embed(tokens);
        float[] cis = LlamaModel.freqsCis(config, position, n);
        float[] mask = AttentionMask.causal(n, position);
        head.forwardLayers(hidden, n, position, cis, mask, cache);
        long computed = System.nanoTime();
        if (first == null || !first.isOpen()) {
            first = TcpClient.connect(address(route.getFirst()), options);
        }
        List<Message> messages = List.of(
                Message.builder(MessageType.KV_INDEX).tensor("data", Tensor.scalar(position))
                        .meta(StageProtocol.SESSION, session).build(),
                Message.builder(MessageType.CIS).tensor("data", Tensor.ofComplex(cis, n, config.headDim() / 2))
                        .meta(StageProtocol.SESSION, session).build(),
                Message.builder(MessageType.MASK).tensor("data", Tensor.ofFloats(mask, 1, 1, n, position + n))
                        .meta(StageProtocol.SESSION, session).build(),
                Message.builder(MessageType.HIDDEN_STATE)
                        .tensor("data", WireTensors.of(wire, hidden, 1, n, config.hiddenSize()))
                        .meta(StageProtocol.SESSION, session)
                        .meta(StageProtocol.STAGE, "1")
                        .meta(StageProtocol.SPLIT, split)
                        .meta(StageProtocol.ROUTE, String.join(",", route.subList(1, route.size())))
                        .meta(StageProtocol.RETURN, returnLogits ? "logits" : "token")
                        .meta(StageProtocol.SAMPLING, sampling.toString())
                        .build());
        Message answer;
        try {
            for (Message m : messages) {
                first.send(m);
            }
            answer = first.receive();
        } catch (IOException e) {
            closeFirst();
            throw e;
        }
        try (answer) { // its memory receives the next answer (logits of a large vocabulary are pooled)
            return finish(answer, messages, n, begin, computed);
        }
    }

    /** The step's result from the first stage's answer. */
    private Step finish(Message answer, List<Message> messages, int n, long begin, long computed) throws IOException {
        long end = System.nanoTime();
        if (!answer.type().equals(StageProtocol.LOGITS) && !answer.type().equals(StageProtocol.TOKEN)) {
            closeFirst();
            throw new IOException("stage 1 at " + route.getFirst() + " answered " + answer + ", not logits or a token");
        }
        position += n;
        int stages = route.size();
        long[] compute = new long[stages + 1];
        long[] downstream = new long[stages + 1];
        compute[0] = computed - begin;
        downstream[0] = end - computed;
        List<Map<String, Long>> bytes = new ArrayList<>();
        bytes.add(parseBytes(StageServer.describeBytes(messages, answer, StageServer.serializer(options))));
        for (int k = 1; k <= stages; k++) {
            compute[k] = longMeta(answer, "stage" + k + ".compute_ns");
            downstream[k] = longMeta(answer, "stage" + k + ".downstream_ns");
            if (k < stages) {
                bytes.add(parseBytes(answer.meta("stage" + k + ".bytes").orElseThrow(() -> new IOException(
                        "the answer lacks stage" + bytes.size() + ".bytes: " + answer))));
            }
        }
        long[] hops = new long[stages];
        for (int k = 0; k < stages; k++) {
            hops[k] = downstream[k] - compute[k + 1] - downstream[k + 1];
        }
        int token = Integer.parseInt(answer.meta(StageProtocol.TOKEN_META).orElseThrow(() -> new IOException(
                "the answer has no token: " + answer)));
        float[] logits = answer.type().equals(StageProtocol.LOGITS) ? answer.data().toFloatArray() : null;
        return new Step(token, logits, n, end - begin, compute, hops, List.copyOf(bytes));
    }

    /**
     * Moves this session's cache at pipeline place {@code stage} (1 = the first stage server) to
     * {@code target}, which must serve the same layers; later steps go through {@code target}. The old server
     * sends the cache itself (as {@code KV_cache} messages) and forgets it; nothing is recomputed.
     *
     * @param stage the pipeline place whose cache moves, from 1 to the number of stage servers
     * @param target the {@code host:port} of the server that takes the cache over
     * @return what moved and how long it took
     * @throws IllegalArgumentException if {@code stage} is out of range
     * @throws RemoteErrorException if either server refuses, saying why; the session then stays where it was
     * @throws IOException if the stage cannot be reached or answers with something else than a migration
     */
    public Migration migrate(int stage, String target) throws IOException {
        Objects.requireNonNull(target, "target");
        if (stage < 1 || stage > route.size()) {
            throw new IllegalArgumentException("stage " + stage + " is not in 1.." + route.size());
        }
        String from = route.get(stage - 1);
        long begin = System.nanoTime();
        Message answer;
        // The head talks to the stage directly: a control message, not part of a step.
        try (Connection control = TcpClient.connect(address(from), options)) {
            answer = control.request(Message.builder(StageProtocol.MIGRATE).meta(StageProtocol.SESSION, session)
                    .meta(StageProtocol.TARGET, target).build());
        }
        long nanos = System.nanoTime() - begin;
        if (!answer.type().equals(StageProtocol.MIGRATE)) {
            throw new IOException(from + " answered " + answer + " to migrate");
        }
        route.set(stage - 1, target);
        if (stage == 1) {
            closeFirst();
        }
        return new Migration(stage, from, target, Integer.parseInt(answer.meta(StageProtocol.POSITIONS).orElse("0")),
                longMeta(answer, "bytes"), (int) longMeta(answer, "messages"), nanos);
    }

    /** Ends the session on every stage (they free its caches) and closes the connection. */
    @Override
    public void close() throws IOException {
        try {
            if (first == null || !first.isOpen()) {
                first = TcpClient.connect(address(route.getFirst()), options);
            }
            first.request(Message.builder(StageProtocol.END_SESSION).meta(StageProtocol.SESSION, session)
                    .meta(StageProtocol.ROUTE, String.join(",", route.subList(1, route.size()))).build());
        } finally {
            closeFirst();
        }
    }

    private void closeFirst() {
        if (first != null) {
            try {
                first.close();
            } catch (IOException ignored) {
                // nothing more to tell it
            }
            first = null;
        }
    }

    private static long longMeta(Message m, String key) throws IOException {
        String text = m.meta(key).orElseThrow(() -> new IOException("answer lacks '" + key + "': " + m));
        try {
            return Long.parseLong(text);
        } catch (NumberFormatException e) {
            throw new IOException("answer's '" + key + "' is not a number: " + text);
        }
    }

    private static Map<String, Long> parseBytes(String text) {
        Map<String, Long> out = new LinkedHashMap<>();
        for (String pair : text.split(",")) {
            String[] kv = pair.split("=");
            out.put(kv[0], Long.parseLong(kv[1]));
        }
        return out;
    }

    static InetSocketAddress address(String hostPort) throws IOException {
        try {
            return StageServer.parseAddress(hostPort);
        } catch (StageException e) {
            throw new IOException(e.getMessage());
        }
    }

    /** Options of a {@link PipelineSession}. */
    public static final class Builder {
        private final LlamaModel head;
        private final List<String> stages;
        private TcpOptions options = TcpOptions.defaults();
        private DType wire = DType.F32;
        private Sampling sampling = Sampling.greedy();
        private boolean returnLogits;
        private String session;

        private Builder(LlamaModel head, List<String> stages) {
            this.head = Objects.requireNonNull(head, "head");
            this.stages = List.copyOf(stages);
            if (stages.isEmpty()) {
                throw new IllegalArgumentException("a pipeline needs at least one stage server after the head");
            }
            LlamaModel.Slice expected = LlamaModel.Slice.ofStage(head.config(), 0, stages.size() + 1);
            if (!head.slice().equals(expected)) {
                throw new IllegalArgumentException("the head of " + (stages.size() + 1) + " processes holds " + expected
                        + ", this model holds " + head.slice());
            }
        }

        /**
         * Connection options (serializer, timeouts); the defaults use JSON envelopes.
         *
         * @param options the options of the head's connections to the stage servers
         * @return this builder
         */
        public Builder options(TcpOptions options) {
            this.options = Objects.requireNonNull(options, "options");
            return this;
        }

        /**
         * The hidden state's dtype on the wire: F32 (exact, the default), BF16 or F16.
         *
         * @param wire the dtype the hidden state is rounded to between processes
         * @return this builder
         * @throws IllegalArgumentException if {@code wire} is another dtype
         */
        public Builder wire(DType wire) {
            if (wire != DType.F32 && wire != DType.BF16 && wire != DType.F16) {
                throw new IllegalArgumentException("hidden states travel as F32, BF16 or F16, not " + wire);
            }
            this.wire = wire;
            return this;
        }

        /**
         * How the last stage picks tokens; greedy by default.
         *
         * @param sampling the sampling the last stage applies to every step's logits
         * @return this builder
         */
        public Builder sampling(Sampling sampling) {
            this.sampling = Objects.requireNonNull(sampling, "sampling");
            return this;
        }

        /**
         * Whether every answer carries the logits (F32 {@code [1, vocab_size]}); by default only the token.
         *
         * @param returnLogits {@code true} to have the logits in every {@link Step}
         * @return this builder
         */
        public Builder returnLogits(boolean returnLogits) {
            this.returnLogits = returnLogits;
            return this;
        }

        /**
         * The session id; by default a random UUID.
         *
         * @param session the id the stage servers key this generation's caches by, or {@code null} for a random one
         * @return this builder
         */
        public Builder session(String session) {
            this.session = session;
            return this;
        }

        /** {@return the session; nothing is sent until the prefill} */
        public PipelineSession build() {
            return new PipelineSession(this);
        }
    }

    @Override
    public String toString() {
        return "PipelineSession[" + session + " at " + position + " via " + route + ", split " + split + ", wire " + wire
                + ", " + sampling + "]";
    }
}
