package netutils.api;

/**
 * Answers one message with another: the simplest server logic. See {@link ConnectionHandler#ofRequests}.
 */
@FunctionalInterface
public interface RequestHandler {

    /** The reply to {@code request}, or {@code null} to send none. */
    Message handle(Message request) throws Exception;
}
