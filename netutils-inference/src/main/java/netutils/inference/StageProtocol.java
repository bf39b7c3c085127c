package netutils.inference;

import netutils.api.MessageType;

/**
 * The messages pipeline stages exchange; {@code docs/INFERENCE.md} of the project describes them with shapes
 * and an example, so that a stage can be written in any language.
 *
 * <p>One step of one generation is four messages from a stage (or the head) to the next, in this order, each
 * with {@value #SESSION} in its metadata: {@code KV_index} (I64 scalar: the position of the step's first new
 * token), {@code CIS} (C64 {@code [tokens, head_dim/2]}: the rotary rows of the new positions), {@code mask}
 * ({@code [1, 1, tokens, position + tokens]}, additive F32/F16/BF16 or BOOL) and {@code hidden_state}
 * ({@code [1, tokens, hidden_size]}, F32, BF16 or F16), which closes the step and also carries
 * {@value #STAGE}, {@value #SPLIT}, {@value #ROUTE}, {@value #RETURN} and {@value #SAMPLING}. Only the
 * {@code hidden_state} is answered: with {@link #LOGITS} or {@link #TOKEN} from the last stage, relayed back
 * through every stage, each adding its timings ({@code stage<k>.compute_ns}, {@code stage<k>.downstream_ns},
 * {@code stage<k>.bytes}). Anything wrong is answered with an {@code error} message whose {@code code} is
 * one of the constants below, and that connection is closed; the stage's sessions are untouched.
 */
public final class StageProtocol {
    /** Metadata: the generation a message belongs to (any string of 1 to 256 characters). */
    public static final String SESSION = "session";
    /** Metadata of {@code hidden_state}: the receiver's place in the pipeline, 1 for the first stage after the head. */
    public static final String STAGE = "stage";
    /** Metadata of {@code hidden_state}: every process's layers, {@code "0:2,2:4,4:6"}; the receiver checks its own. */
    public static final String SPLIT = "split";
    /** Metadata of {@code hidden_state}: {@code host:port} of the stages after the receiver, comma-separated; empty for the last. */
    public static final String ROUTE = "route";
    /** Metadata of {@code hidden_state}: what the last stage answers, {@code "token"} or {@code "logits"}. */
    public static final String RETURN = "return";
    /** Metadata of {@code hidden_state}: how the last stage samples, {@code greedy} or {@code seeded:SEED:TEMPERATURE:TOP_K}. */
    public static final String SAMPLING = "sampling";
    /** Metadata of answers: the chosen token, in decimal. */
    public static final String TOKEN_META = "token";
    /** Metadata of {@code KV_cache}: the position of the first cached row it carries (0 starts the session anew). */
    public static final String START = "start";
    /** Metadata of {@code KV_cache}: the layers it holds, {@code "first:end"}; must equal the receiver's. */
    public static final String LAYERS = "layers";
    /** Metadata of {@link #MIGRATE}: {@code host:port} of the stage server that takes the session over. */
    public static final String TARGET = "target";
    /** Metadata of {@link #MIGRATE}: the most positions per {@code KV_cache} message (optional). */
    public static final String CHUNK_POSITIONS = "chunk_positions";
    /** Metadata of acknowledgements: how many positions the receiver now holds for the session. */
    public static final String POSITIONS = "positions";

    /** The last stage's answer with logits: {@code data} F32 {@code [1, vocab_size]} and {@value #TOKEN_META}. */
    public static final MessageType LOGITS = MessageType.of("logits");
    /** The last stage's answer with the token only: {@code data} I64 scalar and {@value #TOKEN_META}. */
    public static final MessageType TOKEN = MessageType.of("token");
    /** Asks a stage to move a session's KV cache to {@value #TARGET} and forget it; answered in kind. */
    public static final MessageType MIGRATE = MessageType.of("migrate");
    /** Ends a session on this stage and, along {@value #ROUTE}, on the following ones; answered in kind. */
    public static final MessageType END_SESSION = MessageType.of("end_session");

    /** Error code: a tensor has a dtype the message type does not take. */
    public static final String BAD_DTYPE = "BAD_DTYPE";
    /** Error code: a tensor's shape disagrees with the model or the step. */
    public static final String BAD_SHAPE = "BAD_SHAPE";
    /** Error code: a position beyond what the stage's cache holds, or beyond its capacity. */
    public static final String POSITION_BEYOND_CACHE = "POSITION_BEYOND_CACHE";
    /** Error code: a session this stage does not hold. */
    public static final String UNKNOWN_SESSION = "UNKNOWN_SESSION";
    /** Error code: a step's message or a cache's tensor is missing, or a tensor is not expected. */
    public static final String MISSING_PART = "MISSING_PART";
    /** Error code: required metadata is missing or does not parse. */
    public static final String BAD_META = "BAD_META";
    /** Error code: the layers the sender expects are not the layers this stage serves. */
    public static final String WRONG_LAYERS = "WRONG_LAYERS";
    /** Error code: a mask row hides every key, or has NaN. */
    public static final String BAD_MASK = "BAD_MASK";
    /** Error code: the next stage could not be reached, or failed. */
    public static final String DOWNSTREAM_FAILED = "DOWNSTREAM_FAILED";
    /** Error code: a message type a stage does not serve. */
    public static final String UNEXPECTED_TYPE = "UNEXPECTED_TYPE";

    private StageProtocol() {
    }
}
