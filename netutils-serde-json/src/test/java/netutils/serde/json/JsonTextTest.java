package netutils.serde.json;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Random;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

class JsonTextTest {

    @Test
    void everyDtypeRoundTripsThroughJsonText() {
        for (Message message : Samples.everyDtype()) {
            String json = message.toJson();
            assertThat(Message.fromJson(json)).as(message.toString()).isEqualTo(message);
        }
    }

    @Test
    void textIsPlainJsonWithBase64Data() {
        Message message = Message.builder(MessageType.KV_INDEX).tensor("data", Tensor.scalar(1)).id("7")
                .replyTo("6").meta("k", "v").build();
        JsonNode root = JsonMapper.builder().build().readTree(message.toJson());
        assertThat(root.get("type").stringValue()).isEqualTo("KV_index");
        assertThat(root.get("reply_to").stringValue()).isEqualTo("6");
        assertThat(root.get("meta").get("k").stringValue()).isEqualTo("v");
        JsonNode tensor = root.get("tensors").get(0);
        assertThat(tensor.get("dtype").stringValue()).isEqualTo("I64");
        assertThat(tensor.get("shape").size()).isZero();
        assertThat(tensor.get("data").stringValue()).isEqualTo("AQAAAAAAAAA=");
    }

    @Test
    void tensorsBeyondJacksonsDefaultStringLimitRoundTrip() {
        // 16 MiB of data is about 22 million base64 characters, over Jackson's default limit of 20 million.
        Tensor big = Samples.random(DType.U8, new Random(3), 16 << 20);
        Message message = Message.of(MessageType.KV_CACHE, big);
        assertThat(Message.fromJson(message.toJson())).isEqualTo(message);
    }

    @Test
    void badTextSaysWhatIsWrong() {
        assertThatThrownBy(() -> Message.fromJson("{\"type\": 3}"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("type must be a string");
        assertThatThrownBy(() -> Message.fromJson("{\"type\":\"mask\",\"tensors\":[{\"name\":\"m\",\"dtype\":\"F32\","
                + "\"shape\":[2],\"data\":\"AAAA\"}]}"))
                .hasMessageContaining("needs 8 bytes, data has 3");
        assertThatThrownBy(() -> Message.fromJson("{not json"))
                .hasMessageContaining("does not parse");
    }
}
