/**
 * An example of a user serializer in its own module: CBOR envelopes with wire id 200. Adding this module to
 * both peers' module path is all it takes; {@code provides} makes {@link java.util.ServiceLoader} find it.
 */
module netutils.example.serializer {
    requires netutils.api;
    requires netutils.serde.json;
    requires tools.jackson.dataformat.cbor;
    requires tools.jackson.databind;

    provides netutils.api.spi.Serializer with netutils.example.serializer.CborSerializer;
}
