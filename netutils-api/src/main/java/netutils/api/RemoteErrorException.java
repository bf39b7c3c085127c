package netutils.api;

import java.io.IOException;

/**
 * The peer sent an {@link MessageType#ERROR error} message: it found something wrong with what this side
 * sent, and closes the connection. {@link #code()} is the peer's error code (for instance a
 * {@link ProtocolException.Kind} name), the message its description.
 */
public class RemoteErrorException extends IOException {
    private static final long serialVersionUID = 1L;

    /** The peer's error code; part of the serialized form. */
    private final String code;

    /**
     * An error reported by the peer.
     *
     * @param code the peer's error code
     * @param detail the peer's description
     */
    public RemoteErrorException(String code, String detail) {
        super("peer reported " + code + ": " + detail);
        this.code = code;
    }

    /**
     * The peer's error code, e.g. {@code "BAD_MAGIC"} or {@code "SERVER_BUSY"}.
     *
     * @return the code
     */
    public String code() {
        return code;
    }
}
