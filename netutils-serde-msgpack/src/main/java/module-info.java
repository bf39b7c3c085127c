/**
 * MessagePack envelopes (wire id 2), written and read with msgpack-core. Any language with a MessagePack
 * library reads them.
 */
module netutils.serde.msgpack {
    requires transitive netutils.api;
    // msgpack-core ships no module descriptor nor Automatic-Module-Name: its file-name module is msgpack.core.
    requires msgpack.core;

    exports netutils.serde.msgpack;

    provides netutils.api.spi.Serializer with netutils.serde.msgpack.MsgpackSerializer;
}
