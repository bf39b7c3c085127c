package netutils.bench;

import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Netty 4.2 as a user would set it up for this job, tuned the usual way: a 4-byte length field in front of each
 * frame, {@link LengthFieldBasedFrameDecoder} with the {@link ByteToMessageDecoder#COMPOSITE_CUMULATOR} (a large
 * frame is collected as a list of the buffers it arrived in instead of being copied into ever larger ones) and a
 * maximum frame length raised to fit; the native epoll transport where it loads, NIO otherwise; the pooled
 * allocator and adaptive receive buffers as Netty configures them by default. The sink answers after the whole
 * frame arrived; the echo sends each 8 KiB frame back as it came. Each side has one event-loop thread; the
 * caller waits for the answer on its own thread, as a blocking client of Netty does.
 */
final class NettyStack extends Stack {
    static final boolean EPOLL = Epoll.isAvailable();
    private static final int LENGTH_FIELD = 4;

    private final boolean large;
    private final EventLoopGroup serverGroup;
    private final EventLoopGroup clientGroup;
    private final Channel server;
    private final Channel client;
    private final ByteBuf message;
    private final int messageBytes;
    private volatile CompletableFuture<Integer> pending;

    static String transport() {
        return EPOLL ? "epoll" : "NIO (epoll unavailable: " + Epoll.unavailabilityCause() + ")";
    }

    /** A sink for messages of {@code payload}'s size, or an 8 KiB echo when {@code payload} is null. */
    NettyStack(String id, String label, MemorySegment payload, int small) throws InterruptedException {
        super(id, label);
        this.large = payload != null;
        IoHandlerFactory io = EPOLL ? EpollIoHandler.newFactory() : NioIoHandler.newFactory();
        serverGroup = new MultiThreadIoEventLoopGroup(1, io);
        clientGroup = new MultiThreadIoEventLoopGroup(1, io);
        Class<? extends ServerChannel> serverChannel = EPOLL ? EpollServerSocketChannel.class : NioServerSocketChannel.class;
        Class<? extends Channel> clientChannel = EPOLL ? EpollSocketChannel.class : NioSocketChannel.class;
        messageBytes = large ? Math.toIntExact(payload.byteSize()) : small;
        // The frame length the server accepts is raised to fit the message (the default in examples is far smaller).
        int maxFrame = messageBytes + LENGTH_FIELD;
        server = new ServerBootstrap().group(serverGroup).channel(serverChannel)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel channel) {
                        if (large) {
                            channel.pipeline().addLast(decoder(maxFrame, LENGTH_FIELD), new Sink());
                        } else {
                            channel.pipeline().addLast(decoder(maxFrame, 0), new Echo());
                        }
                    }
                })
                .bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0)).sync().channel();
        client = new Bootstrap().group(clientGroup).channel(clientChannel).option(ChannelOption.TCP_NODELAY, true)
                .handler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel channel) {
                        channel.pipeline().addLast(decoder(maxFrame, LENGTH_FIELD), new Answer());
                    }
                })
                .connect(server.localAddress()).sync().channel();
        if (large) {
            // Sent from the caller's memory as it is, like the raw socket: no copy into Netty's buffers.
            message = Unpooled.wrappedBuffer(Unpooled.directBuffer(LENGTH_FIELD).writeInt(messageBytes),
                    Unpooled.wrappedBuffer(payload.asByteBuffer()));
        } else {
            message = Unpooled.directBuffer(LENGTH_FIELD + small).writeInt(small).writeZero(small);
        }
    }

    private static LengthFieldBasedFrameDecoder decoder(int maxFrame, int strip) {
        LengthFieldBasedFrameDecoder decoder = new LengthFieldBasedFrameDecoder(maxFrame, 0, LENGTH_FIELD, 0, strip);
        decoder.setCumulator(ByteToMessageDecoder.COMPOSITE_CUMULATOR);
        return decoder;
    }

    /** Answers each whole frame with its length. */
    private static final class Sink extends SimpleChannelInboundHandler<ByteBuf> {
        @Override
        protected void channelRead0(ChannelHandlerContext context, ByteBuf frame) {
            Placement.serverThread();
            int length = frame.readableBytes();
            ByteBuf answer = context.alloc().directBuffer(2 * LENGTH_FIELD).writeInt(LENGTH_FIELD).writeInt(length);
            context.writeAndFlush(answer);
        }
    }

    /** Sends each frame back, its length field included. */
    private static final class Echo extends SimpleChannelInboundHandler<ByteBuf> {
        @Override
        protected void channelRead0(ChannelHandlerContext context, ByteBuf frame) {
            Placement.serverThread();
            context.writeAndFlush(frame.retain());
        }
    }

    /** Hands the answer to the waiting caller: for the sink the length the server saw, for the echo the size. */
    private final class Answer extends SimpleChannelInboundHandler<ByteBuf> {
        @Override
        protected void channelRead0(ChannelHandlerContext context, ByteBuf frame) {
            pending.complete(large ? frame.readInt() : frame.readableBytes());
        }
    }

    @Override
    boolean large() {
        return large;
    }


    @Override
    void sendLarge() throws Exception {
        call();
    }

    @Override
    void roundTrip() throws Exception {
        call();
    }

    private void call() throws Exception {
        CompletableFuture<Integer> answer = new CompletableFuture<>();
        pending = answer;
        // A duplicate shares the bytes; the original stays for the next call.
        client.writeAndFlush(message.retainedDuplicate());
        int length = answer.get(60, TimeUnit.SECONDS);
        if (length != messageBytes) {
            throw new IllegalStateException(id + ": server saw " + length + " bytes");
        }
    }

    @Override
    public void close() throws Exception {
        client.close().sync();
        server.close().sync();
        clientGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
        serverGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
        message.release();
    }
}
