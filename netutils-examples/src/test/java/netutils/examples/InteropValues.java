package netutils.examples;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;

/** The deterministic tensor contents both languages compute (see python/tests/values.py). */
final class InteropValues {
    static final List<MessageType> TYPES = List.of(MessageType.HIDDEN_STATE, MessageType.CIS, MessageType.KV_INDEX,
            MessageType.KV_CACHE, MessageType.MASK);
    static final Map<String, long[]> SHAPES = new LinkedHashMap<>();

    static {
        SHAPES.put("matrix", new long[] {3, 5});
        SHAPES.put("empty", new long[] {0, 4});
        SHAPES.put("scalar", new long[0]);
    }

    private InteropValues() {
    }

    static Tensor values(DType dtype, long[] shape) {
        int count = (int) Tensor.byteSize(DType.U8, shape);
        ByteBuffer out = ByteBuffer.allocate(count * dtype.byteWidth()).order(ByteOrder.LITTLE_ENDIAN);
        for (long i = 0; i < count; i++) {
            double real = (i % 251) * 0.5 - 60;
            switch (dtype) {
                case F64 -> out.putDouble(real);
                case F32 -> out.putFloat((float) real);
                case F16 -> out.putShort(Float.floatToFloat16((float) real));
                case BF16 -> out.putShort((short) (Float.floatToIntBits((float) real) >>> 16));
                case I64 -> out.putLong(i * 1_000_000_007L - 5_000_000_000_000L);
                case I32 -> out.putInt((int) (i * 7919 - 100_000));
                case I16 -> out.putShort((short) ((i * 31) % 65536 - 32768));
                case I8 -> out.put((byte) (i % 256 - 128));
                case U8, F8_E4M3, F8_E5M2 -> out.put((byte) ((i * 7) % 256));
                case BOOL -> out.put((byte) (i % 3 == 0 ? 1 : 0));
                case C64 -> out.putFloat(i * 0.25f).putFloat(-i * 0.5f);
            }
        }
        return Tensor.ofBytes(dtype, out.array(), shape);
    }

    /** File stem (type_dtype) and message, for every message type and dtype. */
    static Map<String, Message> expectedMessages() {
        Map<String, Message> messages = new LinkedHashMap<>();
        for (MessageType type : TYPES) {
            for (DType dtype : DType.values()) {
                String stem = type.name() + "_" + dtype.wireName();
                Message.Builder builder = Message.builder(type).id(stem);
                SHAPES.forEach((name, shape) -> builder.tensor(name, values(dtype, shape)));
                messages.put(stem, builder.build());
            }
        }
        return messages;
    }

    static List<String> stems() {
        return new ArrayList<>(expectedMessages().keySet());
    }
}
