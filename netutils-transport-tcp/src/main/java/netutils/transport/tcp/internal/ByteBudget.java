package netutils.transport.tcp.internal;

import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A server's budget of frame-body bytes being received at once, over all its connections. A frame reserves
 * its declared body length before any of its tensors is allocated, so peers that announce huge frames cannot
 * together commit more memory than the budget.
 */
public final class ByteBudget {
    private final long capacity;
    private final Duration maxWait;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition released = lock.newCondition();
    private long available;

    /** A budget of {@code capacity} bytes; a frame waits at most {@code maxWait} for room (zero: forever). */
    public ByteBudget(long capacity, Duration maxWait) {
        this.capacity = capacity;
        this.available = capacity;
        this.maxWait = maxWait;
    }

    /**
     * Reserves {@code bytes}, waiting for room.
     *
     * @throws BudgetExceededException if the bytes can never fit, or did not within the wait
     */
    public void acquire(long bytes) throws IOException {
        if (bytes > capacity) {
            throw new BudgetExceededException("a frame body of " + bytes + " bytes exceeds the server's "
                    + "bytes-in-flight budget of " + capacity);
        }
        lock.lock();
        try {
            boolean forever = maxWait.isZero();
            long deadline = System.nanoTime() + maxWait.toNanos();
            while (available < bytes) {
                long left = forever ? TimeUnit.SECONDS.toNanos(1) : deadline - System.nanoTime();
                if (left <= 0) {
                    throw new BudgetExceededException("waited " + maxWait + " for " + bytes + " bytes of the server's "
                            + capacity + "-byte in-flight budget; other connections hold it");
                }
                try {
                    released.awaitNanos(left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new java.io.InterruptedIOException("interrupted while waiting for memory budget");
                }
            }
            available -= bytes;
        } finally {
            lock.unlock();
        }
    }

    /** Gives back what {@link #acquire} took. */
    public void release(long bytes) {
        lock.lock();
        try {
            available += bytes;
            released.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Bytes not reserved now. */
    public long available() {
        lock.lock();
        try {
            return available;
        } finally {
            lock.unlock();
        }
    }

    /** A frame could not get its bytes: the peer is told {@code SERVER_BUSY}. */
    public static final class BudgetExceededException extends IOException {
        private static final long serialVersionUID = 1L;

        BudgetExceededException(String message) {
            super(message);
        }
    }
}
