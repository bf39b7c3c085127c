package netutils.api;

import java.io.IOException;
import java.time.Duration;
import java.util.Optional;

/**
 * A two-way stream of {@link Message}s with a peer: the original module's {@code NetworkConnection}.
 *
 * <p>{@link #send} may be called from several threads at once; each message goes out whole, one frame after
 * another. {@link #receive} is meant for one reading thread at a time. Closing from any thread wakes a
 * blocked {@code receive} with a {@link ConnectionClosedException}.
 *
 * <p>Errors: I/O failures are {@link IOException}s; a frame that breaks the wire format raises a
 * {@link ProtocolException} saying what was wrong (the peer is told with an {@link MessageType#ERROR error}
 * message and the connection is closed); an error message from the peer raises {@link RemoteErrorException}.
 */
public interface Connection extends AutoCloseable {

    /**
     * Sends one message as one frame.
     *
     * @param message the message to send
     * @throws FrameTooLargeException before anything is sent, if the message does not fit a frame
     * @throws IOException if the connection fails or the write times out (the connection is then closed)
     */
    void send(Message message) throws IOException;

    /**
     * Waits for the next message.
     *
     * @return the message, its tensors in fresh memory
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
     *     MemorySegment buffer = arena.allocate(512L << 20, 64);
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
     * @param tensorMemory where the tensors of the message go
     * @return the message, its tensors in memory from {@code tensorMemory}
     * @throws IOException as {@link #receive()}
     */
    Message receive(java.lang.foreign.SegmentAllocator tensorMemory) throws IOException;

    /**
     * Waits at most {@code timeout} for the next message to begin. A timeout before the first byte of a frame
     * leaves the connection usable and returns empty; once a frame has begun, the read timeout applies.
     *
     * @param timeout how long to wait for a frame to begin
     * @return the message, or empty if none began within {@code timeout}
     * @throws IOException as {@link #receive()}
     */
    Optional<Message> receive(Duration timeout) throws IOException;

    /**
     * Sends {@code request} and waits for the next message, the original module's send-then-receive pattern.
     *
     * @param request the message to send
     * @return the next message received after it
     * @throws IOException as {@link #send} and {@link #receive()}
     */
    default Message request(Message request) throws IOException {
        send(request);
        return receive();
    }

    /**
     * Whether the connection is still open.
     *
     * @return {@code false} once it is closed, here or because it failed
     */
    boolean isOpen();

    /**
     * Who the peer is, for logs: an address, or a name for in-memory connections.
     *
     * @return a description of the peer
     */
    String peer();

    /** Closes the connection; further calls do nothing. */
    @Override
    void close() throws IOException;
}
