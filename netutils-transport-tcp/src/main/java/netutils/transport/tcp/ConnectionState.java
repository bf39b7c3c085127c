package netutils.transport.tcp;

/** Where a {@link TcpClient#connect(java.util.List, TcpOptions, ReconnectPolicy, java.util.function.Consumer)
 * reconnecting connection} stands; its listener hears every change. */
public enum ConnectionState {
    /** Connected to one of the addresses; calls go through. */
    CONNECTED,
    /** The connection was lost; calls that were in flight failed, new ones wait for the next connection. */
    RECONNECTING,
    /** Closed by its owner (or the reconnect policy gave up); nothing more happens. */
    CLOSED
}
