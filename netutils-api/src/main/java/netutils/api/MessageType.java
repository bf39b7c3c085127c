package netutils.api;

import java.util.Objects;

/**
 * What a {@link Message} carries, as a name on the wire.
 *
 * <p>The five types of the original {@code network_utils} module are constants; applications add their
 * own with {@link #of(String)}. {@link #ERROR} is reserved: a peer sends it just before it closes a
 * connection because of bad input, and receiving it raises {@link RemoteErrorException}.
 */
public final class MessageType {
    /** A hidden state passed from one stage of a split model to the next. */
    public static final MessageType HIDDEN_STATE = new MessageType("hidden_state");
    /** Rotary position frequencies ({@code freqs_cis}), usually {@link DType#C64}. */
    public static final MessageType CIS = new MessageType("CIS");
    /** The KV-cache position, naturally a scalar {@link DType#I64} tensor. */
    public static final MessageType KV_INDEX = new MessageType("KV_index");
    /** A KV cache, naturally per-layer {@code k}/{@code v} tensors. */
    public static final MessageType KV_CACHE = new MessageType("KV_cache");
    /** An attention mask. */
    public static final MessageType MASK = new MessageType("mask");
    /** Reserved: the peer reports bad input and closes. See {@link Message#error(String, String)}. */
    public static final MessageType ERROR = new MessageType("error");

    /** The longest type name accepted, in characters. */
    public static final int MAX_NAME_LENGTH = 256;

    private static final MessageType[] PREDEFINED = {HIDDEN_STATE, CIS, KV_INDEX, KV_CACHE, MASK, ERROR};

    private final String name;

    private MessageType(String name) {
        this.name = name;
    }

    /**
     * The type with this name: one of the constants when the name is theirs, otherwise a user-defined type.
     *
     * @param name the wire name
     * @return the type
     * @throws IllegalArgumentException if the name is empty, longer than {@value #MAX_NAME_LENGTH}
     *     characters, or has control characters
     */
    public static MessageType of(String name) {
        Objects.requireNonNull(name, "name");
        for (MessageType type : PREDEFINED) {
            if (type.name.equals(name)) {
                return type;
            }
        }
        // Characters as docs/PROTOCOL.md counts them: code points, so an emoji (two UTF-16 chars) is one.
        int characters = name.codePointCount(0, name.length());
        if (characters == 0 || characters > MAX_NAME_LENGTH) {
            throw new IllegalArgumentException("message type name must have 1 to " + MAX_NAME_LENGTH
                    + " characters, got " + characters);
        }
        for (int i = 0; i < name.length(); i++) {
            if (Character.isISOControl(name.charAt(i))) {
                throw new IllegalArgumentException("message type name has a control character at index " + i);
            }
        }
        Message.requireUnicode("message type name", name);
        return new MessageType(name);
    }

    /**
     * The wire name, e.g. {@code "KV_cache"}.
     *
     * @return the wire name
     */
    public String name() {
        return name;
    }

    /**
     * Whether this is one of the constants of this class (the original module's five, or {@link #ERROR}).
     *
     * @return whether the type is predefined
     */
    public boolean isPredefined() {
        for (MessageType type : PREDEFINED) {
            if (type == this) {
                return true;
            }
        }
        return false;
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof MessageType that && name.equals(that.name);
    }

    @Override
    public int hashCode() {
        return name.hashCode();
    }

    @Override
    public String toString() {
        return name;
    }
}
