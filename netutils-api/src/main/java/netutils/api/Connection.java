package netutils.api;

import java.io.IOException;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;

/**
 * A two-way stream of {@link Message}s with a peer: the original module's {@code NetworkConnection}.
 *
 * <p>Two ways to talk, which mix freely on one connection:
 * <ul>
 * <li><b>Messages</b>: {@link #send} and {@link #receive}, the original module's {@code send_data} and
 *     {@code receive_data}.</li>
 * <li><b>Calls</b>: {@link #request(Message, Duration)} and {@link #requestAsync} give the request an id (when it
 *     has none) and return the reply whose {@code reply_to} is that id, whatever else arrives in between. Any
 *     number of calls may be outstanding from any threads; each ends at its deadline at the latest, leaving the
 *     connection usable. A reply that arrives after its call ended is dropped and counted
 *     ({@link #lateReplies()}); a message that answers no call is delivered to {@link #receive}, never to a
 *     caller it does not answer. A peer that never sets {@code reply_to} (the original Python module, older
 *     peers) answers in order: until it sets one, each of its messages answers the oldest outstanding call.</li>
 * </ul>
 *
 * <p>{@link #send} may be called from several threads at once; each message goes out whole, one frame after
 * another. Closing from any thread wakes blocked calls and receives with a {@link ConnectionClosedException};
 * calls outstanding when the connection fails fail with the reason (they are never resent: a call is not known
 * to be idempotent).
 *
 * <p>Received messages may hold pooled memory: close them when done (see {@link Message#close()}).
 *
 * <p>Errors: I/O failures are {@link IOException}s; a frame that breaks the wire format raises a
 * {@link ProtocolException} saying what was wrong (the peer is told with an {@link MessageType#ERROR error}
 * message and the connection is closed); an error message from the peer raises {@link RemoteErrorException}.
 */
public interface Connection extends AutoCloseable {

    /**
     * Sends one message as one frame.
     *
     * @param message the message to send, headers and tensors; the caller still owns it afterwards: when this
     *     method returns, the tensors' bytes have been written (or copied), and no reference to them is kept
     * @throws FrameTooLargeException before anything is sent, if the message does not fit a frame
     * @throws IOException if the connection fails or the write times out (the connection is then closed)
     */
    void send(Message message) throws IOException;

    /**
     * Waits for the next message.
     *
     * @return the next message that answers no outstanding call; it may hold pooled memory, so close it when done
     * @throws ConnectionClosedException if the peer closed the connection between messages, or it was closed here
     * @throws ProtocolException if the frame breaks the wire format, or the peer vanished mid-frame
     * @throws RemoteErrorException if the peer sent an error message
     * @throws IOException if the connection fails or the peer stops mid-frame for longer than the read timeout
     */
    Message receive() throws IOException;

    /**
     * Waits for the next message and puts its tensors in memory from {@code tensorMemory} instead of fresh
     * memory: the caller then owns their lifetime. To receive into the same buffer again and again (no
     * allocation, no page faults, as inference loops want):
     *
     * <pre>{@code
     * try (Arena arena = Arena.ofConfined()) {
     *     MemorySegment buffer = arena.allocate(512L << 20, 4096); // page-aligned copies are the fast ones
     *     while (running) {
     *         Message m = connection.receive(SegmentAllocator.slicingAllocator(buffer));
     *         use(m); // its tensors are overwritten by the next receive
     *     }
     * }
     * }</pre>
     *
     * If the allocator cannot provide a tensor's bytes, the frame cannot be read: an {@link IOException} says
     * so and the connection is closed.
     *
     * @param tensorMemory allocates the memory the received tensors' bytes are read into; the caller keeps it
     *     alive for as long as it uses the message
     * @return the next message that answers no outstanding call, its tensors in memory from {@code tensorMemory}
     * @throws IOException as {@link #receive()}
     */
    Message receive(java.lang.foreign.SegmentAllocator tensorMemory) throws IOException;

    /**
     * Waits at most {@code timeout} for the next message to begin. A timeout before the first byte of a frame
     * leaves the connection usable and returns empty; once a frame has begun, the read timeout applies.
     *
     * @param timeout how long to wait for a frame to begin
     * @return the next message that answers no outstanding call, or empty if none began within {@code timeout}
     * @throws IOException as {@link #receive()}
     */
    Optional<Message> receive(Duration timeout) throws IOException;

    /**
     * A call with the connection's default deadline (see the transport's options): sends {@code request} and
     * waits for its reply.
     *
     * @param request the message to send; it is given a fresh id if it has none
     * @return the reply, the message whose {@code reply_to} is the request's id
     * @throws DeadlineExceededException if no reply came in time (the connection stays usable)
     * @throws RemoteErrorException if the peer answered the request with an error message
     * @throws IOException as {@link #send}, or if the connection failed while waiting
     */
    Message request(Message request) throws IOException;

    /**
     * A call: sends {@code request} (with a fresh id if it has none) and waits at most {@code deadline} for the
     * message whose {@code reply_to} is that id. Messages that arrive meanwhile and answer no call are kept for
     * {@link #receive}.
     *
     * @param request the message to send; it is given a fresh id if it has none
     * @param deadline how long to wait for the reply, counted from the call; must be positive
     * @return the reply, the message whose {@code reply_to} is the request's id
     * @throws DeadlineExceededException if no reply came in time (the connection stays usable)
     * @throws RemoteErrorException if the peer answered the request with an error message
     * @throws IOException as {@link #send}, or if the connection failed while waiting
     */
    Message request(Message request, Duration deadline) throws IOException;

    /**
     * A call that does not block: sends {@code request} (with a fresh id if it has none) and returns its reply
     * later. The future fails with {@link DeadlineExceededException} at the deadline,
     * {@link RemoteErrorException} if the peer answered with an error, or the connection's failure; cancelling
     * it ends the call (a late reply is dropped).
     *
     * @param request the message to send; it is given a fresh id if it has none
     * @param deadline how long to wait for the reply, counted from the call; must be positive
     * @return a future completed with the reply, or failed as described above
     * @throws IOException if the request cannot be sent
     */
    CompletableFuture<Message> requestAsync(Message request, Duration deadline) throws IOException;

    /**
     * {@link #requestAsync(Message, Duration)} with the connection's default deadline.
     *
     * @param request the message to send; it is given a fresh id if it has none
     * @return a future completed with the reply, or failed as {@link #requestAsync(Message, Duration)}'s
     * @throws IOException if the request cannot be sent
     */
    CompletableFuture<Message> requestAsync(Message request) throws IOException;

    /** {@return how many replies arrived after their call had ended (deadline or cancellation) and were dropped} */
    long lateReplies();

    /** {@return whether the connection is still open} */
    boolean isOpen();

    /** {@return who the peer is, for logs: an address, or a name for in-memory connections} */
    String peer();

    /** Closes the connection; further calls do nothing. */
    @Override
    void close() throws IOException;
}
