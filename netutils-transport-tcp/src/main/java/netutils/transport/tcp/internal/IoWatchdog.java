package netutils.transport.tcp.internal;

import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * Read and write timeouts for blocking socket channels, which have none of their own: each blocking call
 * marks when it started, and one shared daemon thread closes the connection of a call that made no progress
 * for longer than its timeout. Marking costs two volatile writes per call, so the fast path stays fast.
 *
 * <p>It also enforces a minimum transfer rate over a whole frame: a peer that trickles a byte now and then never
 * trips the read timeout, but once a frame is older than the grace period and has arrived at less than the
 * minimum rate on average, its connection is closed the same way.
 */
final class IoWatchdog {
    private static final ScheduledExecutorService SCHEDULER = Executors.newSingleThreadScheduledExecutor(runnable -> {
        Thread thread = new Thread(runnable, "netutils-io-watchdog");
        thread.setDaemon(true);
        return thread;
    });

    /** What a watched connection does when a call stalls. */
    interface Target {
        void onStall(String why);
    }

    private final long readTimeoutNanos;
    private final long writeTimeoutNanos;
    private final Duration readTimeout;
    private final Duration writeTimeout;
    private final Target target;
    private final ScheduledFuture<?> task;
    private volatile long readSince;
    private volatile long writeSince;
    private final long minBytesPerSecond;
    private final long rateGraceNanos;
    private volatile long frameSince;
    private volatile long frameBytes;

    /**
     * @param minBytesPerSecond the slowest average a frame may arrive at once it is older than
     *     {@code rateGrace}; 0 for no minimum
     */
    IoWatchdog(Duration readTimeout, Duration writeTimeout, long minBytesPerSecond, Duration rateGrace, Target target) {
        this.minBytesPerSecond = minBytesPerSecond;
        this.rateGraceNanos = rateGrace.toNanos();
        this.readTimeout = readTimeout;
        this.writeTimeout = writeTimeout;
        this.readTimeoutNanos = readTimeout.toNanos();
        this.writeTimeoutNanos = writeTimeout.toNanos();
        this.target = target;
        long shortest = Math.min(readTimeoutNanos > 0 ? readTimeoutNanos : Long.MAX_VALUE,
                writeTimeoutNanos > 0 ? writeTimeoutNanos : Long.MAX_VALUE);
        if (minBytesPerSecond > 0) {
            shortest = Math.min(shortest, Math.max(rateGraceNanos, TimeUnit.MILLISECONDS.toNanos(40)));
        }
        if (shortest == Long.MAX_VALUE) {
            task = null;
        } else {
            long period = Math.clamp(shortest / 8, TimeUnit.MILLISECONDS.toNanos(5), TimeUnit.SECONDS.toNanos(1));
            task = SCHEDULER.scheduleAtFixedRate(this::check, period, period, TimeUnit.NANOSECONDS);
        }
    }

    void readStarted() {
        readSince = System.nanoTime();
    }

    void readEnded() {
        readSince = 0;
    }

    void writeStarted() {
        writeSince = System.nanoTime();
    }

    void writeEnded() {
        writeSince = 0;
    }

    /** A frame has begun: from now on its bytes are counted against the minimum rate. */
    void frameStarted() {
        frameBytes = 0;
        frameSince = System.nanoTime();
    }

    /** {@code bytes} of the current frame arrived. */
    void frameProgress(long bytes) {
        if (frameSince != 0) {
            frameBytes += bytes; // one reader at a time: no lost updates
        }
    }

    /** The frame is complete (or failed). */
    void frameEnded() {
        frameSince = 0;
    }

    void stop() {
        if (task != null) {
            task.cancel(false);
        }
    }

    private void check() {
        long now = System.nanoTime();
        long read = readSince;
        if (read != 0 && readTimeoutNanos > 0 && now - read > readTimeoutNanos) {
            readSince = 0;
            frameSince = 0;
            target.onStall("read timed out: no progress for " + readTimeout);
            return;
        }
        long write = writeSince;
        // A frame with no bytes at all is a read stall, reported as one above; a trickle is caught here.
        long frame = frameSince;
        long bytes = frameBytes;
        if (frame != 0 && bytes > 0 && minBytesPerSecond > 0 && now - frame > rateGraceNanos) {
            double seconds = (now - frame) / 1e9;
            if (bytes < minBytesPerSecond * seconds) {
                frameSince = 0;
                target.onStall(String.format("frame arrived too slowly: %,d bytes in %.1f s (%,.0f bytes/s), under the "
                        + "minimum of %,d bytes/s", bytes, seconds, bytes / seconds, minBytesPerSecond));
            }
        }
        if (write != 0 && writeTimeoutNanos > 0 && now - write > writeTimeoutNanos) {
            writeSince = 0;
            target.onStall("write timed out: no progress for " + writeTimeout);
        }
    }
}
