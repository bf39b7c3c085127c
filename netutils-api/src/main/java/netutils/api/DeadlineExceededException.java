package netutils.api;

import java.io.InterruptedIOException;
import java.time.Duration;

/**
 * A call's deadline passed before its reply came: the caller is freed, the connection stays usable, and a
 * reply that arrives later is dropped (and counted by {@link Connection#lateReplies()}).
 */
public class DeadlineExceededException extends InterruptedIOException {
    private static final long serialVersionUID = 1L;

    /**
     * The call {@code requestId} to {@code peer} had no reply within {@code deadline}.
     *
     * @param requestId the id of the request that went unanswered
     * @param peer who the request went to, as {@link Connection#peer()} names it
     * @param deadline how long the caller waited for the reply
     */
    public DeadlineExceededException(String requestId, String peer, Duration deadline) {
        super("no reply to request " + requestId + " from " + peer + " within " + deadline);
    }
}
