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
 */
final class IoWatchdog {
    private static final ScheduledExecutorService SCHEDULER = Executors.newSingleThreadScheduledExecutor(runnable -> {
        Thread thread = new Thread(runnable, "netutils-io-watchdog");
        thread.setDaemon(true);
        return thread;
    });

    /** What a watched connection does when a call stalls. */
    interface Target {
        void onStall(String operation, Duration timeout);
    }

    private final long readTimeoutNanos;
    private final long writeTimeoutNanos;
    private final Duration readTimeout;
    private final Duration writeTimeout;
    private final Target target;
    private final ScheduledFuture<?> task;
    private volatile long readSince;
    private volatile long writeSince;

    IoWatchdog(Duration readTimeout, Duration writeTimeout, Target target) {
        this.readTimeout = readTimeout;
        this.writeTimeout = writeTimeout;
        this.readTimeoutNanos = readTimeout.toNanos();
        this.writeTimeoutNanos = writeTimeout.toNanos();
        this.target = target;
        long shortest = Math.min(readTimeoutNanos > 0 ? readTimeoutNanos : Long.MAX_VALUE,
                writeTimeoutNanos > 0 ? writeTimeoutNanos : Long.MAX_VALUE);
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
            target.onStall("read", readTimeout);
        }
        long write = writeSince;
        if (write != 0 && writeTimeoutNanos > 0 && now - write > writeTimeoutNanos) {
            writeSince = 0;
            target.onStall("write", writeTimeout);
        }
    }
}
