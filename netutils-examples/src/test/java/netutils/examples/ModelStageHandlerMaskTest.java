package netutils.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import netutils.api.Connection;
import netutils.api.testing.InMemoryConnection;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.RemoteErrorException;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;

/** The example server takes every mask form a PyTorch peer sends, not only BOOL. */
class ModelStageHandlerMaskTest {
    private static final float NEG = Float.NEGATIVE_INFINITY;

    /** A causal mask of 3 new queries after 2 cached positions ([3, 5]), additive. */
    private static float[] additive(float hidden) {
        float[] mask = new float[15];
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 5; c++) {
                mask[r * 5 + c] = c <= 2 + r ? 0f : hidden;
            }
        }
        return mask;
    }

    @Test
    void additiveMasksInEveryFloatDtypeAndBoolMasksAreCountedAndCheckedForCausality() throws Exception {
        boolean[] bool = new boolean[15];
        float[] f = additive(NEG);
        for (int i = 0; i < 15; i++) {
            bool[i] = f[i] == 0;
        }
        List<Tensor> forms = List.of(
                Tensor.ofFloats(additive(NEG), 1, 1, 3, 5),
                Tensor.ofHalfFloats(additive(NEG), 1, 1, 3, 5),
                Tensor.ofBFloat16(additive(NEG), 1, 1, 3, 5),
                Tensor.ofFloats(additive(-Float.MAX_VALUE), 1, 1, 3, 5), // torch.finfo(float32).min, as transformers fills
                Tensor.ofHalfFloats(additive(-65504f), 1, 1, 3, 5),      // torch.finfo(float16).min
                Tensor.ofBooleans(bool, 1, 1, 3, 5),
                Tensor.ofBooleans(bool, 3, 5));
        try (Connection server = InMemoryConnection.serve(new ModelStageHandler())) {
            for (Tensor mask : forms) {
                Message answer = server.request(Message.of(MessageType.MASK, mask));
                assertThat(answer.meta("visible")).as(mask.toString()).contains("12");
                assertThat(answer.meta("causal")).as(mask.toString()).contains("true");
            }
            float[] notCausal = additive(NEG);
            notCausal[3] = 0f; // query 0 sees a future key
            assertThat(server.request(Message.of(MessageType.MASK, Tensor.ofFloats(notCausal, 1, 1, 3, 5))).meta("causal"))
                    .contains("false");
        }
    }

    @Test
    void aMaskOfAnotherDtypeIsRefusedByName() throws Exception {
        try (Connection server = InMemoryConnection.serve(new ModelStageHandler())) {
            assertThatThrownBy(() -> server.request(Message.of(MessageType.MASK, Tensor.ofLongs(new long[4], 1, 1, 2, 2))))
                    .isInstanceOf(RemoteErrorException.class)
                    .hasMessageContaining("a mask is BOOL or an additive F32, F16 or BF16 mask, not I64");
        }
    }
}
