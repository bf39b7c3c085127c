/**
 * Kryo envelopes (wire id 3): compact, for Java-to-Java links. Class registration stays required, so a peer
 * cannot make this side instantiate a class of its choosing.
 */
module netutils.serde.kryo {
    requires transitive netutils.api;
    requires com.esotericsoftware.kryo;

    exports netutils.serde.kryo;

    provides netutils.api.spi.Serializer with netutils.serde.kryo.KryoSerializer;
}
