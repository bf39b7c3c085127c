package netutils.api.wire;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import netutils.api.MemoryLease;
import netutils.api.Tensor;
import netutils.api.internal.Memory;

/**
 * Native memory for received tensors, reused across messages: the default of {@code receive()}. Fresh native
 * memory costs page faults, zeroing and the JDK's direct-memory accounting on every message (a tenth of socket
 * speed for 256 MiB messages on a small VM); reused memory costs nothing.
 *
 * <p>Tensors of up to {@link Tensor#HEAP_LIMIT} bytes stay on the Java heap, in arrays that a closed message gives
 * back to a small cache of the closing thread ({@link SmallArrays}): a decoded token's hidden state then costs no
 * fresh, zeroed 8 KiB array each, which was the largest single cost of decoding a small message. Larger ones get
 * a chunk of a size class (four classes per power of two, so at most a quarter is wasted); a message's chunks are
 * lent together under one {@link MemoryLease} and come back when the message is closed.
 * A chunk is never on the free list while a message that has not been closed holds it: chunks of a message
 * that is garbage-collected unclosed are simply freed. Idle chunks are capped at {@link #maxIdleBytes()}
 * ({@code -Dnetutils.pool.maxIdleBytes}, 1 GiB by default); beyond that, released chunks are freed.
 */
final class TensorPool {
    static final TensorPool SHARED = new TensorPool(Long.getLong("netutils.pool.maxIdleBytes", 1L << 30));
    /** Counts the chunks of messages collected without close(); its actions must not refer to the leases. */
    private static final java.lang.ref.Cleaner LOST = java.lang.ref.Cleaner.create(runnable -> {
        Thread thread = new Thread(runnable, "netutils-pool-cleaner");
        thread.setDaemon(true);
        return thread;
    });

    private final long maxIdleBytes;
    private final AtomicLong idleBytes = new AtomicLong();
    /** Chunk bytes held by messages that are neither closed nor collected. */
    private final AtomicLong lentBytes = new AtomicLong();
    /** Chunk bytes of messages that were collected without being closed. */
    private final AtomicLong lostBytes = new AtomicLong();
    private final AtomicLong collections = new AtomicLong();
    private final long collectAfterBytes;
    private final Collection collection;
    private final Map<Long, ConcurrentLinkedDeque<MemorySegment>> free = new ConcurrentHashMap<>();

    /** When {@link #collectLostChunksIfNeeded} last asked for a collection; guarded by itself. */
    private static final class Collection {
        long interval;
        long freshSinceLast;
        long lostAtLast = -1;
    }

    TensorPool(long maxIdleBytes) {
        this(maxIdleBytes, Long.getLong("netutils.pool.collectAfterBytes", 1L << 30));
    }

    TensorPool(long maxIdleBytes, long collectAfterBytes) {
        this.maxIdleBytes = maxIdleBytes;
        this.collectAfterBytes = collectAfterBytes;
        this.collection = new Collection();
        this.collection.interval = collectAfterBytes / 2;
    }

    long maxIdleBytes() {
        return maxIdleBytes;
    }

    long idleBytes() {
        return idleBytes.get();
    }

    /** The size class of a request: rounded up to a quarter of its power of two. */
    static long sizeClass(long bytes) {
        if (bytes <= 4) {
            return bytes;
        }
        int shift = 63 - Long.numberOfLeadingZeros(bytes - 1) - 2; // a quarter of the power of two below
        long step = 1L << shift;
        return (bytes + step - 1) & -step;
    }

    /** Memory for the tensors of one message. */
    Lending lend(String peer) {
        return new Lending(peer);
    }

    private MemorySegment take(long bytes) {
        long size = sizeClass(bytes);
        ConcurrentLinkedDeque<MemorySegment> list = free.get(size);
        MemorySegment chunk = list == null ? null : list.pollFirst();
        lentBytes.addAndGet(size);
        if (chunk != null) {
            idleBytes.addAndGet(-size);
            return chunk;
        }
        collectLostChunksIfNeeded(size);
        return Memory.allocateOnDemand(size); // committed as the bytes arrive, not when a frame claims them
    }

    /**
     * Chunks of messages that were never closed are freed only when the garbage collector finds them, and a
     * process receiving large messages allocates little heap: the collector may not run for a long time while
     * unreleased chunks (RAM in /dev/shm, outside any JVM limit) pile up, to the point of exhausting memory. So, like
     * the JDK for direct buffers, once more than {@link #collectAfterBytes} are lent, every further
     * {@code collectAfterBytes / 2} of fresh chunks asks for a collection, and the chunks of messages that were
     * dropped are freed. When a collection frees nothing (the messages are all alive, held on purpose), the
     * interval doubles, so that holding much received data costs nearly nothing.
     */
    private void collectLostChunksIfNeeded(long size) {
        boolean collect;
        synchronized (collection) {
            collection.freshSinceLast += size;
            collect = lentBytes.get() > collectAfterBytes && collection.freshSinceLast >= collection.interval;
            if (collect) {
                long lost = lostBytes.get();
                if (collection.lostAtLast >= 0) {
                    collection.interval = lost == collection.lostAtLast
                            ? Math.min(collection.interval * 2, 1L << 40) : collectAfterBytes / 2;
                }
                collection.lostAtLast = lost;
                collection.freshSinceLast = 0;
                collections.incrementAndGet();
            }
        }
        if (collect) {
            System.gc(); // the collected messages' chunks are unmapped by their cleaners
        }
    }

    /** How many collections {@link #collectLostChunksIfNeeded} asked for (for tests). */
    long collectionsRequested() {
        return collections.get();
    }

    /** Bytes lent to messages not yet closed or collected (for tests). */
    long lentBytes() {
        return lentBytes.get();
    }

    private void give(MemorySegment chunk) {
        long size = chunk.byteSize();
        lentBytes.addAndGet(-size);
        if (idleBytes.addAndGet(size) > maxIdleBytes) {
            idleBytes.addAndGet(-size); // over the cap: let the garbage collector free it
            return;
        }
        // Most recently used first: its pages are the likeliest to be in cache and mapped.
        free.computeIfAbsent(size, k -> new ConcurrentLinkedDeque<>()).addFirst(chunk);
    }

    /** Allocates the tensors of one message and, once it is built, the lease that returns them. */
    final class Lending implements SegmentAllocator {
        private final String peer;
        private final List<MemorySegment> chunks = new ArrayList<>(2);
        private final List<byte[]> smallArrays = new ArrayList<>(4);
        private long bytes;

        private Lending(String peer) {
            this.peer = peer;
        }

        @Override
        public MemorySegment allocate(long byteSize, long byteAlignment) {
            if (byteSize <= Tensor.HEAP_LIMIT) {
                byte[] array = SmallArrays.take((int) byteSize);
                smallArrays.add(array);
                return MemorySegment.ofArray(array);
            }
            MemorySegment chunk = take(byteSize);
            chunks.add(chunk);
            bytes += byteSize;
            return chunk.asSlice(0, byteSize);
        }

        /** The lease for the message, or {@code null} if nothing was lent. */
        MemoryLease lease() {
            List<byte[]> small = smallArrays.isEmpty() ? List.of() : List.copyOf(smallArrays);
            if (chunks.isEmpty()) {
                return small.isEmpty() ? null : MemoryLease.ofSmall(() -> small.forEach(SmallArrays::give));
            }
            List<MemorySegment> lent = List.copyOf(chunks);
            long lentSize = lent.stream().mapToLong(MemorySegment::byteSize).sum();
            AtomicBoolean returned = new AtomicBoolean();
            MemoryLease lease = MemoryLease.of(() -> {
                returned.set(true);
                lent.forEach(TensorPool.this::give);
                small.forEach(SmallArrays::give);
            }, String.format("%,d bytes of tensors from %s", bytes, peer));
            LOST.register(lease, () -> {
                if (!returned.get()) { // collected without close(): its chunks are freed, not returned
                    lentBytes.addAndGet(-lentSize);
                    lostBytes.addAndGet(lentSize);
                }
            });
            return lease;
        }

        /** Gives everything back: the message was never built (the frame was bad or cut off). */
        void abandon() {
            chunks.forEach(TensorPool.this::give);
            chunks.clear();
            smallArrays.forEach(SmallArrays::give);
            smallArrays.clear();
        }
    }

    /**
     * Heap arrays of small tensors, cached per platform thread (a virtual thread's cache would live as long as the
     * thread and be used once): up to {@value #SLOTS} arrays of at most {@value #MAX_CACHED} bytes, taken by exact
     * length. An array is here only after the message that held it was closed; one taken is the caller's alone.
     * Arrays come back with old bytes in them: the decoder overwrites every byte of a tensor before anyone sees it.
     */
    static final class SmallArrays {
        private static final int SLOTS = 8;
        /**
         * The largest array kept: 16 KiB holds a token's hidden state of 8,192 bf16 or 4,096 f32 values, and keeps a
         * thread's cache at 128 KiB at most (platform threads live long, and cached arrays stay with them).
         */
        private static final int MAX_CACHED = 16 * 1024;
        private static final ThreadLocal<byte[][]> CACHE = ThreadLocal.withInitial(() -> new byte[SLOTS][]);

        private SmallArrays() {
        }

        static byte[] take(int length) {
            if (!Thread.currentThread().isVirtual()) {
                byte[][] slots = CACHE.get();
                for (int i = 0; i < SLOTS; i++) {
                    byte[] array = slots[i];
                    if (array != null && array.length == length) {
                        slots[i] = null;
                        return array;
                    }
                }
            }
            return new byte[length];
        }

        static void give(byte[] array) {
            if (array.length > MAX_CACHED || Thread.currentThread().isVirtual()) {
                return; // the garbage collector takes it
            }
            byte[][] slots = CACHE.get();
            for (int i = 0; i < SLOTS; i++) {
                if (slots[i] == null) {
                    slots[i] = array;
                    return;
                }
            }
            slots[(array.length ^ System.identityHashCode(array)) & (SLOTS - 1)] = array; // full: replace one
        }
    }
}
