/**
 * The netutils API: {@link netutils.api.Message messages} of named {@link netutils.api.Tensor tensors},
 * the {@link netutils.api.Connection connection} contract, the wire {@link netutils.api.Frames frame format},
 * and the {@link netutils.api.spi.Serializer serializer SPI} that envelope formats plug into.
 *
 * <p>This module names no concrete serializer or transport: serializers are found with
 * {@link java.util.ServiceLoader}, transports are separate modules.
 */
module netutils.api {
    exports netutils.api;
    exports netutils.api.spi;
    // Frame streaming shared with our own transports only; not a public API.
    exports netutils.api.internal to netutils.transport.tcp, netutils.bench;

    uses netutils.api.spi.Serializer;
    uses netutils.api.spi.MessageTextFormat;
}
