package netutils.api;

/**
 * Serves one connection from its start to its end; a server runs each on its own virtual thread. The
 * connection is closed when the handler returns or throws. {@link #ofRequests} adapts a simpler
 * {@link RequestHandler}.
 */
@FunctionalInterface
public interface ConnectionHandler {

    /**
     * Serves {@code connection} until it ends.
     *
     * @param connection the connection to serve; the server closes it after this returns
     * @throws Exception if serving fails; the server logs it and closes the connection
     */
    void handle(Connection connection) throws Exception;

    /**
     * A handler that answers every message with {@code handler}'s reply, in order, until the peer closes.
     * The reply's {@code reply_to} is set to the request's id when the handler leaves it unset; a
     * {@code null} reply sends nothing. If the handler throws, the peer gets an {@link MessageType#ERROR error}
     * message with code {@code HANDLER_FAILED} and the connection is closed.
     *
     * @param handler computes each reply
     * @return a connection handler that serves requests one after another
     */
    static ConnectionHandler ofRequests(RequestHandler handler) {
        return connection -> {
            while (true) {
                Message request;
                try {
                    request = connection.receive();
                } catch (ConnectionClosedException closed) {
                    return;
                }
                Message reply;
                try {
                    reply = handler.handle(request);
                } catch (Exception e) {
                    connection.send(Message.error("HANDLER_FAILED", String.valueOf(e.getMessage())));
                    throw e;
                }
                if (reply != null) {
                    if (reply.replyTo().isEmpty() && request.id().isPresent()) {
                        reply = reply.toBuilder().replyTo(request).build();
                    }
                    connection.send(reply);
                }
            }
        };
    }
}
