package netutils.bench;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import netutils.api.Connection;
import netutils.api.wire.Frames;
import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.Tensor;
import netutils.transport.tcp.TcpOptions;
import netutils.transport.tcp.TcpServer;

/**
 * Runs in a child JVM: receives one large message (netutils or raw) and reports how much its peak resident
 * memory grew. Prints {@code PORT n}, then after the message {@code RSS before after-peak} in bytes.
 */
public final class MemoryProbe {
    private MemoryProbe() {
    }

    /** {@code netutils|raw}. */
    public static void main(String[] args) throws Exception {
        boolean raw = args[0].equals("raw");
        if (raw) {
            try (ServerSocketChannel server = RawSocket.listen()) {
                System.out.println("PORT " + RawSocket.port(server));
                System.out.flush();
                try (SocketChannel channel = server.accept()) {
                    ByteBuffer length = ByteBuffer.allocateDirect(8).order(ByteOrder.BIG_ENDIAN);
                    resetPeak();
                    long before = residentBytes("VmRSS");
                    RawSocket.readFully(channel, length);
                    // The baseline must hold the message somewhere too: one direct buffer of its size.
                    ByteBuffer data = java.lang.foreign.Arena.ofAuto().allocate(length.getLong(0), 64).asByteBuffer();
                    RawSocket.readFully(channel, data);
                    report(before, data.get(data.limit() - 1));
                    RawSocket.writeFully(channel, ByteBuffer.allocate(1));
                }
            }
            return;
        }
        TcpOptions options = TcpOptions.builder().maxFrameBytes(Frames.MAX_BODY_LENGTH).build();
        try (TcpServer server = TcpServer.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), options)) {
            System.out.println("PORT " + server.port());
            System.out.flush();
            try (Connection connection = server.accept()) {
                resetPeak();
                long before = residentBytes("VmRSS");
                Message message = connection.receive();
                Tensor tensor = message.data();
                report(before, tensor.data().get(java.lang.foreign.ValueLayout.JAVA_BYTE, tensor.byteSize() - 1));
                connection.send(Message.of(MessageType.KV_INDEX));
            }
        }
    }

    private static void report(long before, byte touched) throws IOException {
        System.out.println("RSS " + before + " " + residentBytes("VmHWM") + " " + touched);
        System.out.flush();
    }

    /** Resets the peak-RSS counter (VmHWM) to the current RSS, so the peak measured is this message's. */
    static void resetPeak() {
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
        } catch (IOException | RuntimeException unsupported) {
            // Older kernels: the peak then includes start-up, which only overstates the growth.
        }
    }

    /** A field of /proc/self/status in bytes (Linux). */
    static long residentBytes(String field) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith(field + ":")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IOException(field + " not in /proc/self/status");
    }
}
