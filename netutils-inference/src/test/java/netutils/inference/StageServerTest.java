package netutils.inference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;
import netutils.api.Connection;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.RemoteErrorException;
import netutils.api.Tensor;
import netutils.transport.tcp.TcpClient;
import netutils.transport.tcp.TcpOptions;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Stage servers in this JVM over loopback sockets: a pipeline equals the single-process model, and malformed
 * messages are refused by name while other sessions go on. (netutils-examples runs the pipeline in separate JVMs.)
 */
@Timeout(120)
class StageServerTest {
    private static final InetSocketAddress LOOPBACK = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);
    private static LlamaModel whole;
    private static LlamaModel head;
    private static StageServer middle;
    private static StageServer last;
    private static StageServer spare;

    @BeforeAll
    static void start() throws IOException {
        Path dir = TestModels.small();
        whole = LlamaModel.load(dir);
        ModelConfig c = whole.config();
        head = LlamaModel.load(dir, LlamaModel.Slice.ofStage(c, 0, 3));
        middle = StageServer.start(LlamaModel.load(dir, LlamaModel.Slice.ofStage(c, 1, 3)), LOOPBACK,
                TcpOptions.defaults(), TcpOptions.defaults());
        last = StageServer.start(LlamaModel.load(dir, LlamaModel.Slice.ofStage(c, 2, 3)), LOOPBACK,
                TcpOptions.defaults(), TcpOptions.defaults());
        spare = StageServer.start(LlamaModel.load(dir, LlamaModel.Slice.ofStage(c, 1, 3)), LOOPBACK,
                TcpOptions.defaults(), TcpOptions.defaults());
    }

    @AfterAll
    static void stop() throws IOException {
        for (StageServer s : new StageServer[] {middle, last, spare}) {
            if (s != null) {
                s.close();
            }
        }
    }

    private static String at(StageServer server) {
        return "127.0.0.1:" + server.port();
    }

    private static PipelineSession.Builder session(String id) {
        return PipelineSession.builder(head, List.of(at(middle), at(last))).session(id);
    }

    @ParameterizedTest
    @ValueSource(strings = {"F32:json:greedy", "BF16:msgpack:seeded:9:0.9:20"})
    void pipelineWithMigrationEqualsTheSingleProcessModel(String setup) throws IOException {
        String[] parts = setup.split(":", 3);
        DType wire = DType.valueOf(parts[0]);
        Sampling sampling = Sampling.parse(parts[2]);
        int[] prompt = {11, 22, 33, 44, 55, 66};
        int steps = 20;
        Generation expected = whole.generate(prompt, steps, sampling, 3, wire.name());
        List<Integer> tokens = new ArrayList<>();
        try (PipelineSession s = session("equal-" + parts[0]).wire(wire).sampling(sampling).returnLogits(true)
                .options(TcpOptions.builder().serializer(parts[1]).build()).build()) {
            PipelineSession.Step step = s.prefill(prompt);
            for (int i = 0; i < steps; i++) {
                tokens.add(step.token());
                assertThat(step.logits()).as("logits of token %d", i).containsExactly(expected.logits()[i]);
                if (i == steps / 2) {
                    PipelineSession.Migration moved = s.migrate(1, at(spare));
                    assertThat(moved.positions()).isEqualTo(prompt.length + i);
                    assertThat(middle.cachedPositions(s.id())).isEqualTo(-1);
                    assertThat(spare.cachedPositions(s.id())).isEqualTo(prompt.length + i);
                }
                if (i + 1 < steps) {
                    step = s.next(step.token());
                }
            }
            assertThat(step.hopBytes()).hasSize(2);
            assertThat(step.hopBytes().get(0)).containsKeys("KV_index", "CIS", "mask", "hidden_state", "answer");
            assertThat(java.util.Arrays.stream(step.computeNanos()).boxed().toList()).hasSize(3).allMatch(n -> n > 0);
        }
        assertThat(tokens).containsExactlyElementsOf(java.util.Arrays.stream(expected.tokens()).boxed().toList());
        assertThat(spare.cachedPositions("equal-" + parts[0])).as("end_session frees the caches").isEqualTo(-1);
        assertThat(last.cachedPositions("equal-" + parts[0])).isEqualTo(-1);
    }

    /** A healthy session that must go on stepping, correctly, after each refused message. */
    private static final class Witness implements AutoCloseable {
        final PipelineSession session;
        final Generation expected;
        int step;
        PipelineSession.Step last;

        Witness(String id) throws IOException {
            session = session(id).returnLogits(true).build();
            int[] prompt = {7, 8, 9};
            expected = whole.generate(prompt, 40, Sampling.greedy(), 3, "F32");
            last = session.prefill(prompt);
            check();
        }

        void advance() throws IOException {
            last = session.next(last.token());
            step++;
            check();
        }

        private void check() {
            assertThat(last.token()).isEqualTo(expected.tokens()[step]);
            assertThat(last.logits()).containsExactly(expected.logits()[step]);
        }

        @Override
        public void close() throws IOException {
            session.close();
        }
    }

    private static Message meta(Message.Builder b, String session) {
        return b.meta(StageProtocol.SESSION, session).build();
    }

    /** A correct step for {@code session} at {@code position} with {@code tokens} new tokens, to be spoiled. */
    private static List<Message> step(String session, int position, int tokens) {
        ModelConfig c = whole.config();
        float[] hidden = new float[tokens * c.hiddenSize()];
        java.util.Arrays.fill(hidden, 0.25f);
        List<Message> messages = new ArrayList<>();
        messages.add(meta(Message.builder(MessageType.KV_INDEX).tensor("data", Tensor.scalar(position)), session));
        messages.add(meta(Message.builder(MessageType.CIS).tensor("data",
                Tensor.ofComplex(LlamaModel.freqsCis(c, position, tokens), tokens, c.headDim() / 2)), session));
        messages.add(meta(Message.builder(MessageType.MASK).tensor("data",
                Tensor.ofFloats(AttentionMask.causal(tokens, position), 1, 1, tokens, position + tokens)), session));
        messages.add(Message.builder(MessageType.HIDDEN_STATE).tensor("data", Tensor.ofFloats(hidden, 1, tokens, c.hiddenSize()))
                .meta(StageProtocol.SESSION, session).meta(StageProtocol.STAGE, "1").meta(StageProtocol.SPLIT, "0:1,1:2,2:4")
                .meta(StageProtocol.ROUTE, at(last)).meta(StageProtocol.RETURN, "token").build());
        return messages;
    }

    private static Message replace(List<Message> step, int index, UnaryOperator<Message> change) {
        return change.apply(step.get(index));
    }

    private static Message withData(Message m, Tensor data) {
        Message.Builder b = Message.builder(m.type()).tensor("data", data);
        m.meta().forEach(b::meta);
        return b.build();
    }

    /** Sends the messages on a fresh connection and returns the error the stage answers. */
    private static RemoteErrorException refusal(StageServer server, List<Message> messages) throws IOException {
        try (Connection c = TcpClient.connect("127.0.0.1", server.port())) {
            for (Message m : messages) {
                c.send(m);
            }
            try {
                Message answer = c.receive();
                throw new AssertionError("expected an error, got " + answer);
            } catch (RemoteErrorException e) {
                return e;
            }
        }
    }

    private record Case(String name, String code, String detail, List<Message> messages) {
    }

    @Test
    void malformedMessagesOfEveryTypeAreAnsweredWithAnErrorWhileOtherSessionsGoOn() throws IOException {
        ModelConfig c = whole.config();
        try (Witness witness = new Witness("witness")) {
            String known = witness.session.id(); // held by the middle stage, at position 3
            List<Message> good = step("fresh", 0, 2);
            List<Case> cases = new ArrayList<>();
            // KV_index
            cases.add(new Case("KV_index dtype", StageProtocol.BAD_DTYPE, "I64 (or I32) scalar, got F32",
                    List.of(withData(good.get(0), Tensor.ofFloats(new float[] {0}))))) ;
            cases.add(new Case("KV_index shape", StageProtocol.BAD_SHAPE, "scalar (shape [] or [1]), got [2]",
                    List.of(withData(good.get(0), Tensor.ofLongs(new long[] {0, 1}, 2)))));
            cases.add(new Case("KV_index position", StageProtocol.POSITION_BEYOND_CACHE, "KV_index 99 is beyond the",
                    List.of(meta(Message.builder(MessageType.KV_INDEX).tensor("data", Tensor.scalar(99)), known))));
            cases.add(new Case("KV_index session", StageProtocol.UNKNOWN_SESSION, "session 'nobody' is not on this stage",
                    List.of(meta(Message.builder(MessageType.KV_INDEX).tensor("data", Tensor.scalar(5)), "nobody"))));
            // CIS
            cases.add(new Case("CIS dtype", StageProtocol.BAD_DTYPE, "CIS is C64 (complex64 freqs_cis), got F32",
                    List.of(good.get(0), withData(good.get(1), Tensor.ofFloats(new float[16], 2, 8)))));
            cases.add(new Case("CIS shape", StageProtocol.BAD_SHAPE, "CIS is [tokens, head_dim/2 = 8], got [2, 4]",
                    List.of(good.get(0), withData(good.get(1), Tensor.ofComplex(new float[16], 2, 4)))));
            Message at3 = meta(Message.builder(MessageType.KV_INDEX).tensor("data", Tensor.scalar(3)), known);
            cases.add(new Case("CIS position", StageProtocol.POSITION_BEYOND_CACHE,
                    "CIS rows for positions 3..128 are beyond the cache's capacity of 128",
                    List.of(at3, meta(Message.builder(MessageType.CIS).tensor("data", Tensor.ofComplex(new float[126 * 16], 126, 8)), known))));
            cases.add(new Case("CIS session", StageProtocol.UNKNOWN_SESSION, "CIS for session 'nobody', which is not on this stage",
                    List.of(meta(Message.builder(MessageType.CIS).tensor("data", Tensor.ofComplex(new float[16], 1, 8)), "nobody"))));
            // mask
            cases.add(new Case("mask dtype", StageProtocol.BAD_DTYPE, "mask is BOOL or an additive F32, F16 or BF16 mask, got I64",
                    List.of(good.get(0), good.get(1), withData(good.get(2), Tensor.ofLongs(new long[4], 1, 1, 2, 2)))));
            cases.add(new Case("mask shape", StageProtocol.BAD_SHAPE, "must have KV_index + tokens = 0 + 2 columns",
                    List.of(good.get(0), good.get(1), withData(good.get(2), Tensor.ofFloats(new float[6], 1, 1, 2, 3)))));
            cases.add(new Case("mask position", StageProtocol.POSITION_BEYOND_CACHE,
                    "reaches position 128, beyond the cache's capacity of 128",
                    List.of(at3, meta(Message.builder(MessageType.MASK).tensor("data", Tensor.ofFloats(new float[126 * 129], 1, 1, 126, 129)), known))));
            cases.add(new Case("mask session", StageProtocol.UNKNOWN_SESSION, "mask for session 'nobody', which is not on this stage",
                    List.of(meta(Message.builder(MessageType.MASK).tensor("data", Tensor.ofBooleans(new boolean[] {true}, 1, 1)), "nobody"))));
            cases.add(new Case("mask hides all", StageProtocol.BAD_MASK, "mask row 0 hides every key",
                    List.of(good.get(0), good.get(1), withData(good.get(2), Tensor.ofBooleans(new boolean[4], 1, 1, 2, 2)))));
            // hidden_state
            cases.add(new Case("hidden_state dtype", StageProtocol.BAD_DTYPE, "hidden_state is F32, BF16 or F16, got I32",
                    List.of(good.get(0), good.get(1), good.get(2), withData(good.get(3), Tensor.ofInts(new int[2 * 64], 1, 2, 64)))));
            cases.add(new Case("hidden_state shape", StageProtocol.BAD_SHAPE, "hidden_state is [1, tokens, hidden_size = 64], got [1, 2, 32]",
                    List.of(good.get(0), good.get(1), good.get(2), withData(good.get(3), Tensor.ofFloats(new float[64], 1, 2, 32)))));
            cases.add(new Case("hidden_state tokens", StageProtocol.BAD_SHAPE, "hidden_state has 3 tokens, CIS 2 rows and mask 2 rows",
                    List.of(good.get(0), good.get(1), good.get(2), withData(good.get(3), Tensor.ofFloats(new float[3 * 64], 1, 3, 64)))));
            // A hidden_state carries no position of its own: its step's KV_index, CIS and mask do (above). What it
            // can get wrong about positions is its token count, which must match theirs (the "tokens" case).
            cases.add(new Case("hidden_state session", StageProtocol.UNKNOWN_SESSION, "hidden_state for session 'nobody', which is not on this stage",
                    List.of(step("nobody", 0, 2).get(3))));
            cases.add(new Case("hidden_state layers", StageProtocol.WRONG_LAYERS, "should run layers 2:3, this server runs 1:2",
                    List.of(good.get(0), good.get(1), good.get(2), good.get(3).toBuilder().meta(StageProtocol.SPLIT, "0:1,2:3,3:4").build())));
            cases.add(new Case("hidden_state missing CIS", StageProtocol.MISSING_PART, "arrived without its CIS",
                    List.of(good.get(0), good.get(2), good.get(3))));
            // KV_cache
            Tensor kv = Tensor.ofFloats(new float[2 * 3 * 16], 1, 2, 3, 16);
            Message.Builder cache = Message.builder(MessageType.KV_CACHE).meta(StageProtocol.LAYERS, "1:2");
            cases.add(new Case("KV_cache dtype", StageProtocol.BAD_DTYPE, "KV_cache tensor 'layer1.k' is I32",
                    List.of(meta(copy(cache).tensor("layer1.k", Tensor.ofInts(new int[96], 1, 2, 3, 16)).tensor("layer1.v", kv), "kvd"))));
            cases.add(new Case("KV_cache shape", StageProtocol.BAD_SHAPE, "KV_cache tensor 'layer1.v' is [1, 2, 2, 16]",
                    List.of(meta(copy(cache).tensor("layer1.k", kv).tensor("layer1.v", Tensor.ofFloats(new float[64], 1, 2, 2, 16)), "kvs"))));
            cases.add(new Case("KV_cache position", StageProtocol.POSITION_BEYOND_CACHE, "starts at position 60, beyond the",
                    List.of(meta(copy(cache).meta(StageProtocol.START, "60").tensor("layer1.k", kv).tensor("layer1.v", kv), known))));
            cases.add(new Case("KV_cache session", StageProtocol.UNKNOWN_SESSION, "KV_cache from position 3 for session 'nobody'",
                    List.of(meta(copy(cache).meta(StageProtocol.START, "3").tensor("layer1.k", kv).tensor("layer1.v", kv), "nobody"))));
            cases.add(new Case("KV_cache layers", StageProtocol.WRONG_LAYERS, "KV_cache holds layers 2:3, this server runs 1:2",
                    List.of(meta(Message.builder(MessageType.KV_CACHE).meta(StageProtocol.LAYERS, "2:3").tensor("layer2.k", kv), "kvl"))));
            // other
            cases.add(new Case("migrate session", StageProtocol.UNKNOWN_SESSION, "cannot migrate session 'nobody'",
                    List.of(Message.builder(StageProtocol.MIGRATE).meta(StageProtocol.SESSION, "nobody")
                            .meta(StageProtocol.TARGET, at(spare)).build())));
            cases.add(new Case("no session", StageProtocol.BAD_META, "KV_index needs a 'session'",
                    List.of(Message.of(MessageType.KV_INDEX, Tensor.scalar(0)))));
            cases.add(new Case("unknown type", StageProtocol.UNEXPECTED_TYPE, "not embeddings",
                    List.of(Message.of(MessageType.of("embeddings"), Tensor.scalar(0)))));
            int sessions = middle.sessionCount();
            for (Case k : cases) {
                RemoteErrorException e = refusal(middle, k.messages());
                assertThat(e.code()).as(k.name()).isEqualTo(k.code());
                assertThat(e.getMessage()).as(k.name()).contains(k.detail());
                assertThat(middle.cachedPositions(known)).as("after %s", k.name()).isEqualTo(3 + witness.step);
                witness.advance(); // the other session still steps, with the same bits as the single-process model
            }
            assertThat(middle.sessionCount()).as("no refused message left a session behind").isEqualTo(sessions);
            // An error from a later stage reaches the sender with that stage's code and place.
            List<Message> wrongLast = new ArrayList<>(good);
            wrongLast.set(3, good.get(3).toBuilder().meta(StageProtocol.SPLIT, "0:1,1:2,3:4").build());
            RemoteErrorException relayed = refusal(middle, wrongLast);
            assertThat(relayed.code()).isEqualTo(StageProtocol.WRONG_LAYERS);
            assertThat(relayed.getMessage()).contains("stage 2 at " + at(last)).contains("should run layers 3:4");
            witness.advance();
            // A well-formed step on a fresh connection still works: nothing was broken by the refusals.
            try (Connection conn = TcpClient.connect("127.0.0.1", middle.port())) {
                for (Message m : good) {
                    conn.send(m);
                }
                assertThat(conn.receive().type()).isEqualTo(StageProtocol.TOKEN);
            }
            assertThat(c.maxPositions()).isEqualTo(128);
        }
        assertThatThrownBy(() -> PipelineSession.builder(whole, List.of(at(middle)))).hasMessageContaining("holds");
    }

    private static Message.Builder copy(Message.Builder b) {
        Message m = b.build();
        return m.toBuilder();
    }

}
