package netutils.transport.tcp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import netutils.api.Connection;
import netutils.api.ConnectionHandler;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.ProtocolException;
import netutils.api.RemoteErrorException;
import netutils.api.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import netutils.api.wire.Frames;
import netutils.api.wire.Serializers;

/** Malformed frames, vanishing peers and stalls: each fails one connection, clearly, and nothing else. */
@Timeout(60)
class TcpBadInputTest {

    private static final ConnectionHandler ECHO = ConnectionHandler.ofRequests(request -> request);

    /** Reads one frame from a raw socket and parses it, as a peer without netutils' connection would. */
    private static Message readFrame(InputStream in) throws IOException {
        DataInputStream data = new DataInputStream(in);
        byte[] header = new byte[12];
        data.readFully(header);
        long body = Integer.toUnsignedLong(ByteBuffer.wrap(header).getInt(8));
        int trailer = (header[4] & 1) != 0 ? 4 : 0;
        byte[] frame = Arrays.copyOf(header, 12 + (int) body + trailer);
        data.readFully(frame, 12, (int) body + trailer);
        return Frames.fromRawMessage(frame);
    }

    @Test
    void malformedFrameGetsAnErrorFrameAndTheServerKeepsServingOthers() throws Exception {
        try (TcpServer server = TcpServer.bind(0).serve(ECHO);
                Connection healthy = TcpClient.connect("127.0.0.1", server.port())) {
            healthy.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(1)));
            try (Socket raw = new Socket(InetAddress.getLoopbackAddress(), server.port())) {
                raw.getOutputStream().write(new byte[] {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '\r', '\n'});
                Message error = readFrame(raw.getInputStream());
                assertThat(error.type()).isEqualTo(MessageType.ERROR);
                assertThat(error.meta("code")).contains("BAD_MAGIC");
                assertThat(error.meta("detail").orElseThrow()).contains("bad magic 0x4745");
                assertThat(raw.getInputStream().read()).isEqualTo(-1); // and the server closed it
            }
            Message reply = healthy.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(2)));
            assertThat(reply.data().longValue()).isEqualTo(2);
        }
    }

    @Test
    void corruptedChecksummedFrameIsRefusedWithChecksumMismatch() throws Exception {
        Message message = Message.of(MessageType.HIDDEN_STATE, TcpTestSupport.random(DType.F32, new Random(4), 1, 256));
        byte[] frame = Frames.toRawSegment(message, Serializers.defaultSerializer(), true)
                .toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        frame[frame.length - 40] ^= 0x01; // one bit of tensor data flips on the way
        try (TcpServer server = TcpServer.bind(0).serve(ECHO);
                Socket raw = new Socket(InetAddress.getLoopbackAddress(), server.port())) {
            raw.getOutputStream().write(frame);
            Message error = readFrame(raw.getInputStream());
            assertThat(error.meta("code")).contains("CHECKSUM_MISMATCH");
            assertThat(error.meta("detail").orElseThrow()).contains("body checksum mismatch");
        }
    }

    @Test
    void frameOverTheServersLimitIsRefusedBeforeItsBodyArrives() throws Exception {
        TcpOptions small = TcpOptions.builder().maxFrameBytes(1024).build();
        try (TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), small).serve(ECHO);
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            client.send(Message.of(MessageType.KV_CACHE, Tensor.zeros(DType.F32, 1024)));
            assertThatThrownBy(client::receive).isInstanceOf(RemoteErrorException.class)
                    .hasMessageContaining("FRAME_TOO_LARGE").hasMessageContaining("exceeds the limit of 1,024 bytes");
        }
    }

    @Test
    void aSenderCutOffByTheServersLimitMidFrameLearnsTheServersReason() throws Exception {
        // 64 MiB cannot sit in the socket buffers: the server refuses the header and closes while the client still
        // writes the body, and the client's write fails with a reset. It used to say only "connection reset".
        TcpOptions small = TcpOptions.builder().maxFrameBytes(1 << 20).build();
        try (TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), small).serve(ECHO);
                Connection client = TcpClient.connect("127.0.0.1", server.port())) {
            Message big = Message.of(MessageType.KV_CACHE, Tensor.zeros(DType.U8, 64 << 20));
            assertThatThrownBy(() -> client.request(big, Duration.ofSeconds(30))).isInstanceOf(RemoteErrorException.class)
                    .hasMessageContaining("FRAME_TOO_LARGE").hasMessageContaining("exceeds the limit of 1,048,576 bytes");
            assertThat(client.isOpen()).isFalse();
        }
    }

    @Test
    void clientWhoseServerDiesMidFrameGetsAClearExceptionNotAHang() throws Exception {
        byte[] frame = Frames.toRawMessage(Message.of(MessageType.HIDDEN_STATE, TcpTestSupport.random(DType.F32, new Random(2), 1, 4096)));
        try (ServerSocket dying = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                try (Socket socket = dying.accept()) {
                    socket.getOutputStream().write(frame, 0, frame.length / 2);
                    socket.getOutputStream().flush();
                } catch (IOException ignored) {
                    // the test reads what arrived
                }
            });
            try (Connection client = TcpClient.connect("127.0.0.1", dying.getLocalPort())) {
                assertThatThrownBy(client::receive)
                        .isInstanceOfSatisfying(ProtocolException.class,
                                e -> assertThat(e.kind()).isEqualTo(ProtocolException.Kind.TRUNCATED))
                        .hasMessageContaining("peer stopped in the middle of a frame")
                        .hasMessageContaining("of 16384 bytes of tensor 'data'");
            }
        }
    }

    @Test
    void peerThatStallsMidFrameTimesOutAfterTheReadTimeout() throws Exception {
        byte[] frame = Frames.toRawMessage(Message.of(MessageType.HIDDEN_STATE, Tensor.zeros(DType.F32, 1, 4096)));
        try (ServerSocket stalling = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                try (Socket socket = stalling.accept()) {
                    socket.getOutputStream().write(frame, 0, 100);
                    Thread.sleep(5_000);
                } catch (Exception ignored) {
                    // the client gives up first
                }
            });
            TcpOptions options = TcpOptions.builder().readTimeout(Duration.ofMillis(300)).build();
            try (Connection client = TcpClient.connect("127.0.0.1", stalling.getLocalPort(), options)) {
                long start = System.nanoTime();
                assertThatThrownBy(client::receive).isInstanceOf(SocketTimeoutException.class)
                        .hasMessageContaining("read timed out: no progress for PT0.3S");
                assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(4));
                assertThat(client.isOpen()).isFalse();
            }
        }
    }

    @Test
    void peerThatStopsMidFrameDoesNotDisturbOtherConnections() throws Exception {
        TcpOptions options = TcpOptions.builder().readTimeout(Duration.ofMillis(500)).build();
        try (TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), options).serve(ECHO)) {
            byte[] frame = Frames.toRawMessage(Message.of(MessageType.MASK, Tensor.zeros(DType.BOOL, 64, 64)));
            Socket vanishing = new Socket(InetAddress.getLoopbackAddress(), server.port());
            vanishing.getOutputStream().write(frame, 0, 200);
            vanishing.close();
            try (Socket stalling = new Socket(InetAddress.getLoopbackAddress(), server.port());
                    Connection healthy = TcpClient.connect("127.0.0.1", server.port())) {
                stalling.getOutputStream().write(frame, 0, 200);
                for (int i = 0; i < 20; i++) {
                    Message reply = healthy.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(i)));
                    assertThat(reply.data().longValue()).isEqualTo(i);
                }
                // The stalled one is told why and dropped after the read timeout; its socket sees the close.
                stalling.setSoTimeout(5_000);
                Message told = readFrame(stalling.getInputStream());
                assertThat(told.type()).isEqualTo(MessageType.ERROR);
                assertThat(told.meta("code")).contains("TIMEOUT");
                assertThat(told.meta("detail").orElse("")).contains("read timed out");
                assertThat(stalling.getInputStream().read()).isEqualTo(-1);
                assertThat(healthy.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(99))).data().longValue()).isEqualTo(99);
            }
        }
    }

    @Test
    void connectionsOverTheLimitAreToldTheServerIsBusy() throws Exception {
        TcpServerOptions one = TcpServerOptions.builder().maxConnections(1).build();
        try (TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), one).serve(ECHO);
                Connection first = TcpClient.connect("127.0.0.1", server.port())) {
            first.request(Message.of(MessageType.MASK));
            try (Connection second = TcpClient.connect("127.0.0.1", server.port())) {
                assertThatThrownBy(second::receive).isInstanceOf(RemoteErrorException.class)
                        .hasMessageContaining("SERVER_BUSY");
            }
            assertThat(first.request(Message.of(MessageType.MASK)).type()).isEqualTo(MessageType.MASK);
        }
    }

    @Test
    void slowReaderMakesTheSenderTimeOut() throws Exception {
        try (ServerSocket neverReads = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                try (Socket socket = neverReads.accept()) {
                    assertThat(socket.isConnected()).isTrue();
                    Thread.sleep(10_000);
                } catch (Exception ignored) {
                    // the sender gives up first
                }
            });
            TcpOptions options = TcpOptions.builder().writeTimeout(Duration.ofMillis(300)).build();
            try (Connection client = TcpClient.connect("127.0.0.1", neverReads.getLocalPort(), options)) {
                Message big = Message.of(MessageType.KV_CACHE, Tensor.zeros(DType.U8, 64L << 20));
                assertThatThrownBy(() -> client.send(big)).isInstanceOf(SocketTimeoutException.class)
                        .hasMessageContaining("write timed out");
            }
        }
    }

    @Test
    void rawWritersOfBadBytesLoseOnlyTheirOwnConnection() throws Exception {
        try (TcpServer server = TcpServer.bind(0).serve(ECHO)) {
            Random random = new Random(5);
            for (int i = 0; i < 20; i++) {
                try (Socket raw = new Socket(InetAddress.getLoopbackAddress(), server.port())) {
                    byte[] junk = new byte[random.nextInt(1, 200)];
                    random.nextBytes(junk);
                    if (i % 2 == 0) {
                        junk[0] = 0x4E;
                        junk[1] = 0x55; // get past the magic, fail later
                    }
                    OutputStream out = raw.getOutputStream();
                    out.write(junk);
                }
            }
            try (Connection client = TcpClient.connect("127.0.0.1", server.port())) {
                assertThat(client.request(Message.of(MessageType.KV_INDEX, Tensor.scalar(3))).data().longValue()).isEqualTo(3);
            }
        }
    }
}
