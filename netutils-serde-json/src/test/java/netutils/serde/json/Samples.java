package netutils.serde.json;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;

/** Messages with realistic and edge-case tensors, for round-trip tests. */
final class Samples {
    private Samples() {
    }

    /** A tensor of random bytes of each dtype, with a shape of rank 2. */
    static Tensor random(DType dtype, Random random, long... shape) {
        long bytes = Tensor.byteSize(dtype, shape);
        byte[] data = new byte[(int) bytes];
        random.nextBytes(data);
        if (dtype == DType.BOOL) {
            for (int i = 0; i < data.length; i++) {
                data[i] &= 1;
            }
        }
        return Tensor.ofBytes(dtype, data, shape);
    }

    /** One message per dtype: a 3x5 tensor, an empty one, and a scalar. */
    static List<Message> everyDtype() {
        Random random = new Random(7);
        List<Message> messages = new ArrayList<>();
        for (DType dtype : DType.values()) {
            messages.add(Message.builder(MessageType.of("dtype_" + dtype.wireName()))
                    .tensor("matrix", random(dtype, random, 3, 5))
                    .tensor("empty", random(dtype, random, 0, 4))
                    .tensor("scalar", random(dtype, random))
                    .meta("dtype", dtype.wireName())
                    .id("m-" + dtype.ordinal())
                    .build());
        }
        return messages;
    }

    /** One message of each of the original module's five types, with realistic shapes. */
    static List<Message> fiveTypes() {
        Random random = new Random(11);
        Message.Builder cache = Message.builder(MessageType.KV_CACHE);
        for (int layer = 0; layer < 2; layer++) {
            cache.tensor("layer" + layer + ".k", random(DType.BF16, random, 1, 4, 16, 32));
            cache.tensor("layer" + layer + ".v", random(DType.BF16, random, 1, 4, 16, 32));
        }
        boolean[] causal = new boolean[16 * 16];
        for (int row = 0; row < 16; row++) {
            for (int col = 0; col <= row; col++) {
                causal[row * 16 + col] = true;
            }
        }
        return List.of(
                Message.builder(MessageType.HIDDEN_STATE).tensor("data", random(DType.F16, random, 1, 16, 256))
                        .id("h1").meta("layer", "16").build(),
                Message.of(MessageType.CIS, random(DType.C64, random, 16, 32)),
                Message.of(MessageType.KV_INDEX, Tensor.scalar(1234)),
                cache.id("kv").build(),
                Message.of(MessageType.MASK, Tensor.ofBooleans(causal, 1, 1, 16, 16)));
    }
}
