package netutils.transport.tcp.internal;

import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * Read and write timeouts for socket channels (blocking ones have none of their own, and a non-blocking client's
 * reads inside a frame wait without a deadline): each call marks that it started (or made progress) and ended,
 * and one shared daemon thread closes the connection of a call that made no progress for longer than its timeout.
 *
 * <p>The marks are counters, not clock readings: a call in progress holds an odd value, each start or progress
 * makes a new one, and the end makes it even. The checking thread notes when it first saw each odd value, so a
 * stall is reported after its timeout plus at most two check periods (an eighth of the shortest timeout each,
 * within 5 ms to 1 s), and marking reads no clock: {@code System.nanoTime()} costs 27 ns on this project's VM,
 * and an 8 KiB round trip marked six times on each side.
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
    /** Odd while a read is in progress; a new value at each start. Written by the current reader (reader lock). */
    private volatile long readMark;
    /**
     * Odd while a write is in progress; a new value at each start and each progress. Written by whichever thread
     * writes a frame, always under {@link ChannelSink}'s lock.
     */
    private volatile long writeMark;
    /** Odd while a frame is being received; a new value for each frame. */
    private volatile long frameMark;
    private volatile long frameBytes;
    private final long minBytesPerSecond;
    private final long rateGraceNanos;
    // What the checking thread saw: each mark, when it first saw it, and the marks it has reported.
    private final Seen read = new Seen();
    private final Seen write = new Seen();
    private final Seen frame = new Seen();
    private long frameBytesWhenSeen;

    /** One mark as the checking thread last saw it. */
    private static final class Seen {
        long mark;
        long since;
        long reported = -1;

        /**
         * Notes {@code current}; returns how long it has been the same odd mark, or -1 if none is in progress or
         * this one was reported already.
         */
        long unchangedFor(long current, long now) {
            if ((current & 1) == 0 || current == reported) {
                return -1;
            }
            if (current != mark) {
                mark = current;
                since = now;
            }
            return now - since;
        }
    }

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
        readMark = started(readMark);
    }

    void readEnded() {
        readMark = ended(readMark);
    }

    /** A write began, or made progress: the stall clock starts again. */
    void writeStarted() {
        writeMark = started(writeMark);
    }

    void writeEnded() {
        writeMark = ended(writeMark);
    }

    /** A frame has begun: from now on its bytes are counted against the minimum rate. */
    void frameStarted() {
        frameBytes = 0;
        frameMark = started(frameMark);
    }

    /** {@code bytes} of the current frame arrived. */
    void frameProgress(long bytes) {
        if ((frameMark & 1) != 0) {
            frameBytes += bytes; // one reader at a time: no lost updates
        }
    }

    /** The frame is complete (or failed). */
    void frameEnded() {
        frameMark = ended(frameMark);
    }

    /** A new odd mark: in progress, and not the one the checker saw before. */
    private static long started(long mark) {
        return (mark & 1) == 0 ? mark + 1 : mark + 2;
    }

    private static long ended(long mark) {
        return (mark & 1) == 0 ? mark : mark + 1;
    }

    void stop() {
        if (task != null) {
            task.cancel(false);
        }
    }

    private void check() {
        long now = System.nanoTime();
        long readMarkNow = readMark;
        if (readTimeoutNanos > 0 && read.unchangedFor(readMarkNow, now) > readTimeoutNanos) {
            read.reported = readMarkNow;
            frame.reported = frameMark;
            target.onStall("read timed out: no progress for " + readTimeout);
            return;
        }
        // A frame with no bytes at all is a read stall, reported as one above; a trickle is caught here. The rate
        // counts the bytes since the checker first saw the frame, over the time since then.
        long frameMarkNow = frameMark;
        long bytes = frameBytes;
        // Checked only if no frame ended and another began between the two reads (its bytes would not be this one's).
        if (frameMark == frameMarkNow) {
            checkRate(frameMarkNow, bytes, now);
        }
        long writeMarkNow = writeMark;
        if (writeTimeoutNanos > 0 && write.unchangedFor(writeMarkNow, now) > writeTimeoutNanos) {
            write.reported = writeMarkNow;
            target.onStall("write timed out: no progress for " + writeTimeout);
        }
    }

    private void checkRate(long frameMarkNow, long bytes, long now) {
        long previous = frame.mark;
        long frameAge = frame.unchangedFor(frameMarkNow, now);
        if (frameAge >= 0 && frame.mark != previous) {
            frameBytesWhenSeen = bytes;
        } else if (frameAge > rateGraceNanos && bytes > 0 && minBytesPerSecond > 0) {
            double seconds = frameAge / 1e9;
            long arrived = bytes - frameBytesWhenSeen;
            if (arrived < minBytesPerSecond * seconds) {
                frame.reported = frameMarkNow;
                target.onStall(String.format("frame arrived too slowly: %,d bytes in %.1f s (%,.0f bytes/s), under the "
                        + "minimum of %,d bytes/s", arrived, seconds, arrived / seconds, minBytesPerSecond));
            }
        }
    }
}
