package netutils.bench;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Runs in a child JVM, so that its resident memory is the receiver's alone: receives {@code count} messages
 * (netutils with the default {@code receive()}, each released where the API can; or raw, one message into one
 * direct buffer of its size) and reports how far its peak resident memory rose. Prints {@code PORT n}, then after
 * the messages {@code RSS before peak} in bytes.
 */
public final class MemoryProbe {
    private MemoryProbe() {
    }

    /** {@code raw|netutils [count]}. */
    public static void main(String[] args) throws Exception {
        int count = args.length > 1 ? Integer.parseInt(args[1]) : 1;
        if (args[0].equals("raw")) {
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
                    channel.write(ByteBuffer.allocate(1));
                }
            }
            return;
        }
        try (NetutilsStack.ProbeServer server = new NetutilsStack.ProbeServer()) {
            System.out.println("PORT " + server.port());
            System.out.flush();
            server.accept();
            resetPeak();
            long before = residentBytes("VmRSS");
            byte touched = 0;
            for (int i = 0; i < count; i++) {
                touched ^= server.receiveOne();
            }
            report(before, touched);
        }
    }

    private static void report(long before, byte touched) throws IOException {
        System.out.println("RSS " + before + " " + residentBytes("VmHWM") + " " + touched);
        System.out.flush();
    }

    /** Resets the peak-RSS counter (VmHWM) to the current RSS, so the peak measured is the messages'. */
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
