package com.example.consumer;

import java.util.Arrays;
import netutils.api.Connection;
import netutils.api.ConnectionHandler;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import netutils.api.wire.Frames;
import netutils.transport.tcp.TcpClient;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServer;

/**
 * Starts a server on a free loopback port that doubles every hidden state it gets, sends it one through a
 * client, and checks the answer. Exits with status 1 (an exception) if anything differs, so CI notices.
 */
public final class Main {
    private Main() {
    }

    /**
     * Runs the exchange.
     *
     * @param args ignored
     * @throws Exception if the exchange fails or the answer is wrong
     */
    public static void main(String[] args) throws Exception {
        try (TcpServer server = TcpServer.bind(0)) {
            server.serve(ConnectionHandler.ofRequests(request -> Message.of(MessageType.HIDDEN_STATE,
                    Tensor.ofFloats(doubled(request.data().toFloatArray()), request.data().shape()))));

            float[] values = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, 42.0f};
            try (Connection client = TcpClient.connect(server.address(), TcpOptions.defaults())) {
                Message request = Message.builder(MessageType.HIDDEN_STATE)
                        .tensor("data", Tensor.ofFloats(values, 1, 2, 3))
                        .id("consumer-1")
                        .build();
                Message reply = client.request(request);

                check(reply.type().equals(MessageType.HIDDEN_STATE), "type " + reply.type());
                check(reply.replyTo().orElse("").equals("consumer-1"), "reply_to " + reply.replyTo());
                check(Arrays.equals(reply.data().shape(), new long[] {1, 2, 3}),
                        "shape " + Arrays.toString(reply.data().shape()));
                check(Arrays.equals(reply.data().toFloatArray(), doubled(values)),
                        "values " + Arrays.toString(reply.data().toFloatArray()));
                // The JSON text form needs netutils-serde-json at run time: found through ServiceLoader.
                check(Frames.fromJson(Frames.toJson(reply)).equals(reply), "JSON text round trip");

                System.out.println("netutils consumer: " + server.address() + " answered "
                        + Arrays.toString(reply.data().toFloatArray()) + " to " + Arrays.toString(values));
            }
        }
    }

    private static float[] doubled(float[] values) {
        float[] out = values.clone();
        for (int i = 0; i < out.length; i++) {
            out[i] *= 2;
        }
        return out;
    }

    private static void check(boolean condition, String what) {
        if (!condition) {
            throw new IllegalStateException("netutils consumer: unexpected " + what);
        }
    }
}
