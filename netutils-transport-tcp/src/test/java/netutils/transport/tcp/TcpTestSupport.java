package netutils.transport.tcp;

import java.util.List;
import java.util.Random;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;

/** Messages for the socket tests. */
final class TcpTestSupport {
    private TcpTestSupport() {
    }

    static Tensor random(DType dtype, Random random, long... shape) {
        byte[] data = new byte[(int) Tensor.byteSize(dtype, shape)];
        random.nextBytes(data);
        return Tensor.ofBytes(dtype, data, shape);
    }

    /** One message of each of the five original types. */
    static List<Message> fiveTypes(Random random) {
        boolean[] causal = new boolean[8 * 8];
        for (int row = 0; row < 8; row++) {
            for (int col = 0; col <= row; col++) {
                causal[row * 8 + col] = true;
            }
        }
        return List.of(
                Message.builder(MessageType.HIDDEN_STATE).tensor("data", random(DType.BF16, random, 1, 8, 512)).id("h").build(),
                Message.of(MessageType.CIS, random(DType.C64, random, 8, 64)),
                Message.of(MessageType.KV_INDEX, Tensor.scalar(random.nextInt(4096))),
                Message.builder(MessageType.KV_CACHE)
                        .tensor("layer0.k", random(DType.F16, random, 1, 8, 8, 64))
                        .tensor("layer0.v", random(DType.F16, random, 1, 8, 8, 64)).build(),
                Message.of(MessageType.MASK, Tensor.ofBooleans(causal, 1, 1, 8, 8)));
    }
}
