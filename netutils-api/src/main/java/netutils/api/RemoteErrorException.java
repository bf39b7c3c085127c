package netutils.api;

import java.io.IOException;

/**
 * The peer sent an {@link MessageType#ERROR error} message: it found something wrong with what this side
 * sent, and closes the connection. {@link #code()} is the peer's error code (for instance a
 * {@link ProtocolException.Kind} name), the message its description.
 *
 * <p>Both come from the peer, which may be hostile: they are made {@link PeerText#printable printable} here,
 * once, so that neither the exception message nor anything that logs or prints it carries a peer's control
 * characters, escape sequences or forged newlines, and the detail keeps at most {@value #MAX_DETAIL_CHARS}
 * characters (with a note of how many were cut).
 */
public class RemoteErrorException extends IOException {
    private static final long serialVersionUID = 1L;
    /** The most characters of the peer's code that are kept; the project's codes have at most 19. */
    public static final int MAX_CODE_CHARS = 64;
    /** The most characters of the peer's detail that are kept. */
    public static final int MAX_DETAIL_CHARS = PeerText.MAX_CHARS;

    /** The peer's error code; part of the serialized form. */
    private final String code;
    /** The peer's description, made printable and capped; part of the serialized form. */
    private final String detail;

    /**
     * An error reported by the peer; {@code code} and {@code detail} are made printable and capped.
     *
     * @param code the peer's error code
     * @param detail the peer's description
     */
    public RemoteErrorException(String code, String detail) {
        this(PeerText.printable(code, MAX_CODE_CHARS), PeerText.printable(detail, MAX_DETAIL_CHARS), null);
    }

    private RemoteErrorException(String code, String detail, Void printable) {
        super("peer reported " + code + ": " + detail);
        this.code = code;
        this.detail = detail;
    }

    /**
     * The peer's error code, e.g. {@code "BAD_MAGIC"} or {@code "SERVER_BUSY"}, made printable.
     *
     * @return the code
     */
    public String code() {
        return code;
    }

    /** {@return the peer's description, made printable and capped at {@value #MAX_DETAIL_CHARS} characters} */
    public String detail() {
        return detail;
    }
}
