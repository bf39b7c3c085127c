package netutils.serde.json;

import netutils.api.ProtocolException;
import netutils.api.spi.EnvelopeSchema;
import tools.jackson.core.JacksonException;
import tools.jackson.core.JsonParser;
import tools.jackson.core.json.JsonFactory;

/** The general path of reading a JSON envelope, for tests that hold the fast paths to it. */
final class TreePath {
    private static final JsonFactory FACTORY = JsonFactory.builder()
            .streamReadConstraints(JacksonTrees.envelopeConstraints()).build();

    private TreePath() {
    }

    /** What the tree path reads, or "error: " and the message of the error it reports. */
    static Object read(byte[] bytes) {
        try (JsonParser parser = FACTORY.createParser(bytes)) {
            return EnvelopeSchema.fromTree(JacksonTrees.readWhole(parser, "json envelope"));
        } catch (ProtocolException e) {
            return "error: " + e.getMessage();
        } catch (JacksonException e) {
            return "error: json envelope does not parse: " + e.getOriginalMessage();
        }
    }
}
