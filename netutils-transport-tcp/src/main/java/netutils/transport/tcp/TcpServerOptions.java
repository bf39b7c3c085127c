package netutils.transport.tcp;

import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.ThreadFactory;

/**
 * What a {@link TcpServer} adds to the per-connection {@link TcpOptions}: how many connections it serves, how
 * much memory their frames may claim, which threads serve them, and how long {@link TcpServer#close()} lets
 * messages in flight finish. A value; made with {@link #builder()}.
 *
 * <table>
 * <caption>Defaults</caption>
 * <tr><th>option</th><th>default</th><th>meaning</th></tr>
 * <tr><td>connection</td><td>{@link TcpOptions#defaults()}</td><td>the options of each connection</td></tr>
 * <tr><td>maxConnections</td><td>1024</td><td>connections served at once; when full, the connection idle the
 *     longest (at least a second) makes room for a new one, and without one the new one is told SERVER_BUSY</td></tr>
 * <tr><td>maxConnectionsPerAddress</td><td>256</td><td>connections from one remote address at once; more are
 *     told SERVER_BUSY</td></tr>
 * <tr><td>idleTimeout</td><td>5 min</td><td>a connection that sends no frame for this long is closed (zero:
 *     never); it applies to server connections instead of {@link TcpOptions#idleTimeout()}</td></tr>
 * <tr><td>maxBytesInFlight</td><td>max(2 GiB, maxFrameBytes)</td><td>bytes of frames over 1 MiB being received
 *     at once, over all connections, counted as they arrive; a frame that cannot get room within the read
 *     timeout is refused with SERVER_BUSY</td></tr>
 * <tr><td>connectionThreads</td><td>platform threads for the first 16 connections, virtual threads beyond</td>
 *     <td>the thread serving each connection (see {@link Builder#connectionThreads})</td></tr>
 * <tr><td>shutdownGrace</td><td>5 s</td><td>how long {@code close()} lets messages that have arrived be
 *     answered</td></tr>
 * </table>
 *
 * @param connection the options of each connection
 * @param maxConnections connections served at once
 * @param maxConnectionsPerAddress connections from one remote address at once
 * @param idleTimeout how long a connection may send nothing before it is closed; zero for never
 * @param maxBytesInFlight bytes of frame bodies being received at once over all connections
 * @param connectionThreads makes the thread that serves a connection; {@code null} for the default mix
 * @param shutdownGrace how long {@link TcpServer#close()} waits for messages in flight
 */
public record TcpServerOptions(TcpOptions connection, int maxConnections, int maxConnectionsPerAddress,
        Duration idleTimeout, long maxBytesInFlight, ThreadFactory connectionThreads, Duration shutdownGrace) {
    /** How many connections get a platform thread by default: they wake sooner than virtual threads. */
    public static final int DEFAULT_PLATFORM_THREADS = 16;

    private static final TcpServerOptions DEFAULTS = builder().build();

    /** Checks every setting. */
    public TcpServerOptions {
        Objects.requireNonNull(connection, "connection");
        if (maxConnections <= 0) {
            throw new IllegalArgumentException("maxConnections must be positive, got " + maxConnections);
        }
        if (maxConnectionsPerAddress <= 0) {
            throw new IllegalArgumentException("maxConnectionsPerAddress must be positive, got "
                    + maxConnectionsPerAddress);
        }
        if (idleTimeout.isNegative()) {
            throw new IllegalArgumentException("idleTimeout must not be negative, got " + idleTimeout);
        }
        if (maxBytesInFlight < connection.maxFrameBytes()) {
            throw new IllegalArgumentException("maxBytesInFlight (" + maxBytesInFlight + ") must be at least "
                    + "maxFrameBytes (" + connection.maxFrameBytes() + "), or one frame could never be received");
        }
        if (shutdownGrace.isNegative()) {
            throw new IllegalArgumentException("shutdownGrace must not be negative, got " + shutdownGrace);
        }
    }

    /** {@return the default server options, as listed in the table above} */
    public static TcpServerOptions defaults() {
        return DEFAULTS;
    }

    /**
     * The defaults with {@code connection} as the options of each connection.
     *
     * @param connection the options of each connection the server accepts
     * @return server options with default limits, threads and grace, and {@code maxBytesInFlight} at least
     *     {@code connection}'s {@code maxFrameBytes}
     */
    public static TcpServerOptions of(TcpOptions connection) {
        return builder().connection(connection).build();
    }

    /** {@return a new builder starting from the defaults} */
    public static Builder builder() {
        return new Builder();
    }

    /** Builds {@link TcpServerOptions}. */
    public static final class Builder {
        private TcpOptions connection = TcpOptions.defaults();
        private int maxConnections = 1024;
        private int maxConnectionsPerAddress = 256;
        private Duration idleTimeout = Duration.ofMinutes(5);
        private long maxBytesInFlight;
        private ThreadFactory connectionThreads;
        private Duration shutdownGrace = Duration.ofSeconds(5);

        private Builder() {
        }

        /**
         * The options of each connection.
         *
         * @param options the timeouts, limits and serializer of every connection the server accepts; its
         *     {@code idleTimeout} is replaced by the server's {@link #idleTimeout(Duration)}
         * @return this builder
         */
        public Builder connection(TcpOptions options) {
            this.connection = Objects.requireNonNull(options, "options");
            return this;
        }

        /**
         * Connections served at once (positive); when full, the connection idle the longest (at least a second)
         * makes room for a new one, and without one the new one is told {@code SERVER_BUSY}.
         *
         * @param connections how many connections the server serves at once
         * @return this builder
         * @throws IllegalArgumentException if {@code connections} is zero or negative
         */
        public Builder maxConnections(int connections) {
            if (connections <= 0) {
                throw new IllegalArgumentException("maxConnections must be positive, got " + connections);
            }
            this.maxConnections = connections;
            return this;
        }

        /**
         * Connections from one remote address at once (positive); more are told {@code SERVER_BUSY}.
         *
         * @param connections how many connections one remote address may have open at once
         * @return this builder
         * @throws IllegalArgumentException if {@code connections} is zero or negative
         */
        public Builder maxConnectionsPerAddress(int connections) {
            if (connections <= 0) {
                throw new IllegalArgumentException("maxConnectionsPerAddress must be positive, got " + connections);
            }
            this.maxConnectionsPerAddress = connections;
            return this;
        }

        /**
         * How long a connection may send no frame before the server closes it; zero for never.
         *
         * @param timeout the longest silence between frames of a served connection
         * @return this builder
         * @throws IllegalArgumentException if {@code timeout} is negative
         */
        public Builder idleTimeout(Duration timeout) {
            if (timeout.isNegative()) {
                throw new IllegalArgumentException("idleTimeout must not be negative, got " + timeout);
            }
            this.idleTimeout = timeout;
            return this;
        }

        /**
         * Bytes of frame bodies being received at once over all connections; at least {@code maxFrameBytes}.
         *
         * @param bytes the memory, in bytes, that frames being received may claim together
         * @return this builder
         * @throws IllegalArgumentException if {@code bytes} is zero or negative ({@link #build()} refuses a value
         *     below the connections' {@code maxFrameBytes})
         */
        public Builder maxBytesInFlight(long bytes) {
            if (bytes <= 0) {
                throw new IllegalArgumentException("maxBytesInFlight must be positive, got " + bytes);
            }
            this.maxBytesInFlight = bytes;
            return this;
        }

        /**
         * Makes the thread that serves each connection. By default the first {@value #DEFAULT_PLATFORM_THREADS}
         * connections at a time get a platform thread, which wakes sooner when bytes arrive (tens of microseconds
         * on a small VM, see the README's benchmark), and the rest get virtual threads, which cost little and scale
         * to thousands. Give {@code Thread.ofVirtual().factory()} for virtual threads only.
         *
         * @param factory makes one thread per connection, which the server starts
         * @return this builder
         */
        public Builder connectionThreads(ThreadFactory factory) {
            this.connectionThreads = Objects.requireNonNull(factory, "factory");
            return this;
        }

        /**
         * How long {@link TcpServer#close()} lets messages that have arrived be answered (zero: not at all).
         *
         * @param grace how long closing the server waits for connections to finish before closing them
         * @return this builder
         * @throws IllegalArgumentException if {@code grace} is negative
         */
        public Builder shutdownGrace(Duration grace) {
            if (grace.isNegative()) {
                throw new IllegalArgumentException("shutdownGrace must not be negative, got " + grace);
            }
            this.shutdownGrace = grace;
            return this;
        }

        /**
         * The options; {@code maxBytesInFlight}, unless set, is the larger of 2 GiB and the connections'
         * {@code maxFrameBytes}.
         *
         * @return the server options
         * @throws IllegalArgumentException if {@code maxBytesInFlight} was set below the connections'
         *     {@code maxFrameBytes}
         */
        public TcpServerOptions build() {
            long inFlight = maxBytesInFlight > 0 ? maxBytesInFlight : Math.max(2L << 30, connection.maxFrameBytes());
            return new TcpServerOptions(connection, maxConnections, maxConnectionsPerAddress, idleTimeout, inFlight,
                    connectionThreads, shutdownGrace);
        }
    }
}
