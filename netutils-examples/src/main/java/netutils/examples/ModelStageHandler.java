package netutils.examples;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import netutils.api.Connection;
import netutils.api.ConnectionHandler;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import netutils.inference.AttentionMask;

/**
 * What the example server does with each message type, as the next stage of a split model would:
 *
 * <ul>
 * <li>{@code hidden_state}: applies a layer (RMS-normalises each token's vector and scales it by 0.5) and sends
 *     the result back in the same dtype and shape;</li>
 * <li>{@code CIS}: checks the rotary frequencies lie on the unit circle and answers with the largest deviation;</li>
 * <li>{@code KV_index}: remembers the position for this connection and acknowledges it;</li>
 * <li>{@code KV_cache}: stores the cache for this connection and answers with a summary (layers, bytes);</li>
 * <li>{@code mask}: counts visible positions and says whether the mask is causal; BOOL masks (true = may
 *     attend) and additive F32/F16/BF16 masks (0 = may attend, -inf = may not), as PyTorch code builds them;</li>
 * <li>anything else: echoed back unchanged.</li>
 * </ul>
 * Every answer carries {@code reply_to} = the request's id.
 */
public final class ModelStageHandler implements ConnectionHandler {

    @Override
    public void handle(Connection connection) throws Exception {
        // A fresh Stage per connection holds that connection's KV position and cache.
        ConnectionHandler.ofRequests(new Stage()::answer).handle(connection);
    }

    /** One connection's state and answers. */
    private static final class Stage {
        private final Map<String, Tensor> cache = new LinkedHashMap<>();
        private long position;

        Message answer(Message request) {
            MessageType type = request.type();
            if (type.equals(MessageType.HIDDEN_STATE)) {
                return Message.builder(type).tensor("data", applyLayer(request.data())).meta("op", "rmsnorm*0.5").build();
            } else if (type.equals(MessageType.CIS)) {
                return Message.builder(type)
                        .meta("unit_circle_max_error", String.format("%.2e", unitCircleError(request.data()))).build();
            } else if (type.equals(MessageType.KV_INDEX)) {
                position = request.data().longValue();
                return Message.builder(type).tensor("data", Tensor.scalar(position)).meta("ack", "position stored").build();
            } else if (type.equals(MessageType.KV_CACHE)) {
                cache.clear();
                // Copied: ofRequests closes the request once answered, and its tensors' memory receives the next one.
                request.tensors().forEach((name, t) -> cache.put(name, Tensor.copyOf(t.dtype(), t.data(), t.shape())));
                return Message.builder(type).meta("stored_tensors", "" + cache.size())
                        .meta("layers", "" + cache.keySet().stream().map(n -> n.split("\\.")[0]).distinct().count())
                        .meta("bytes", "" + request.tensorBytes()).build();
            } else if (type.equals(MessageType.MASK)) {
                return Message.builder(type).meta("visible", "" + countVisible(request.data()))
                        .meta("causal", "" + isCausal(request.data())).build();
            }
            return request.toBuilder().id(null).build();
        }
    }

    /** RMSNorm over the last dimension, times 0.5, in the tensor's own float dtype. */
    static Tensor applyLayer(Tensor hidden) {
        float[] values = hidden.toFloatArray();
        long[] shape = hidden.shape();
        int width = shape.length == 0 ? 1 : (int) shape[shape.length - 1];
        for (int row = 0; width > 0 && row < values.length / width; row++) {
            double sumSquares = 0;
            for (int i = 0; i < width; i++) {
                float v = values[row * width + i];
                sumSquares += v * v;
            }
            float scale = (float) (0.5 / Math.sqrt(sumSquares / width + 1e-6));
            for (int i = 0; i < width; i++) {
                values[row * width + i] *= scale;
            }
        }
        return switch (hidden.dtype()) {
            case F16 -> Tensor.ofHalfFloats(values, shape);
            case BF16 -> Tensor.ofBFloat16(values, shape);
            case F32 -> Tensor.ofFloats(values, shape);
            default -> throw new IllegalArgumentException("hidden_state must be F32, F16 or BF16, got " + hidden.dtype());
        };
    }

    private static double unitCircleError(Tensor cis) {
        if (cis.dtype() != DType.C64) {
            throw new IllegalArgumentException("CIS must be C64, got " + cis.dtype());
        }
        float[] pairs = cis.toFloatArray();
        double worst = 0;
        for (int i = 0; i + 1 < pairs.length; i += 2) {
            worst = Math.max(worst, Math.abs(Math.hypot(pairs[i], pairs[i + 1]) - 1));
        }
        return worst;
    }

    /**
     * Visible (query, key) pairs of a mask in any form a PyTorch peer sends: BOOL (true = may attend) or an
     * additive F32/F16/BF16 mask (0 = may attend, -inf or the dtype's lowest value = may not).
     */
    private static long countVisible(Tensor mask) {
        long visible = 0;
        for (boolean b : AttentionMask.visible(mask)) {
            visible += b ? 1 : 0;
        }
        return visible;
    }

    /**
     * Whether query {@code row} sees exactly the keys up to its own position. With {@code rows} new queries after
     * {@code columns - rows} cached positions (a decoding step), query {@code row} is at position
     * {@code columns - rows + row}.
     */
    private static boolean isCausal(Tensor mask) {
        long[] shape = mask.shape();
        if (shape.length < 2) {
            return false;
        }
        // Leading dimensions (batch, heads) each hold one [rows, columns] matrix.
        int rows = (int) shape[shape.length - 2];
        int columns = (int) shape[shape.length - 1];
        boolean[] values = AttentionMask.visible(mask);
        for (int i = 0; i < values.length; i++) {
            int row = (i / columns) % rows;
            int col = i % columns;
            if (values[i] != (col <= columns - rows + row)) {
                return false;
            }
        }
        return true;
    }

    /** The example client's messages: each of the five types with realistic shapes and dtypes. */
    public static List<Message> sampleMessages() {
        java.util.Random random = new java.util.Random(2024);
        int tokens = 16;
        int hidden = 4096;
        List<Message> messages = new ArrayList<>();
        for (DType dtype : new DType[] {DType.BF16, DType.F16, DType.F32}) {
            float[] values = new float[tokens * hidden];
            for (int i = 0; i < values.length; i++) {
                values[i] = (float) random.nextGaussian();
            }
            Tensor state = switch (dtype) {
                case BF16 -> Tensor.ofBFloat16(values, 1, tokens, hidden);
                case F16 -> Tensor.ofHalfFloats(values, 1, tokens, hidden);
                default -> Tensor.ofFloats(values, 1, tokens, hidden);
            };
            messages.add(Message.builder(MessageType.HIDDEN_STATE).tensor("data", state).id("hidden-" + dtype).build());
        }
        int headDim = 128;
        float[] cis = new float[tokens * headDim / 2 * 2];
        for (int t = 0; t < tokens; t++) {
            for (int f = 0; f < headDim / 2; f++) {
                double angle = t / Math.pow(500000.0, 2.0 * f / headDim);
                cis[(t * headDim / 2 + f) * 2] = (float) Math.cos(angle);
                cis[(t * headDim / 2 + f) * 2 + 1] = (float) Math.sin(angle);
            }
        }
        messages.add(Message.builder(MessageType.CIS).tensor("data", Tensor.ofComplex(cis, tokens, headDim / 2)).id("cis").build());
        messages.add(Message.builder(MessageType.KV_INDEX).tensor("data", Tensor.scalar(tokens)).id("kv-index").build());
        Message.Builder cache = Message.builder(MessageType.KV_CACHE).id("kv-cache").meta("model", "llama-style, 8 KV heads");
        for (int layer = 0; layer < 4; layer++) {
            float[] kv = new float[8 * tokens * headDim];
            for (int i = 0; i < kv.length; i++) {
                kv[i] = (float) random.nextGaussian();
            }
            cache.tensor("layer" + layer + ".k", Tensor.ofBFloat16(kv, 1, 8, tokens, headDim));
            cache.tensor("layer" + layer + ".v", Tensor.ofBFloat16(kv, 1, 8, tokens, headDim));
        }
        messages.add(cache.build());
        boolean[] causal = new boolean[tokens * tokens];
        for (int row = 0; row < tokens; row++) {
            for (int col = 0; col <= row; col++) {
                causal[row * tokens + col] = true;
            }
        }
        messages.add(Message.builder(MessageType.MASK).tensor("data", Tensor.ofBooleans(causal, 1, 1, tokens, tokens)).id("mask").build());
        return messages;
    }
}
