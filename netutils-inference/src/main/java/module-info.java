/**
 * A LLaMA-style decoder in plain Java and the pipeline that splits it across processes with netutils:
 * {@link netutils.inference.LlamaModel} (weights from safetensors + {@code config.json}),
 * {@link netutils.inference.StageServer} (serves a range of layers to several generations at once) and
 * {@link netutils.inference.PipelineSession} (the head: embedding, first layers, and the driver of one
 * generation through the stage servers). The messages the stages exchange are described in
 * {@link netutils.inference.StageProtocol} and in the project's {@code docs/INFERENCE.md}.
 */
module netutils.inference {
    requires transitive netutils.api;
    requires transitive netutils.transport.tcp;
    requires tools.jackson.databind;
    requires tools.jackson.core;

    exports netutils.inference;
}
