package netutils.api;

/**
 * Answers one message with another: the simplest server logic. See {@link ConnectionHandler#ofRequests}.
 */
@FunctionalInterface
public interface RequestHandler {

    /**
     * The reply to {@code request}, or {@code null} to send none.
     *
     * @param request a message from the peer, closed once this method has returned and its reply has been sent:
     *     copy what must outlive the call
     * @return the reply, or {@code null}
     * @throws Exception if the request cannot be handled; the peer then gets an error message
     */
    Message handle(Message request) throws Exception;
}
