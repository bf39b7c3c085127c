package netutils.inference;

import static netutils.inference.StageProtocol.BAD_DTYPE;
import static netutils.inference.StageProtocol.BAD_MASK;
import static netutils.inference.StageProtocol.BAD_META;
import static netutils.inference.StageProtocol.BAD_SHAPE;
import static netutils.inference.StageProtocol.DOWNSTREAM_FAILED;
import static netutils.inference.StageProtocol.MISSING_PART;
import static netutils.inference.StageProtocol.POSITION_BEYOND_CACHE;
import static netutils.inference.StageProtocol.UNEXPECTED_TYPE;
import static netutils.inference.StageProtocol.UNKNOWN_SESSION;
import static netutils.inference.StageProtocol.WRONG_LAYERS;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.DType;
import netutils.api.wire.Frames;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.RemoteErrorException;
import netutils.api.Tensor;
import netutils.api.spi.Serializer;
import netutils.inference.internal.WireTensors;
import netutils.transport.tcp.TcpClient;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServer;

/**
 * Serves one slice of a {@link LlamaModel} as a pipeline stage over TCP, to any number of generations
 * ("sessions") at once, each with its own {@link KvCache}. It speaks the protocol of {@link StageProtocol}:
 * takes a step's {@code KV_index}, {@code CIS}, {@code mask} and {@code hidden_state}, runs its layers,
 * forwards the four to the next stage named in the step's route (or, as the last stage, applies the final
 * norm and head and samples), and relays the answer back with its timings. It also takes a session's cache
 * ({@code KV_cache}), hands one over to another server ({@link StageProtocol#MIGRATE}) and ends sessions.
 *
 * <p>A malformed message is answered with an {@code error} naming what was wrong; that connection is closed,
 * other connections and every session's cache are unaffected (a step is checked whole before it touches a
 * cache).
 */
public final class StageServer implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(StageServer.class.getName());
    /** A migration sends at most this many tensor bytes per {@code KV_cache} message unless told otherwise. */
    private static final long CHUNK_BYTES = 64L << 20;

    private final LlamaModel model;
    private final ModelConfig config;
    private final TcpServer server;
    private final TcpOptions clientOptions;
    private final Map<String, Session> sessions = new ConcurrentHashMap<>();

    private static final class Session {
        final ReentrantLock lock = new ReentrantLock();
        final KvCache cache;

        Session(KvCache cache) {
            this.cache = cache;
        }
    }

    /** The parts of a step received so far on one connection. */
    private static final class Parts {
        final int position;
        /** The CIS and mask messages, kept open until the step ends: their tensors are forwarded as they came. */
        Message cisMessage;
        Tensor cisTensor;
        float[] cis;
        Message maskMessage;
        Tensor maskTensor;
        float[] mask;
        int[] maskShape;

        Parts(int position) {
            this.position = position;
        }

        boolean holds(Message m) {
            return m == cisMessage || m == maskMessage;
        }

        /** Gives the held messages' memory back; the step is over (or was replaced, or its connection ended). */
        void close() {
            if (cisMessage != null) {
                cisMessage.close();
            }
            if (maskMessage != null) {
                maskMessage.close();
            }
        }
    }

    private StageServer(LlamaModel model, TcpServer server, TcpOptions clientOptions) {
        this.model = model;
        this.config = model.config();
        this.server = server;
        this.clientOptions = clientOptions;
    }

    /**
     * Binds {@code address} and serves {@code model}'s slice until {@link #close()}.
     *
     * @param model the slice this stage computes: any layer range, with the head if it is the last stage
     * @param address where to listen ({@code new InetSocketAddress(port)} is every interface)
     * @param serverOptions for the listening side (leave its serializer unset to answer each peer in kind)
     * @param clientOptions for connections to the next stage and to migration targets (their serializer is used)
     * @return the stage server, already serving
     * @throws java.net.BindException if the address is in use
     * @throws IOException if the listening socket cannot be opened otherwise
     */
    public static StageServer start(LlamaModel model, InetSocketAddress address, TcpOptions serverOptions,
            TcpOptions clientOptions) throws IOException {
        TcpServer server = TcpServer.bind(address, serverOptions);
        StageServer stage = new StageServer(model, server, clientOptions);
        server.serve(stage::serve);
        return stage;
    }

    /** {@return the bound address, with the real port when 0 was asked} */
    public InetSocketAddress address() {
        return server.address();
    }

    /** {@return the bound port} */
    public int port() {
        return server.port();
    }

    /** {@return the model slice served} */
    public LlamaModel model() {
        return model;
    }

    /** {@return how many sessions hold a cache here} */
    public int sessionCount() {
        return sessions.size();
    }

    /**
     * The positions cached for {@code session}, or -1 if this server does not hold it.
     *
     * @param session the session id, as {@link PipelineSession#id()} gives it
     * @return how many positions this server's cache of the session holds, or -1
     */
    public int cachedPositions(String session) {
        Session s = sessions.get(session);
        return s == null ? -1 : s.cache.length();
    }

    /**
     * Blocks until closed.
     *
     * @throws InterruptedException if the waiting thread is interrupted
     */
    public void awaitClose() throws InterruptedException {
        server.awaitClose();
    }

    /** Stops serving; open connections are closed. */
    @Override
    public void close() throws IOException {
        server.close();
    }

    // ------------------------------------------------------------------------------------------ serving

    /**
     * Serves one upstream connection. Every received message is closed once it has been used, so that its memory
     * receives the next one (a prefill's hidden state or a migrated cache would otherwise land in fresh memory each
     * time, at a sixteenth of socket speed): most at once, CIS and mask when their step ends, the downstream answer
     * once it has been passed on.
     */
    private void serve(Connection upstream) throws IOException {
        Map<String, Parts> pending = new HashMap<>();
        Map<String, Connection> downstream = new HashMap<>();
        List<Message> finished = new ArrayList<>();
        try {
            while (true) {
                Message request;
                try {
                    request = upstream.receive();
                } catch (ConnectionClosedException closed) {
                    return;
                }
                try {
                    Message reply;
                    try {
                        reply = handle(request, pending, downstream, finished);
                    } catch (StageException e) {
                        LOG.log(System.Logger.Level.INFO, "stage {0} refused {1} from {2}: {3} {4}",
                                model.slice().layers(), request.type(), upstream.peer(), e.code(), e.getMessage());
                        upstream.send(Message.error(e.code(), e.getMessage()));
                        return;
                    } catch (RuntimeException e) {
                        LOG.log(System.Logger.Level.WARNING, "stage " + model.slice().layers() + " failed on " + request, e);
                        upstream.send(Message.error("HANDLER_FAILED", e.toString()));
                        return;
                    }
                    if (reply != null) {
                        upstream.send(reply.toBuilder().replyTo(request).build());
                    }
                } finally {
                    if (pending.values().stream().noneMatch(parts -> parts.holds(request))) {
                        request.close();
                    }
                    finished.forEach(Message::close);
                    finished.clear();
                }
            }
        } finally {
            pending.values().forEach(Parts::close);
            for (Connection c : downstream.values()) {
                closeQuietly(c);
            }
        }
    }

    /**
     * The reply to {@code m}, or {@code null}. Messages that must stay open until the reply is sent (a finished
     * step's CIS and mask, the downstream answer the reply is made of) are added to {@code finished}.
     */
    private Message handle(Message m, Map<String, Parts> pending, Map<String, Connection> downstream,
            List<Message> finished) throws StageException, IOException {
        MessageType type = m.type();
        if (type.equals(MessageType.KV_INDEX)) {
            onKvIndex(m, pending);
            return null;
        } else if (type.equals(MessageType.CIS)) {
            onCis(m, pending);
            return null;
        } else if (type.equals(MessageType.MASK)) {
            onMask(m, pending);
            return null;
        } else if (type.equals(MessageType.HIDDEN_STATE)) {
            return onHiddenState(m, pending, downstream, finished);
        } else if (type.equals(MessageType.KV_CACHE)) {
            return onKvCache(m);
        } else if (type.equals(StageProtocol.MIGRATE)) {
            return onMigrate(m);
        } else if (type.equals(StageProtocol.END_SESSION)) {
            return onEndSession(m, downstream);
        }
        throw new StageException(UNEXPECTED_TYPE, "a pipeline stage takes KV_index, CIS, mask, hidden_state, KV_cache, "
                + "migrate and end_session, not " + type);
    }

    private static String session(Message m) throws StageException {
        String session = m.meta(StageProtocol.SESSION).orElse("");
        if (session.isEmpty() || session.length() > 256) {
            throw new StageException(BAD_META, m.type() + " needs a '" + StageProtocol.SESSION
                    + "' of 1 to 256 characters in its metadata");
        }
        return session;
    }

    private static Tensor single(Message m) throws StageException {
        if (m.tensors().size() != 1 || !m.tensors().containsKey(Message.DEFAULT_TENSOR_NAME)) {
            throw new StageException(MISSING_PART, m.type() + " carries one tensor named 'data', this one has "
                    + m.tensors().keySet());
        }
        return m.data();
    }

    /** The step opens: the position, checked against the session's cache. */
    private void onKvIndex(Message m, Map<String, Parts> pending) throws StageException {
        String session = session(m);
        Tensor index = single(m);
        if (index.dtype() != DType.I64 && index.dtype() != DType.I32) {
            throw new StageException(BAD_DTYPE, "KV_index is an I64 (or I32) scalar, got " + index.dtype());
        }
        if (index.rank() > 1 || index.elementCount() != 1) {
            throw new StageException(BAD_SHAPE, "KV_index is a scalar (shape [] or [1]), got "
                    + Arrays.toString(index.shape()));
        }
        long position = index.longValue();
        Session s = sessions.get(session);
        if (position < 0) {
            throw new StageException(BAD_SHAPE, "KV_index " + position + " is negative");
        }
        if (position > 0 && s == null) {
            throw new StageException(UNKNOWN_SESSION, "session '" + session + "' is not on this stage (layers "
                    + model.slice().layers() + "); a session starts with KV_index 0 or a KV_cache");
        }
        int cached = s == null ? 0 : s.cache.length();
        if (position > cached) {
            throw new StageException(POSITION_BEYOND_CACHE, "KV_index " + position + " is beyond the " + cached
                    + " positions cached for session '" + session + "'");
        }
        Parts replaced = pending.put(session, new Parts((int) position));
        if (replaced != null) {
            replaced.close(); // a step abandoned before its hidden_state
        }
    }

    private Parts opened(Message m, String session, Map<String, Parts> pending) throws StageException {
        Parts parts = pending.get(session);
        if (parts == null) {
            if (!sessions.containsKey(session)) {
                throw new StageException(UNKNOWN_SESSION, m.type() + " for session '" + session
                        + "', which is not on this stage (layers " + model.slice().layers()
                        + "); a step starts with KV_index");
            }
            throw new StageException(MISSING_PART, m.type() + " for session '" + session
                    + "' before its KV_index; a step is KV_index, CIS, mask, hidden_state");
        }
        return parts;
    }

    private void onCis(Message m, Map<String, Parts> pending) throws StageException {
        String session = session(m);
        Tensor cis = single(m);
        Parts parts = opened(m, session, pending);
        if (cis.dtype() != DType.C64) {
            throw new StageException(BAD_DTYPE, "CIS is C64 (complex64 freqs_cis), got " + cis.dtype());
        }
        long half = config.headDim() / 2;
        if (cis.rank() != 2 || cis.dim(1) != half || cis.dim(0) < 1) {
            throw new StageException(BAD_SHAPE, "CIS is [tokens, head_dim/2 = " + half + "], got "
                    + Arrays.toString(cis.shape()));
        }
        if (parts.position + cis.dim(0) > config.maxPositions()) {
            throw new StageException(POSITION_BEYOND_CACHE, "CIS rows for positions " + parts.position + ".."
                    + (parts.position + cis.dim(0) - 1) + " are beyond the cache's capacity of " + config.maxPositions());
        }
        if (parts.cisMessage != null) {
            parts.cisMessage.close(); // sent twice in one step: the later one counts
        }
        parts.cisMessage = m;
        parts.cisTensor = cis;
        parts.cis = cis.toFloatArray();
    }

    private void onMask(Message m, Map<String, Parts> pending) throws StageException {
        String session = session(m);
        Tensor mask = single(m);
        Parts parts = opened(m, session, pending);
        DType dtype = mask.dtype();
        if (dtype != DType.BOOL && dtype != DType.F32 && dtype != DType.F16 && dtype != DType.BF16) {
            throw new StageException(BAD_DTYPE, "mask is BOOL or an additive F32, F16 or BF16 mask, got " + dtype);
        }
        int[] shape;
        try {
            shape = AttentionMask.rowsAndColumns(mask);
        } catch (IllegalArgumentException e) {
            throw new StageException(BAD_SHAPE, e.getMessage());
        }
        if (shape[1] != parts.position + shape[0]) {
            throw new StageException(BAD_SHAPE, "mask " + Arrays.toString(mask.shape()) + " must have KV_index + tokens = "
                    + parts.position + " + " + shape[0] + " columns");
        }
        if (shape[1] > config.maxPositions()) {
            throw new StageException(POSITION_BEYOND_CACHE, "mask " + Arrays.toString(mask.shape())
                    + " reaches position " + (shape[1] - 1) + ", beyond the cache's capacity of " + config.maxPositions());
        }
        float[] additive;
        try {
            additive = AttentionMask.additive(mask);
        } catch (IllegalArgumentException e) {
            throw new StageException(BAD_MASK, e.getMessage());
        }
        for (int r = 0; r < shape[0]; r++) {
            boolean any = false;
            for (int c = 0; c < shape[1] && !any; c++) {
                any = additive[r * shape[1] + c] != Float.NEGATIVE_INFINITY;
            }
            if (!any) {
                throw new StageException(BAD_MASK, "mask row " + r + " hides every key");
            }
        }
        if (parts.maskMessage != null) {
            parts.maskMessage.close();
        }
        parts.maskMessage = m;
        parts.maskTensor = mask;
        parts.mask = additive;
        parts.maskShape = shape;
    }

    /** The step closes: check it whole, run the layers, forward or answer. */
    private Message onHiddenState(Message m, Map<String, Parts> pending, Map<String, Connection> downstream,
            List<Message> finished) throws StageException, IOException {
        String session = session(m);
        Tensor hidden = single(m);
        Parts parts = opened(m, session, pending);
        DType dtype = hidden.dtype();
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new StageException(BAD_DTYPE, "hidden_state is F32, BF16 or F16, got " + dtype);
        }
        long[] shape = hidden.shape();
        if (shape.length != 3 || shape[0] != 1 || shape[1] < 1 || shape[2] != config.hiddenSize()) {
            throw new StageException(BAD_SHAPE, "hidden_state is [1, tokens, hidden_size = " + config.hiddenSize()
                    + "], got " + Arrays.toString(shape));
        }
        int tokens = (int) shape[1];
        if (parts.cis == null || parts.mask == null) {
            throw new StageException(MISSING_PART, "hidden_state for session '" + session + "' arrived without its "
                    + (parts.cis == null ? "CIS" : "mask") + "; a step is KV_index, CIS, mask, hidden_state");
        }
        if (parts.cisTensor.dim(0) != tokens || parts.maskShape[0] != tokens) {
            throw new StageException(BAD_SHAPE, "hidden_state has " + tokens + " tokens, CIS " + parts.cisTensor.dim(0)
                    + " rows and mask " + parts.maskShape[0] + " rows; they must agree");
        }
        int position = parts.position;
        if (position + tokens > config.maxPositions()) {
            throw new StageException(POSITION_BEYOND_CACHE, "positions " + position + ".." + (position + tokens - 1)
                    + " are beyond the cache's capacity of " + config.maxPositions());
        }
        int stage = intMeta(m, StageProtocol.STAGE);
        String[] split = m.meta(StageProtocol.SPLIT).orElse("").split(",");
        if (stage < 1 || stage >= split.length) {
            throw new StageException(BAD_META, "hidden_state's stage " + stage + " is not an index into its split "
                    + Arrays.toString(split) + " (the head is 0)");
        }
        if (!split[stage].equals(model.slice().layers())) {
            throw new StageException(WRONG_LAYERS, "stage " + stage + " of split " + String.join(",", split)
                    + " should run layers " + split[stage] + ", this server runs " + model.slice().layers());
        }
        String route = m.meta(StageProtocol.ROUTE).orElse("");
        boolean last = stage == split.length - 1;
        if (last != model.slice().head() || last != route.isEmpty()) {
            throw new StageException(BAD_META, "stage " + stage + " of " + (split.length - 1) + " with route '" + route
                    + "' does not fit this server, which " + (model.slice().head() ? "is" : "is not") + " the last");
        }
        boolean returnLogits;
        Sampling sampling;
        if (last) {
            String answer = m.meta(StageProtocol.RETURN).orElse("token");
            if (!answer.equals("token") && !answer.equals("logits")) {
                throw new StageException(BAD_META, "return is 'token' or 'logits', not '" + answer + "'");
            }
            returnLogits = answer.equals("logits");
            try {
                sampling = Sampling.parse(m.meta(StageProtocol.SAMPLING).orElse("greedy"));
            } catch (IllegalArgumentException e) {
                throw new StageException(BAD_META, e.getMessage());
            }
        } else {
            returnLogits = false;
            sampling = null;
        }
        Session s = sessions.get(session);
        if (position > 0 && s == null) {
            throw new StageException(UNKNOWN_SESSION, "session '" + session + "' ended while its step was arriving");
        }
        pending.remove(session);
        // Open until the reply is sent: CIS and mask are forwarded below.
        if (parts.cisMessage != null) {
            finished.add(parts.cisMessage);
        }
        if (parts.maskMessage != null) {
            finished.add(parts.maskMessage);
        }
        float[] values = hidden.toFloatArray();
        if (s == null || position == 0) {
            s = new Session(model.newCache());
            sessions.put(session, s);
        }
        s.lock.lock();
        try {
            if (position > s.cache.length()) {
                throw new StageException(POSITION_BEYOND_CACHE, "KV_index " + position + " is beyond the "
                        + s.cache.length() + " positions cached for session '" + session + "'");
            }
            long start = System.nanoTime();
            model.forwardLayers(values, tokens, position, parts.cis, parts.mask, s.cache);
            if (last) {
                float[] logits = model.logits(values, tokens);
                int token = sampling.sample(logits, position + tokens);
                long compute = System.nanoTime() - start;
                Message.Builder answer = returnLogits
                        ? Message.builder(StageProtocol.LOGITS).tensor("data", Tensor.ofFloats(logits, 1, logits.length))
                        : Message.builder(StageProtocol.TOKEN).tensor("data", Tensor.scalar(token));
                return answer.meta(StageProtocol.TOKEN_META, Integer.toString(token))
                        .meta(StageProtocol.SESSION, session)
                        .meta("stage" + stage + ".compute_ns", Long.toString(compute))
                        .meta("stage" + stage + ".downstream_ns", "0").build();
            }
            long compute = System.nanoTime() - start;
            String[] hops = route.split(",", 2);
            long sent = System.nanoTime();
            Connection next = downstream(downstream, hops[0]);
            List<Message> step = new ArrayList<>(4);
            step.add(Message.builder(MessageType.KV_INDEX).tensor("data", Tensor.scalar(position))
                    .meta(StageProtocol.SESSION, session).build());
            step.add(Message.builder(MessageType.CIS).tensor("data", parts.cisTensor).meta(StageProtocol.SESSION, session).build());
            step.add(Message.builder(MessageType.MASK).tensor("data", parts.maskTensor).meta(StageProtocol.SESSION, session).build());
            // The hidden state goes on in the dtype it came in; the step's other metadata travels with it.
            Message.Builder out = Message.builder(MessageType.HIDDEN_STATE).tensor("data", WireTensors.of(dtype, values, shape));
            m.meta().forEach(out::meta);
            out.meta(StageProtocol.STAGE, Integer.toString(stage + 1)).meta(StageProtocol.ROUTE, hops.length > 1 ? hops[1] : "");
            step.add(out.build());
            Message answer;
            try {
                for (Message part : step) {
                    next.send(part);
                }
                answer = next.receive();
                finished.add(answer); // the reply below shares its memory
            } catch (RemoteErrorException e) {
                closeDownstream(downstream, hops[0]);
                throw new StageException(e.code(), "stage " + (stage + 1) + " at " + hops[0] + ": " + e.getMessage());
            } catch (IOException e) {
                closeDownstream(downstream, hops[0]);
                throw new StageException(DOWNSTREAM_FAILED, "stage " + (stage + 1) + " at " + hops[0] + " failed: " + e);
            }
            long waited = System.nanoTime() - sent;
            if (!answer.type().equals(StageProtocol.LOGITS) && !answer.type().equals(StageProtocol.TOKEN)) {
                throw new StageException(DOWNSTREAM_FAILED, "stage " + (stage + 1) + " at " + hops[0]
                        + " answered " + answer.type() + " instead of logits or token");
            }
            return answer.toBuilder().id(null).replyTo((String) null)
                    .meta("stage" + stage + ".compute_ns", Long.toString(compute))
                    .meta("stage" + stage + ".downstream_ns", Long.toString(waited))
                    .meta("stage" + stage + ".bytes", describeBytes(step, answer, StageServer.serializer(clientOptions)))
                    .build();
        } finally {
            s.lock.unlock();
        }
    }

    /** {@code type=bytes,...} of the frames of one step on one hop, the answer last. */
    static String describeBytes(List<Message> step, Message answer, Serializer serializer) {
        StringBuilder out = new StringBuilder();
        for (Message part : step) {
            out.append(part.type().name()).append('=').append(Frames.frameLength(part, serializer, false)).append(',');
        }
        return out.append("answer=").append(Frames.frameLength(answer, serializer, false)).toString();
    }

    /** The serializer a client with these options writes: the one set, else the default (JSON). */
    static Serializer serializer(TcpOptions options) {
        return options.serializer().map(netutils.api.wire.Serializers::byName)
                .orElseGet(netutils.api.wire.Serializers::defaultSerializer);
    }

    private static int intMeta(Message m, String key) throws StageException {
        String text = m.meta(key).orElseThrow(() -> new StageException(BAD_META, m.type() + " needs '" + key
                + "' in its metadata"));
        try {
            return Integer.parseInt(text);
        } catch (NumberFormatException e) {
            throw new StageException(BAD_META, "'" + key + "' must be an integer, got '" + text + "'");
        }
    }

    private Connection downstream(Map<String, Connection> downstream, String hostPort) throws StageException {
        Connection existing = downstream.get(hostPort);
        if (existing != null && existing.isOpen()) {
            return existing;
        }
        try {
            Connection fresh = TcpClient.connect(parseAddress(hostPort), clientOptions);
            downstream.put(hostPort, fresh);
            return fresh;
        } catch (IOException e) {
            throw new StageException(DOWNSTREAM_FAILED, "cannot reach the next stage at " + hostPort + ": " + e.getMessage());
        }
    }

    private static void closeDownstream(Map<String, Connection> downstream, String hostPort) {
        Connection c = downstream.remove(hostPort);
        if (c != null) {
            closeQuietly(c);
        }
    }

    static InetSocketAddress parseAddress(String hostPort) throws StageException {
        int colon = hostPort.lastIndexOf(':');
        try {
            if (colon <= 0) {
                throw new NumberFormatException();
            }
            int port = Integer.parseInt(hostPort.substring(colon + 1));
            if (port < 1 || port > 65535) {
                throw new NumberFormatException();
            }
            return new InetSocketAddress(hostPort.substring(0, colon), port);
        } catch (NumberFormatException e) {
            throw new StageException(BAD_META, "'" + hostPort + "' is not host:port");
        }
    }

    // ------------------------------------------------------------------------------------------ caches

    /** A session's cache arrives (migration, or prefill done elsewhere): check it whole, then store it. */
    private Message onKvCache(Message m) throws StageException {
        String session = session(m);
        String layers = m.meta(StageProtocol.LAYERS).orElseThrow(() -> new StageException(BAD_META,
                "KV_cache needs '" + StageProtocol.LAYERS + "' (first:end) in its metadata"));
        if (!layers.equals(model.slice().layers())) {
            throw new StageException(WRONG_LAYERS, "KV_cache holds layers " + layers + ", this server runs "
                    + model.slice().layers());
        }
        int start = m.meta(StageProtocol.START).isPresent() ? intMeta(m, StageProtocol.START) : 0;
        Map<String, Tensor> expected = new LinkedHashMap<>();
        for (int layer = model.slice().firstLayer(); layer < model.slice().endLayer(); layer++) {
            for (String kv : new String[] {"k", "v"}) {
                String name = "layer" + layer + "." + kv;
                Tensor t = m.tensors().get(name);
                if (t == null) {
                    throw new StageException(MISSING_PART, "KV_cache for layers " + layers + " has no tensor '" + name
                            + "'; it has " + m.tensors().keySet());
                }
                expected.put(name, t);
            }
        }
        for (String name : m.tensors().keySet()) {
            if (!expected.containsKey(name)) {
                throw new StageException(MISSING_PART, "KV_cache tensor '" + name + "' is not a k or v of layers " + layers);
            }
        }
        long count = -1;
        for (Map.Entry<String, Tensor> e : expected.entrySet()) {
            Tensor t = e.getValue();
            if (t.dtype() != DType.F32 && t.dtype() != DType.BF16 && t.dtype() != DType.F16) {
                throw new StageException(BAD_DTYPE, "KV_cache tensor '" + e.getKey() + "' is " + t.dtype()
                        + "; caches are F32 (exact), BF16 or F16");
            }
            long[] shape = t.shape();
            if (shape.length != 4 || shape[0] != 1 || shape[1] != config.kvHeads() || shape[3] != config.headDim()
                    || (count >= 0 && shape[2] != count)) {
                throw new StageException(BAD_SHAPE, "KV_cache tensor '" + e.getKey() + "' is " + Arrays.toString(shape)
                        + "; each is [1, num_key_value_heads = " + config.kvHeads() + ", positions"
                        + (count >= 0 ? " = " + count : "") + ", head_dim = " + config.headDim() + "]");
            }
            count = shape[2];
        }
        if (start < 0) {
            throw new StageException(BAD_META, "KV_cache start " + start + " is negative");
        }
        Session existing = sessions.get(session);
        if (start > 0 && existing == null) {
            throw new StageException(UNKNOWN_SESSION, "KV_cache from position " + start + " for session '" + session
                    + "', which is not on this stage; the first KV_cache of a session has start 0");
        }
        int held = existing == null ? 0 : existing.cache.length();
        if (start > held) {
            throw new StageException(POSITION_BEYOND_CACHE, "KV_cache starts at position " + start + ", beyond the "
                    + held + " positions cached for session '" + session + "'");
        }
        if (start + count > config.maxPositions()) {
            throw new StageException(POSITION_BEYOND_CACHE, "KV_cache ends at position " + (start + count)
                    + ", beyond the cache's capacity of " + config.maxPositions());
        }
        Session s = start == 0 ? new Session(model.newCache()) : existing;
        s.lock.lock();
        try {
            s.cache.truncate(Math.min(start, s.cache.length()));
            for (int layer = model.slice().firstLayer(); layer < model.slice().endLayer(); layer++) {
                s.cache.load(layer, 0, start, (int) count, expected.get("layer" + layer + ".k").toFloatArray(),
                        config.kvHeads(), config.headDim());
                s.cache.load(layer, 1, start, (int) count, expected.get("layer" + layer + ".v").toFloatArray(),
                        config.kvHeads(), config.headDim());
            }
            s.cache.extendTo(start + (int) count);
            if (start == 0) {
                sessions.put(session, s);
            }
            return Message.builder(MessageType.KV_CACHE).meta(StageProtocol.SESSION, session)
                    .meta(StageProtocol.POSITIONS, Integer.toString(s.cache.length())).build();
        } finally {
            s.lock.unlock();
        }
    }

    /** Hands a session's cache to another stage server, then forgets it. */
    private Message onMigrate(Message m) throws StageException {
        String session = session(m);
        String target = m.meta(StageProtocol.TARGET).orElseThrow(() -> new StageException(BAD_META,
                "migrate needs '" + StageProtocol.TARGET + "' (host:port) in its metadata"));
        InetSocketAddress address = parseAddress(target);
        Session s = sessions.get(session);
        if (s == null) {
            throw new StageException(UNKNOWN_SESSION, "cannot migrate session '" + session + "': it is not on this stage");
        }
        int rowBytes = 2 * (model.slice().endLayer() - model.slice().firstLayer()) * config.kvDim() * Float.BYTES;
        int chunk = m.meta(StageProtocol.CHUNK_POSITIONS).isPresent() ? intMeta(m, StageProtocol.CHUNK_POSITIONS)
                : (int) Math.max(1, CHUNK_BYTES / Math.max(1, rowBytes));
        if (chunk < 1) {
            throw new StageException(BAD_META, "chunk_positions must be positive, got " + chunk);
        }
        s.lock.lock();
        try {
            long begin = System.nanoTime();
            long bytes = 0;
            int messages = 0;
            int length = s.cache.length();
            try (Connection to = TcpClient.connect(address, clientOptions)) {
                for (int from = 0; from < length || from == 0; from += chunk) {
                    int end = Math.min(length, from + chunk);
                    Message.Builder cache = Message.builder(MessageType.KV_CACHE).meta(StageProtocol.SESSION, session)
                            .meta(StageProtocol.LAYERS, model.slice().layers())
                            .meta(StageProtocol.START, Integer.toString(from));
                    for (int layer = model.slice().firstLayer(); layer < model.slice().endLayer(); layer++) {
                        long[] shape = {1, config.kvHeads(), end - from, config.headDim()};
                        cache.tensor("layer" + layer + ".k", Tensor.ofFloats(s.cache.export(layer, 0, from, end,
                                config.kvHeads(), config.headDim()), shape));
                        cache.tensor("layer" + layer + ".v", Tensor.ofFloats(s.cache.export(layer, 1, from, end,
                                config.kvHeads(), config.headDim()), shape));
                    }
                    Message message = cache.build();
                    bytes += Frames.frameLength(message, StageServer.serializer(clientOptions), clientOptions.checksum());
                    messages++;
                    Message ack = to.request(message);
                    if (!ack.type().equals(MessageType.KV_CACHE)
                            || !ack.meta(StageProtocol.POSITIONS).orElse("").equals(Integer.toString(end))) {
                        throw new StageException(DOWNSTREAM_FAILED, "migration target " + target + " answered " + ack
                                + " to a KV_cache up to position " + end);
                    }
                    if (end == length) {
                        break;
                    }
                }
            } catch (RemoteErrorException e) {
                throw new StageException(e.code(), "migration target " + target + " refused the cache: " + e.getMessage());
            } catch (IOException e) {
                throw new StageException(DOWNSTREAM_FAILED, "migration target " + target + " failed: " + e);
            }
            sessions.remove(session);
            return Message.builder(StageProtocol.MIGRATE).meta(StageProtocol.SESSION, session)
                    .meta(StageProtocol.TARGET, target)
                    .meta(StageProtocol.POSITIONS, Integer.toString(length))
                    .meta("bytes", Long.toString(bytes))
                    .meta("messages", Integer.toString(messages))
                    .meta("nanos", Long.toString(System.nanoTime() - begin)).build();
        } finally {
            s.lock.unlock();
        }
    }

    private Message onEndSession(Message m, Map<String, Connection> downstream) throws StageException {
        String session = session(m);
        boolean held = sessions.remove(session) != null;
        String route = m.meta(StageProtocol.ROUTE).orElse("");
        int ended = held ? 1 : 0;
        if (!route.isEmpty()) {
            String[] hops = route.split(",", 2);
            Connection next = downstream(downstream, hops[0]);
            try {
                Message answer = next.request(Message.builder(StageProtocol.END_SESSION).meta(StageProtocol.SESSION, session)
                        .meta(StageProtocol.ROUTE, hops.length > 1 ? hops[1] : "").build());
                ended += Integer.parseInt(answer.meta("ended").orElse("0"));
            } catch (IOException | NumberFormatException e) {
                closeDownstream(downstream, hops[0]);
                throw new StageException(DOWNSTREAM_FAILED, "ending session '" + session + "' at " + hops[0] + ": " + e);
            }
        }
        return Message.builder(StageProtocol.END_SESSION).meta(StageProtocol.SESSION, session)
                .meta("ended", Integer.toString(ended)).build();
    }

    private static void closeQuietly(Connection c) {
        try {
            c.close();
        } catch (IOException ignored) {
            // closing is best effort
        }
    }
}
