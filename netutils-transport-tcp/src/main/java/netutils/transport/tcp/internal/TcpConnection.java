package netutils.transport.tcp.internal;

import java.io.IOException;
import java.lang.foreign.SegmentAllocator;
import java.net.SocketTimeoutException;
import java.net.StandardSocketOptions;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import netutils.api.ConnectionClosedException;
import netutils.api.Message;
import netutils.api.ProtocolException;
import netutils.api.spi.Serializer;
import netutils.api.wire.AbstractConnection;
import netutils.api.wire.FrameDecoder;
import netutils.api.wire.FrameEncoder;
import netutils.api.wire.FrameHeader;
import netutils.api.wire.Serializers;
import netutils.transport.tcp.TcpOptions;

/**
 * A connection over a {@link SocketChannel} (blocking on a server, non-blocking on a client: see
 * {@link Readiness}): {@link ChannelSink} writes, {@link ChannelSource} reads (await the next frame, read its
 * header, reserve its body in the server's budget, read the body), and
 * {@link AbstractConnection} adds calls, keepalive and routing. Timeouts inside a frame come from the
 * {@link IoWatchdog}; the wait between frames is the caller's.
 */
public final class TcpConnection extends AbstractConnection {
    private final SocketChannel channel;
    private final ChannelSource source;
    private final ChannelSink sink;
    private final IoWatchdog watchdog;
    private final FrameDecoder.Limits limits;
    private final ByteBudget budget;
    private final Serializer fixedSerializer;
    private final boolean checksum;
    private final long idleNanos;
    private volatile Runnable onClose = () -> { };
    private volatile Serializer lastReceivedSerializer;
    private volatile String stalled;
    private volatile long lastFrameNanos = System.nanoTime();
    private volatile boolean frameInProgress;
    /** Whether the frame being read has its whole header (its body is being read); written by the reader. */
    private volatile boolean headerArrived;
    /**
     * The reader's wait for a frame: a positive token (one per wait) while it waits, {@link #NOT_WAITING},
     * {@link #ENDING} while an ender looks whether anything arrived, {@link #ENDED} once it ended the wait.
     */
    private final AtomicLong waitState = new AtomicLong();
    private static final long NOT_WAITING = 0;
    private static final long ENDING = -1;
    private static final long ENDED = -2;
    /** The reader's next wait token; only the reader uses it. */
    private long nextWaitToken = 1;
    /** Why the wait was ended (idle timeout, server shutdown); set before {@link #ENDED}. */
    private volatile ConnectionClosedException endBetweenFrames;
    private final BooleanSupplier draining;
    private final TlsChannel tls; // null: plaintext

    private TcpConnection(SocketChannel channel, TlsChannel tls, String peer, TcpOptions options, ByteBudget budget,
            BooleanSupplier draining) throws IOException {
        super(peer, options.requestTimeout(), options.keepaliveInterval(), options.keepaliveTimeout());
        this.channel = channel;
        this.tls = tls;
        this.watchdog = new IoWatchdog(options.readTimeout(), options.writeTimeout(), options.minTransferRate(),
                options.readTimeout().isZero() ? Duration.ofSeconds(10) : options.readTimeout(), this::onStall);
        this.source = new ChannelSource(channel, tls, watchdog);
        this.sink = new ChannelSink(channel, tls, watchdog);
        this.limits = new FrameDecoder.Limits(options.maxFrameBytes(), options.maxEnvelopeBytes());
        this.budget = budget;
        this.fixedSerializer = options.serializer().map(Serializers::byName).orElse(null);
        this.checksum = options.checksum();
        this.idleNanos = options.idleTimeout().toNanos();
        this.draining = draining;
    }

    /** A client's connection; with TLS, the server's certificate must name the address it is connected to. */
    public static TcpConnection open(SocketChannel channel, TcpOptions options) throws IOException {
        var remote = (java.net.InetSocketAddress) channel.getRemoteAddress();
        return openClient(channel, options, remote.getHostString());
    }

    /**
     * A server's connection (with TLS, the server side of the handshake).
     *
     * @param budget the server's bytes-in-flight budget, or {@code null} (clients)
     * @param draining true once the server shuts down: the connection then ends when no frame has begun (the
     *     server calls {@link #endIfWaiting} to end the waits already under way); {@code null} for clients
     */
    public static TcpConnection open(SocketChannel channel, TcpOptions options, ByteBudget budget,
            BooleanSupplier draining) throws IOException {
        channel.configureBlocking(true);
        channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
        channel.setOption(StandardSocketOptions.SO_KEEPALIVE, true);
        TlsChannel tls = options.tls().isPresent() ? TlsChannel.handshake(channel, options.tls().get(), null) : null;
        return new TcpConnection(channel, tls, String.valueOf(channel.getRemoteAddress()), options, budget, draining);
    }

    @Override
    protected void writeMessage(Message message) throws IOException {
        Serializer serializer = fixedSerializer;
        if (serializer == null) {
            Serializer mirrored = lastReceivedSerializer;
            serializer = mirrored != null ? mirrored : Serializers.defaultSerializer();
        }
        var frame = FrameEncoder.encode(message, serializer, checksum); // refuses oversize before any I/O
        try {
            sink.write(frame);
        } catch (IOException e) {
            throw translate(e, "sending " + message.type());
        }
    }

    @Override
    protected Message readMessage(long waitNanos, SegmentAllocator tensorMemory) throws IOException {
        try {
            switch (awaitFrame(waitNanos)) {
                case NOTHING -> {
                    return null;
                }
                case END -> throw new ConnectionClosedException("peer " + peer() + " closed the connection");
                case FRAME -> {
                }
            }
            frameInProgress = true;
            // The frame begins at its first byte, not after its header: a peer trickling the 12 header bytes one
            // at a time, each within the read timeout, held its connection (and a server's slot) for minutes
            // before the minimum rate applied.
            watchdog.frameStarted();
            try {
                FrameHeader header = FrameDecoder.readHeader(source, limits);
                if (header == null) {
                    throw new ConnectionClosedException("peer " + peer() + " closed the connection");
                }
                headerArrived = true;
                return readBody(header, tensorMemory);
            } finally {
                watchdog.frameEnded();
                headerArrived = false;
                frameInProgress = false;
                lastFrameNanos = System.nanoTime();
            }
        } catch (ProtocolException e) {
            if (e.kind() != ProtocolException.Kind.TRUNCATED) {
                tellPeer(e.kind().name(), e.getMessage());
            }
            throw e;
        } catch (ByteBudget.BudgetExceededException e) {
            tellPeer("SERVER_BUSY", e.getMessage());
            throw e;
        } catch (ConnectionClosedException e) {
            throw e;
        } catch (IOException e) {
            throw translate(e, "receiving");
        }
    }

    /**
     * Waits for the next frame. A wait without a time limit is one plain blocking read, as fast as a socket
     * gets: the idle timeout and a server's shutdown do not poll, they end such a wait from outside
     * ({@link #endIfWaiting}) by shutting the socket's input while nothing of a next frame has arrived.
     *
     * <p>The wait and whoever ends it agree through {@link #waitState}: the reader claims the wait back
     * ({@code token -> NOT_WAITING}) as soon as its read returns; an ender claims it first
     * ({@code token -> ENDING}), looks whether anything arrived, and either gives it back or ends it
     * ({@code ENDED}, then shuts the input). So a wait is either read or ended, never both: bytes that arrive in the
     * microseconds of an ending are not read (the peer sees the connection close, as after any close), and a frame
     * that was being read is never cut into a misleading "truncated frame" error.
     */
    private ChannelSource.Arrival awaitFrame(long waitNanos) throws IOException {
        if (source.hasBuffered()) {
            return ChannelSource.Arrival.FRAME;
        }
        long token = nextWaitToken++;
        waitState.set(token);
        boolean claimed = false;
        try {
            // Both sides write before they read the other's state: either this reader sees that the server is
            // shutting down, or the server sees this reader waiting and ends the wait.
            if (serverShuttingDown() && source.nothingArrived()) {
                throw shuttingDown();
            }
            ChannelSource.Arrival arrival = source.awaitFrame(waitNanos);
            claimWait(token);
            claimed = true;
            return arrival;
        } finally {
            if (!claimed) {
                leaveWait(token); // the read failed: no stale token may stay behind for an ender to act on
            }
        }
    }

    /** Takes the wait back after its read returned; throws why it ended if an ender took it first. */
    private void claimWait(long token) throws ConnectionClosedException {
        for (int spins = 0; !waitState.compareAndSet(token, NOT_WAITING); spins++) {
            if (waitState.get() == ENDED) {
                throw endBetweenFrames;
            }
            pause(spins); // ENDING: the ender decides within microseconds
        }
    }

    /** Ends a wait whose read failed, after an ender that holds it has decided. */
    private void leaveWait(long token) {
        for (int spins = 0; waitState.get() == ENDING; spins++) {
            pause(spins);
        }
        waitState.compareAndSet(token, NOT_WAITING);
    }

    private static void pause(int spins) {
        if (spins < 100) {
            Thread.onSpinWait();
        } else {
            Thread.yield(); // the ender may be off the CPU (two cores, or a virtual thread's carrier)
        }
    }

    /**
     * Ends the connection if its reader is waiting for a frame of which nothing has arrived: a server shutting
     * down calls this for every connection. A reader that is not waiting (a handler at work) finds the server
     * shutting down before its next wait, after answering what has arrived.
     */
    public void endIfWaiting() {
        long token = waitState.get();
        if (token > 0 && serverShuttingDown()) {
            endWait(token, shuttingDown());
        }
    }

    private void endWait(long token, ConnectionClosedException why) {
        if (!waitState.compareAndSet(token, ENDING)) {
            return; // the reader got something, or is waiting anew
        }
        boolean end = false;
        try {
            try {
                end = source.nothingArrived();
            } catch (IOException | RuntimeException e) {
                end = true; // closed already
            }
        } finally {
            // Never leave the reader spinning on ENDING, whatever happened above.
            if (end) {
                endBetweenFrames = why;
                waitState.set(ENDED);
            } else {
                waitState.set(token); // bytes are there: the reader reads and answers them
            }
        }
        if (end) {
            try {
                channel.shutdownInput(); // the waiting read returns at once, as at the end of the stream
            } catch (IOException | RuntimeException e) {
                // Already closed: the reader has ended anyway.
            }
        }
    }

    @Override
    protected void onTimerTick(long now) {
        long token = waitState.get();
        if (idleNanos > 0 && token > 0 && now - lastFrameNanos >= idleNanos) {
            endWait(token, new ConnectionClosedException("closed " + peer() + ": no message for "
                    + Duration.ofNanos(idleNanos) + " (idle timeout)"));
        }
    }

    private boolean serverShuttingDown() {
        return draining != null && draining.getAsBoolean();
    }

    private ConnectionClosedException shuttingDown() {
        return new ConnectionClosedException("server is shutting down: closed " + peer()
                + " after answering every message that had arrived");
    }

    /**
     * Reads a body, its bytes counted against the minimum transfer rate and, on a server, against the budget of
     * bytes in flight as they arrive (not as the header claims them: a peer that claims a gigabyte and sends
     * nothing holds nothing). Frames of up to one I/O call need no budget: they are bounded by the number of
     * connections.
     */
    private Message readBody(FrameHeader header, SegmentAllocator tensorMemory) throws IOException {
        BudgetedSource budgeted = budget != null && header.bodyLength() > ChannelSource.IO_CALL
                ? new BudgetedSource(source, budget, header.bodyLength()) : null;
        try {
            FrameDecoder.Decoded decoded = FrameDecoder.readBody(budgeted != null ? budgeted : source, header, limits,
                    tensorMemory, peer());
            lastReceivedSerializer = decoded.serializer();
            return decoded.message();
        } finally {
            if (budgeted != null) {
                budgeted.releaseAll();
            }
        }
    }

    @Override
    protected boolean helpersFollowOwner() {
        return channel.isBlocking(); // a server's connection (or TLS): keep its platform-thread reads at one call
    }

    @Override
    protected boolean transferring() {
        return frameInProgress || sink.isWriting();
    }

    /**
     * How long since the last frame ended, or 0 while a frame's body is being read: what an evicting server asks.
     * A frame whose 12-byte header has not all arrived does not count as work in progress: a full server could
     * otherwise be held by peers that each send a byte and stop, none of them evictable.
     */
    public long idleNanos() {
        return headerArrived ? 0 : System.nanoTime() - lastFrameNanos;
    }

    /** Best effort: the peer learns why it is being disconnected. */
    private void tellPeer(String code, String detail) {
        try {
            send(Message.error(code, detail));
        } catch (IOException | RuntimeException ignored) {
            // The peer may already be gone; the local exception says what happened.
        }
    }

    private IOException translate(IOException e, String during) {
        String stall = stalled;
        if (stall != null) {
            SocketTimeoutException timeout = new SocketTimeoutException(stall + " (" + during + ", peer " + peer() + ")");
            timeout.initCause(e);
            return timeout;
        }
        if (e instanceof java.nio.channels.ClosedByInterruptException) {
            java.io.InterruptedIOException interrupted = new java.io.InterruptedIOException("interrupted while "
                    + during + " on the connection to " + peer() + ", which is closed (as an interrupted socket is)");
            interrupted.initCause(e);
            return interrupted;
        }
        if (e instanceof ClosedChannelException) {
            // Closed while this read or write waited: say why when this side knows (a keepalive without answer).
            IOException why = failureCause();
            ConnectionClosedException closedHere = new ConnectionClosedException("connection to " + peer()
                    + " is closed (" + during + ")" + (why != null ? ": " + why.getMessage() : ""));
            closedHere.initCause(e);
            return closedHere;
        }
        String text = String.valueOf(e.getMessage());
        if (text.contains("Broken pipe") || text.contains("Connection reset")) {
            ConnectionClosedException gone = new ConnectionClosedException("peer " + peer() + " closed the connection ("
                    + during + ": " + text + ")");
            gone.initCause(e);
            return gone;
        }
        return e;
    }

    private void onStall(String why) {
        stalled = why;
        SocketTimeoutException timeout = new SocketTimeoutException(why + " (peer " + peer() + ")");
        if (why.startsWith("write")) {
            fail(timeout); // the peer does not read: telling it would block too
            return;
        }
        // Off the shared watchdog thread: the peer learns why, then the connection ends.
        Thread.ofVirtual().name("netutils-stall-" + peer()).start(() -> {
            tellPeer("TIMEOUT", why);
            fail(timeout);
        });
    }

    /** Runs {@code action} once when the connection closes (a server forgets the connection then). */
    public void onClose(Runnable action) {
        this.onClose = action;
        if (!isOpen()) {
            action.run();
        }
    }

    @Override
    protected void closeTransport() throws IOException {
        if (tls != null) {
            tls.close(); // close_notify, best effort and bounded in time
        }
        watchdog.stop();
        try {
            channel.close();
        } finally {
            try {
                source.close(); // wakes a reader or writer waiting on the (non-blocking) channel
                sink.close();
            } finally {
                onClose.run();
            }
        }
    }

    @Override
    public String toString() {
        return "TcpConnection[" + peer() + (isOpen() ? "" : ", closed") + "]";
    }

    /**
     * A client's connection to {@code serverHost}: with TLS, the handshake verifies the server's certificate against
     * that name (or the options' {@code serverName}) and sends it as SNI.
     */
    public static TcpConnection openClient(SocketChannel channel, TcpOptions options, String serverHost)
            throws IOException {
        channel.configureBlocking(true);
        channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
        channel.setOption(StandardSocketOptions.SO_KEEPALIVE, true);
        TlsChannel tls = options.tls().isPresent()
                ? TlsChannel.handshake(channel, options.tls().get(), java.util.Objects.requireNonNull(serverHost))
                : null;
        if (tls == null) {
            // Every call waits for its reply with a deadline: a non-blocking channel waits on a selector with one
            // system call, where a blocking one's timed read costs seven (see Readiness). TLS reads block.
            channel.configureBlocking(false);
        }
        return new TcpConnection(channel, tls, String.valueOf(channel.getRemoteAddress()), options, null, null);
    }

    /** The TLS session (protocol, cipher suite, the peer's certificates), or empty for a plaintext connection. */
    public java.util.Optional<javax.net.ssl.SSLSession> tlsSession() {
        return tls == null ? java.util.Optional.empty() : java.util.Optional.of(tls.session());
    }
}
