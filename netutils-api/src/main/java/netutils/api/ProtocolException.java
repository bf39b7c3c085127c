package netutils.api;

import java.io.IOException;
import java.util.Objects;

/**
 * A frame or envelope broke the wire contract of {@code docs/PROTOCOL.md}. The {@link #kind()} says which
 * rule; the message says what was found. The connection that received such a frame is closed (after telling
 * the peer with an {@link MessageType#ERROR error} message where the connection still works); other
 * connections are not affected.
 *
 * <p>Messages often quote what the peer sent (a key, a tensor name, a dtype): they are made
 * {@link PeerText#printable printable} and capped at {@value PeerText#MAX_CHARS} characters here, so that logging
 * one, or sending it back in an {@code error} frame, neither carries a peer's escape sequences and forged
 * newlines nor echoes megabytes.
 */
public class ProtocolException extends IOException {
    private static final long serialVersionUID = 1L;

    /** Which rule of the wire format was broken. */
    public enum Kind {
        /** The first two bytes are not {@code "NU"}. */
        BAD_MAGIC,
        /** The protocol version byte is not one this library speaks. */
        UNSUPPORTED_VERSION,
        /** A reserved header byte or flag bit is not zero. */
        RESERVED_BITS_SET,
        /** The serializer id is reserved, or names a serializer that is not installed. */
        UNKNOWN_SERIALIZER,
        /** The declared body length is over the configured limit (or a message over the 32-bit maximum). */
        FRAME_TOO_LARGE,
        /** The envelope length or content is not valid, or does not parse. */
        MALFORMED_ENVELOPE,
        /** A tensor's byte size, offset or dtype disagrees with its shape or with the frame. */
        BAD_TENSOR,
        /** The CRC32C of the body does not match the one sent. */
        CHECKSUM_MISMATCH,
        /** The peer closed the connection or stopped sending in the middle of a frame. */
        TRUNCATED,
        /** A raw message has bytes after the end of its frame. */
        TRAILING_BYTES
    }

    /** Which rule the input broke; part of the serialized form. */
    private final Kind kind;

    /**
     * A protocol error of the given kind.
     *
     * @param kind which rule was broken
     * @param message what was found, for people
     */
    public ProtocolException(Kind kind, String message) {
        super(PeerText.printable(message));
        this.kind = Objects.requireNonNull(kind, "kind");
    }

    /**
     * A protocol error of the given kind with its cause.
     *
     * @param kind which rule was broken
     * @param message what was found, for people
     * @param cause what made the input unreadable
     */
    public ProtocolException(Kind kind, String message, Throwable cause) {
        super(PeerText.printable(message), cause);
        this.kind = Objects.requireNonNull(kind, "kind");
    }

    /**
     * Which rule was broken.
     *
     * @return the rule, for code that reacts to it
     */
    public Kind kind() {
        return kind;
    }
}
