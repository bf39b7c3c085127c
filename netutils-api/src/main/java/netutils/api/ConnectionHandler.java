package netutils.api;

import java.io.IOException;
import java.util.concurrent.Semaphore;

/**
 * Serves one connection from its start to its end; a server runs each on its own thread. The connection is
 * closed when the handler returns or throws. {@link #ofRequests} and {@link #ofConcurrentRequests} adapt a
 * simpler {@link RequestHandler}.
 */
@FunctionalInterface
public interface ConnectionHandler {

    /**
     * Serves {@code connection} until it ends.
     *
     * @param connection the accepted connection; the server closes it when this method returns or throws
     * @throws Exception anything the handler fails with; it ends this connection only, not the server
     */
    void handle(Connection connection) throws Exception;

    /**
     * A handler that answers every message with {@code handler}'s reply, one at a time and in order, until the
     * peer closes. The reply's {@code reply_to} is set to the request's id when the handler leaves it unset; a
     * {@code null} reply sends nothing (a caller waiting for it ends at its deadline). If the handler throws,
     * the peer gets an {@link MessageType#ERROR error} message with code {@code HANDLER_FAILED} answering the
     * request; when the request had no id to answer, the connection is then closed, since the peer could not
     * tell which message failed.
     *
     * <p>Each request is {@linkplain Message#close() closed} once {@code handle} has returned and its reply (or
     * error), if any, has been sent, as Netty's {@code SimpleChannelInboundHandler} releases what it handled: its
     * memory then receives the next request, so large requests arrive at socket speed. The request's tensors are
     * valid during {@code handle} and in the reply; a handler that keeps data for later copies it (for instance with
     * {@link Tensor#copyOf}). Kept tensors of a closed request refuse access; a {@link java.lang.foreign.MemorySegment}
     * or {@link java.nio.ByteBuffer} taken from them is not guarded. A reply is not closed: a handler that answers
     * with a message it received elsewhere (a proxy) leaves that message's memory to the garbage collector.
     *
     * @param handler computes the reply to each request
     * @return a connection handler that answers each message of a connection in turn until the peer closes
     */
    static ConnectionHandler ofRequests(RequestHandler handler) {
        return connection -> {
            for (Message request = next(connection); request != null; request = next(connection)) {
                answer(connection, handler, request);
            }
        };
    }

    /**
     * A handler that processes up to {@code maxConcurrent} requests of the connection at once, each on its own
     * virtual thread, and sends each reply as soon as it is ready, with {@code reply_to} set: replies may leave
     * in another order than their requests came, which callers of {@link Connection#request} and
     * {@link Connection#requestAsync} sort out by id. Handler failures are answered, and each request is closed
     * once answered, as in {@link #ofRequests}.
     * When the peer closes, requests still being processed finish first.
     *
     * @param handler computes the reply to each request; it is called from several threads at once
     * @param maxConcurrent how many requests of one connection may be in progress at once, at least 1
     * @return a connection handler that answers the requests of a connection concurrently until the peer closes
     * @throws IllegalArgumentException if {@code maxConcurrent} is less than 1
     */
    static ConnectionHandler ofConcurrentRequests(RequestHandler handler, int maxConcurrent) {
        if (maxConcurrent < 1) {
            throw new IllegalArgumentException("maxConcurrent must be at least 1, got " + maxConcurrent);
        }
        return connection -> {
            Semaphore slots = new Semaphore(maxConcurrent);
            try {
                for (Message request = next(connection); request != null; request = next(connection)) {
                    try {
                        slots.acquire(); // at most maxConcurrent requests read ahead of their replies
                    } catch (InterruptedException e) {
                        request.close(); // never to be answered
                        throw e;
                    }
                    Message current = request;
                    Thread.ofVirtual().name("netutils-request-" + request.id().orElse("?")).start(() -> {
                        try {
                            answer(connection, handler, current);
                        } catch (Exception e) {
                            // The connection has failed; its reader sees that and ends the loop.
                        } finally {
                            slots.release();
                        }
                    });
                }
            } finally {
                slots.acquire(maxConcurrent); // let every request in progress finish before the connection closes
            }
        };
    }

    /** The next request, or {@code null} once the peer has closed the connection. */
    private static Message next(Connection connection) throws IOException {
        try {
            return connection.receive();
        } catch (ConnectionClosedException closed) {
            return null;
        }
    }

    /**
     * Answers {@code request}, then closes it: its pooled memory goes back for the next request (a server that never
     * closed its requests received 1 to 32 MiB requests at a sixteenth of the speed, on fresh memory each time).
     * The reply has been sent by then, so a reply that shares the request's tensors (an echo) is safe.
     */
    private static void answer(Connection connection, RequestHandler handler, Message request) throws Exception {
        try (request) {
            answerOpen(connection, handler, request);
        }
    }

    private static void answerOpen(Connection connection, RequestHandler handler, Message request) throws Exception {
        Message reply;
        try {
            reply = handler.handle(request);
        } catch (Exception e) {
            Message.Builder error = Message.error("HANDLER_FAILED", String.valueOf(e.getMessage())).toBuilder();
            request.id().ifPresent(error::replyTo);
            try {
                connection.send(error.build());
            } catch (IOException sendFailed) {
                e.addSuppressed(sendFailed);
            }
            if (request.id().isEmpty()) {
                throw e;
            }
            return;
        }
        if (reply != null) {
            if (reply.replyTo().isEmpty() && request.id().isPresent()) {
                reply = reply.toBuilder().replyTo(request).build();
            }
            connection.send(reply);
        }
    }
}
