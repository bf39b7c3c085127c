package netutils.transport.tcp;

import java.time.Duration;
import java.util.Objects;
import netutils.api.wire.Frames;
import netutils.api.wire.Serializers;
import netutils.api.spi.Serializer;

/**
 * Every timeout and limit of a TCP connection or server, with safe defaults. Immutable; made with
 * {@link #builder()}:
 *
 * <pre>{@code
 * TcpOptions options = TcpOptions.builder()
 *         .serializer("msgpack")
 *         .maxFrameBytes(Frames.MAX_BODY_LENGTH)   // accept the full 4 GiB frames
 *         .readTimeout(Duration.ofSeconds(10))
 *         .build();
 * }</pre>
 *
 * <table>
 * <caption>Defaults</caption>
 * <tr><th>option</th><th>default</th><th>meaning</th></tr>
 * <tr><td>connectTimeout</td><td>10 s</td><td>how long {@link TcpClient#connect} waits</td></tr>
 * <tr><td>readTimeout</td><td>30 s</td><td>how long a frame that has begun may stall between bytes</td></tr>
 * <tr><td>writeTimeout</td><td>30 s</td><td>how long a send may stall because the peer does not read</td></tr>
 * <tr><td>idleTimeout</td><td>none</td><td>how long {@code receive()} waits for a frame to begin before it
 *     closes the connection</td></tr>
 * <tr><td>maxFrameBytes</td><td>1 GiB</td><td>the largest frame body accepted; up to {@link Frames#MAX_BODY_LENGTH}</td></tr>
 * <tr><td>maxEnvelopeBytes</td><td>16 MiB</td><td>the largest envelope accepted</td></tr>
 * <tr><td>serializer</td><td>json for clients; the request's for servers</td><td>the envelope format of sent frames</td></tr>
 * <tr><td>checksum</td><td>off</td><td>append a CRC32C to sent frames (received ones are checked whenever flagged)</td></tr>
 * <tr><td>maxConnections</td><td>1024</td><td>servers: connections served at once; more are told SERVER_BUSY</td></tr>
 * <tr><td>connectionThreads</td><td>virtual threads</td><td>servers: the thread serving each connection</td></tr>
 * <tr><td>maxBytesInFlight</td><td>max(2 GiB, maxFrameBytes)</td><td>servers: frame bodies being received at
 *     once, over all connections; a frame waits for room before its memory is allocated</td></tr>
 * </table>
 */
public final class TcpOptions {
    private static final TcpOptions DEFAULTS = builder().build();

    private final Duration connectTimeout;
    private final Duration readTimeout;
    private final Duration writeTimeout;
    private final Duration idleTimeout;
    private final long maxFrameBytes;
    private final int maxEnvelopeBytes;
    private final Serializer serializer;
    private final boolean checksum;
    private final int maxConnections;
    private final long maxBytesInFlight;
    private final java.util.concurrent.ThreadFactory connectionThreads;

    private TcpOptions(Builder b) {
        this.connectionThreads = b.connectionThreads;
        this.connectTimeout = b.connectTimeout;
        this.readTimeout = b.readTimeout;
        this.writeTimeout = b.writeTimeout;
        this.idleTimeout = b.idleTimeout;
        this.maxFrameBytes = b.maxFrameBytes;
        this.maxEnvelopeBytes = b.maxEnvelopeBytes;
        this.serializer = b.serializer;
        this.checksum = b.checksum;
        this.maxConnections = b.maxConnections;
        this.maxBytesInFlight = b.maxBytesInFlight > 0 ? b.maxBytesInFlight : Math.max(2L << 30, b.maxFrameBytes);
    }

    /**
     * The defaults.
     *
     * @return the default options
     */
    public static TcpOptions defaults() {
        return DEFAULTS;
    }

    /**
     * A builder starting from the defaults.
     *
     * @return a new builder
     */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * A builder starting from these options.
     *
     * @return a new builder
     */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.connectTimeout = connectTimeout;
        b.readTimeout = readTimeout;
        b.writeTimeout = writeTimeout;
        b.idleTimeout = idleTimeout;
        b.maxFrameBytes = maxFrameBytes;
        b.maxEnvelopeBytes = maxEnvelopeBytes;
        b.serializer = serializer;
        b.checksum = checksum;
        b.maxConnections = maxConnections;
        b.maxBytesInFlight = maxBytesInFlight;
        b.connectionThreads = connectionThreads;
        return b;
    }

    /**
     * How long a connect may take.
     *
     * @return the connect timeout
     */
    public Duration connectTimeout() {
        return connectTimeout;
    }

    /**
     * How long a frame that has begun may stall; {@link Duration#ZERO} for no limit.
     *
     * @return the read timeout
     */
    public Duration readTimeout() {
        return readTimeout;
    }

    /**
     * How long a send may stall; {@link Duration#ZERO} for no limit.
     *
     * @return the write timeout
     */
    public Duration writeTimeout() {
        return writeTimeout;
    }

    /**
     * How long {@code receive()} waits for a frame before closing; {@link Duration#ZERO} waits forever.
     *
     * @return the idle timeout
     */
    public Duration idleTimeout() {
        return idleTimeout;
    }

    /**
     * The largest frame body accepted.
     *
     * @return the limit in bytes
     */
    public long maxFrameBytes() {
        return maxFrameBytes;
    }

    /**
     * The largest envelope accepted.
     *
     * @return the limit in bytes
     */
    public int maxEnvelopeBytes() {
        return maxEnvelopeBytes;
    }

    /**
     * The serializer of sent frames; {@code null} means json for clients, the request's for servers.
     *
     * @return the serializer, or {@code null}
     */
    public Serializer serializer() {
        return serializer;
    }

    /**
     * Whether sent frames carry a CRC32C.
     *
     * @return whether a checksum is sent
     */
    public boolean checksum() {
        return checksum;
    }

    /**
     * Servers: connections served at once.
     *
     * @return the connection limit
     */
    public int maxConnections() {
        return maxConnections;
    }

    /**
     * Servers: bytes of frame bodies being received at once, over all connections.
     *
     * @return the limit in bytes
     */
    public long maxBytesInFlight() {
        return maxBytesInFlight;
    }

    /**
     * Servers: makes the thread that serves each connection.
     *
     * @return the thread factory
     */
    public java.util.concurrent.ThreadFactory connectionThreads() {
        return connectionThreads;
    }

    @Override
    public String toString() {
        return "TcpOptions[connectTimeout=" + connectTimeout + ", readTimeout=" + readTimeout + ", writeTimeout="
                + writeTimeout + ", idleTimeout=" + idleTimeout + ", maxFrameBytes=" + maxFrameBytes
                + ", maxEnvelopeBytes=" + maxEnvelopeBytes + ", serializer="
                + (serializer == null ? "default" : serializer.name()) + ", checksum=" + checksum
                + ", maxConnections=" + maxConnections + ", maxBytesInFlight=" + maxBytesInFlight + "]";
    }

    /** Builds {@link TcpOptions}. */
    public static final class Builder {
        private Duration connectTimeout = Duration.ofSeconds(10);
        private Duration readTimeout = Duration.ofSeconds(30);
        private Duration writeTimeout = Duration.ofSeconds(30);
        private Duration idleTimeout = Duration.ZERO;
        private long maxFrameBytes = 1L << 30;
        private int maxEnvelopeBytes = 16 << 20;
        private Serializer serializer;
        private boolean checksum;
        private int maxConnections = 1024;
        private long maxBytesInFlight;
        private java.util.concurrent.ThreadFactory connectionThreads =
                Thread.ofVirtual().name("netutils-connection-", 0).factory();

        private Builder() {
        }

        /**
         * How long a connect may take (positive).
         *
         * @param timeout the timeout
         * @return this builder
         */
        public Builder connectTimeout(Duration timeout) {
            this.connectTimeout = positive(timeout, "connectTimeout");
            return this;
        }

        /**
         * How long a frame that has begun may stall; zero for no limit.
         *
         * @param timeout the timeout, or {@link Duration#ZERO}
         * @return this builder
         */
        public Builder readTimeout(Duration timeout) {
            this.readTimeout = nonNegative(timeout, "readTimeout");
            return this;
        }

        /**
         * How long a send may stall; zero for no limit.
         *
         * @param timeout the timeout, or {@link Duration#ZERO}
         * @return this builder
         */
        public Builder writeTimeout(Duration timeout) {
            this.writeTimeout = nonNegative(timeout, "writeTimeout");
            return this;
        }

        /**
         * How long {@code receive()} waits for a frame to begin before closing the connection; zero waits forever.
         *
         * @param timeout the timeout, or {@link Duration#ZERO}
         * @return this builder
         */
        public Builder idleTimeout(Duration timeout) {
            this.idleTimeout = nonNegative(timeout, "idleTimeout");
            return this;
        }

        /**
         * The largest frame body accepted: 0 to {@link Frames#MAX_BODY_LENGTH}.
         *
         * @param bytes the limit
         * @return this builder
         */
        public Builder maxFrameBytes(long bytes) {
            if (bytes < 0 || bytes > Frames.MAX_BODY_LENGTH) {
                throw new IllegalArgumentException("maxFrameBytes must be 0.." + Frames.MAX_BODY_LENGTH + ", got " + bytes);
            }
            this.maxFrameBytes = bytes;
            return this;
        }

        /**
         * The largest envelope accepted, in bytes (positive).
         *
         * @param bytes the limit
         * @return this builder
         */
        public Builder maxEnvelopeBytes(int bytes) {
            if (bytes <= 0) {
                throw new IllegalArgumentException("maxEnvelopeBytes must be positive, got " + bytes);
            }
            this.maxEnvelopeBytes = bytes;
            return this;
        }

        /**
         * The serializer of sent frames.
         *
         * @param serializer the serializer
         * @return this builder
         */
        public Builder serializer(Serializer serializer) {
            this.serializer = Objects.requireNonNull(serializer, "serializer");
            return this;
        }

        /**
         * The serializer of sent frames, by name ({@code json}, {@code msgpack}, {@code kryo} or a user's).
         *
         * @param name the serializer's name
         * @return this builder
         * @throws IllegalArgumentException saying which module to add when it is not installed
         */
        public Builder serializer(String name) {
            return serializer(Serializers.byName(name));
        }

        /**
         * Whether sent frames carry a CRC32C of the body.
         *
         * @param checksum whether to append a CRC32C to each sent frame
         * @return this builder
         */
        public Builder checksum(boolean checksum) {
            this.checksum = checksum;
            return this;
        }

        /**
         * Servers: connections served at once (positive).
         *
         * @param connections the limit
         * @return this builder
         */
        public Builder maxConnections(int connections) {
            if (connections <= 0) {
                throw new IllegalArgumentException("maxConnections must be positive, got " + connections);
            }
            this.maxConnections = connections;
            return this;
        }

        /**
         * Servers: bytes of frame bodies being received at once; at least {@code maxFrameBytes}.
         *
         * @param bytes the limit
         * @return this builder
         */
        public Builder maxBytesInFlight(long bytes) {
            if (bytes <= 0) {
                throw new IllegalArgumentException("maxBytesInFlight must be positive, got " + bytes);
            }
            this.maxBytesInFlight = bytes;
            return this;
        }

        /**
         * Servers: makes the thread that serves each connection. The default, virtual threads, costs little per
         * connection and scales to thousands. A platform thread per connection wakes sooner when bytes arrive:
         * for a few latency-bound connections, {@code Thread.ofPlatform().daemon(true).factory()} cut the 8 KiB
         * round trip severalfold on a 2-core VM (see the README's benchmark).
         *
         * @param factory makes one thread per connection
         * @return this builder
         */
        public Builder connectionThreads(java.util.concurrent.ThreadFactory factory) {
            this.connectionThreads = Objects.requireNonNull(factory, "factory");
            return this;
        }

        /**
         * The options.
         *
         * @return the options
         * @throws IllegalArgumentException if maxBytesInFlight was set below maxFrameBytes
         */
        public TcpOptions build() {
            if (maxBytesInFlight > 0 && maxBytesInFlight < maxFrameBytes) {
                throw new IllegalArgumentException("maxBytesInFlight (" + maxBytesInFlight
                        + ") must be at least maxFrameBytes (" + maxFrameBytes + "), or one frame could never be received");
            }
            return new TcpOptions(this);
        }

        private static Duration positive(Duration value, String name) {
            if (value.isNegative() || value.isZero()) {
                throw new IllegalArgumentException(name + " must be positive, got " + value);
            }
            return value;
        }

        private static Duration nonNegative(Duration value, String name) {
            if (value.isNegative()) {
                throw new IllegalArgumentException(name + " must not be negative, got " + value);
            }
            return value;
        }
    }
}
