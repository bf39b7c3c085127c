package netutils.transport.tcp.internal;

import java.io.Closeable;
import java.io.IOException;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.ClosedByInterruptException;
import java.nio.channels.ClosedSelectorException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.util.concurrent.TimeUnit;

/**
 * Waits until a non-blocking channel can be read (or written), with or without a time limit: one
 * {@code epoll_wait} on a selector of this channel alone. A client's connection runs this way because every
 * call waits for its reply with a deadline, and a blocking channel has no timed read of its own: the socket's
 * timed read switches the channel to non-blocking and back around every wait (seven system calls where a wait
 * here costs two, with the read that follows it).
 *
 * <p>Closing the channel does not wake a selector; {@link #close} does, and a waiter then finds the channel
 * closed. An interrupt ends a wait and closes the channel, as it does a blocking channel's read (readers read
 * before they wait, so bytes already there are still taken by an interrupted thread).
 */
final class Readiness implements Closeable {
    private final SocketChannel channel;
    private final Selector selector;

    private Readiness(SocketChannel channel, int operation) throws IOException {
        this.channel = channel;
        this.selector = Selector.open();
        try {
            channel.register(selector, operation);
        } catch (IOException | RuntimeException e) {
            selector.close();
            throw e;
        }
    }

    /** For reading; the channel must be non-blocking. */
    static Readiness toRead(SocketChannel channel) throws IOException {
        return new Readiness(channel, SelectionKey.OP_READ);
    }

    /** For writing; the channel must be non-blocking. */
    static Readiness toWrite(SocketChannel channel) throws IOException {
        return new Readiness(channel, SelectionKey.OP_WRITE);
    }

    /**
     * Waits until the channel is ready, at most until {@code deadlineNanos} ({@link System#nanoTime()} based;
     * {@link Long#MAX_VALUE}: no limit).
     *
     * @return true if the channel is ready, false if the deadline passed first
     * @throws AsynchronousCloseException if the connection was closed meanwhile
     * @throws ClosedByInterruptException if the thread was interrupted (the channel is then closed)
     */
    boolean await(long deadlineNanos) throws IOException {
        try {
            while (true) {
                long millis = 0; // no limit
                if (deadlineNanos != Long.MAX_VALUE) {
                    long left = deadlineNanos - System.nanoTime();
                    if (left <= 0) {
                        return false;
                    }
                    millis = Math.max(1, TimeUnit.NANOSECONDS.toMillis(left + 999_999));
                }
                int ready = selector.select(millis);
                selector.selectedKeys().clear();
                if (!channel.isOpen() || !selector.isOpen()) {
                    throw new AsynchronousCloseException();
                }
                if (Thread.currentThread().isInterrupted()) {
                    // As a blocking channel does: an interrupted wait closes the channel. (A non-blocking read would
                    // ignore the interrupt and return nothing, and the wait would spin.)
                    channel.close();
                    throw new ClosedByInterruptException();
                }
                if (ready > 0) {
                    return true;
                }
            }
        } catch (ClosedSelectorException e) {
            throw new AsynchronousCloseException();
        }
    }

    /** Wakes a waiter and releases the selector (and with it the closed channel's descriptor). */
    @Override
    public void close() throws IOException {
        selector.close();
    }
}
