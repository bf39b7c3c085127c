/** The loopback benchmark: netutils with each serializer against a plain length-prefixed socket. */
module netutils.bench {
    requires netutils.transport.tcp;
    requires netutils.serde.json;
    requires netutils.serde.msgpack;
    requires netutils.serde.kryo;
}
