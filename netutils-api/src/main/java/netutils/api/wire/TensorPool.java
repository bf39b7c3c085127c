package netutils.api.wire;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicLong;
import netutils.api.MemoryLease;
import netutils.api.Tensor;
import netutils.api.internal.Memory;

/**
 * Native memory for received tensors, reused across messages: the default of {@code receive()}. Fresh native
 * memory costs page faults, zeroing and the JDK's direct-memory accounting on every message (a tenth of socket
 * speed for 256 MiB messages on a small VM); reused memory costs nothing.
 *
 * <p>Tensors of up to {@link Tensor#HEAP_LIMIT} bytes stay on the Java heap (cheaper to allocate than to pool).
 * Larger ones get a chunk of a size class (four classes per power of two, so at most a quarter is wasted); a
 * message's chunks are lent together under one {@link MemoryLease} and come back when the message is closed.
 * A chunk is never on the free list while a message that has not been closed holds it: chunks of a message
 * that is garbage-collected unclosed are simply freed. Idle chunks are capped at {@link #maxIdleBytes()}
 * ({@code -Dnetutils.pool.maxIdleBytes}, 1 GiB by default); beyond that, released chunks are freed.
 */
final class TensorPool {
    static final TensorPool SHARED = new TensorPool(Long.getLong("netutils.pool.maxIdleBytes", 1L << 30));

    private final long maxIdleBytes;
    private final AtomicLong idleBytes = new AtomicLong();
    private final Map<Long, ConcurrentLinkedDeque<MemorySegment>> free = new ConcurrentHashMap<>();

    TensorPool(long maxIdleBytes) {
        this.maxIdleBytes = maxIdleBytes;
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
        if (chunk != null) {
            idleBytes.addAndGet(-size);
            return chunk;
        }
        return Memory.allocateOnDemand(size); // committed as the bytes arrive, not when a frame claims them
    }

    private void give(MemorySegment chunk) {
        long size = chunk.byteSize();
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
        private long bytes;

        private Lending(String peer) {
            this.peer = peer;
        }

        @Override
        public MemorySegment allocate(long byteSize, long byteAlignment) {
            if (byteSize <= Tensor.HEAP_LIMIT) {
                return Memory.allocate(byteSize);
            }
            MemorySegment chunk = take(byteSize);
            chunks.add(chunk);
            bytes += byteSize;
            return chunk.asSlice(0, byteSize);
        }

        /** The lease for the message, or {@code null} if nothing was lent. */
        MemoryLease lease() {
            if (chunks.isEmpty()) {
                return null;
            }
            List<MemorySegment> lent = List.copyOf(chunks);
            return MemoryLease.of(() -> lent.forEach(TensorPool.this::give),
                    String.format("%,d bytes of tensors from %s", bytes, peer));
        }

        /** Gives everything back: the message was never built (the frame was bad or cut off). */
        void abandon() {
            chunks.forEach(TensorPool.this::give);
            chunks.clear();
        }
    }
}
