package netutils.api.testing;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import netutils.api.wire.FrameDecoder;
import netutils.api.wire.FrameEncoder;
import netutils.api.wire.RemoteErrors;
import netutils.api.wire.SegmentSource;
import netutils.api.spi.Serializer;
import netutils.api.Connection;
import netutils.api.ConnectionHandler;
import netutils.api.ConnectionClosedException;
import netutils.api.Message;
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
public final class InMemoryConnection implements Connection {
    private static final Object CLOSED = new Object();

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
    private InMemoryConnection peer;
    private volatile boolean open = true;

    private InMemoryConnection(String name, Serializer serializer) {
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
        InMemoryConnection client = new InMemoryConnection("in-memory client", serializer);
        InMemoryConnection server = new InMemoryConnection("in-memory server", serializer);
        client.peer = server;
        server.peer = client;
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
    public void send(Message message) throws IOException {
        MemorySegment frame = FrameEncoder.encode(message, serializer, false).toSegment();
        if (!open) {
            throw new ConnectionClosedException(name + " is closed");
        }
        if (peer.open) {
            peer.inbox.add(frame);
        }
    }

    @Override
    public Message receive() throws IOException {
        return receive(FrameDecoder.FRESH_MEMORY);
    }

    @Override
    public Message receive(java.lang.foreign.SegmentAllocator tensorMemory) throws IOException {
        try {
            return decode(inbox.take(), tensorMemory);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while receiving");
        }
    }

    @Override
    public Optional<Message> receive(Duration timeout) throws IOException {
        try {
            Object next = inbox.poll(timeout.toNanos(), TimeUnit.NANOSECONDS);
            return next == null ? Optional.empty() : Optional.of(decode(next, FrameDecoder.FRESH_MEMORY));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while receiving");
        }
    }

    private Message decode(Object next, java.lang.foreign.SegmentAllocator tensorMemory) throws IOException {
        if (next == CLOSED) {
            inbox.add(CLOSED); // every later receive sees it too
            throw new ConnectionClosedException(name + ": connection closed");
        }
        FrameDecoder.Decoded decoded = FrameDecoder.read(new SegmentSource((MemorySegment) next),
                FrameDecoder.Limits.PROTOCOL_MAXIMUM, FrameDecoder.MemoryBudget.UNLIMITED, tensorMemory);
        return RemoteErrors.check(decoded.message());
    }

    @Override
    public boolean isOpen() {
        return open;
    }

    @Override
    public String peer() {
        return peer.name;
    }

    @Override
    public void close() {
        if (open) {
            open = false;
            inbox.add(CLOSED);
            peer.inbox.add(CLOSED);
        }
    }

    @Override
    public String toString() {
        return name;
    }
}
