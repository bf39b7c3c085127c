/**
 * The netutils API. Packages, from what a model author uses to what a transport or plug-in author needs:
 * <ul>
 * <li>{@link netutils.api}: {@link netutils.api.Message messages} of named {@link netutils.api.Tensor tensors},
 *     the {@link netutils.api.Connection connection} contract and the errors;</li>
 * <li>{@code netutils.api.wire}: {@code Frames}, the one place where messages become frames or JSON text and
 *     back, the frame header, the serializer registry, and frame streaming for transports;</li>
 * <li>{@code netutils.api.spi}: the {@code Serializer} SPI and the envelope schema;</li>
 * <li>{@code netutils.api.testing}: {@code InMemoryConnection}, a real connection without sockets for tests.</li>
 * </ul>
 * Dependencies between the packages run one way only (a test fails if a cycle comes back):
 * testing → wire → spi → api → internal.
 *
 * <p>This module names no concrete serializer or transport: serializers are found with
 * {@link java.util.ServiceLoader}, transports are separate modules.
 */
module netutils.api {
    exports netutils.api;
    exports netutils.api.spi;
    exports netutils.api.wire;
    exports netutils.api.testing;
    // Memory allocation helpers shared with our own transport only; not a public API.
    exports netutils.api.internal to netutils.transport.tcp;

    uses netutils.api.spi.Serializer;
    uses netutils.api.spi.MessageTextFormat;
}
