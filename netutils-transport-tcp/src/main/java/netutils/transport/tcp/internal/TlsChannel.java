package netutils.transport.tcp.internal;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.security.cert.CertPathBuilderException;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateExpiredException;
import java.security.cert.CertificateNotYetValidException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;
import javax.net.ssl.SSLEngineResult.HandshakeStatus;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSession;
import netutils.api.Message;
import netutils.api.wire.EncodedFrame;
import netutils.api.wire.FrameEncoder;
import netutils.api.wire.Serializers;
import netutils.transport.tcp.TlsOptions;

/**
 * TLS over a blocking {@link SocketChannel} with the JDK's {@link SSLEngine}: the byte-level reads and writes that
 * {@link ChannelSource} and {@link ChannelSink} make, encrypted, so that framing, budgets and timeouts work the same
 * over plaintext and TLS.
 *
 * <pre>
 *   writer (sink lock, then writeLock)      reader (the connection's reader lock)
 *   plaintext ── wrap ──► netOut ──► socket ──► netIn ── unwrap ──► caller's buffer (or appIn, if it is small)
 * </pre>
 *
 * <p><b>Buffers.</b> {@code netIn} holds ciphertext received but not yet decrypted, {@code appIn} plaintext
 * decrypted but not yet read (only when the caller's buffer could not hold a whole record), {@code netOut}
 * ciphertext being written. Records are decrypted straight into the caller's buffer when it has room for a whole
 * record (a tensor's memory, the source's read-ahead buffer), so large tensors take no extra copy.
 *
 * <p><b>Timed waits.</b> A timed read appends whatever ciphertext arrives to {@code netIn} and decrypts only whole
 * records, so a wait that times out mid-record loses nothing: the next read goes on from there. Decrypted bytes
 * already in {@code appIn}, or whole records already in {@code netIn}, are returned without waiting.
 *
 * <p><b>Threads.</b> One reader and one writer at a time, concurrently: {@link SSLEngine} allows {@code wrap} and
 * {@code unwrap} to run at once. When the reader must send handshake bytes after the handshake (a TLS 1.3 key
 * update, a TLS 1.2 close_notify reply), it takes the write lock. A writer never reads, so renegotiation (TLS 1.2
 * only; TLS 1.3 has none) is refused.
 *
 * <p><b>Failures</b> name the peer and the reason (expired, untrusted or misnamed certificate, a missing client
 * certificate, a plaintext peer), never only the engine's wording.
 */
final class TlsChannel {
    /**
     * Ciphertext moved per system call while a large frame streams. Buffers start at two records and grow to this
     * only for a large read or write, so that thousands of idle connections cost little.
     */
    static final int NET_BUFFER = 256 * 1024;
    private static final ByteBuffer EMPTY = ByteBuffer.allocate(0);
    /**
     * How long closing waits to send close_notify. Only a peer that stopped reading (a full send buffer) makes it
     * wait, and that peer would not read the close_notify anyway; closing may run on a shared timer thread.
     */
    private static final Duration CLOSE_NOTIFY_LIMIT = Duration.ofMillis(250);
    private static final int TLS_HANDSHAKE_RECORD = 0x16;
    private static final int TLS_ALERT_RECORD = 0x15;

    private final SocketChannel channel;
    private final Socket socket;
    private final InputStream timedInput;
    private final SSLEngine engine;
    private final boolean client;
    /** Who the peer is, for messages: "server 10.0.0.2:5000" or "client 10.0.0.7:40112". */
    private final String peer;
    private final List<String> protocols;
    private int appBufferSize; // reader side

    // Reader side: used by one reader at a time.
    private ByteBuffer netIn; // write mode: ciphertext not yet decrypted
    private ByteBuffer appIn; // read mode: plaintext not yet read
    private final byte[] timedChunk;
    private volatile boolean inboundClosed;

    // Writer side.
    private final ReentrantLock writeLock = new ReentrantLock();
    private ByteBuffer netOut; // guarded by writeLock
    private final ByteBuffer[] single = new ByteBuffer[1]; // guarded by writeLock

    private TlsChannel(SocketChannel channel, SSLEngine engine, boolean client, String peer, List<String> protocols)
            throws IOException {
        this.channel = channel;
        this.socket = channel.socket();
        this.timedInput = socket.getInputStream();
        this.engine = engine;
        this.client = client;
        this.peer = peer;
        this.protocols = protocols;
        SSLSession session = engine.getSession();
        int packet = session.getPacketBufferSize();
        this.appBufferSize = session.getApplicationBufferSize();
        // Heap buffers, not direct: the JDK's AES-GCM ran faster on heap arrays here (wrap 5.2 against 2.3 GB/s,
        // unwrap 3.1 against 2.4 GB/s of CPU time, JDK 25), which outweighs the copy the socket then makes.
        this.netIn = ByteBuffer.allocate(2 * packet);
        this.netOut = ByteBuffer.allocate(2 * packet);
        this.appIn = ByteBuffer.allocate(appBufferSize).flip();
        this.timedChunk = new byte[2 * packet]; // timed reads only start a frame: a record or two
    }

    /**
     * Makes the TLS session of a new connection: a client when {@code serverHost} is given (it verifies that name
     * and sends it as SNI, unless the options name another), else a server. Returns once the handshake is done.
     *
     * @throws SSLHandshakeException naming the peer and why (untrusted, expired or misnamed certificate, no client
     *     certificate, a peer that does not speak TLS)
     * @throws SocketTimeoutException if the handshake took longer than the options allow
     */
    static TlsChannel handshake(SocketChannel channel, TlsOptions options, String serverHost) throws IOException {
        boolean client = serverHost != null;
        java.net.InetSocketAddress remote = (java.net.InetSocketAddress) channel.getRemoteAddress();
        SSLEngine engine;
        SSLParameters parameters;
        String peer;
        if (client) {
            String name = options.serverName().orElse(serverHost);
            engine = options.context().createSSLEngine(name, remote.getPort());
            engine.setUseClientMode(true);
            parameters = engine.getSSLParameters();
            if (options.hostnameVerification()) {
                parameters.setEndpointIdentificationAlgorithm("HTTPS");
            }
            if (!isIpLiteral(name)) {
                parameters.setServerNames(List.of(new SNIHostName(name)));
            }
            peer = "server " + (name.equals(remote.getHostString()) ? "" : name + " at ") + addressText(remote);
        } else {
            engine = options.context().createSSLEngine();
            engine.setUseClientMode(false);
            parameters = engine.getSSLParameters();
            parameters.setNeedClientAuth(options.requireClientCertificate());
            peer = "client " + addressText(remote);
        }
        parameters.setProtocols(options.protocols().toArray(String[]::new));
        engine.setSSLParameters(parameters);
        TlsChannel tls = new TlsChannel(channel, engine, client, peer, options.protocols());
        tls.runHandshake(System.nanoTime() + options.handshakeTimeout().toNanos(), options.handshakeTimeout());
        return tls;
    }

    /** The session, once the handshake is done: protocol, cipher suite, the peer's certificates. */
    SSLSession session() {
        return engine.getSession();
    }

    // ---------------------------------------------------------------- handshake

    private void runHandshake(long deadline, Duration timeout) throws IOException {
        boolean checkedFirstBytes = false;
        try {
            engine.beginHandshake();
            HandshakeStatus status = engine.getHandshakeStatus();
            while (status != HandshakeStatus.NOT_HANDSHAKING && status != HandshakeStatus.FINISHED) {
                switch (status) {
                    case NEED_WRAP -> status = wrapHandshake();
                    case NEED_TASK -> status = runTasks();
                    case NEED_UNWRAP, NEED_UNWRAP_AGAIN -> {
                        if (!checkedFirstBytes && netIn.position() >= 2) {
                            checkFirstBytes();
                            checkedFirstBytes = true;
                        }
                        netIn.flip();
                        SSLEngineResult result;
                        try {
                            appIn.compact();
                            try {
                                result = engine.unwrap(netIn, appIn);
                            } finally {
                                appIn.flip();
                            }
                        } finally {
                            netIn.compact();
                        }
                        switch (result.getStatus()) {
                            case OK -> status = result.getHandshakeStatus();
                            case BUFFER_UNDERFLOW -> {
                                growNetIn();
                                readDuringHandshake(deadline, timeout, checkedFirstBytes);
                                status = engine.getHandshakeStatus();
                            }
                            case BUFFER_OVERFLOW -> {
                                growAppIn();
                                status = engine.getHandshakeStatus();
                            }
                            case CLOSED -> throw new Explained("TLS handshake with " + peer
                                    + " failed: the " + side(false) + " closed the TLS session during the handshake");
                        }
                    }
                    default -> throw new IllegalStateException("unexpected handshake status " + status);
                }
            }
        } catch (Explained e) {
            // Found before the engine saw the bytes (a plaintext peer, or one that hung up): already explained.
            throw new SSLHandshakeException(e.getMessage());
        } catch (SSLException e) {
            sendPendingAlert();
            throw describe(e, true);
        }
    }

    private HandshakeStatus wrapHandshake() throws IOException {
        writeLock.lock();
        try {
            return wrapHandshakeLocked();
        } finally {
            writeLock.unlock();
        }
    }

    /** Sends the handshake messages the engine has to send; the caller holds the write lock. */
    private HandshakeStatus wrapHandshakeLocked() throws IOException {
        while (true) {
            netOut.clear();
            SSLEngineResult result = engine.wrap(EMPTY, netOut);
            netOut.flip();
            writeFully(netOut);
            switch (result.getStatus()) {
                case OK -> {
                    if (result.getHandshakeStatus() != HandshakeStatus.NEED_WRAP) {
                        return result.getHandshakeStatus();
                    }
                }
                case BUFFER_OVERFLOW -> netOut = ByteBuffer.allocate(2 * netOut.capacity());
                case CLOSED -> {
                    // Our side gave up (a failed handshake after the alert went out): the read side says why.
                    return result.getHandshakeStatus() == HandshakeStatus.NEED_WRAP
                            ? HandshakeStatus.NEED_WRAP : HandshakeStatus.NEED_UNWRAP;
                }
                case BUFFER_UNDERFLOW -> throw new IllegalStateException("wrap reported an input underflow");
            }
        }
    }

    private HandshakeStatus runTasks() {
        Runnable task;
        while ((task = engine.getDelegatedTask()) != null) {
            task.run(); // certificate checks: on this connection's own thread, no pool to size
        }
        return engine.getHandshakeStatus();
    }

    private void readDuringHandshake(long deadline, Duration timeout, boolean checkedFirstBytes) throws IOException {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
            throw new SocketTimeoutException("TLS handshake with " + peer + " did not finish within " + timeout);
        }
        int count = timedRead(left);
        if (count == 0) {
            throw new SocketTimeoutException("TLS handshake with " + peer + " did not finish within " + timeout
                    + (client ? " (does the server speak TLS?)" : ""));
        }
        if (count < 0) {
            if (!checkedFirstBytes && netIn.position() == 1) {
                checkFirstBytes();
            }
            throw new Explained(client
                    ? "TLS handshake with " + peer + " failed: the server closed the connection during the handshake: "
                            + "it does not speak TLS, or it turned this client away"
                    : "TLS handshake with " + peer + " failed: the client closed the connection during the handshake");
        }
    }

    /**
     * Before any of the peer's bytes reach the engine: a TLS peer opens with a handshake (or alert) record,
     * 0x16/0x15 then major version 3; a netutils frame opens with "NU". Naming the mismatch beats the engine's
     * "Unsupported or unrecognized SSL message".
     */
    private void checkFirstBytes() throws IOException {
        int first = netIn.get(0) & 0xFF;
        int second = netIn.position() > 1 ? netIn.get(1) & 0xFF : -1;
        if ((first == TLS_HANDSHAKE_RECORD || first == TLS_ALERT_RECORD) && (second == 3 || second == -1)) {
            return;
        }
        boolean netutils = first == 'N' && second == 'U';
        if (client) {
            throw new Explained("the " + peer + " does not speak TLS: it answered the TLS handshake with "
                    + (netutils ? "a plaintext netutils frame" : "bytes " + firstBytes())
                    + "; connect without TLS, or turn TLS on at the server");
        }
        if (netutils) {
            tellPlaintextPeer();
            throw new Explained("the " + peer + " sent a plaintext netutils frame to this TLS server "
                    + "(told it TLS_REQUIRED); the client must connect with TcpOptions.builder().tls(...)");
        }
        throw new Explained("the " + peer + " does not speak TLS: it opened with bytes " + firstBytes());
    }

    private String firstBytes() {
        int count = Math.min(8, netIn.position());
        byte[] bytes = new byte[count];
        netIn.get(0, bytes);
        String text = new String(bytes, java.nio.charset.StandardCharsets.US_ASCII).replaceAll("[^ -~]", ".");
        return HexFormat.ofDelimiter(" ").withUpperCase().formatHex(bytes) + " (\"" + text + "\")";
    }

    /**
     * A plaintext netutils client gets a plaintext {@code error} frame it can read (its {@code request} then fails
     * at once with {@code TLS_REQUIRED}) instead of a connection reset it would have to guess about.
     */
    private void tellPlaintextPeer() {
        try {
            int serializerId = netIn.position() > 3 ? netIn.get(3) & 0xFF : -1;
            var serializer = Serializers.findById(serializerId).orElse(Serializers.defaultSerializer());
            EncodedFrame frame = FrameEncoder.encode(Message.error("TLS_REQUIRED", "the server at "
                    + addressText((java.net.InetSocketAddress) channel.getLocalAddress())
                    + " speaks TLS only and this client sent plaintext: connect with TcpOptions.builder().tls(...)"),
                    serializer, false);
            ByteBuffer out = ByteBuffer.allocate((int) frame.frameLength());
            frame.copyTo(MemorySegment.ofBuffer(out));
            writeFully(out);
            // Closing with the client's frame unread would reset the connection, and a reset may discard the error
            // frame before the client reads it: stop sending, then read until the client closes (briefly).
            channel.shutdownOutput();
            long deadline = System.nanoTime() + Duration.ofMillis(500).toNanos();
            netIn.clear();
            long left;
            while ((left = deadline - System.nanoTime()) > 0 && timedRead(left) > 0) {
                netIn.clear();
            }
        } catch (IOException | RuntimeException ignored) {
            // Best effort: the client is turned away either way.
        }
    }

    /** The alert the engine made for a failed handshake, so the peer learns why (its own error then says so). */
    private void sendPendingAlert() {
        if (!writeLock.tryLock()) {
            return;
        }
        try {
            engine.closeOutbound();
            for (int i = 0; i < 4 && !engine.isOutboundDone(); i++) {
                netOut.clear();
                engine.wrap(EMPTY, netOut);
                netOut.flip();
                writeFully(netOut);
            }
        } catch (IOException | RuntimeException ignored) {
            // The peer may be gone; the local error says what happened.
        } finally {
            writeLock.unlock();
        }
    }

    // ---------------------------------------------------------------- reading

    /** Whether decrypted bytes or ciphertext are buffered here (read by another thread: a hint, not a promise). */
    boolean hasBuffered() {
        return appIn.hasRemaining() || netIn.position() > 0;
    }

    /**
     * Reads decrypted bytes into {@code destination}, waiting at most {@code waitNanos} ({@link Long#MAX_VALUE}:
     * forever) for ciphertext to arrive.
     *
     * @return how many bytes, at least one; 0 if nothing arrived in time; -1 at the end of the stream
     */
    int read(ByteBuffer destination, long waitNanos) throws IOException {
        long deadline = waitNanos == Long.MAX_VALUE ? Long.MAX_VALUE : System.nanoTime() + waitNanos;
        if (destination.remaining() > ChannelSource.BUFFER_SIZE && netIn.capacity() < NET_BUFFER) {
            netIn = resized(netIn, NET_BUFFER); // a large tensor streams in: fewer, larger reads
        }
        try {
            while (true) {
                if (appIn.hasRemaining()) {
                    return drainAppIn(destination);
                }
                if (inboundClosed) {
                    return -1;
                }
                int produced = unwrapAvailable(destination);
                if (produced != 0) {
                    return produced;
                }
                int count;
                if (deadline == Long.MAX_VALUE) {
                    count = channel.read(netIn);
                } else {
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        return 0;
                    }
                    count = timedRead(left);
                    if (count == 0) {
                        return 0;
                    }
                }
                if (count < 0) {
                    // Without close_notify: between frames this is an end, inside one the framing reports TRUNCATED.
                    inboundClosed = true;
                    return -1;
                }
            }
        } catch (SSLException e) {
            throw describe(e, false);
        }
    }

    private int drainAppIn(ByteBuffer destination) {
        int count = Math.min(appIn.remaining(), destination.remaining());
        destination.put(destination.position(), appIn, appIn.position(), count);
        destination.position(destination.position() + count);
        appIn.position(appIn.position() + count);
        return count;
    }

    /**
     * Decrypts the whole records in {@code netIn}: straight into {@code destination} while it has room for a whole
     * record, else one record into {@code appIn}.
     *
     * @return bytes put in {@code destination}; -1 if the peer sent close_notify and nothing came before it
     */
    private int unwrapAvailable(ByteBuffer destination) throws IOException {
        if (netIn.position() == 0) {
            return 0;
        }
        int produced = 0;
        netIn.flip();
        try {
            while (netIn.hasRemaining()) {
                boolean direct = destination.remaining() >= appBufferSize;
                if (!direct && produced > 0) {
                    break;
                }
                SSLEngineResult result;
                if (direct) {
                    result = engine.unwrap(netIn, destination);
                } else {
                    appIn.clear();
                    try {
                        result = engine.unwrap(netIn, appIn);
                    } finally {
                        appIn.flip();
                    }
                }
                switch (result.getStatus()) {
                    case OK -> {
                        afterUnwrap(result.getHandshakeStatus());
                        if (direct) {
                            produced += result.bytesProduced();
                        } else if (appIn.hasRemaining()) {
                            return drainAppIn(destination);
                        }
                    }
                    case BUFFER_UNDERFLOW -> {
                        return produced; // a partial record: the rest is still on its way
                    }
                    case BUFFER_OVERFLOW -> {
                        if (!direct) {
                            growAppIn();
                        } else if (produced > 0) {
                            return produced;
                        } else {
                            appBufferSize = Math.max(appBufferSize, destination.remaining() + 1);
                        }
                    }
                    case CLOSED -> {
                        inboundClosed = true; // close_notify
                        afterUnwrap(result.getHandshakeStatus());
                        return produced > 0 ? produced : -1;
                    }
                }
            }
            return produced;
        } finally {
            netIn.compact();
            growNetIn();
        }
    }

    /** Handshake work that unwrapping asked for after the handshake: a delegated task, or bytes to send. */
    private void afterUnwrap(HandshakeStatus status) throws IOException {
        if (status == HandshakeStatus.NEED_TASK) {
            status = runTasks();
        }
        // A writer mid-frame holds the lock and may be waiting for the peer to read: never wait for it here (both
        // peers' readers waiting on their writers would deadlock). The writer's next wrap sends what is pending.
        if (status == HandshakeStatus.NEED_WRAP && writeLock.tryLock()) {
            try {
                wrapHandshakeLocked();
            } finally {
                writeLock.unlock();
            }
        }
    }

    private int timedRead(long nanos) throws IOException {
        int room = Math.min(timedChunk.length, netIn.remaining());
        long millis = Math.max(1, (nanos + 999_999) / 1_000_000);
        socket.setSoTimeout((int) Math.min(Integer.MAX_VALUE, millis));
        int count;
        try {
            count = timedInput.read(timedChunk, 0, room);
        } catch (SocketTimeoutException nothing) {
            return 0;
        }
        if (count > 0) {
            netIn.put(timedChunk, 0, count);
        }
        return count;
    }

    private void growNetIn() {
        int packet = engine.getSession().getPacketBufferSize();
        if (netIn.remaining() < packet) {
            netIn = resized(netIn, netIn.capacity() + packet);
        }
    }

    /** A buffer of {@code capacity} holding what {@code buffer} (in write mode) holds, in write mode. */
    private static ByteBuffer resized(ByteBuffer buffer, int capacity) {
        ByteBuffer bigger = ByteBuffer.allocate(capacity);
        buffer.flip();
        bigger.put(buffer);
        return bigger;
    }

    private void growAppIn() {
        int size = Math.max(engine.getSession().getApplicationBufferSize(), appIn.capacity() * 2);
        ByteBuffer bigger = ByteBuffer.allocate(size);
        bigger.put(appIn);
        appIn = bigger.flip();
        appBufferSize = Math.max(appBufferSize, size);
    }

    // ---------------------------------------------------------------- writing

    /** Encrypts and writes all of {@code source}. */
    long write(ByteBuffer source) throws IOException {
        writeLock.lock();
        try {
            single[0] = source;
            return write(single, 0, 1);
        } finally {
            single[0] = null;
            writeLock.unlock();
        }
    }

    /**
     * Encrypts and writes all of {@code sources[offset..offset+length)}, a whole {@link #NET_BUFFER} of records per
     * system call.
     *
     * @return the plaintext bytes written
     */
    long write(ByteBuffer[] sources, int offset, int length) throws IOException {
        writeLock.lock();
        try {
            long consumed = 0;
            int first = offset;
            int end = offset + length;
            boolean handshakePending = false; // a key update the engine wants to send
            if (netOut.capacity() < NET_BUFFER) {
                long total = 0;
                for (int i = offset; i < offset + length; i++) {
                    total += sources[i].remaining();
                }
                if (total > ChannelSource.BUFFER_SIZE) {
                    netOut = ByteBuffer.allocate(NET_BUFFER); // a large frame: fewer, larger writes
                }
            }
            while (true) {
                while (first < end && !sources[first].hasRemaining()) {
                    first++;
                }
                if (first == end && !handshakePending) {
                    return consumed;
                }
                int packet = engine.getSession().getPacketBufferSize();
                netOut.clear();
                boolean full = false;
                while ((first < end || handshakePending) && !full && netOut.remaining() >= packet) {
                    SSLEngineResult result = engine.wrap(sources, first, end - first, netOut);
                    consumed += result.bytesConsumed();
                    switch (result.getStatus()) {
                        case OK -> {
                        }
                        case BUFFER_OVERFLOW -> {
                            if (netOut.position() == 0) {
                                netOut = ByteBuffer.allocate(netOut.capacity() + packet);
                            } else {
                                full = true; // send what is there, then go on
                            }
                        }
                        case CLOSED -> throw new SSLException("TLS session with " + peer + " is closed");
                        case BUFFER_UNDERFLOW -> throw new IllegalStateException("wrap reported an input underflow");
                    }
                    HandshakeStatus status = result.getHandshakeStatus();
                    if (status == HandshakeStatus.NEED_TASK) {
                        status = runTasks();
                    }
                    if (status == HandshakeStatus.NEED_UNWRAP || status == HandshakeStatus.NEED_UNWRAP_AGAIN) {
                        throw new SSLException("TLS session with " + peer + ": the peer started a renegotiation, which "
                                + "netutils does not support (use TLS 1.3)");
                    }
                    handshakePending = status == HandshakeStatus.NEED_WRAP;
                    while (first < end && !sources[first].hasRemaining()) {
                        first++;
                    }
                }
                netOut.flip();
                writeFully(netOut);
            }
        } catch (SSLException e) {
            throw describe(e, false);
        } finally {
            writeLock.unlock();
        }
    }

    private void writeFully(ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }

    // ---------------------------------------------------------------- closing

    /**
     * Sends close_notify, best effort: skipped when a writer is mid-frame (the connection is failing anyway), and
     * bounded in time when the peer does not read.
     */
    void close() {
        if (!channel.isOpen() || !writeLock.tryLock()) {
            return;
        }
        Thread guard = null;
        try {
            engine.closeOutbound();
            netOut.clear();
            engine.wrap(EMPTY, netOut);
            netOut.flip();
            // A virtual thread bounds the write: not a shared timer's thread, which may be the one closing.
            guard = Thread.ofVirtual().name("netutils-tls-close").start(() -> {
                try {
                    Thread.sleep(CLOSE_NOTIFY_LIMIT);
                    channel.close();
                } catch (InterruptedException | IOException done) {
                    // Sent in time, or closed anyway.
                }
            });
            writeFully(netOut);
        } catch (IOException | RuntimeException ignored) {
            // The peer may be gone; it sees the end of the stream either way.
        } finally {
            if (guard != null) {
                guard.interrupt();
            }
            writeLock.unlock();
        }
    }

    // ---------------------------------------------------------------- errors

    private String side(boolean own) {
        return client == own ? "client" : "server";
    }

    /** The engine's exception, wrapped in one that names the peer and says in plain words what was wrong. */
    private SSLException describe(SSLException e, boolean handshake) {
        String text = (handshake ? "TLS handshake with " : "TLS session with ") + peer + " failed: " + reason(e);
        SSLException described = handshake ? new SSLHandshakeException(text) : new SSLException(text);
        described.initCause(e);
        return described;
    }

    private String reason(SSLException e) {
        String theirs = "the " + side(false) + "'s certificate";
        // The specific causes sit deepest (SSLHandshakeException > ValidatorException > CertPathValidatorException >
        // CertificateExpiredException): look through the whole chain for them before settling for a general one.
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof CertificateExpiredException) {
                return theirs + " has expired (" + t.getMessage() + ")";
            }
            if (t instanceof CertificateNotYetValidException) {
                return theirs + " is not valid yet (" + t.getMessage() + ")";
            }
            String message = String.valueOf(t.getMessage());
            if (message.startsWith("No subject alternative") || message.startsWith("No name matching")) {
                return theirs + " does not name the host this client connected to (hostname verification: "
                        + message + "); connect by a name in the certificate, or set TlsOptions.serverName";
            }
        }
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof CertPathBuilderException) {
                return theirs + " is not trusted: it is not signed by a certificate authority in this "
                        + side(true) + "'s trust store (" + t.getMessage() + ")";
            }
            if (t instanceof CertPathValidatorException invalid) {
                if (invalid.getReason() == CertPathValidatorException.BasicReason.EXPIRED) {
                    return theirs + " has expired (" + t.getMessage() + ")";
                }
                return theirs + " is not trusted: " + invalid.getReason() + " (" + t.getMessage() + ")";
            }
        }
        String message = String.valueOf(e.getMessage());
        String alertPrefix = "Received fatal alert: "; // JDK 25 writes "(alert) Received fatal alert: alert"
        int alertAt = message.indexOf(alertPrefix);
        if (alertAt >= 0) {
            String alert = message.substring(alertAt + alertPrefix.length()).trim();
            String other = side(false);
            return switch (alert) {
                // A client sends none when it has no certificate signed by one of the CAs the server names.
                case "certificate_required" -> "the server requires a client certificate signed by a certificate "
                        + "authority it trusts, and this client sent none (give TlsOptions a keyStore with one)";
                case "certificate_expired" -> "the " + other + " refused this " + side(true)
                        + "'s certificate: it has expired (alert certificate_expired)";
                case "bad_certificate", "certificate_unknown", "unknown_ca", "unsupported_certificate",
                        "access_denied" -> "the " + other + " refused this " + side(true) + "'s certificate (alert "
                        + alert + ")" + ownCertificateProblem().orElse(": it does not trust it, or the certificate "
                        + "does not fit this use");
                case "certificate_revoked" -> "the " + other + " says this " + side(true)
                        + "'s certificate is revoked";
                case "protocol_version" -> "no TLS version in common: this side allows " + protocols
                        + " (TLS 1.2 only with TlsOptions.builder().allowTls12())";
                case "handshake_failure", "insufficient_security" -> "the " + other
                        + " found no cipher suite, key or parameters in common (alert " + alert + ")";
                default -> "the " + other + " ended the session with alert " + alert;
            };
        }
        if (message.contains("Empty client certificate chain") || message.contains("Empty server certificate chain")) {
            return "the client sent no certificate, and this server requires one";
        }
        if (message.contains("No available authentication scheme") || message.contains("no cipher suites in common")) {
            return client ? "no cipher suite or key in common with the server (" + message + ")"
                    : "this server has no usable certificate and key: give TlsOptions a keyStore (" + message + ")";
        }
        if (message.contains("No appropriate protocol") || message.contains("protocol_version")) {
            return "no TLS version in common: this side allows " + protocols + " (" + message + ")";
        }
        if (message.contains("Unsupported or unrecognized SSL message")) {
            return "the " + side(false) + " does not speak TLS (" + message + ")";
        }
        return message;
    }

    /**
     * Why the peer may have refused this side's certificate, when that can be seen here: a JDK server answers an
     * expired client certificate with a bare certificate_unknown.
     */
    private java.util.Optional<String> ownCertificateProblem() {
        try {
            java.security.cert.Certificate[] own = engine.getSession().getLocalCertificates();
            if (own != null && own.length > 0 && own[0] instanceof java.security.cert.X509Certificate certificate) {
                try {
                    certificate.checkValidity();
                } catch (CertificateExpiredException e) {
                    return java.util.Optional.of(": this " + side(true) + "'s certificate has expired (NotAfter: "
                            + certificate.getNotAfter().toInstant() + ")");
                } catch (CertificateNotYetValidException e) {
                    return java.util.Optional.of(": this " + side(true) + "'s certificate is not valid yet "
                            + "(NotBefore: " + certificate.getNotBefore().toInstant() + ")");
                }
            }
        } catch (RuntimeException ignored) {
            // No session to look at: say what is known.
        }
        return java.util.Optional.empty();
    }

    private static String addressText(java.net.InetSocketAddress address) {
        return address.getHostString() + ":" + address.getPort();
    }

    private static boolean isIpLiteral(String host) {
        // SNI carries host names only (RFC 6066); an address is verified against the certificate's IP entries.
        return host.indexOf(':') >= 0 || host.chars().allMatch(c -> c == '.' || (c >= '0' && c <= '9'));
    }

    /** A handshake failure whose message already names the peer and the reason. */
    private static final class Explained extends SSLHandshakeException {
        private static final long serialVersionUID = 1L;

        Explained(String message) {
            super(message);
        }
    }
}
