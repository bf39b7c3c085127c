package netutils.api;

import java.io.EOFException;

/**
 * The connection is closed: the peer closed it cleanly between frames, or this side closed it. A peer that
 * vanishes in the middle of a frame raises a {@link ProtocolException} of kind
 * {@link ProtocolException.Kind#TRUNCATED} instead.
 */
public class ConnectionClosedException extends EOFException {
    private static final long serialVersionUID = 1L;

    /**
     * The connection is closed, for the reason given.
     *
     * @param message why the connection is closed
     */
    public ConnectionClosedException(String message) {
        super(message);
    }
}
