/**
 * netutils over TCP: {@link netutils.transport.tcp.TcpClient} connects, {@link netutils.transport.tcp.TcpServer}
 * accepts and serves each connection on a virtual thread, {@link netutils.transport.tcp.TcpOptions} holds every
 * timeout and limit. Tensor bytes go between the socket and each tensor's memory without a {@code byte[]} copy.
 */
module netutils.transport.tcp {
    requires transitive netutils.api;

    exports netutils.transport.tcp;
}
