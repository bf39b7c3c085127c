package netutils.transport.tcp;

import java.time.Duration;
import java.util.Objects;
import java.util.Optional;
import netutils.api.wire.Frames;
import netutils.api.wire.Serializers;

/**
 * Every timeout and limit of one TCP connection, client or server side, with safe defaults; a value (equal
 * when every setting is equal). What only a server has (connection limits, memory budget, threads) is in
 * {@link TcpServerOptions}. Made with {@link #builder()}:
 *
 * <pre>{@code
 * TcpOptions options = TcpOptions.builder()
 *         .serializer("msgpack")
 *         .maxFrameBytes(Frames.MAX_BODY_LENGTH)   // accept the full 4 GiB frames
 *         .requestTimeout(Duration.ofSeconds(10))
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
 * <tr><td>requestTimeout</td><td>2 min</td><td>the deadline of calls made without one</td></tr>
 * <tr><td>keepaliveInterval</td><td>30 s</td><td>silence after which a {@code _ping} is sent; zero: no pings</td></tr>
 * <tr><td>keepaliveTimeout</td><td>20 s</td><td>how long after a ping with nothing received the peer is
 *     declared gone</td></tr>
 * <tr><td>minTransferRate</td><td>64 KiB/s</td><td>the slowest average a frame may arrive at once it is older
 *     than the read timeout; slower peers are disconnected (zero: no minimum)</td></tr>
 * <tr><td>maxFrameBytes</td><td>1 GiB</td><td>the largest frame body accepted; up to {@link Frames#MAX_BODY_LENGTH}</td></tr>
 * <tr><td>maxEnvelopeBytes</td><td>16 MiB</td><td>the largest envelope accepted</td></tr>
 * <tr><td>serializer</td><td>empty: answer in the serializer of the last frame received, JSON before any</td>
 *     <td>the envelope format of sent frames</td></tr>
 * <tr><td>checksum</td><td>off</td><td>append a CRC32C to sent frames (received ones are checked whenever flagged)</td></tr>
 * <tr><td>tls</td><td>none: plaintext</td><td>TLS or mutual TLS, see {@link TlsOptions}</td></tr>
 * </table>
 *
 * @param connectTimeout how long a connect may take
 * @param readTimeout how long a frame that has begun may stall; zero for no limit
 * @param writeTimeout how long a send may stall; zero for no limit
 * @param idleTimeout how long {@code receive()} waits for a frame before closing; zero waits forever
 * @param requestTimeout the deadline of calls made without one
 * @param keepaliveInterval silence after which a ping is sent; zero turns keepalive off
 * @param keepaliveTimeout how long to wait for any frame after a ping before the peer is declared gone
 * @param minTransferRate the slowest average rate, in bytes per second, a frame may arrive at once it is older
 *     than the read timeout; zero for no minimum
 * @param maxFrameBytes the largest frame body accepted
 * @param maxEnvelopeBytes the largest envelope accepted
 * @param serializer the name of the serializer of sent frames; empty to answer in the peer's (JSON before any)
 * @param checksum whether sent frames carry a CRC32C of the body
 * @param tls TLS for the connection; empty for plaintext
 */
public record TcpOptions(Duration connectTimeout, Duration readTimeout, Duration writeTimeout, Duration idleTimeout,
        Duration requestTimeout, Duration keepaliveInterval, Duration keepaliveTimeout, long minTransferRate,
        long maxFrameBytes, int maxEnvelopeBytes, Optional<String> serializer, boolean checksum,
        Optional<TlsOptions> tls) {
    private static final TcpOptions DEFAULTS = builder().build();

    /** Checks every setting; the builder is the friendlier way to make options. */
    public TcpOptions {
        positive(connectTimeout, "connectTimeout");
        nonNegative(readTimeout, "readTimeout");
        nonNegative(writeTimeout, "writeTimeout");
        nonNegative(idleTimeout, "idleTimeout");
        positive(requestTimeout, "requestTimeout");
        nonNegative(keepaliveInterval, "keepaliveInterval");
        if (!keepaliveInterval.isZero()) {
            positive(keepaliveTimeout, "keepaliveTimeout");
        }
        if (minTransferRate < 0) {
            throw new IllegalArgumentException("minTransferRate must not be negative, got " + minTransferRate);
        }
        if (maxFrameBytes < 0 || maxFrameBytes > Frames.MAX_BODY_LENGTH) {
            throw new IllegalArgumentException("maxFrameBytes must be 0.." + Frames.MAX_BODY_LENGTH + ", got "
                    + maxFrameBytes);
        }
        if (maxEnvelopeBytes <= 0) {
            throw new IllegalArgumentException("maxEnvelopeBytes must be positive, got " + maxEnvelopeBytes);
        }
        Objects.requireNonNull(serializer, "serializer");
        serializer.ifPresent(Serializers::byName); // refuses now, naming the module to add, not at the first send
        Objects.requireNonNull(tls, "tls");
    }

    /** {@return the default options, as listed in the table above} */
    public static TcpOptions defaults() {
        return DEFAULTS;
    }

    /** {@return a new builder starting from the defaults} */
    public static Builder builder() {
        return new Builder();
    }

    /** {@return a new builder starting from these options, to derive others from them} */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.connectTimeout = connectTimeout;
        b.readTimeout = readTimeout;
        b.writeTimeout = writeTimeout;
        b.idleTimeout = idleTimeout;
        b.requestTimeout = requestTimeout;
        b.keepaliveInterval = keepaliveInterval;
        b.keepaliveTimeout = keepaliveTimeout;
        b.minTransferRate = minTransferRate;
        b.maxFrameBytes = maxFrameBytes;
        b.maxEnvelopeBytes = maxEnvelopeBytes;
        b.serializer = serializer;
        b.checksum = checksum;
        b.tls = tls;
        return b;
    }

    private static void positive(Duration value, String name) {
        if (value.isNegative() || value.isZero()) {
            throw new IllegalArgumentException(name + " must be positive, got " + value);
        }
    }

    private static void nonNegative(Duration value, String name) {
        if (value.isNegative()) {
            throw new IllegalArgumentException(name + " must not be negative, got " + value);
        }
    }

    /** Builds {@link TcpOptions}; each setter checks its value. */
    public static final class Builder {
        private Duration connectTimeout = Duration.ofSeconds(10);
        private Duration readTimeout = Duration.ofSeconds(30);
        private Duration writeTimeout = Duration.ofSeconds(30);
        private Duration idleTimeout = Duration.ZERO;
        private Duration requestTimeout = Duration.ofMinutes(2);
        private Duration keepaliveInterval = Duration.ofSeconds(30);
        private Duration keepaliveTimeout = Duration.ofSeconds(20);
        private long minTransferRate = 64 * 1024;
        private long maxFrameBytes = 1L << 30;
        private int maxEnvelopeBytes = 16 << 20;
        private Optional<String> serializer = Optional.empty();
        private boolean checksum;
        private Optional<TlsOptions> tls = Optional.empty();

        private Builder() {
        }

        /**
         * How long a connect may take (positive).
         *
         * @param timeout the longest wait for the server to accept the connection
         * @return this builder
         * @throws IllegalArgumentException if {@code timeout} is zero or negative
         */
        public Builder connectTimeout(Duration timeout) {
            positive(timeout, "connectTimeout");
            this.connectTimeout = timeout;
            return this;
        }

        /**
         * How long a frame that has begun may stall; zero for no limit.
         *
         * @param timeout the longest wait for the next bytes of a frame that has begun
         * @return this builder
         * @throws IllegalArgumentException if {@code timeout} is negative
         */
        public Builder readTimeout(Duration timeout) {
            nonNegative(timeout, "readTimeout");
            this.readTimeout = timeout;
            return this;
        }

        /**
         * How long a send may stall; zero for no limit.
         *
         * @param timeout the longest a send may wait for the peer to read
         * @return this builder
         * @throws IllegalArgumentException if {@code timeout} is negative
         */
        public Builder writeTimeout(Duration timeout) {
            nonNegative(timeout, "writeTimeout");
            this.writeTimeout = timeout;
            return this;
        }

        /**
         * How long {@code receive()} waits for a frame to begin before closing the connection; zero waits forever.
         *
         * @param timeout the longest silence between frames that {@code receive()} tolerates
         * @return this builder
         * @throws IllegalArgumentException if {@code timeout} is negative
         */
        public Builder idleTimeout(Duration timeout) {
            nonNegative(timeout, "idleTimeout");
            this.idleTimeout = timeout;
            return this;
        }

        /**
         * The deadline of calls ({@code request}, {@code requestAsync}) made without one (positive).
         *
         * @param timeout how long such a call waits for its reply
         * @return this builder
         * @throws IllegalArgumentException if {@code timeout} is zero or negative
         */
        public Builder requestTimeout(Duration timeout) {
            positive(timeout, "requestTimeout");
            this.requestTimeout = timeout;
            return this;
        }

        /**
         * Keepalive: after {@code interval} with nothing received a {@code _ping} is sent, and if nothing arrives
         * within {@code timeout} after it, the peer is declared gone (the connection closes, calls fail saying
         * so). A dead or unreachable peer is thus noticed within {@code interval + timeout} of its last frame.
         *
         * @param interval silence after which a ping is sent; zero turns keepalive off
         * @param timeout how long to wait for any frame after a ping; positive unless {@code interval} is zero
         * @return this builder
         * @throws IllegalArgumentException if {@code interval} is negative, or {@code timeout} is not positive while
         *     keepalive is on
         */
        public Builder keepalive(Duration interval, Duration timeout) {
            nonNegative(interval, "keepaliveInterval");
            if (!interval.isZero()) {
                positive(timeout, "keepaliveTimeout");
            }
            this.keepaliveInterval = interval;
            this.keepaliveTimeout = timeout;
            return this;
        }

        /**
         * The slowest average rate, in bytes per second, at which a frame may arrive once it is older than the read
         * timeout: a peer that trickles a byte now and then (never tripping the read timeout) is disconnected.
         * Zero: no minimum.
         *
         * @param bytesPerSecond the minimum average rate of a frame that has taken longer than the read timeout
         * @return this builder
         * @throws IllegalArgumentException if {@code bytesPerSecond} is negative
         */
        public Builder minTransferRate(long bytesPerSecond) {
            if (bytesPerSecond < 0) {
                throw new IllegalArgumentException("minTransferRate must not be negative, got " + bytesPerSecond);
            }
            this.minTransferRate = bytesPerSecond;
            return this;
        }

        /**
         * The largest frame body accepted: 0 to {@link Frames#MAX_BODY_LENGTH}.
         *
         * @param bytes the largest body length, in bytes, of a frame this side receives
         * @return this builder
         * @throws IllegalArgumentException if {@code bytes} is negative or over {@link Frames#MAX_BODY_LENGTH}
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
         * @param bytes the largest envelope length of a frame this side receives
         * @return this builder
         * @throws IllegalArgumentException if {@code bytes} is zero or negative
         */
        public Builder maxEnvelopeBytes(int bytes) {
            if (bytes <= 0) {
                throw new IllegalArgumentException("maxEnvelopeBytes must be positive, got " + bytes);
            }
            this.maxEnvelopeBytes = bytes;
            return this;
        }

        /**
         * The serializer of sent frames, by name ({@code json}, {@code msgpack}, {@code kryo} or a user's).
         *
         * @param name the serializer's name, as its module registers it
         * @return this builder
         * @throws IllegalArgumentException saying which module to add when it is not installed
         */
        public Builder serializer(String name) {
            Serializers.byName(name);
            this.serializer = Optional.of(name);
            return this;
        }

        /**
         * Sent frames use the serializer of the last frame received (JSON before any): the default.
         *
         * @return this builder
         */
        public Builder answerInPeersSerializer() {
            this.serializer = Optional.empty();
            return this;
        }

        /**
         * Whether sent frames carry a CRC32C of the body.
         *
         * @param checksum {@code true} to append a checksum to every sent frame; received frames are checked
         *     whenever they carry one, whatever this says
         * @return this builder
         */
        public Builder checksum(boolean checksum) {
            this.checksum = checksum;
            return this;
        }

        /** {@return the options, checked by the record's constructor} */
        public TcpOptions build() {
            return new TcpOptions(connectTimeout, readTimeout, writeTimeout, idleTimeout, requestTimeout,
                    keepaliveInterval, keepaliveTimeout, minTransferRate, maxFrameBytes, maxEnvelopeBytes, serializer,
                    checksum, tls);
        }

        /**
         * TLS for the connection (a client's trust, a server's certificate, mutual TLS): both peers must use it.
         * A plaintext peer on the other side fails at once with a message saying so.
         *
         * @param options the TLS settings
         * @return this builder
         */
        public Builder tls(TlsOptions options) {
            this.tls = Optional.of(Objects.requireNonNull(options, "options"));
            return this;
        }

        /**
         * No TLS: plaintext, the default.
         *
         * @return this builder
         */
        public Builder plaintext() {
            this.tls = Optional.empty();
            return this;
        }
    }
}
