/** A user's module: it needs the TCP transport, which brings the netutils API with it. */
module com.example.consumer {
    requires netutils.transport.tcp;
}
