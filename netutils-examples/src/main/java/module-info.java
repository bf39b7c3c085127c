/**
 * Runnable examples: {@link netutils.examples.ExampleServer}, {@link netutils.examples.ExampleClient} and
 * {@link netutils.examples.Demo}, which runs both in one process.
 */
module netutils.examples {
    requires netutils.transport.tcp;
    requires netutils.serde.json;

    exports netutils.examples;
}
