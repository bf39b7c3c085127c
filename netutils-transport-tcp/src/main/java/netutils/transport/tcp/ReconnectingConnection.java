package netutils.transport.tcp;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.SegmentAllocator;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.Message;
import netutils.transport.tcp.internal.TcpConnection;

/**
 * A client connection that connects again when it loses its peer (see {@link TcpClient#connect(List, TcpOptions,
 * ReconnectPolicy, Consumer)}). Calls in flight when the connection fails fail with a
 * {@link ConnectionClosedException} saying so; they are never resent, since a call is not known to be
 * idempotent. Calls and sends made while reconnecting wait for the next connection, at most their deadline
 * (sends: the connect timeout). A {@code receive} that was waiting fails with the loss, and the next one waits
 * for the new connection; state kept by the peer for this client (a KV cache, a session) must be set up again,
 * which the state listener is for.
 */
final class ReconnectingConnection implements Connection {
    private static final System.Logger LOG = System.getLogger(ReconnectingConnection.class.getName());

    private final List<InetSocketAddress> addresses;
    private final TcpOptions options;
    private final ReconnectPolicy policy;
    private final Consumer<ConnectionState> listener;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition stateChanged = lock.newCondition();
    private TcpConnection current; // guarded by lock
    private ConnectionState state = ConnectionState.CONNECTED; // guarded by lock
    private int nextAddress; // guarded by lock
    private long lateRepliesOfClosed; // guarded by lock

    private ReconnectingConnection(List<InetSocketAddress> addresses, TcpOptions options, ReconnectPolicy policy,
            Consumer<ConnectionState> listener) {
        this.addresses = List.copyOf(addresses);
        this.options = options;
        this.policy = policy;
        this.listener = listener;
    }

    static Connection open(List<InetSocketAddress> addresses, TcpOptions options, ReconnectPolicy policy,
            Consumer<ConnectionState> listener) throws IOException {
        if (addresses.isEmpty()) {
            throw new IllegalArgumentException("no address to connect to");
        }
        ReconnectingConnection connection = new ReconnectingConnection(addresses, options, policy, listener);
        IOException last = null;
        for (int i = 0; i < addresses.size(); i++) {
            try {
                connection.adopt(TcpClient.openConnection(addresses.get(i), options), i);
                connection.listener.accept(ConnectionState.CONNECTED);
                return connection;
            } catch (IOException e) {
                if (last != null) {
                    e.addSuppressed(last);
                }
                last = e;
            }
        }
        throw last;
    }

    private void adopt(TcpConnection connection, int addressIndex) {
        lock.lock();
        try {
            current = connection;
            nextAddress = addressIndex;
            state = ConnectionState.CONNECTED;
            stateChanged.signalAll();
        } finally {
            lock.unlock();
        }
        connection.onClose(() -> lost(connection));
    }

    /** The connection closed: unless the owner closed us, start connecting again. */
    private void lost(TcpConnection connection) {
        lock.lock();
        try {
            if (current != connection || state == ConnectionState.CLOSED) {
                return;
            }
            lateRepliesOfClosed += connection.lateReplies();
            state = ConnectionState.RECONNECTING;
            stateChanged.signalAll();
        } finally {
            lock.unlock();
        }
        notifyListener(ConnectionState.RECONNECTING);
        Thread.ofVirtual().name("netutils-reconnect").start(this::reconnect);
    }

    private void reconnect() {
        for (int attempt = 0; policy.maxAttempts() == 0 || attempt < policy.maxAttempts(); attempt++) {
            Duration wait = policy.backoff(attempt, ThreadLocalRandom.current().nextDouble());
            int index;
            lock.lock();
            try {
                if (state == ConnectionState.CLOSED) {
                    return;
                }
                // After a loss, try the next address first: the one we had may be the one that is gone.
                nextAddress = (nextAddress + 1) % addresses.size();
                index = nextAddress;
                stateChanged.await(wait.toNanos(), TimeUnit.NANOSECONDS);
                if (state == ConnectionState.CLOSED) {
                    return;
                }
            } catch (InterruptedException e) {
                return;
            } finally {
                lock.unlock();
            }
            try {
                TcpConnection fresh = TcpClient.openConnection(addresses.get(index), options);
                lock.lock();
                try {
                    if (state == ConnectionState.CLOSED) {
                        fresh.close();
                        return;
                    }
                } finally {
                    lock.unlock();
                }
                adopt(fresh, index);
                notifyListener(ConnectionState.CONNECTED);
                return;
            } catch (IOException e) {
                LOG.log(Level.DEBUG, () -> "reconnect attempt to " + addresses.get(index) + " failed: " + e.getMessage());
            }
        }
        LOG.log(Level.WARNING, "gave up reconnecting to " + addresses + " after " + policy.maxAttempts() + " attempts");
        closeQuietly();
    }

    private void notifyListener(ConnectionState newState) {
        try {
            listener.accept(newState);
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "connection state listener failed on " + newState, e);
        }
    }

    /** The live connection, waiting for one up to {@code waitNanos}. */
    private TcpConnection connection(long waitNanos) throws IOException {
        lock.lock();
        try {
            long remaining = waitNanos;
            while (state == ConnectionState.RECONNECTING && remaining > 0) {
                remaining = stateChanged.awaitNanos(remaining);
            }
            if (state == ConnectionState.CLOSED) {
                throw new ConnectionClosedException("connection to " + addresses + " is closed");
            }
            if (state == ConnectionState.RECONNECTING) {
                throw new ConnectionClosedException("not connected to any of " + addresses + ": still reconnecting after "
                        + Duration.ofNanos(waitNanos));
            }
            return current;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted while waiting for a connection to " + addresses);
        } finally {
            lock.unlock();
        }
    }

    /** The state now. */
    ConnectionState state() {
        lock.lock();
        try {
            return state;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void send(Message message) throws IOException {
        connection(options.connectTimeout().toNanos()).send(message);
    }

    @Override
    public Message receive() throws IOException {
        return connection(Long.MAX_VALUE).receive();
    }

    @Override
    public Message receive(SegmentAllocator tensorMemory) throws IOException {
        return connection(Long.MAX_VALUE).receive(tensorMemory);
    }

    @Override
    public Optional<Message> receive(Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        TcpConnection connection = connection(timeout.toNanos());
        return connection.receive(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
    }

    @Override
    public Message request(Message request) throws IOException {
        return request(request, options.requestTimeout());
    }

    @Override
    public Message request(Message request, Duration deadline) throws IOException {
        long end = System.nanoTime() + deadline.toNanos();
        TcpConnection connection = connection(deadline.toNanos());
        return connection.request(request, Duration.ofNanos(Math.max(1, end - System.nanoTime())));
    }

    @Override
    public CompletableFuture<Message> requestAsync(Message request) throws IOException {
        return requestAsync(request, options.requestTimeout());
    }

    @Override
    public CompletableFuture<Message> requestAsync(Message request, Duration deadline) throws IOException {
        long end = System.nanoTime() + deadline.toNanos();
        TcpConnection connection = connection(deadline.toNanos());
        return connection.requestAsync(request, Duration.ofNanos(Math.max(1, end - System.nanoTime())));
    }

    @Override
    public long lateReplies() {
        lock.lock();
        try {
            return lateRepliesOfClosed + (current != null ? current.lateReplies() : 0);
        } finally {
            lock.unlock();
        }
    }

    @Override
    public boolean isOpen() {
        return state() != ConnectionState.CLOSED;
    }

    @Override
    public String peer() {
        lock.lock();
        try {
            return current != null && state == ConnectionState.CONNECTED ? current.peer() : addresses.toString();
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void close() throws IOException {
        TcpConnection last;
        lock.lock();
        try {
            if (state == ConnectionState.CLOSED) {
                return;
            }
            state = ConnectionState.CLOSED;
            last = current;
            stateChanged.signalAll();
        } finally {
            lock.unlock();
        }
        notifyListener(ConnectionState.CLOSED);
        if (last != null) {
            last.close();
        }
    }

    private void closeQuietly() {
        try {
            close();
        } catch (IOException ignored) {
            // Giving up: the connection is already gone.
        }
    }

    @Override
    public String toString() {
        return "ReconnectingConnection[" + peer() + ", " + state() + "]";
    }
}
