package netutils.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.reflect.Method;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;
import netutils.api.Message;
import netutils.api.ProtocolException;
import netutils.api.spi.Envelope;
import netutils.api.spi.EnvelopeSchema;
import netutils.api.spi.Serializer;
import netutils.api.wire.Frames;
import netutils.api.wire.Serializers;

/**
 * Property-based fuzzing of everything that parses bytes from a peer: the frame decoder
 * ({@link Frames#fromRawMessage}) and the envelope reader of every serializer (json, msgpack, kryo and the
 * example's cbor). For arbitrary bytes, for hand-built hostile envelopes (duplicate keys, lying lengths, nesting
 * past the limit, numbers over 64 bits, wrong kinds) and for mutations of valid frames and envelopes, each call
 * must return or throw {@link ProtocolException} — never another exception type, never take longer than
 * {@link #DEADLINE_SECONDS}, and never allocate more heap or direct memory than {@link #allowance} grants an
 * input of its size (a reader that believes a declared length allocates far more than that).
 *
 * <p>Named {@code ...Test} so that Surefire's default includes pick it up; jqwik, not Jupiter, runs it.
 * Seeds are random on each run; jqwik prints the seed and the failing input, and replays failures first on
 * the next run (its database is under {@code target/}).
 */
class DecoderFuzzTest {
    /** A decode that takes longer than this is treated as a hang. The slowest seen here take milliseconds. */
    static final long DEADLINE_SECONDS = 5;
    private static final List<String> SERIALIZERS = List.of("json", "msgpack", "kryo", "cbor");

    /** Valid frames and envelopes of every serializer: the seeds of the mutations. */
    private static final List<byte[]> FRAMES = new ArrayList<>();
    private static final List<byte[]> ENVELOPES = new ArrayList<>();

    private static ExecutorService worker;
    private static final AtomicLong CASES = new AtomicLong();
    private static final AtomicLong REFUSED = new AtomicLong();
    private static final AtomicLong WORST_ALLOCATION = new AtomicLong();
    private static final AtomicLong WORST_INPUT = new AtomicLong();
    private static long startNanos;

    @BeforeContainer
    static void setUp() throws Exception {
        worker = Executors.newSingleThreadExecutor(DecoderFuzzTest::daemon);
        for (String name : SERIALIZERS) {
            Serializer serializer = Serializers.byName(name);
            for (Message message : InteropValues.expectedMessages().values().stream().limit(24).toList()) {
                byte[] frame = Frames.toRawMessage(message, serializer);
                FRAMES.add(frame);
                int envelopeLength = ByteBuffer.wrap(frame, Frames.HEADER_LENGTH, 4).order(ByteOrder.BIG_ENDIAN).getInt();
                ENVELOPES.add(java.util.Arrays.copyOfRange(frame, Frames.HEADER_LENGTH + 4,
                        Frames.HEADER_LENGTH + 4 + envelopeLength));
            }
        }
        // Warm up on the worker thread, so class loading and Jackson's buffers are not charged to the first case.
        for (byte[] frame : FRAMES) {
            guarded(null, frame, () -> Frames.fromRawMessage(frame));
        }
        startNanos = System.nanoTime();
    }

    private static Thread daemon(Runnable runnable) {
        Thread thread = new Thread(runnable, "fuzz-decoder");
        thread.setDaemon(true); // a real hang must not keep the test JVM alive
        return thread;
    }

    @AfterContainer
    static void tearDown() {
        worker.shutdownNow();
        System.out.printf("decoder fuzzing: %,d cases in %.1f s, %,d refused with ProtocolException; largest "
                + "allocation %,d bytes for a %,d-byte input%n", CASES.get(), (System.nanoTime() - startNanos) / 1e9,
                REFUSED.get(), WORST_ALLOCATION.get(), WORST_INPUT.get());
    }

    // ------------------------------------------------------------------------------------------ frames

    @Property(tries = 3000)
    void arbitraryBytesAreNoFrame(@ForAll("arbitraryFrames") byte[] frame) throws Exception {
        guarded("frame", frame, () -> Frames.fromRawMessage(frame));
    }

    @Property(tries = 4000)
    void mutatedFramesDecodeOrAreRefused(@ForAll("mutatedFrames") byte[] frame) throws Exception {
        guarded("frame", frame, () -> Frames.fromRawMessage(frame));
    }

    /** Random bytes behind a header that is right more often than not, so the body's checks are reached. */
    @Provide
    Arbitrary<byte[]> arbitraryFrames() {
        return Arbitraries.randomValue(random -> {
            byte[] body = new byte[random.nextInt(random.nextInt(8) == 0 ? 4096 : 256)];
            random.nextBytes(body);
            ByteBuffer frame = ByteBuffer.allocate(Frames.HEADER_LENGTH + body.length + 4);
            frame.putShort((short) (random.nextInt(16) == 0 ? random.nextInt() : Frames.MAGIC));
            frame.put((byte) (random.nextInt(16) == 0 ? random.nextInt() : Frames.VERSION));
            int[] ids = {1, 2, 3, 200, 0, 4, 127, 128, 255};
            frame.put((byte) ids[random.nextInt(ids.length)]);
            frame.put((byte) (random.nextInt(4) == 0 ? random.nextInt(256) : random.nextInt(2)));
            frame.put(new byte[3]);
            long[] lengths = {body.length, body.length, body.length - 1, body.length + 1, 0, 0xFFFF_FFFFL,
                0x7FFF_FFFFL, 1L << 30, random.nextInt(1 << 20)};
            frame.putInt((int) lengths[random.nextInt(lengths.length)]);
            if (body.length >= 4 && random.nextBoolean()) {
                // An envelope length that is small enough to be believed, or one that claims the earth.
                int[] envelopeLengths = {random.nextInt(body.length), body.length - 4, body.length, -1, 1 << 24};
                ByteBuffer.wrap(body).putInt(envelopeLengths[random.nextInt(envelopeLengths.length)]);
            }
            frame.put(body);
            frame.putInt(random.nextInt());
            return java.util.Arrays.copyOf(frame.array(), frame.capacity() - (random.nextBoolean() ? 4 : 0));
        });
    }

    @Provide
    Arbitrary<byte[]> mutatedFrames() {
        return Arbitraries.randomValue(random -> HostileBytes.mutate(FRAMES.get(random.nextInt(FRAMES.size())),
                random));
    }

    // ------------------------------------------------------------------------------------------ envelopes

    @Property(tries = 1500)
    void arbitraryBytesAreNoEnvelope(@ForAll("serializers") String name,
            @ForAll("arbitraryEnvelopes") byte[] envelope) throws Exception {
        readEnvelope(name, envelope);
    }

    @Property(tries = 4000)
    void hostileEnvelopesAreReadOrRefused(@ForAll("hostileEnvelopes") Hostile hostile) throws Exception {
        readEnvelope(hostile.serializer(), hostile.bytes());
    }

    @Property(tries = 4000)
    void mutatedEnvelopesAreReadOrRefused(@ForAll("serializers") String name, @ForAll("seeds") long seed)
            throws Exception {
        Random random = new Random(seed);
        Serializer serializer = Serializers.byName(name);
        int first = SERIALIZERS.indexOf(name) * ENVELOPES.size() / SERIALIZERS.size();
        byte[] valid = ENVELOPES.get(first + random.nextInt(ENVELOPES.size() / SERIALIZERS.size()));
        assertThat(serializer.readEnvelope(valid)).as("the unmutated envelope is valid").isNotNull();
        readEnvelope(name, HostileBytes.mutate(valid, random));
    }

    /** A hostile envelope written in the format of the serializer that reads it. */
    record Hostile(String serializer, byte[] bytes) {
        @Override
        public String toString() {
            return serializer + " " + java.util.HexFormat.of().formatHex(bytes);
        }
    }

    @Provide
    Arbitrary<String> serializers() {
        return Arbitraries.of(SERIALIZERS);
    }

    @Provide
    Arbitrary<Long> seeds() {
        return Arbitraries.longs();
    }

    @Provide
    Arbitrary<byte[]> arbitraryEnvelopes() {
        return Arbitraries.bytes().array(byte[].class).ofMaxSize(512);
    }

    @Provide
    Arbitrary<Hostile> hostileEnvelopes() {
        return Arbitraries.randomValue(random -> {
            Object tree = HostileBytes.envelopeTree(random);
            return switch (random.nextInt(3)) {
                case 0 -> new Hostile("json", HostileBytes.json(tree));
                case 1 -> new Hostile("msgpack", HostileBytes.msgpack(tree));
                default -> new Hostile("cbor", HostileBytes.cbor(tree));
            };
        });
    }

    // ------------------------------------------------------------------------------------------ the rules

    private static void readEnvelope(String name, byte[] envelope) throws Exception {
        Serializer serializer = Serializers.byName(name);
        guarded(name + " envelope", envelope, () -> {
            Envelope read;
            try {
                read = serializer.readEnvelope(envelope);
            } catch (ProtocolException e) {
                assertThat(e.kind()).as("the kind the Serializer contract names for bad envelopes: %s", e)
                        .isEqualTo(ProtocolException.Kind.MALFORMED_ENVELOPE);
                throw e;
            }
            // What the frame decoder does next with an envelope that parsed: check its tensor table.
            EnvelopeSchema.checkTable(read.tensors(), 1 << 20);
            return null;
        });
    }

    /**
     * Runs {@code decode} on the worker thread; returns the {@link ProtocolException} it threw, or null. Fails on
     * any other throwable, on a decode slower than {@link #DEADLINE_SECONDS}, and on one that allocates more than
     * {@link #allowance}. {@code what} is null for the warm-up, which is not checked.
     */
    private static ProtocolException guarded(String what, byte[] input, Callable<?> decode) throws Exception {
        long directBefore = Memory.directUsed();
        Future<long[]> outcome = worker.submit(() -> {
            long before = Memory.threadAllocated();
            Throwable thrown = null;
            try {
                decode.call();
            } catch (Throwable t) {
                thrown = t;
            }
            long allocated = Memory.threadAllocated() - before;
            if (thrown instanceof ProtocolException protocol) {
                assertThat(protocol.getMessage()).as("a refusal says what was wrong").isNotBlank();
                throw new Refused(protocol, allocated);
            }
            if (thrown != null) {
                throw new AssertionError(what + " of " + input.length + " bytes raised " + thrown
                        + " instead of a ProtocolException; input " + hex(input), thrown);
            }
            return new long[] {allocated};
        });
        long allocated;
        ProtocolException refused = null;
        try {
            allocated = outcome.get(DEADLINE_SECONDS, TimeUnit.SECONDS)[0];
        } catch (TimeoutException e) {
            outcome.cancel(true);
            worker.shutdownNow();
            worker = Executors.newSingleThreadExecutor(DecoderFuzzTest::daemon); // the stuck one is left behind
            throw new AssertionError(what + " of " + input.length + " bytes did not finish within "
                    + DEADLINE_SECONDS + " s: a hang; input " + hex(input));
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof Refused r) {
                refused = r.exception;
                allocated = r.allocated;
            } else if (e.getCause() instanceof AssertionError error) {
                throw error;
            } else {
                throw e;
            }
        }
        if (what == null) {
            return refused; // warm-up: class loading and first-use buffers are not the decoder's doing
        }
        long direct = Math.max(0, Memory.directUsed() - directBefore);
        assertThat(allocated + direct).as("%s of %,d bytes allocated %,d bytes of heap and %,d of direct memory; "
                + "input %s", what, input.length, allocated, direct, hex(input)).isLessThanOrEqualTo(allowance(input.length));
        CASES.incrementAndGet();
        if (refused != null) {
            REFUSED.incrementAndGet();
        }
        if (allocated + direct > WORST_ALLOCATION.get()) {
            WORST_ALLOCATION.set(allocated + direct);
            WORST_INPUT.set(input.length);
        }
        return refused;
    }

    /** The first 256 bytes of a failing input in hex, to reproduce it from the report. */
    static String hex(byte[] input) {
        return java.util.HexFormat.of().formatHex(input, 0, Math.min(input.length, 256))
                + (input.length > 256 ? "..." : "");
    }

    /**
     * What decoding an input of {@code inputLength} bytes may allocate: a fixed 2 MiB (parser buffers, exception
     * messages, a tree of plain values) plus 256 bytes per input byte (a parsed tree of boxed values and maps costs
     * tens of bytes per input byte). A decoder that trusted a declared length (up to 4 GiB here) breaks it.
     */
    static long allowance(long inputLength) {
        return (2L << 20) + 256 * inputLength;
    }

    /** A {@link ProtocolException} carried out of the worker with what its decode allocated. */
    private static final class Refused extends Exception {
        private static final long serialVersionUID = 1L;
        final transient ProtocolException exception;
        final long allocated;

        Refused(ProtocolException exception, long allocated) {
            super(null, null, false, false);
            this.exception = exception;
            this.allocated = allocated;
        }
    }

    /**
     * The JVM's memory counters, through reflection: the examples module does not read {@code java.management},
     * and core reflection does not need it to.
     */
    static final class Memory {
        private static final Object THREADS;
        private static final Method THREAD_ALLOCATED;
        private static final Object DIRECT_POOL;
        private static final Method POOL_USED;

        static {
            try {
                Class<?> factory = Class.forName("java.lang.management.ManagementFactory");
                THREADS = factory.getMethod("getThreadMXBean").invoke(null);
                THREAD_ALLOCATED = Class.forName("com.sun.management.ThreadMXBean")
                        .getMethod("getCurrentThreadAllocatedBytes");
                Class<?> poolClass = Class.forName("java.lang.management.BufferPoolMXBean");
                Object direct = null;
                for (Object pool : (List<?>) factory.getMethod("getPlatformMXBeans", Class.class)
                        .invoke(null, poolClass)) {
                    if ("direct".equals(poolClass.getMethod("getName").invoke(pool))) {
                        direct = pool;
                    }
                }
                DIRECT_POOL = direct;
                POOL_USED = poolClass.getMethod("getMemoryUsed");
            } catch (ReflectiveOperationException e) {
                throw new ExceptionInInitializerError(e);
            }
        }

        static long threadAllocated() throws ReflectiveOperationException {
            return (long) THREAD_ALLOCATED.invoke(THREADS);
        }

        static long directUsed() throws ReflectiveOperationException {
            return (long) POOL_USED.invoke(DIRECT_POOL);
        }
    }
}
