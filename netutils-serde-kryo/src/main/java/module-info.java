/**
 * Kryo envelopes (wire id 3): compact, for Java-to-Java links. Only the envelope's registration is read, so a peer
 * cannot make this side resolve or instantiate a class of its choosing.
 */
module netutils.serde.kryo {
    requires transitive netutils.api;
    requires com.esotericsoftware.kryo;

    exports netutils.serde.kryo;

    provides netutils.api.spi.Serializer with netutils.serde.kryo.KryoSerializer;
}
