package netutils.api.wire;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import netutils.api.DType;
import netutils.api.MemoryLease;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;

/** The pool lends memory to one message at a time and takes it back only on release. */
class TensorPoolTest {
    private static final long MIB = 1 << 20;

    @Test
    void sizeClassesWasteAtMostAQuarter() {
        for (long bytes : new long[] {65_537, MIB, MIB + 1, 3 * MIB + 5, 256 * MIB, 300 * MIB + 7}) {
            long size = TensorPool.sizeClass(bytes);
            assertThat(size).isBetween(bytes, bytes + bytes / 4);
        }
        assertThat(TensorPool.sizeClass(256 * MIB)).isEqualTo(256 * MIB);
    }

    @Test
    void memoryOfAnUnreleasedMessageIsNeverLentAgain() {
        TensorPool pool = new TensorPool(1L << 30);
        TensorPool.Lending first = pool.lend("test");
        MemorySegment a = first.allocate(MIB, 64);
        a.fill((byte) 7);
        MemoryLease held = first.lease();
        for (int i = 0; i < 5; i++) {
            TensorPool.Lending next = pool.lend("test");
            MemorySegment b = next.allocate(MIB, 64);
            assertThat(b.address()).isNotEqualTo(a.address());
            b.fill((byte) i);
            next.lease().release();
        }
        assertThat(a.get(ValueLayout.JAVA_BYTE, MIB - 1)).as("the held message's bytes").isEqualTo((byte) 7);
        held.release();
        TensorPool.Lending after = pool.lend("test");
        assertThat(after.allocate(MIB, 64).address()).as("released memory is reused, most recent first")
                .isEqualTo(a.address());
    }

    @Test
    void aReleasedMessageRefusesAccessInsteadOfReadingRecycledBytes() {
        TensorPool pool = new TensorPool(1L << 30);
        TensorPool.Lending lending = pool.lend("test");
        MemorySegment memory = lending.allocate(MIB, 64);
        Message message = Message.builder(MessageType.KV_CACHE)
                .tensor("k", Tensor.wrap(DType.U8, memory, MIB)).lease(lending.lease()).build();
        Tensor k = message.tensor("k");
        assertThat(k.data().byteSize()).isEqualTo(MIB);
        message.close();
        message.close(); // twice is fine
        assertThatThrownBy(k::data).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        assertThatThrownBy(k::toByteArray).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> message.data().asByteBuffer()).isInstanceOf(IllegalStateException.class);
        assertThat(k.toString()).contains("released");
    }

    @Test
    void aBuilderReusedAfterBuildBindsOnlyTheMessageThatHasTheLease() {
        // build() promises that later changes to the builder do not affect a built message; the converse holds too:
        // the binding of one message's tensors to its lease does not stay in the builder for the next message.
        Tensor plain = Tensor.zeros(DType.F32, 4);
        MemoryLease lease = MemoryLease.of(() -> { }, "test");
        Message.Builder builder = Message.builder(MessageType.HIDDEN_STATE).tensor("x", plain).lease(lease);
        Message leased = builder.build();
        Message unleased = builder.lease(null).tensor("y", plain).build();
        assertThat(leased.isPooled()).isTrue();
        assertThat(unleased.isPooled()).isFalse();
        leased.close();
        assertThatThrownBy(() -> leased.tensor("x").data()).isInstanceOf(IllegalStateException.class);
        assertThat(unleased.tensor("x").data().byteSize()).as("not bound to the other message's lease").isEqualTo(16);
        assertThat(unleased.tensor("y").data().byteSize()).isEqualTo(16);
    }

    @Test
    void idleMemoryIsCapped() {
        TensorPool pool = new TensorPool(3 * MIB);
        MemoryLease[] leases = new MemoryLease[5];
        for (int i = 0; i < leases.length; i++) {
            TensorPool.Lending lending = pool.lend("test");
            lending.allocate(MIB, 64);
            leases[i] = lending.lease();
        }
        for (MemoryLease lease : leases) {
            lease.release();
        }
        assertThat(pool.idleBytes()).isEqualTo(3 * MIB);
    }

    @Test
    void smallTensorsLiveOnTheHeapAndTheirArraysAreReusedOnlyAfterTheirMessageIsClosed() throws Exception {
        TensorPool pool = new TensorPool(MIB);
        TensorPool.Lending lending = pool.lend("test");
        MemorySegment small = lending.allocate(8192, 64);
        assertThat(small.isNative()).isFalse();
        assertThat(small.heapBase().orElseThrow()).isInstanceOf(byte[].class);
        small.fill((byte) 7);
        Message held = Message.builder(MessageType.HIDDEN_STATE).tensor("h", Tensor.wrap(DType.U8, small, 8192))
                .lease(lending.lease()).build();
        assertThat(held.isPooled()).isTrue();
        Tensor h = held.tensor("h");

        // While the message is open, its array is never lent again: other messages of the same size get others.
        for (int i = 0; i < 20; i++) {
            TensorPool.Lending next = pool.lend("test");
            MemorySegment other = next.allocate(8192, 64);
            assertThat(other.heapBase().orElseThrow()).isNotSameAs(small.heapBase().orElseThrow());
            other.fill((byte) i);
            next.lease().release();
        }
        assertThat(h.data().get(ValueLayout.JAVA_BYTE, 8191)).as("the open message's bytes").isEqualTo((byte) 7);

        // Closed, it refuses access, and its array serves the next message of that size on this thread.
        held.close();
        assertThatThrownBy(h::data).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        boolean reused = false;
        for (int i = 0; i < 9 && !reused; i++) { // at most one pass over the thread's cache
            TensorPool.Lending again = pool.lend("test");
            reused = again.allocate(8192, 64).heapBase().orElseThrow() == small.heapBase().orElseThrow();
        }
        assertThat(reused).as("the closed message's array is reused").isTrue();

        // A virtual thread neither keeps nor takes cached arrays: nothing outlives the message there.
        java.util.concurrent.atomic.AtomicReference<Object> arrayOnVirtual = new java.util.concurrent.atomic.AtomicReference<>();
        Thread.ofVirtual().start(() -> {
            TensorPool.Lending onVirtual = pool.lend("test");
            arrayOnVirtual.set(onVirtual.allocate(8192, 64).heapBase().orElseThrow());
            onVirtual.lease().release();
        }).join();
        assertThat(arrayOnVirtual.get()).isInstanceOf(byte[].class).isNotSameAs(small.heapBase().orElseThrow());
    }

    @Test
    void chunksOfMessagesDroppedWithoutCloseAreCollectedBeforeTheyPileUp() throws Exception {
        TensorPool pool = new TensorPool(64 * MIB, 8 * MIB);
        for (int i = 0; i < 64; i++) {
            TensorPool.Lending lending = pool.lend("test");
            lending.allocate(MIB, 64).fill((byte) i);
            lending.lease(); // and dropped: never released
        }
        assertThat(pool.collectionsRequested()).as("collections asked for").isPositive();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (pool.lentBytes() > 16 * MIB && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(20);
        }
        assertThat(pool.lentBytes()).as("bytes still lent to dropped messages").isLessThanOrEqualTo(16 * MIB);
    }

    @Test
    void messagesHeldOnPurposeMakeCollectionsRarer() {
        TensorPool pool = new TensorPool(64 * MIB, 8 * MIB);
        List<MemoryLease> held = new ArrayList<>();
        for (int i = 0; i < 128; i++) {
            TensorPool.Lending lending = pool.lend("test");
            lending.allocate(MIB, 64);
            held.add(lending.lease());
        }
        // Past 8 MiB every 4 MiB would be 30 collections; each one that frees nothing doubles the interval.
        assertThat(pool.collectionsRequested()).isBetween(1L, 6L);
        held.forEach(MemoryLease::release);
        assertThat(pool.lentBytes()).isZero();
    }
}
