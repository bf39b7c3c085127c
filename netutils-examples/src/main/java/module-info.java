/**
 * Runnable examples: {@link netutils.examples.ExampleServer}, {@link netutils.examples.ExampleClient} and
 * {@link netutils.examples.Demo}, which runs both in one process.
 */
module netutils.examples {
    requires netutils.transport.tcp;
    // Serializers are found with ServiceLoader; these make sure the project's own are resolved at run time.
    requires netutils.serde.json;
    requires netutils.serde.msgpack;
    requires netutils.serde.kryo;

    exports netutils.examples;
}
