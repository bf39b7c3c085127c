package netutils.api.wire;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Set;
import netutils.api.ProtocolException;
import netutils.api.spi.Envelope;
import netutils.api.spi.Serializer;
import org.junit.jupiter.api.Test;

/** Conflicting providers are named, and only what they claim fails. */
class SerializerRegistryTest {

    @Test
    void aUserSerializerNamedLikeAnotherIsRefusedNamingBothAndTheRestWork() throws ProtocolException {
        SerializerRegistry registry = new SerializerRegistry(List.of(new Fake(2, "msgpack"), new Impostor(201, "msgpack"),
                new Fake(1, "json")), List.of(), Set.of());
        assertThatThrownBy(() -> registry.byName("msgpack")).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining(Fake.class.getName()).hasMessageContaining(Impostor.class.getName())
                .hasMessageContaining("both claim the name 'msgpack'");
        assertThat(registry.byName("json").id()).isEqualTo(1);
        assertThat(registry.byId(1).name()).isEqualTo("json");
        assertThat(registry.installed()).extracting(Serializer::name).containsExactly("json");
    }

    @Test
    void twoSerializersClaimingOneWireIdAreRefusedEveryTimeNotOnce() {
        SerializerRegistry registry = new SerializerRegistry(List.of(new Fake(200, "a"), new Impostor(200, "b")),
                List.of(), Set.of());
        for (int attempt = 0; attempt < 2; attempt++) {
            assertThatThrownBy(() -> registry.byId(200)).isInstanceOf(ProtocolException.class)
                    .hasMessageContaining("both claim wire id 200");
            assertThatThrownBy(() -> registry.byName("a")).hasMessageContaining("no serializer named 'a'")
                    .hasMessageContaining("both claim wire id 200");
        }
    }

    @Test
    void reservedIdsAndMissingProvidesAreExplained() {
        SerializerRegistry registry = new SerializerRegistry(List.of(new Fake(7, "seven")), List.of(),
                Set.of("com.example.TinySerializer"));
        assertThatThrownBy(() -> registry.byName("tiny")).hasMessageContaining("wire id 7, which is reserved")
                .hasMessageContaining("com.example.TinySerializer is listed in META-INF/services")
                .hasMessageContaining("provides netutils.api.spi.Serializer with com.example.TinySerializer;");
    }

    @Test
    void theSameClassFoundTwiceIsOneSerializer() throws ProtocolException {
        SerializerRegistry registry = new SerializerRegistry(List.of(new Fake(130, "x"), new Fake(130, "x")),
                List.of(), Set.of());
        assertThat(registry.byId(130).name()).isEqualTo("x");
        assertThat(registry.problems()).isEmpty();
    }

    static class Fake implements Serializer {
        private final int id;
        private final String name;

        Fake(int id, String name) {
            this.id = id;
            this.name = name;
        }

        @Override
        public int id() {
            return id;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public byte[] writeEnvelope(Envelope envelope) {
            return new byte[0];
        }

        @Override
        public Envelope readEnvelope(byte[] bytes) {
            return null;
        }
    }

    static final class Impostor extends Fake {
        Impostor(int id, String name) {
            super(id, name);
        }
    }
}
