package netutils.api.wire;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.DeadlineExceededException;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.RemoteErrorException;
import netutils.api.Tensor;

/**
 * The calls, the keepalive and the message routing that every transport shares; a transport supplies only
 * {@link #writeMessage}, {@link #readMessage} and {@link #closeTransport}.
 *
 * <p><b>Who reads.</b> One thread at a time reads from the transport (the reader lock). A thread that waits for
 * something (its call's reply, or the next message for {@code receive}) reads itself when nobody else does, and
 * hands every message it reads to whoever it belongs to: a reply completes its call, anything else waits for
 * {@code receive}. So a lone caller reads its own reply with no thread switch (the latency of a plain socket),
 * while many callers share one reader at a time. Asynchronous calls with no thread waiting get a reader thread
 * of their own for as long as they are outstanding.
 *
 * <p><b>Keepalive.</b> When nothing has arrived for the keepalive interval, a {@code _ping} control message is
 * sent; the peer's transport answers {@code _pong} (see {@code docs/PROTOCOL.md}), and any frame counts as a
 * sign of life. If nothing arrives within the keepalive timeout after a ping, the peer is declared gone: the
 * connection closes and outstanding calls fail saying so. A peer that closes or resets the connection is
 * noticed at once by whoever is reading, and otherwise at the next ping.
 */
public abstract class AbstractConnection implements Connection {
    /** The control message a transport sends to check that its peer is alive. */
    public static final MessageType PING = MessageType.of("_ping");
    /** The answer to {@link #PING}. */
    public static final MessageType PONG = MessageType.of("_pong");

    /**
     * Deadlines of asynchronous calls and the keepalive ticks. A cancelled deadline (its call was answered) is
     * removed at once: left in the queue until it would have fired, 30,000 answered calls a second with the
     * default 2-minute deadline would keep millions of dead timers.
     */
    private static final ScheduledExecutorService TIMERS = timers();

    private static ScheduledExecutorService timers() {
        java.util.concurrent.ScheduledThreadPoolExecutor timers = new java.util.concurrent.ScheduledThreadPoolExecutor(1,
                runnable -> {
                    Thread thread = new Thread(runnable, "netutils-call-timer");
                    thread.setDaemon(true);
                    return thread;
                });
        timers.setRemoveOnCancelPolicy(true);
        return timers;
    }
    /** Ids of calls that ended without a reply, remembered to tell a late reply from an unsolicited message. */
    private static final int REMEMBERED_EXPIRED_IDS = 4096;
    private static final AtomicLong CONNECTION_IDS = new AtomicLong();
    /** When the owner has read nothing for this long, a reader thread answers the peer's pings meanwhile. */
    private static final long IDLE_READER_AFTER_NANOS = TimeUnit.SECONDS.toNanos(1);

    private final String peer;
    private final Duration defaultDeadline;
    private final long keepaliveIntervalNanos;
    private final long keepaliveTimeoutNanos;
    private final String idPrefix = "c" + Long.toString(CONNECTION_IDS.incrementAndGet(), 36) + "-";
    private final AtomicLong nextCallId = new AtomicLong();

    private final ReentrantLock readerLock = new ReentrantLock();
    private final ReentrantLock stateLock = new ReentrantLock();
    /** Signalled (under stateLock) when a call completes, a message is queued, or the reader lock is released. */
    private final Condition changed = stateLock.newCondition();
    private final ArrayDeque<Message> inbox = new ArrayDeque<>(); // guarded by stateLock
    private final Map<String, Call> calls = new ConcurrentHashMap<>();
    private final Set<String> expired = Collections.newSetFromMap(Collections.synchronizedMap(
            new LinkedHashMap<>(64, 0.75f, false) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<String, Boolean> eldest) {
                    return size() > REMEMBERED_EXPIRED_IDS;
                }
            }));
    private final AtomicLong lateReplies = new AtomicLong();
    /** Calls in the order their requests went out, while the peer has never set {@code reply_to}. */
    private final ArrayDeque<Call> sendOrder = new ArrayDeque<>(); // guarded by itself
    /**
     * Messages sent with {@link #send} after the newest call in {@link #sendOrder} (all of them when there is none)
     * whose answers a peer that answers in order still owes; guarded by {@link #sendOrder}.
     */
    private long plainSendsAfterLastCall;
    /** Makes taking a place in the order and writing one step, for a peer that answers in order (sendInOrder). */
    private final ReentrantLock orderedSending = new ReentrantLock();
    private volatile boolean peerCorrelates;
    private final AtomicBoolean pumping = new AtomicBoolean();
    private final AtomicBoolean closed = new AtomicBoolean();
    private volatile IOException failure;
    private volatile long lastReceivedNanos = System.nanoTime();
    private volatile long pingSentNanos;
    /** When a reader last returned: long ago while the owner is busy elsewhere (a handler computing). */
    private volatile long lastReadNanos = System.nanoTime();
    /** Threads waiting for the reader lock to read themselves; an idle reader makes way for them. */
    private final java.util.concurrent.atomic.AtomicInteger waitingReaders = new java.util.concurrent.atomic.AtomicInteger();
    private final ScheduledFuture<?> keepalive;
    /**
     * Whether the owner's threads are virtual. Where the transport asks ({@link #helpersFollowOwner}), helper
     * threads are of the same kind: a virtual thread's I/O turns a blocking socket non-blocking for good, after
     * which a platform thread's every blocking read costs three system calls instead of one.
     */
    private volatile boolean virtualOwner = true;

    /**
     * Sets up the shared state of a connection over an open transport and, unless it is turned off, starts its
     * keepalive.
     *
     * @param peer who the peer is, for messages
     * @param defaultDeadline the deadline of calls made without one
     * @param keepaliveInterval silence after which a ping is sent; {@link Duration#ZERO} turns keepalive off
     * @param keepaliveTimeout how long to wait for any frame after a ping before declaring the peer gone
     * @throws IllegalArgumentException if {@code defaultDeadline} is not positive
     */
    protected AbstractConnection(String peer, Duration defaultDeadline, Duration keepaliveInterval,
            Duration keepaliveTimeout) {
        this.peer = Objects.requireNonNull(peer, "peer");
        this.defaultDeadline = requirePositive(defaultDeadline, "defaultDeadline");
        this.keepaliveIntervalNanos = keepaliveInterval.toNanos();
        this.keepaliveTimeoutNanos = keepaliveTimeout.toNanos();
        // The tick also runs without keepalive: a busy owner's peer still gets its pings answered.
        long tick = IDLE_READER_AFTER_NANOS / 4;
        if (keepaliveIntervalNanos > 0) {
            tick = Math.min(tick, Math.max(TimeUnit.MILLISECONDS.toNanos(5),
                    Math.min(keepaliveIntervalNanos, Math.max(1, keepaliveTimeoutNanos)) / 4));
        }
        keepalive = TIMERS.scheduleAtFixedRate(this::keepaliveTick, tick, tick, TimeUnit.NANOSECONDS);
    }

    private static Duration requirePositive(Duration duration, String what) {
        if (duration.isNegative() || duration.isZero()) {
            throw new IllegalArgumentException(what + " must be positive, got " + duration);
        }
        return duration;
    }

    // ---------------------------------------------------------------- what a transport provides

    /**
     * Writes one message as one frame. May be called from several threads; the transport keeps frames whole.
     *
     * @param message the message to write, never {@code null}
     * @throws IOException if writing fails (the connection is then closed by this class)
     */
    protected abstract void writeMessage(Message message) throws IOException;

    /**
     * Reads the next message. Called by one thread at a time.
     *
     * @param waitNanos how long to wait for a frame to begin; once it has begun, the transport's own read
     *     timeout applies
     * @param tensorMemory where the tensors go, {@code null} for the default (pooled) memory
     * @return the message, or {@code null} if no frame began in time
     * @throws ConnectionClosedException if the peer closed the connection between frames
     * @throws IOException if reading fails or the frame is malformed (the transport tells the peer first)
     */
    protected abstract Message readMessage(long waitNanos, SegmentAllocator tensorMemory) throws IOException;

    /**
     * Whether a frame is being received or sent right now. A large frame can take longer than the keepalive
     * timeout, and a peer busy reading ours cannot answer a ping; while bytes move, the transport's own read and
     * write timeouts watch for stalls, so keepalive waits.
     *
     * @return true while a frame is in transit in either direction
     */
    protected boolean transferring() {
        return false;
    }

    /**
     * Whether helper threads (a ping, a reader while the owner is busy or for asynchronous calls) must be platform
     * threads when the owner's are: true for a transport whose blocking reads a virtual thread would slow down for
     * good (its I/O turns a blocking socket non-blocking). Otherwise helpers are virtual threads, which start in
     * microseconds where a platform thread takes tens.
     *
     * @return whether helpers follow the owner's kind of thread; false by default
     */
    protected boolean helpersFollowOwner() {
        return false;
    }

    /**
     * Called on the connection's timer, about four times a second or more often with a short keepalive: a
     * transport checks its own timeouts here (for instance an idle timeout that ends a blocked wait).
     *
     * @param now {@link System#nanoTime()} at the tick
     */
    protected void onTimerTick(long now) {
    }

    /**
     * Closes the transport; called once.
     *
     * @throws IOException if closing fails; the connection counts as closed all the same
     */
    protected abstract void closeTransport() throws IOException;

    // ---------------------------------------------------------------- messages

    @Override
    public void send(Message message) throws IOException {
        Objects.requireNonNull(message, "message");
        ensureOpen();
        if (peerCorrelates) {
            sendControl(message);
        } else {
            // An in-order peer (the original module) answers this message too, before it answers any call made
            // after it: that answer is for receive(), not for the next call.
            sendInOrder(message, null);
        }
    }

    /**
     * Sends to a peer that answers in order, taking the message's place in that order first: {@code call}'s place
     * in {@link #sendOrder}, or, for a plain send ({@code null}), one more answer owed before the next call. The
     * place is taken before the write (a reader may find the answer at once) and one sender at a time, so places
     * follow the order of writing. Routing takes only sendOrder's monitor, never this lock, so a long write never
     * stops a reader from reading (which could deadlock two peers writing large messages to each other); a reader
     * takes this lock only to tell the peer why it drops the connection (TcpConnection.tellPeer), when reading has
     * ended anyway. A message refused before any byte went (too large, say) gives its place back.
     */
    private void sendInOrder(Message message, Call call) throws IOException {
        orderedSending.lock();
        try {
            synchronized (sendOrder) {
                if (call == null) {
                    plainSendsAfterLastCall++;
                } else {
                    call.plainSendsBefore = plainSendsAfterLastCall;
                    plainSendsAfterLastCall = 0;
                    sendOrder.addLast(call);
                }
            }
            try {
                sendControl(message);
            } catch (IOException | RuntimeException e) {
                synchronized (sendOrder) {
                    if (call == null) {
                        plainSendsAfterLastCall = Math.max(0, plainSendsAfterLastCall - 1);
                    } else if (sendOrder.peekLast() == call) {
                        sendOrder.pollLast();
                        plainSendsAfterLastCall += call.plainSendsBefore;
                    }
                }
                throw e;
            }
        } finally {
            orderedSending.unlock();
        }
    }

    /** Sends without counting an answer that an in-order peer would owe: pings, pongs, and calls (counted apart). */
    private void sendControl(Message message) throws IOException {
        try {
            writeMessage(message);
        } catch (IOException e) {
            RemoteErrorException lastWord = closed.get() ? null : peersLastWord();
            if (lastWord == null && failure instanceof RemoteErrorException readByAnother) {
                // another thread was reading and found the peer's last word first
                lastWord = new RemoteErrorException(readByAnother.code(), readByAnother.detail());
            }
            if (lastWord != null) {
                lastWord.addSuppressed(e);
                throw fail(lastWord);
            }
            throw fail(e);
        }
    }

    private static final long LAST_WORD_WAIT_NANOS = TimeUnit.MILLISECONDS.toNanos(1);

    /**
     * After a write that failed: the exception of the {@code error} message the peer sent before it closed, or
     * {@code null}. A receiver refuses a frame over its limit at the header and closes while the body is still
     * being written; its reason is already here, ahead of the reset (the kernel keeps what arrived before it), and
     * says more than "connection reset". Messages read on the way go where they belong. Waits at most a millisecond
     * for bytes; when another thread is reading, waits briefly for it, since it may be about to read that very error.
     */
    private RemoteErrorException peersLastWord() {
        if (readerLock.isHeldByCurrentThread()) {
            return null; // a reader answering a ping: it goes on reading by itself
        }
        try {
            if (!readerLock.tryLock(100, TimeUnit.MILLISECONDS)) {
                return null;
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
        try {
            for (int frames = 0; frames < 8 && !closed.get(); frames++) {
                // a millisecond, not zero: TLS reads the socket only when it may wait, and the bytes are here anyway
                Message message = readMessage(LAST_WORD_WAIT_NANOS, null);
                if (message == null) {
                    return null;
                }
                if (message.type().equals(MessageType.ERROR) && message.replyTo().isEmpty()) {
                    return remoteError(message);
                }
                if (message.type().equals(PING) || message.type().equals(PONG)) {
                    message.close();
                } else {
                    queue(route(message, null));
                }
            }
            return null;
        } catch (IOException | RuntimeException e) {
            return null; // nothing more to learn: the write's own failure is the answer
        } finally {
            readerLock.unlock();
        }
    }

    @Override
    public Message receive() throws IOException {
        return awaitMessage(Long.MAX_VALUE, null).orElseThrow();
    }

    @Override
    public Message receive(SegmentAllocator tensorMemory) throws IOException {
        Objects.requireNonNull(tensorMemory, "tensorMemory");
        return awaitMessage(Long.MAX_VALUE, tensorMemory).orElseThrow();
    }

    @Override
    public Optional<Message> receive(Duration timeout) throws IOException {
        return awaitMessage(System.nanoTime() + Math.max(1, timeout.toNanos()), null);
    }

    /** Waits until a message for {@code receive} is there, reading when nobody else does. */
    private Optional<Message> awaitMessage(long deadline, SegmentAllocator tensorMemory) throws IOException {
        noteOwnerThread();
        while (true) {
            Message queued;
            stateLock.lock();
            try {
                queued = inbox.pollFirst();
            } finally {
                stateLock.unlock();
            }
            if (queued != null) {
                return Optional.of(intoCallerMemory(forReceive(queued), tensorMemory));
            }
            ensureOpen();
            long remaining = deadline == Long.MAX_VALUE ? Long.MAX_VALUE : deadline - System.nanoTime();
            if (remaining <= 0) {
                return Optional.empty();
            }
            if (readerLock.tryLock()) {
                Message unmatched;
                try {
                    Message read = readOne(remaining, tensorMemory);
                    unmatched = read == null ? null : route(read, tensorMemory);
                } finally {
                    releaseReader();
                }
                if (unmatched != null) {
                    return Optional.of(forReceive(unmatched));
                }
            } else {
                awaitChange(remaining, () -> !hasInbox());
            }
        }
    }

    /**
     * A message for {@code receive(tensorMemory)} that another thread read first (the background reader that
     * answers pings while the owner is busy, or a caller waiting for its reply) lies in pooled memory: its tensors
     * are copied into {@code tensorMemory}, as {@code receive(allocator)} promises (a caller may read its buffer
     * rather than the message), and the pooled memory goes back at once.
     */
    private Message intoCallerMemory(Message message, SegmentAllocator tensorMemory) throws IOException {
        if (tensorMemory == null || message.tensors().isEmpty()) {
            return message;
        }
        try (message) {
            return withTensors(message, (name, tensor) -> {
                MemorySegment data;
                try {
                    data = FrameDecoder.allocateTensor(tensorMemory, tensor.byteSize(), name);
                } catch (IOException e) {
                    throw fail(e); // as when the frame is read into it: the connection ends
                }
                MemorySegment.copy(tensor.data(), 0, data, 0, tensor.byteSize());
                return Tensor.wrap(tensor.dtype(), data, tensor.shape());
            });
        }
    }

    /** An error message that answers no outstanding call is raised to the receiver. */
    private static Message forReceive(Message message) throws RemoteErrorException {
        if (message.type().equals(MessageType.ERROR)) {
            throw remoteError(message);
        }
        return message;
    }

    // ---------------------------------------------------------------- calls

    @Override
    public Message request(Message request) throws IOException {
        return request(request, defaultDeadline);
    }

    @Override
    public Message request(Message request, Duration deadline) throws IOException {
        requirePositive(deadline, "deadline");
        long deadlineNanos = System.nanoTime() + deadline.toNanos();
        noteOwnerThread();
        Call call = start(request, deadline);
        while (true) {
            if (call.future.isDone()) {
                return result(call);
            }
            long remaining = deadlineNanos - System.nanoTime();
            if (remaining <= 0) {
                expire(call);
                return result(call);
            }
            if (readerLock.tryLock()) {
                try {
                    if (!call.future.isDone()) {
                        Message read = readOne(remaining, null);
                        if (read != null) {
                            queue(route(read, null));
                        }
                    }
                } catch (IOException e) {
                    if (!call.future.isDone()) {
                        throw e;
                    }
                } finally {
                    releaseReader();
                }
            } else {
                awaitChange(remaining, () -> !call.future.isDone());
            }
        }
    }

    @Override
    public CompletableFuture<Message> requestAsync(Message request) throws IOException {
        return requestAsync(request, defaultDeadline);
    }

    @Override
    public CompletableFuture<Message> requestAsync(Message request, Duration deadline) throws IOException {
        requirePositive(deadline, "deadline");
        Call call = start(request, deadline);
        ScheduledFuture<?> timer = TIMERS.schedule(() -> expire(call), deadline.toNanos(), TimeUnit.NANOSECONDS);
        call.future.whenComplete((reply, error) -> {
            timer.cancel(false);
            if (error instanceof CancellationException) {
                expire(call);
            }
        });
        pumpIfNobodyReads();
        return call.future;
    }

    @Override
    public long lateReplies() {
        return lateReplies.get();
    }

    /** Registers the call before sending, so that even an instant reply finds it. */
    private Call start(Message request, Duration deadline) throws IOException {
        Objects.requireNonNull(request, "request");
        ensureOpen();
        String id = request.id().orElse(null);
        Message outgoing = request;
        if (id == null) {
            id = idPrefix + Long.toString(nextCallId.incrementAndGet(), 36);
            outgoing = request.toBuilder().id(id).build();
        }
        Call call = new Call(id, deadline);
        if (calls.putIfAbsent(id, call) != null) {
            throw new IllegalArgumentException("a call with id '" + id + "' is already outstanding on " + peer);
        }
        try {
            if (peerCorrelates) {
                sendControl(outgoing);
            } else {
                sendInOrder(outgoing, call); // the order of sending is the order an in-order peer answers in
            }
        } catch (IOException | RuntimeException e) {
            calls.remove(id);
            throw e;
        }
        return call;
    }

    private Message result(Call call) throws IOException {
        try {
            return call.future.get();
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException io) {
                // Rethrown on the caller's thread, so that its stack shows where the call was made.
                io.addSuppressed(new Exception("in the call to " + peer));
                throw io;
            }
            throw new IOException(cause);
        } catch (CancellationException e) {
            throw new ConnectionClosedException("call " + call.id + " to " + peer + " was cancelled");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            expire(call);
            java.io.InterruptedIOException interrupted = new java.io.InterruptedIOException(
                    "interrupted while waiting for the reply to " + call.id + " from " + peer);
            interrupted.initCause(e);
            throw interrupted;
        }
    }

    /** Ends a call without a reply; a reply that comes later is dropped and counted. */
    private void expire(Call call) {
        if (calls.remove(call.id, call)) {
            expired.add(call.id);
            call.future.completeExceptionally(new DeadlineExceededException(call.id, peer, call.deadline));
            signal();
        }
    }

    // ---------------------------------------------------------------- reading and routing

    /** Reads one message while holding the reader lock; handles control messages and liveness. */
    private Message readOne(long waitNanos, SegmentAllocator tensorMemory) throws IOException {
        Message message;
        long now;
        try {
            message = readMessage(waitNanos, tensorMemory);
        } catch (IOException e) {
            throw fail(e);
        } finally {
            lastReadNanos = now = System.nanoTime();
        }
        if (message == null) {
            return null;
        }
        lastReceivedNanos = now;
        pingSentNanos = 0; // any frame shows the peer is alive
        if (message.type().equals(PING)) {
            message.close(); // a ping carries nothing the answer needs; any tensors it brought go back at once
            try {
                sendControl(Message.builder(PONG).replyTo(message).build());
            } catch (IOException e) {
                throw fail(e);
            }
            return null;
        }
        if (message.type().equals(PONG)) {
            message.close();
            return null;
        }
        return message;
    }

    /**
     * Gives a message to whoever it belongs to.
     *
     * @param tensorMemory the memory it was read into, {@code null} for the default: a call gets a copy of a message
     *     read into a receiver's memory
     * @return the message if it is for {@code receive}, {@code null} if it went to a call or was dropped
     */
    private Message route(Message message, SegmentAllocator tensorMemory) throws IOException {
        String replyTo = message.replyTo().orElse(null);
        boolean isError = message.type().equals(MessageType.ERROR);
        if (replyTo == null && !isError && !peerCorrelates) {
            Call oldest = oldestSent();  // null also when this answers a plain send: then it is for receive()
            if (oldest != null) {
                if (calls.remove(oldest.id, oldest)) {
                    oldest.future.complete(forCall(message, tensorMemory));
                    signal();
                } else {
                    // The oldest call ended without its answer (deadline, interrupt, cancel), and an in-order
                    // peer still owes it: this is that late answer, not the next call's.
                    expired.remove(oldest.id);
                    lateReplies.incrementAndGet();
                    message.close();
                }
                return null;
            }
        }
        if (replyTo != null && !peerCorrelates) {
            peerCorrelates = true;
            synchronized (sendOrder) {
                sendOrder.clear();
                plainSendsAfterLastCall = 0;
            }
        }
        if (replyTo != null) {
            Call call = calls.remove(replyTo);
            if (call != null) {
                if (isError) {
                    call.future.completeExceptionally(remoteError(message));
                } else {
                    call.future.complete(forCall(message, tensorMemory));
                }
                signal();
                return null;
            }
            if (expired.remove(replyTo)) {
                lateReplies.incrementAndGet();
                message.close();
                return null;
            }
        }
        if (isError && replyTo == null) {
            // An error that answers nothing is the peer's last word before it closes the connection.
            throw fail(remoteError(message));
        }
        return message;
    }

    /**
     * The oldest call sent and not yet answered, whether or not it is still waiting, for a peer that never sets
     * {@code reply_to} (the original module, or an older netutils): such a peer answers in order, so its next
     * message answers the oldest call sent, even one whose caller stopped waiting. (Skipping such calls gave the
     * late answer to the next call: a silently wrong reply.) Such a peer answers every message, those sent with
     * {@link #send} too: while it still owes answers to plain sends made before the oldest call, the next message is
     * one of them, and this returns {@code null} (the message is for {@code receive}).
     */
    private Call oldestSent() {
        synchronized (sendOrder) {
            Call oldest = sendOrder.peekFirst();
            long owedBefore = oldest != null ? oldest.plainSendsBefore : plainSendsAfterLastCall;
            if (owedBefore > 0) {
                // The peer still owes answers to plain sends made before that call: this is one of them (answering a
                // send() with the next call's reply gave that call the wrong message, silently).
                if (oldest != null) {
                    oldest.plainSendsBefore--;
                } else {
                    plainSendsAfterLastCall--;
                }
                return null;
            }
            return sendOrder.pollFirst();
        }
    }

    /**
     * The exception that an {@code error} message stands for. The message itself is closed: its code and detail are
     * all that is kept, and tensors a peer attached to it would otherwise hold pooled memory until collected.
     */
    private static RemoteErrorException remoteError(Message message) {
        try {
            RemoteErrors.check(message);
            throw new IllegalStateException("not an error message: " + message);
        } catch (RemoteErrorException e) {
            return e;
        } finally {
            message.close();
        }
    }

    private void queue(Message message) {
        if (message == null) {
            return;
        }
        stateLock.lock();
        try {
            inbox.addLast(message);
            changed.signalAll();
        } finally {
            stateLock.unlock();
        }
    }

    private boolean hasInbox() {
        stateLock.lock();
        try {
            return !inbox.isEmpty();
        } finally {
            stateLock.unlock();
        }
    }

    private void releaseReader() {
        readerLock.unlock();
        signal();
        if (!calls.isEmpty()) {
            pumpIfNobodyReads(); // asynchronous calls may be left with nobody reading
        }
    }

    private void signal() {
        stateLock.lock();
        try {
            changed.signalAll();
        } finally {
            stateLock.unlock();
        }
    }

    /** Waits while {@code stillWaiting} holds and another thread is the reader, at most {@code nanos}. */
    private void awaitChange(long nanos, java.util.function.BooleanSupplier stillWaiting) throws IOException {
        waitingReaders.incrementAndGet();
        stateLock.lock();
        try {
            long remaining = nanos;
            while (stillWaiting.getAsBoolean() && readerLock.isLocked() && remaining > 0 && !closed.get()) {
                remaining = changed.awaitNanos(remaining);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted while waiting on " + peer);
        } finally {
            stateLock.unlock();
            waitingReaders.decrementAndGet();
        }
    }

    private void noteOwnerThread() {
        boolean virtual = Thread.currentThread().isVirtual();
        if (virtualOwner != virtual) {
            virtualOwner = virtual;
        }
    }

    private Thread.Builder helperThread(String name) {
        return (!virtualOwner && helpersFollowOwner() ? Thread.ofPlatform().daemon(true) : Thread.ofVirtual()).name(name);
    }

    /** Makes sure someone reads while asynchronous calls or a ping are outstanding. */
    private void pumpIfNobodyReads() {
        pump(false);
    }

    /**
     * Starts a reader thread if nobody reads. It reads while asynchronous calls or our ping are outstanding,
     * and, when {@code whileIdle}, also while the owner reads nothing (a handler busy for longer than the
     * keepalive interval): then the peer's pings are still answered. It stops as soon as a message waits for
     * the owner or a thread wants to read itself.
     */
    private void pump(boolean whileIdle) {
        if (readerLock.isLocked() || !pumping.compareAndSet(false, true)) {
            return;
        }
        helperThread("netutils-reader-" + peer).start(() -> {
            try {
                while (!closed.get() && (!calls.isEmpty() || pingSentNanos != 0
                        || (whileIdle && waitingReaders.get() == 0 && !hasInbox()))) {
                    if (readerLock.tryLock()) {
                        try {
                            Message read = readOne(TimeUnit.MILLISECONDS.toNanos(50), null);
                            if (read != null) {
                                queue(route(read, null));
                            }
                        } finally {
                            releaseReader();
                        }
                    } else {
                        awaitChange(TimeUnit.MILLISECONDS.toNanos(50), () -> true);
                    }
                }
            } catch (IOException e) {
                // fail() has already ended the connection and every call with this reason.
            } finally {
                pumping.set(false);
            }
            if (!closed.get() && !calls.isEmpty()) {
                pumpIfNobodyReads(); // a call started just as this reader was leaving
            }
        });
    }

    /**
     * The message as a call gets it: a message read into the memory of a thread in {@code receive(allocator)}
     * ({@code tensorMemory} not null) is copied, since that memory is the receiver's to reuse.
     */
    private static Message forCall(Message message, SegmentAllocator tensorMemory) {
        return tensorMemory == null ? message : copyToOwnMemory(message);
    }

    private static Message copyToOwnMemory(Message message) {
        return withTensors(message, (name, tensor) -> Tensor.copyOf(tensor.dtype(), tensor.data(), tensor.shape()));
    }

    /** What {@link #withTensors} puts in place of each tensor. */
    @FunctionalInterface
    private interface TensorReplacement<E extends Exception> {
        Tensor replace(String name, Tensor tensor) throws E;
    }

    /** {@code message} with each tensor replaced, in order; its type, id, reply_to and meta kept. */
    private static <E extends Exception> Message withTensors(Message message, TensorReplacement<E> replacement)
            throws E {
        Message.Builder copy = Message.builder(message.type()).id(message.id().orElse(null))
                .replyTo(message.replyTo().orElse(null));
        message.meta().forEach(copy::meta);
        for (Map.Entry<String, Tensor> named : message.tensors().entrySet()) {
            copy.tensor(named.getKey(), replacement.replace(named.getKey(), named.getValue()));
        }
        return copy.build();
    }

    // ---------------------------------------------------------------- liveness and closing

    private void keepaliveTick() {
        if (closed.get()) {
            return;
        }
        long now = System.nanoTime();
        onTimerTick(now);
        if (transferring()) {
            lastReceivedNanos = now; // bytes are moving: the peer is alive, the I/O timeouts watch the transfer
            pingSentNanos = 0;
            return;
        }
        if (!readerLock.isLocked() && now - lastReadNanos > IDLE_READER_AFTER_NANOS) {
            pump(true); // the owner has not read for a while (busy elsewhere): answer the peer's pings meanwhile
        }
        if (keepaliveIntervalNanos == 0) {
            return;
        }
        long sent = pingSentNanos;
        if (sent != 0) {
            if (now - sent > keepaliveTimeoutNanos && !hasInbox()) {
                fail(new ConnectionClosedException("peer " + peer + " did not answer a keepalive ping within "
                        + Duration.ofNanos(keepaliveTimeoutNanos) + " (after " + Duration.ofNanos(now - lastReceivedNanos)
                        + " of silence): it is gone or unreachable"));
            }
            return;
        }
        if (now - lastReceivedNanos >= keepaliveIntervalNanos) {
            pingSentNanos = now;
            // Not on the shared timer thread: a send may block for the write timeout when the peer does not read.
            helperThread("netutils-ping-" + peer).start(() -> {
                try {
                    sendControl(Message.builder(PING).id(idPrefix + "ping").build());
                    pumpIfNobodyReads();
                } catch (IOException | RuntimeException e) {
                    // sendControl() has already closed the connection with the reason.
                }
            });
        }
    }

    /**
     * Ends the connection because of {@code cause}: it is closed, and every outstanding call fails with a
     * {@link ConnectionClosedException} caused by it. Only the first cause is remembered, to explain later uses
     * of the closed connection.
     *
     * @param cause why the connection ends
     * @return {@code cause}, for throwing
     */
    protected final IOException fail(IOException cause) {
        if (failure == null) {
            failure = cause;
        }
        closeQuietly();
        for (Call call : calls.values()) {
            if (calls.remove(call.id, call)) {
                if (cause instanceof RemoteErrorException peerSaid) {
                    // The peer's own last word (an error answering nothing) is the clearest reason to give.
                    call.future.completeExceptionally(peerSaid);
                    continue;
                }
                ConnectionClosedException lost = new ConnectionClosedException("connection to " + peer
                        + " failed before the reply to " + call.id + " came (the request is not resent): "
                        + cause.getMessage());
                lost.initCause(cause);
                call.future.completeExceptionally(lost);
            }
        }
        signal();
        return cause;
    }

    /**
     * Why this connection was ended by {@link #fail}: the first cause given, or {@code null}. For a transport's
     * own messages about a read or write cut short by that end.
     *
     * @return the first cause given to {@link #fail}, or {@code null}
     */
    protected final IOException failureCause() {
        return failure;
    }

    private void ensureOpen() throws ConnectionClosedException {
        if (closed.get()) {
            IOException why = failure;
            ConnectionClosedException e = new ConnectionClosedException("connection to " + peer + " is closed"
                    + (why != null ? ": " + why.getMessage() : ""));
            if (why != null) {
                e.initCause(why);
            }
            throw e;
        }
    }

    @Override
    public boolean isOpen() {
        return !closed.get();
    }

    @Override
    public String peer() {
        return peer;
    }

    @Override
    public void close() throws IOException {
        if (closed.compareAndSet(false, true)) {
            if (keepalive != null) {
                keepalive.cancel(false);
            }
            try {
                closeTransport();
            } finally {
                if (failure == null) {
                    fail(new ConnectionClosedException("connection to " + peer + " was closed here"));
                }
                signal();
                stateLock.lock();
                try {
                    inbox.forEach(Message::close);
                    inbox.clear();
                } finally {
                    stateLock.unlock();
                }
            }
        }
    }

    private void closeQuietly() {
        try {
            close();
        } catch (IOException ignored) {
            // Closing is best effort once the connection has failed.
        }
    }

    /** One outstanding call. */
    private static final class Call {
        final String id;
        final Duration deadline;
        final CompletableFuture<Message> future = new CompletableFuture<>();
        /** Plain sends between the previous call in sendOrder and this one, still owed an answer; under sendOrder. */
        long plainSendsBefore;

        Call(String id, Duration deadline) {
            this.id = id;
            this.deadline = deadline;
        }
    }
}
