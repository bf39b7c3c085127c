package netutils.serde.json;

import java.io.ByteArrayOutputStream;
import netutils.api.ProtocolException;
import netutils.api.spi.Envelope;
import netutils.api.spi.EnvelopeSchema;
import netutils.api.spi.Serializer;
import tools.jackson.core.JacksonException;
import tools.jackson.core.JsonGenerator;
import tools.jackson.core.JsonParser;
import tools.jackson.core.ObjectReadContext;
import tools.jackson.core.ObjectWriteContext;
import tools.jackson.core.json.JsonFactory;
import tools.jackson.core.util.JsonRecyclerPools;

/**
 * The default serializer, wire id 1: the envelope as a UTF-8 JSON object
 * ({@code {"type":..,"id":..,"reply_to":..,"meta":{..},"tensors":[{"name","dtype","shape","offset","nbytes"}]}}).
 * Any language's JSON library reads it. Found through {@link java.util.ServiceLoader}; users rarely name it.
 */
public final class JsonSerializer implements Serializer {
    /** The wire id. */
    public static final int ID = 1;

    /**
     * Jackson's limits set from the SDK's own: see {@link JacksonTrees#envelopeConstraints()}. The streaming
     * factory, not a mapper (an envelope needs no data binding); its buffers are recycled through Jackson's hybrid
     * pool, which serves platform threads from a thread-local slot: the default shared deque cost more than
     * parsing a small envelope when a client and a server shared it.
     */
    private static final JsonFactory FACTORY = JsonFactory.builder()
            .streamReadConstraints(JacksonTrees.envelopeConstraints())
            .recyclerPool(JsonRecyclerPools.sharedHybridPool())
            .build();

    /** Used by {@link java.util.ServiceLoader}. */
    public JsonSerializer() {
    }

    @Override
    public int id() {
        return ID;
    }

    @Override
    public String name() {
        return "json";
    }

    @Override
    public byte[] writeEnvelope(Envelope envelope) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(128 + 96 * envelope.tensors().size());
        try (JsonGenerator gen = FACTORY.createGenerator(ObjectWriteContext.empty(), out)) {
            EnvelopeSchema.write(envelope, JacksonTrees.writer(gen));
        }
        return out.toByteArray();
    }

    @Override
    public Envelope readEnvelope(byte[] bytes) throws ProtocolException {
        try (JsonParser parser = FACTORY.createParser(ObjectReadContext.empty(), bytes)) {
            return EnvelopeSchema.fromTree(JacksonTrees.readWhole(parser, "json envelope"));
        } catch (JacksonException e) {
            throw EnvelopeSchema.invalid("json envelope does not parse: " + e.getOriginalMessage());
        }
    }
}
