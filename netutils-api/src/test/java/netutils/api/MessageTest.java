package netutils.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.NoSuchElementException;
import org.junit.jupiter.api.Test;

class MessageTest {

    @Test
    void theFiveOriginalTypesExistWithTheirWireNames() {
        assertThat(MessageType.HIDDEN_STATE.name()).isEqualTo("hidden_state");
        assertThat(MessageType.CIS.name()).isEqualTo("CIS");
        assertThat(MessageType.KV_INDEX.name()).isEqualTo("KV_index");
        assertThat(MessageType.KV_CACHE.name()).isEqualTo("KV_cache");
        assertThat(MessageType.MASK.name()).isEqualTo("mask");
        assertThat(MessageType.of("KV_cache")).isSameAs(MessageType.KV_CACHE);
        assertThat(MessageType.of("logits").isPredefined()).isFalse();
        assertThatThrownBy(() -> MessageType.of("")).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void builderKeepsOrderAndRefusesDuplicates() {
        Message message = Message.builder(MessageType.KV_CACHE)
                .tensor("layer1.k", Tensor.scalar(1)).tensor("layer0.k", Tensor.scalar(0))
                .meta("b", "2").meta("a", "1").id("r1").build();
        assertThat(message.tensors().sequencedKeySet()).containsExactly("layer1.k", "layer0.k");
        assertThat(message.meta().sequencedKeySet()).containsExactly("b", "a");
        assertThat(message.id()).contains("r1");
        assertThatThrownBy(() -> Message.builder(MessageType.MASK).tensor("x", Tensor.scalar(1)).tensor("x", Tensor.scalar(2)))
                .hasMessageContaining("tensor 'x' is already in this message");
    }

    @Test
    void dataIsTheSingleTensor() {
        Tensor tensor = Tensor.scalar(3);
        assertThat(Message.of(MessageType.KV_INDEX, tensor).data()).isEqualTo(tensor);
        Message two = Message.builder(MessageType.KV_CACHE).tensor("k", tensor).tensor("v", tensor).build();
        assertThatThrownBy(two::data).isInstanceOf(NoSuchElementException.class).hasMessageContaining("[k, v]");
        assertThatThrownBy(() -> two.tensor("q")).hasMessageContaining("no tensor 'q'");
    }

    @Test
    void replyToCopiesTheRequestId() {
        Message request = Message.builder(MessageType.HIDDEN_STATE).id("42").build();
        Message reply = Message.builder(MessageType.HIDDEN_STATE).replyTo(request).build();
        assertThat(reply.replyTo()).contains("42");
    }

    @Test
    void equalityIncludesTensorOrder() {
        Message ab = Message.builder(MessageType.MASK).tensor("a", Tensor.scalar(1)).tensor("b", Tensor.scalar(2)).build();
        Message ba = Message.builder(MessageType.MASK).tensor("b", Tensor.scalar(2)).tensor("a", Tensor.scalar(1)).build();
        assertThat(ab).isEqualTo(ab.toBuilder().build()).isNotEqualTo(ba);
    }

    @Test
    void toJsonWithoutTheJsonModuleSaysWhatToAdd() {
        // The api module's own tests run without netutils-serde-json on the path.
        assertThatThrownBy(() -> netutils.api.wire.Frames.toJson(Message.of(MessageType.MASK)))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("netutils-serde-json");
    }

    @Test
    void aStringThatIsNotValidUnicodeIsRefusedWhereverItWouldTravel() {
        // A lone surrogate has no UTF-8 form: msgpack wrote it as '?', and the Python side refuses it.
        String lone = "a\ud800b";
        Tensor t = Tensor.scalar(1);
        assertThatThrownBy(() -> MessageType.of(lone)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("message type name is not valid Unicode")
                .hasMessageContaining("lone surrogate U+D800 at index 1");
        assertThatThrownBy(() -> Message.builder(MessageType.MASK).id(lone))
                .hasMessageContaining("id is not valid Unicode");
        assertThatThrownBy(() -> Message.builder(MessageType.MASK).replyTo(lone))
                .hasMessageContaining("reply_to is not valid Unicode");
        assertThatThrownBy(() -> Message.builder(MessageType.MASK).meta(lone, "v"))
                .hasMessageContaining("metadata key is not valid Unicode");
        assertThatThrownBy(() -> Message.builder(MessageType.MASK).meta("k", "\udc00"))
                .hasMessageContaining("metadata value of 'k' is not valid Unicode")
                .hasMessageContaining("U+DC00 at index 0");
        assertThatThrownBy(() -> Message.builder(MessageType.MASK).tensor(lone, t))
                .hasMessageContaining("tensor name is not valid Unicode");
        // a surrogate pair is one character (U+1F600) and travels fine
        Message emoji = Message.builder(MessageType.of("\ud83d\ude00")).id("\ud83d\ude00").meta("k", "x\ud83d\ude00")
                .tensor("\ud83d\ude00", t).build();
        assertThat(emoji.meta("k")).contains("x\ud83d\ude00");
    }
}
