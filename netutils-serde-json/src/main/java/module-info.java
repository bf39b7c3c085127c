/**
 * The default serializer: JSON envelopes (wire id 1) and the self-contained JSON text of
 * {@code netutils.api.wire.Frames.toJson}, written and read with Jackson; {@link netutils.serde.json.JacksonTrees} for
 * plug-ins built on other Jackson formats.
 */
module netutils.serde.json {
    requires transitive netutils.api;
    requires tools.jackson.databind;
    requires tools.jackson.core;

    exports netutils.serde.json;

    provides netutils.api.spi.Serializer with netutils.serde.json.JsonSerializer;
    provides netutils.api.spi.MessageTextFormat with netutils.serde.json.JsonMessageText;
}
