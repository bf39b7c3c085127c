package netutils.api;

import java.lang.ref.Cleaner;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The memory of a received message's tensors, lent from a pool until the message is
 * {@linkplain Message#close() closed}. A transport creates one per message it receives into pooled memory and
 * gives it to {@link Message.Builder#lease}; users only meet it through {@link Message#close()}.
 *
 * <p>After release every access to the message's tensors fails with an {@link IllegalStateException} instead of
 * reading bytes that may already belong to the next message. A {@link java.lang.foreign.MemorySegment} taken
 * from {@link Tensor#data()} before the release is not guarded, like the NIO buffer of a released Netty
 * {@code ByteBuf}: copy what must outlive the message.
 *
 * <p>A message that is never closed is safe: its memory is freed by the garbage collector instead of going back
 * to the pool (only the speed of reuse is lost), and this is reported once per process at level INFO, with the
 * place it was received when {@code -Dnetutils.leakDetection=trace} is set.
 */
public final class MemoryLease {
    private static final Cleaner CLEANER = Cleaner.create(runnable -> {
        Thread thread = new Thread(runnable, "netutils-lease-cleaner");
        thread.setDaemon(true);
        return thread;
    });
    private static final boolean TRACE = "trace".equals(System.getProperty("netutils.leakDetection"));
    private static final AtomicBoolean REPORTED = new AtomicBoolean();

    private final State state;

    private MemoryLease(Runnable release, String description, boolean tracked) {
        this.state = new State(release, description, TRACE ? new Throwable("received here") : null);
        if (tracked) {
            CLEANER.register(this, state);
        }
    }

    /**
     * A lease that runs {@code release} once, when the message is closed.
     *
     * @param release gives the memory back to its pool; run at most once, by {@link #release()}, and never by the
     *     garbage collector
     * @param description what the memory is, for the unreleased-message report (e.g. "256 MiB of tensors from
     *     /10.0.0.2:5000")
     * @return a lease that still holds the memory
     */
    public static MemoryLease of(Runnable release, String description) {
        return new MemoryLease(release, description, true);
    }

    /**
     * A lease of memory that costs little to lose, such as a small tensor's heap array: as {@link #of}, but a message
     * garbage-collected without {@code close()} is not reported and costs no cleaner registration (which would cost
     * more than the memory it tracks).
     *
     * @param release gives the memory back to its pool; run at most once, by {@link #release()}
     * @return a lease that still holds the memory
     */
    public static MemoryLease ofSmall(Runnable release) {
        return new MemoryLease(release, "small tensors", false);
    }

    /** Gives the memory back; later calls do nothing. */
    public void release() {
        if (state.released.compareAndSet(false, true)) {
            state.release.run();
        }
    }

    /** {@return whether the memory was given back, that is whether {@link #release()} was called} */
    public boolean isReleased() {
        return state.released.get();
    }

    void checkHeld(Object user) {
        if (state.released.get()) {
            throw new IllegalStateException(user + " belongs to a message that was closed: its memory went back to "
                    + "the pool and may hold another message's bytes now; copy tensors that must outlive their "
                    + "message (Tensor.copyOf)");
        }
    }

    /** What the cleaner needs; must not refer to the lease, or the lease would never become unreachable. */
    private static final class State implements Runnable {
        private final AtomicBoolean released = new AtomicBoolean();
        private final Runnable release;
        private final String description;
        private final Throwable receivedAt;

        State(Runnable release, String description, Throwable receivedAt) {
            this.release = release;
            this.description = description;
            this.receivedAt = receivedAt;
        }

        @Override
        public void run() {
            // Collected without close(): nothing can reach the memory, but it is not returned to the pool either
            // (a raw segment taken from it might still be in use); the garbage collector frees it.
            if (!released.get() && (TRACE || REPORTED.compareAndSet(false, true))) {
                System.Logger log = System.getLogger(MemoryLease.class.getName());
                String text = "a received message (" + description + ") was garbage-collected without close(): its "
                        + "memory was freed instead of reused; close received messages (try-with-resources) to "
                        + "receive large messages at full speed"
                        + (TRACE ? "" : " (-Dnetutils.leakDetection=trace shows where each was received)");
                if (receivedAt != null) {
                    log.log(System.Logger.Level.INFO, text, receivedAt);
                } else {
                    log.log(System.Logger.Level.INFO, text);
                }
            }
        }
    }
}
