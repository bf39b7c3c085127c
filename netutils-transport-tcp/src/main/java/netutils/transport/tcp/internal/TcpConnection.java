package netutils.transport.tcp.internal;

import java.io.IOException;
import java.lang.foreign.SegmentAllocator;
import java.net.SocketTimeoutException;
import java.net.StandardSocketOptions;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantLock;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.Message;
import netutils.api.ProtocolException;
import netutils.api.wire.Serializers;
import netutils.api.wire.EncodedFrame;
import netutils.api.wire.FrameDecoder;
import netutils.api.wire.FrameEncoder;
import netutils.api.wire.RemoteErrors;
import netutils.api.spi.Serializer;

/**
 * A {@link Connection} over a blocking {@link SocketChannel}, meant to run on virtual threads. Sends are
 * serialized by a lock and written with gathering writes straight from tensor memory; receives read through
 * {@link ChannelSource}. Timeouts come from the {@link IoWatchdog}.
 */
public final class TcpConnection implements Connection {
    private final SocketChannel channel;
    private final String peer;
    private final ChannelSource source;
    private final IoWatchdog watchdog;
    private final FrameDecoder.Limits limits;
    private final FrameDecoder.MemoryBudget budget;
    private final Serializer fixedSerializer;
    private final Serializer fallbackSerializer;
    private final boolean checksum;
    private final long idleMillis;
    private final ReentrantLock sendLock = new ReentrantLock();
    private final ReentrantLock receiveLock = new ReentrantLock();
    private final AtomicBoolean closed = new AtomicBoolean();
    /** Small frames are gathered here and sent with one write; guarded by sendLock. */
    private final java.nio.ByteBuffer sendScratch = java.nio.ByteBuffer.allocateDirect(64 * 1024);
    private volatile Runnable onClose = () -> { };
    private volatile Serializer lastReceivedSerializer;
    private volatile String stalled;

    /**
     * Wraps a connected channel.
     *
     * @param fixedSerializer the serializer of sent frames, or {@code null} to answer in the serializer of the
     *     last frame received (JSON before any)
     */
    public TcpConnection(SocketChannel channel, Serializer fixedSerializer, boolean checksum, Duration readTimeout,
            Duration writeTimeout, Duration idleTimeout, FrameDecoder.Limits limits, FrameDecoder.MemoryBudget budget)
            throws IOException {
        this.channel = channel;
        channel.configureBlocking(true);
        channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
        channel.setOption(StandardSocketOptions.SO_KEEPALIVE, true);
        this.peer = String.valueOf(channel.getRemoteAddress());
        this.watchdog = new IoWatchdog(readTimeout, writeTimeout, this::onStall);
        this.source = new ChannelSource(channel, watchdog);
        this.limits = limits;
        this.budget = budget;
        this.fixedSerializer = fixedSerializer;
        this.fallbackSerializer = fixedSerializer != null ? fixedSerializer : Serializers.defaultSerializer();
        this.checksum = checksum;
        this.idleMillis = idleTimeout.toMillis();
    }

    @Override
    public void send(Message message) throws IOException {
        Serializer serializer = fixedSerializer;
        if (serializer == null) {
            Serializer mirrored = lastReceivedSerializer;
            serializer = mirrored != null ? mirrored : fallbackSerializer;
        }
        EncodedFrame frame = FrameEncoder.encode(message, serializer, checksum); // refuses oversize before any I/O
        sendLock.lock();
        try {
            ensureOpen();
            watchdog.writeStarted();
            frame.writeTo(channel, sendScratch, watchdog::writeStarted);
        } catch (IOException e) {
            closeQuietly();
            throw translate(e, "sending " + message.type());
        } finally {
            watchdog.writeEnded();
            sendLock.unlock();
        }
    }

    @Override
    public Message receive() throws IOException {
        return receive(FrameDecoder.FRESH_MEMORY);
    }

    @Override
    public Message receive(SegmentAllocator tensorMemory) throws IOException {
        Objects.requireNonNull(tensorMemory, "tensorMemory");
        if (idleMillis > 0) {
            return receive(idleMillis, tensorMemory).orElseThrow(this::idleClose);
        }
        return receive(0, tensorMemory).orElseThrow();
    }

    @Override
    public Optional<Message> receive(Duration timeout) throws IOException {
        return receive(Math.max(1, timeout.toMillis()), FrameDecoder.FRESH_MEMORY);
    }

    private ConnectionClosedException idleClose() {
        closeQuietly();
        return new ConnectionClosedException("closed " + peer + ": no message for " + Duration.ofMillis(idleMillis)
                + " (idle timeout)");
    }

    private Optional<Message> receive(long waitMillis, SegmentAllocator tensorMemory) throws IOException {
        receiveLock.lock();
        try {
            ensureOpen();
            source.waitForNextFrame(waitMillis);
            FrameDecoder.Decoded decoded;
            try {
                decoded = FrameDecoder.read(source, limits, budget, tensorMemory);
            } catch (SocketTimeoutException nothingArrived) {
                return Optional.empty(); // only the wait for a first byte times out this way
            } catch (ProtocolException e) {
                if (e.kind() != ProtocolException.Kind.TRUNCATED) {
                    tellPeer(e);
                }
                closeQuietly();
                throw e;
            } catch (IOException e) {
                closeQuietly();
                throw translate(e, "receiving");
            }
            if (decoded == null) {
                closeQuietly();
                throw new ConnectionClosedException("peer " + peer + " closed the connection");
            }
            lastReceivedSerializer = decoded.serializer();
            try {
                return Optional.of(RemoteErrors.check(decoded.message()));
            } catch (IOException peerError) {
                closeQuietly();
                throw peerError;
            }
        } finally {
            receiveLock.unlock();
        }
    }

    /** Best effort: the peer learns why it is being disconnected. */
    private void tellPeer(ProtocolException problem) {
        try {
            send(Message.error(problem.kind().name(), problem.getMessage()));
        } catch (IOException | RuntimeException ignored) {
            // The peer may already be gone; the local exception says what happened.
        }
    }

    private IOException translate(IOException e, String during) {
        String stall = stalled;
        if (stall != null) {
            SocketTimeoutException timeout = new SocketTimeoutException(stall + " (" + during + ", peer " + peer + ")");
            timeout.initCause(e);
            return timeout;
        }
        if (e instanceof ClosedChannelException) {
            ConnectionClosedException closedHere = new ConnectionClosedException("connection to " + peer
                    + " is closed (" + during + ")");
            closedHere.initCause(e);
            return closedHere;
        }
        return e;
    }

    private void onStall(String operation, Duration timeout) {
        stalled = operation + " timed out: no progress for " + timeout;
        closeQuietly();
    }

    private void ensureOpen() throws ConnectionClosedException {
        if (closed.get()) {
            throw new ConnectionClosedException("connection to " + peer + " is closed");
        }
    }

    @Override
    public boolean isOpen() {
        return !closed.get();
    }

    @Override
    public String peer() {
        return peer;
    }

    /** Runs {@code action} once when the connection closes (a server forgets the connection then). */
    public void onClose(Runnable action) {
        this.onClose = action;
        if (closed.get()) {
            action.run();
        }
    }

    @Override
    public void close() throws IOException {
        if (closed.compareAndSet(false, true)) {
            watchdog.stop();
            try {
                channel.close();
            } finally {
                onClose.run();
            }
        }
    }

    private void closeQuietly() {
        try {
            close();
        } catch (IOException ignored) {
            // Closing is best effort once the connection has failed.
        }
    }

    @Override
    public String toString() {
        return "TcpConnection[" + peer + (isOpen() ? "" : ", closed") + "]";
    }
}
