package netutils.example.serializer;

import java.io.ByteArrayOutputStream;
import netutils.api.ProtocolException;
import netutils.api.spi.Envelope;
import netutils.api.spi.EnvelopeSchema;
import netutils.api.spi.Serializer;
import netutils.serde.json.JacksonTrees;
import tools.jackson.core.JacksonException;
import tools.jackson.core.JsonGenerator;
import tools.jackson.core.JsonParser;
import tools.jackson.dataformat.cbor.CBORFactory;
import tools.jackson.dataformat.cbor.CBORMapper;

/**
 * A user serializer: the envelope as CBOR (RFC 8949) with the keys of the JSON envelope, wire id 200.
 *
 * <p>The steps to write one: implement {@link Serializer} with a public no-argument constructor, pick a wire id
 * in 128..255, turn the {@link Envelope} into bytes and back ({@link EnvelopeSchema} turns it into a tree of plain values
 * and back, refusing bad input with a {@link ProtocolException} of kind {@code MALFORMED_ENVELOPE}; Jackson's
 * streaming API, shared by all its formats, moves the tree with {@link JacksonTrees}), and declare it in {@code module-info.java}
 * ({@code provides netutils.api.spi.Serializer with ...}) and in
 * {@code META-INF/services/netutils.api.spi.Serializer} for class-path users.
 */
public final class CborSerializer implements Serializer {
    /** The wire id: in the users' range. */
    public static final int ID = 200;

    /** The same limits as the JSON envelope's, from the SDK's own (nesting, lengths): a plug-in should reuse them. */
    private static final CBORMapper MAPPER = CBORMapper.builder(CBORFactory.builder()
            .streamReadConstraints(JacksonTrees.envelopeConstraints()).build()).build();

    /** Used by {@link java.util.ServiceLoader}. */
    public CborSerializer() {
    }

    @Override
    public int id() {
        return ID;
    }

    @Override
    public String name() {
        return "cbor";
    }

    @Override
    public byte[] writeEnvelope(Envelope envelope) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(256);
        try (JsonGenerator gen = MAPPER.createGenerator(out)) {
            EnvelopeSchema.write(envelope, JacksonTrees.writer(gen));
        }
        return out.toByteArray();
    }

    @Override
    public Envelope readEnvelope(byte[] bytes) throws ProtocolException {
        try (JsonParser parser = MAPPER.createParser(bytes)) {
            return EnvelopeSchema.fromTree(JacksonTrees.readWhole(parser, "cbor envelope"));
        } catch (JacksonException e) {
            throw EnvelopeSchema.invalid("cbor envelope does not parse: " + e.getOriginalMessage());
        }
    }
}
