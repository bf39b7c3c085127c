package netutils.bench;

/**
 * One thing being measured (a raw socket, Netty, gRPC or netutils in one configuration), connected once and then
 * driven round after round. A stack takes part in the 256 MiB test, the 8 KiB test, or both; client and server
 * always live in this JVM, so that the process CPU time of a round covers both ends of every stack alike.
 */
abstract class Stack implements AutoCloseable {
    /** Short id for results.json/csv and {@code --only}. */
    final String id;
    /** What a reader of the table sees. */
    final String label;

    Stack(String id, String label) {
        this.id = id;
        this.label = label;
    }

    /** Whether {@link #sendLarge} is measured for this stack. */
    abstract boolean large();

    /** Whether {@link #roundTrip} is measured for this stack. */
    boolean small() {
        return !large(); // every stack measures one of the two
    }

    /** Sends one 256 MiB message and waits until the server has all of it and said so. */
    void sendLarge() throws Exception {
        throw new UnsupportedOperationException(id);
    }

    /** One 8 KiB request and its 8 KiB answer. */
    void roundTrip() throws Exception {
        throw new UnsupportedOperationException(id);
    }

    @Override
    public abstract void close() throws Exception;
}
