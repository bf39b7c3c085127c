/**
 * Runnable examples: {@link netutils.examples.ExampleServer}, {@link netutils.examples.ExampleClient} and
 * {@link netutils.examples.Demo}, which runs both in one process;
 * {@link netutils.examples.InferenceDemo} and {@link netutils.examples.InferenceStage}, a LLaMA-style model split
 * across processes.
 */
module netutils.examples {
    requires netutils.transport.tcp;
    requires netutils.inference;
    // Serializers are found with ServiceLoader; these make sure the project's own are resolved at run time.
    requires netutils.serde.json;
    requires netutils.serde.msgpack;
    requires netutils.serde.kryo;

    exports netutils.examples;
}
