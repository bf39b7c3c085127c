package netutils.serde.json;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Random;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.ProtocolException;
import netutils.api.MessageType;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import netutils.api.wire.Frames;

class JsonTextTest {

    @Test
    void everyDtypeRoundTripsThroughJsonText() throws Exception {
        for (Message message : Samples.everyDtype()) {
            String json = Frames.toJson(message);
            assertThat(Frames.fromJson(json)).as(message.toString()).isEqualTo(message);
        }
    }

    @Test
    void textIsPlainJsonWithBase64Data() {
        Message message = Message.builder(MessageType.KV_INDEX).tensor("data", Tensor.scalar(1)).id("7")
                .replyTo("6").meta("k", "v").build();
        JsonNode root = JsonMapper.builder().build().readTree(Frames.toJson(message));
        assertThat(root.get("type").stringValue()).isEqualTo("KV_index");
        assertThat(root.get("reply_to").stringValue()).isEqualTo("6");
        assertThat(root.get("meta").get("k").stringValue()).isEqualTo("v");
        JsonNode tensor = root.get("tensors").get(0);
        assertThat(tensor.get("dtype").stringValue()).isEqualTo("I64");
        assertThat(tensor.get("shape").size()).isZero();
        assertThat(tensor.get("data").stringValue()).isEqualTo("AQAAAAAAAAA=");
    }

    @Test
    void tensorsBeyondJacksonsDefaultStringLimitRoundTrip() throws Exception {
        // 16 MiB of data is about 22 million base64 characters, over Jackson's default limit of 20 million.
        Tensor big = Samples.random(DType.U8, new Random(3), 16 << 20);
        Message message = Message.of(MessageType.KV_CACHE, big);
        assertThat(Frames.fromJson(Frames.toJson(message))).isEqualTo(message);
    }

    @Test
    void escapedLoneSurrogatesAreRefusedAsPythonRefusesThem() {
        // JSON can spell a lone surrogate ("\ud800"); no UTF-8 text can hold it, and from_json refuses it
        for (String json : new String[] {
                "{\"type\":\"a\",\"meta\":{\"k\":\"\\ud800x\"}}",
                "{\"type\":\"a\",\"id\":\"\\udfff\"}",
                "{\"type\":\"a\\ud800\"}",
                "{\"type\":\"a\",\"tensors\":[{\"name\":\"\\ud800\",\"dtype\":\"U8\",\"shape\":[0],\"data\":\"\"}]}"}) {
            assertThatThrownBy(() -> Frames.fromJson(json)).as(json).isInstanceOf(ProtocolException.class)
                    .hasMessageContaining("not valid Unicode");
        }
    }

    @Test
    void badTextSaysWhatIsWrong() {
        assertThatThrownBy(() -> Frames.fromJson("{\"type\": 3}"))
                .isInstanceOf(ProtocolException.class).hasMessageContaining("type must be a string");
        assertThatThrownBy(() -> Frames.fromJson("{\"type\":\"mask\",\"tensors\":[{\"name\":\"m\",\"dtype\":\"F32\","
                + "\"shape\":[2],\"data\":\"AAAA\"}]}"))
                .hasMessageContaining("needs 8 bytes, data has 3");
        assertThatThrownBy(() -> Frames.fromJson("{not json"))
                .hasMessageContaining("does not parse");
        for (String data : new String[] {"AA\\n==", "AA", "AA==\\n", "A A=", "AA=A", "AA==AA==", "AAAA=", "AAA=="}) {
            // strict base64 with padding, the same inputs Python's from_json refuses (test_roundtrip.py)
            assertThatThrownBy(() -> Frames.fromJson("{\"type\":\"mask\",\"tensors\":[{\"name\":\"m\","
                    + "\"dtype\":\"U8\",\"shape\":[1],\"data\":\"" + data + "\"}]}"))
                    .as(data).isInstanceOf(ProtocolException.class).hasMessageContaining("tensors[0] ('m'): data is not base64");
        }
        assertThatThrownBy(() -> Frames.fromJson(null))
                .isInstanceOf(NullPointerException.class).hasMessage("json text to read a message from is null");
    }

    @Test
    void unknownAndDuplicateKeysAreRefusedNotIgnored() {
        // The form a seed-style to_json() might produce: refused, with a hint at the real one.
        assertThatThrownBy(() -> Frames.fromJson("{\"type\":\"hidden_state\",\"data\":[1,2,3]}"))
                .isInstanceOf(ProtocolException.class)
                .hasMessageContaining("unknown key 'data'").hasMessageContaining("\"tensors\"");
        assertThatThrownBy(() -> Frames.fromJson("{\"type\":\"mask\",\"type\":\"CIS\"}"))
                .hasMessageContaining("key 'type' appears twice");
        assertThatThrownBy(() -> Frames.fromJson("{\"type\":\"mask\",\"tensors\":[{\"name\":\"m\",\"dtype\":\"U8\","
                + "\"shape\":[1],\"data\":\"AA==\",\"offset\":0}]}"))
                .hasMessageContaining("unknown key 'offset' in tensors[0]");
        // Refused by Jackson as it reaches the ninth level (the limit is EnvelopeSchema.MAX_DEPTH).
        assertThatThrownBy(() -> Frames.fromJson("[".repeat(100_000)))
                .isInstanceOf(ProtocolException.class).hasMessageContaining("nesting depth (9) exceeds the maximum "
                        + "allowed (8");
        assertThatThrownBy(() -> Frames.fromJson("{\"type\":\"mask\"} {}")).hasMessageContaining("after its end");
    }
}
