package netutils.inference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import netutils.api.DType;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;

class AttentionMaskTest {
    private static final float NEG = Float.NEGATIVE_INFINITY;

    @Test
    void everyFormOfTheSameMaskGivesTheSameAdditiveValues() {
        float[] causal = AttentionMask.causal(3, 2); // 3 queries after 2 cached positions: 3 x 5
        assertThat(causal).containsExactly(0, 0, 0, NEG, NEG, 0, 0, 0, 0, NEG, 0, 0, 0, 0, 0);
        boolean[] visible = new boolean[causal.length];
        for (int i = 0; i < causal.length; i++) {
            visible[i] = causal[i] == 0;
        }
        Tensor[] forms = {
            Tensor.ofFloats(causal, 1, 1, 3, 5),
            Tensor.ofHalfFloats(causal, 1, 3, 5),
            Tensor.ofBFloat16(causal, 3, 5),
            Tensor.ofBooleans(visible, 1, 1, 3, 5),
            // Hugging Face fills with the dtype's lowest finite value instead of -inf.
            Tensor.ofHalfFloats(replaceInfinity(causal, -65504f), 1, 1, 3, 5),
            Tensor.ofFloats(replaceInfinity(causal, -Float.MAX_VALUE), 1, 1, 3, 5),
            Tensor.ofBFloat16(replaceInfinity(causal, -3.3895314e38f), 1, 1, 3, 5),
        };
        for (Tensor form : forms) {
            assertThat(AttentionMask.additive(form)).as(form.toString()).containsExactly(causal);
            assertThat(AttentionMask.visible(form)).as(form.toString()).containsExactly(visible);
            assertThat(AttentionMask.rowsAndColumns(form)).containsExactly(3, 5);
        }
    }

    @Test
    void otherDtypesAndShapesAreRefusedByName() {
        assertThatThrownBy(() -> AttentionMask.visible(Tensor.ofLongs(new long[4], 2, 2)))
                .hasMessageContaining("BOOL or an additive F32, F16 or BF16 mask, not I64");
        assertThatThrownBy(() -> AttentionMask.rowsAndColumns(Tensor.ofFloats(new float[8], 2, 2, 2)))
                .hasMessageContaining("[2, 2, 2]");
        assertThatThrownBy(() -> AttentionMask.additive(Tensor.ofFloats(new float[] {Float.NaN}, 1, 1)))
                .hasMessageContaining("NaN");
        assertThat(AttentionMask.visible(Tensor.zeros(DType.BF16, 1, 4))).containsExactly(true, true, true, true);
    }

    private static float[] replaceInfinity(float[] mask, float with) {
        float[] out = mask.clone();
        for (int i = 0; i < out.length; i++) {
            if (out[i] == NEG) {
                out[i] = with;
            }
        }
        return out;
    }

    @Test
    void aOneZeroMaskSentAsFloatsIsRefusedNotTakenAsAllVisible() {
        // The other common PyTorch convention: 1 where a query may see a key, 0 where it may not. Read as additive,
        // it hid nothing (a causal 4x4 mask of 1/0 floats gave 16 visible pairs).
        float[] causal = new float[16];
        for (int row = 0; row < 4; row++) {
            for (int column = 0; column <= row; column++) {
                causal[row * 4 + column] = 1f;
            }
        }
        Tensor oneZero = Tensor.ofFloats(causal, 4, 4);
        assertThatThrownBy(() -> AttentionMask.additive(oneZero)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("mask value 0 is 1.0").hasMessageContaining("send it as BOOL");
        assertThatThrownBy(() -> AttentionMask.visible(oneZero)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("send it as BOOL");
        float[] additive = new float[16];
        for (int i = 0; i < 16; i++) {
            additive[i] = causal[i] == 1f ? 0f : -10000f; // an older Hugging Face convention: still accepted
        }
        assertThat(AttentionMask.additive(Tensor.ofFloats(additive, 4, 4))).containsExactly(additive);
    }
}
