package netutils.bench;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import netutils.api.Connection;
import netutils.api.ConnectionClosedException;
import netutils.api.ConnectionHandler;
import netutils.api.DType;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import netutils.transport.tcp.TcpClient;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServer;
import netutils.transport.tcp.TcpServerOptions;

/**
 * One thing being measured, connected once and then driven round after round: a raw socket or netutils with
 * one serializer, each with one connection for large messages and one for small round trips.
 */
abstract class Stack implements AutoCloseable {
    final String name;

    Stack(String name) {
        this.name = name;
    }

    /** Sends one large message and waits until the server has all of it. */
    abstract void sendLarge() throws IOException;

    /** One 8 KiB request and its 8 KiB answer. */
    abstract void roundTrip() throws IOException;

    @Override
    public abstract void close() throws IOException;

    static Stack create(String name, MemorySegment payload, int small) throws IOException {
        if (name.startsWith("raw")) {
            return new Raw(name, payload, small, name.equals("raw-virtual"));
        }
        return new Netutils(name, payload, small);
    }

    /** The baseline: length-prefixed bytes between reused direct buffers. */
    static final class Raw extends Stack {
        private final ServerSocketChannel sinkServer = RawSocket.listen();
        private final ServerSocketChannel echoServer = RawSocket.listen();
        private final SocketChannel sink;
        private final SocketChannel echo;
        private final ByteBuffer data;
        private final ByteBuffer length8 = ByteBuffer.allocateDirect(8).order(ByteOrder.BIG_ENDIAN);
        private final ByteBuffer length4 = ByteBuffer.allocateDirect(4).order(ByteOrder.BIG_ENDIAN);
        private final ByteBuffer ack = ByteBuffer.allocateDirect(1);
        private final ByteBuffer smallData;

        Raw(String name, MemorySegment payload, int small, boolean virtual) throws IOException {
            super(name);
            RawSocket.sinkServer(sinkServer, payload.byteSize(), virtual);
            RawSocket.echoServer(echoServer, small, virtual);
            sink = RawSocket.connect(RawSocket.port(sinkServer));
            echo = RawSocket.connect(RawSocket.port(echoServer));
            data = payload.asByteBuffer();
            smallData = ByteBuffer.allocateDirect(small);
        }

        @Override
        void sendLarge() throws IOException {
            length8.clear().putLong(0, data.capacity());
            RawSocket.writeFully(sink, length8, data.clear());
            RawSocket.readFully(sink, ack.clear());
        }

        @Override
        void roundTrip() throws IOException {
            length4.clear().putInt(0, smallData.capacity());
            RawSocket.writeFully(echo, length4, smallData.clear());
            RawSocket.readFully(echo, length4.clear());
            RawSocket.readFully(echo, smallData.clear().limit(length4.getInt(0)));
        }

        @Override
        public void close() throws IOException {
            sink.close();
            echo.close();
            sinkServer.close();
            echoServer.close();
        }
    }

    /** netutils over TCP: a KV_cache message acknowledged by the server, a hidden_state echoed back. */
    static final class Netutils extends Stack {
        private final TcpServer sinkServer;
        private final TcpServer echoServer;
        private final Connection sink;
        private final Connection echo;
        private final Message large;
        private final Message small;

        Netutils(String name, MemorySegment payload, int smallBytes) throws IOException {
            super(name);
            boolean fresh = name.endsWith("-fresh");
            boolean platform = name.endsWith("-platform");
            String serializer = name.split("-")[1];
            long frameLimit = payload.byteSize() + (1 << 20);
            TcpOptions options = TcpOptions.builder().serializer(serializer).maxFrameBytes(frameLimit).build();
            // The default server threads are platform threads for the first connections; "-virtual" is all virtual.
            TcpServerOptions.Builder serverOptions = TcpServerOptions.builder().connection(options);
            if (!platform) {
                serverOptions.connectionThreads(Thread.ofVirtual().factory());
            }
            ConnectionHandler acknowledge = connection -> {
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment buffer = arena.allocate(frameLimit, 64);
                    while (true) {
                        // Like the raw socket, receive into one reused buffer; "-fresh" takes new memory each time.
                        Message request = fresh ? connection.receive()
                                : connection.receive(SegmentAllocator.slicingAllocator(buffer));
                        connection.send(Message.builder(MessageType.KV_INDEX).meta("bytes", "" + request.tensorBytes()).build());
                    }
                } catch (ConnectionClosedException done) {
                    // the benchmark finished
                }
            };
            InetSocketAddress loopback = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);
            sinkServer = TcpServer.bind(loopback, serverOptions.build()).serve(acknowledge);
            echoServer = TcpServer.bind(loopback, serverOptions.build())
                    .serve(ConnectionHandler.ofRequests(request -> Message.of(MessageType.HIDDEN_STATE, request.data())));
            sink = TcpClient.connect("127.0.0.1", sinkServer.port(), options);
            echo = TcpClient.connect("127.0.0.1", echoServer.port(), options);
            large = Message.of(MessageType.KV_CACHE, Tensor.wrap(DType.BF16, payload, payload.byteSize() / 2));
            small = Message.of(MessageType.HIDDEN_STATE, Tensor.zeros(DType.F16, 1, 1, smallBytes / 2));
        }

        @Override
        void sendLarge() throws IOException {
            Message reply = sink.request(large);
            if (!reply.meta("bytes").orElse("").equals("" + large.tensorBytes())) {
                throw new IllegalStateException("server saw " + reply);
            }
        }

        @Override
        void roundTrip() throws IOException {
            Message reply = echo.request(small);
            if (reply.data().byteSize() != small.tensorBytes()) {
                throw new IllegalStateException("bad answer " + reply);
            }
        }

        @Override
        public void close() throws IOException {
            sink.close();
            echo.close();
            sinkServer.close();
            echoServer.close();
        }
    }
}
