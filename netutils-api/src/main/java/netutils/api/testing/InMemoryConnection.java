package netutils.api.testing;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.ConnectionHandler;
import netutils.api.Message;
import netutils.api.spi.Serializer;
import netutils.api.wire.AbstractConnection;
import netutils.api.wire.FrameDecoder;
import netutils.api.wire.FrameEncoder;
import netutils.api.wire.FrameHeader;
import netutils.api.wire.SegmentSource;
import netutils.api.wire.Serializers;


/**
 * A pair of connected {@link Connection}s in one process, for testing handlers and clients without sockets
 * (in the spirit of OkHttp's MockWebServer). Every message is really encoded to a frame and decoded on the
 * other side, so serializer and validation behaviour is the same as over TCP; frames are limited to what fits
 * in memory.
 *
 * <pre>{@code
 * try (Connection client = InMemoryConnection.serve(ConnectionHandler.ofRequests(myHandler))) {
 *     Message reply = client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(7)));
 * }
 * }</pre>
 */
public final class InMemoryConnection extends AbstractConnection {
    private static final Object CLOSED = new Object();
    /** Calls in tests end quickly when a handler forgets to answer. */
    private static final Duration DEFAULT_DEADLINE = Duration.ofSeconds(30);

    /**
     * Two connected ends.
     *
     * @param client one end
     * @param server the other end
     */
    public record Pair(Connection client, Connection server) {
    }

    private final String name;
    private final Serializer serializer;
    private final BlockingQueue<Object> inbox = new LinkedBlockingQueue<>();
    private InMemoryConnection other;

    private InMemoryConnection(String name, String peerName, Serializer serializer) {
        // No keepalive: an in-memory peer cannot vanish without closing.
        super(peerName, DEFAULT_DEADLINE, Duration.ZERO, Duration.ZERO);
        this.name = name;
        this.serializer = serializer;
    }

    /**
     * A connected pair whose frames use the default (JSON) serializer.
     *
     * @return two connected ends, each open until closed
     */
    public static Pair pair() {
        return pair(Serializers.defaultSerializer());
    }

    /**
     * A connected pair whose frames use {@code serializer}.
     *
     * @param serializer the serializer of the envelopes both ends send
     * @return two connected ends, each open until closed
     */
    public static Pair pair(Serializer serializer) {
        Objects.requireNonNull(serializer, "serializer");
        InMemoryConnection client = new InMemoryConnection("in-memory client", "in-memory server", serializer);
        InMemoryConnection server = new InMemoryConnection("in-memory server", "in-memory client", serializer);
        client.other = server;
        server.other = client;
        return new Pair(client, server);
    }

    /**
     * Runs {@code handler} on a virtual thread over the server end of a new pair and returns the client end.
     * The server end is closed when the handler returns or throws.
     *
     * @param handler serves the server end, as a server's handler would
     * @return the client end, to send requests to {@code handler}
     */
    public static Connection serve(ConnectionHandler handler) {
        Pair pair = pair();
        Thread.ofVirtual().name("in-memory-handler").start(() -> {
            try (Connection server = pair.server()) {
                handler.handle(server);
            } catch (Exception ignored) {
                // The client sees the closed connection; a test double has nowhere better to report.
            }
        });
        return pair.client();
    }

    @Override
    protected void writeMessage(Message message) throws IOException {
        MemorySegment frame = FrameEncoder.encode(message, serializer, false).toSegment();
        if (!other.isOpen()) {
            throw new ConnectionClosedException(peer() + " closed the connection");
        }
        other.inbox.add(frame);
    }

    @Override
    protected Message readMessage(long waitNanos, SegmentAllocator tensorMemory) throws IOException {
        Object next;
        try {
            next = inbox.poll(waitNanos, TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while receiving");
        }
        if (next == null) {
            return null;
        }
        if (next == CLOSED) {
            inbox.add(CLOSED); // every later read sees it too
            throw new ConnectionClosedException(peer() + " closed the connection");
        }
        SegmentSource source = new SegmentSource((MemorySegment) next);
        FrameHeader header = FrameDecoder.readHeader(source, FrameDecoder.Limits.PROTOCOL_MAXIMUM);
        return FrameDecoder.readBody(source, header, FrameDecoder.Limits.PROTOCOL_MAXIMUM, tensorMemory, name)
                .message();
    }

    @Override
    protected void closeTransport() {
        inbox.add(CLOSED);
        other.inbox.add(CLOSED);
    }

    @Override
    public String toString() {
        return name;
    }
}
