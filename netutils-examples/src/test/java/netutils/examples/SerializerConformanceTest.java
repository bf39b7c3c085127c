package netutils.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.DataInputStream;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import netutils.api.Connection;
import netutils.api.ConnectionHandler;
import netutils.api.Message;
import netutils.api.wire.Serializers;
import netutils.api.spi.Serializer;
import netutils.transport.tcp.TcpClient;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import netutils.api.wire.Frames;

/** Every installed serializer (json, msgpack, kryo and the example's cbor) carries every dtype and type. */
@Timeout(60)
class SerializerConformanceTest {

    static Stream<String> serializers() {
        return Stream.of("json", "msgpack", "kryo", "cbor");
    }

    @Test
    void allFourAreFoundThroughServiceLoader() {
        assertThat(Serializers.installed()).extracting(Serializer::id).containsExactly(1, 2, 3, 200);
    }

    @ParameterizedTest
    @MethodSource("serializers")
    void everyDtypeAndTypeRoundTripsAsRawFrames(String name) throws Exception {
        Serializer serializer = Serializers.byName(name);
        for (Message message : InteropValues.expectedMessages().values()) {
            byte[] frame = Frames.toRawMessage(message, serializer);
            assertThat(frame[3]).isEqualTo((byte) serializer.id());
            assertThat(Frames.fromRawMessage(frame)).isEqualTo(message);
        }
    }

    @ParameterizedTest
    @MethodSource("serializers")
    void everyDtypeAndTypeRoundTripsOverASocket(String name) throws Exception {
        TcpOptions options = TcpOptions.builder().serializer(name).checksum(true).build();
        try (TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), options)
                .serve(ConnectionHandler.ofRequests(request -> request));
                Connection client = TcpClient.connect("127.0.0.1", server.port(), options)) {
            for (Message message : InteropValues.expectedMessages().values()) {
                Message reply = client.request(message);
                assertThat(reply.tensors()).isEqualTo(message.tensors());
                assertThat(reply.replyTo()).isEqualTo(message.id());
            }
        }
    }

    @Test
    void oneConnectionCarriesFramesOfEverySerializerAndIsAnsweredInKind() throws Exception {
        try (TcpServer server = TcpServer.bind(0).serve(ConnectionHandler.ofRequests(request -> request));
                Socket socket = new Socket(InetAddress.getLoopbackAddress(), server.port())) {
            DataInputStream in = new DataInputStream(socket.getInputStream());
            List<Message> messages = List.copyOf(InteropValues.expectedMessages().values());
            for (int i = 0; i < 40; i++) {
                Serializer serializer = Serializers.byName(serializers().toList().get(i % 4));
                Message message = messages.get(i * 7 % messages.size());
                socket.getOutputStream().write(Frames.toRawMessage(message, serializer));
                byte[] reply = readFrame(in);
                assertThat(reply[3]).as("reply serializer").isEqualTo((byte) serializer.id());
                assertThat(Frames.fromRawMessage(reply).tensors()).isEqualTo(message.tensors());
            }
        }
    }

    static byte[] readFrame(InputStream input) throws java.io.IOException {
        DataInputStream in = new DataInputStream(input);
        byte[] header = new byte[12];
        in.readFully(header);
        int body = ByteBuffer.wrap(header).getInt(8);
        byte[] frame = Arrays.copyOf(header, 12 + body + ((header[4] & 1) != 0 ? 4 : 0));
        in.readFully(frame, 12, frame.length - 12);
        return frame;
    }
}
