package netutils.api.wire;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;

/** Where a {@link FrameDecoder} reads a frame from: a socket, a pipe, or bytes already in memory. */
public interface FrameSource {

    /**
     * Reads the first bytes of the next frame into {@code header} until it is full.
     *
     * @param header a buffer to fill
     * @return {@code false} if the stream ended cleanly before the first byte
     * @throws EOFException if it ended after some bytes of the header
     */
    boolean readFrameStart(ByteBuffer header) throws IOException;

    /**
     * Reads until {@code destination} is full.
     *
     * @param destination a buffer to fill
     * @throws EOFException if the stream ends first
     */
    default void readFully(ByteBuffer destination) throws IOException {
        int wanted = destination.remaining();
        long got = readFully(java.lang.foreign.MemorySegment.ofBuffer(destination));
        destination.position(destination.position() + (int) got);
        if (got < wanted) {
            throw new EOFException("input ended after " + got + " of " + wanted + " bytes");
        }
    }

    /**
     * Reads until {@code destination} (native or heap memory, any size) is full.
     *
     * @param destination memory to fill
     * @return how many bytes were read before the stream ended, which is the size unless it ended early
     * @throws IOException if reading fails
     */
    long readFully(java.lang.foreign.MemorySegment destination) throws IOException;
}
