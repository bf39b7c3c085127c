package netutils.api.spi;

import netutils.api.Message;
import netutils.api.ProtocolException;

/**
 * The self-contained text form of a message behind {@code Frames.toJson} and {@code Frames.fromJson}:
 * envelope and tensor bytes (base64) in one document, for logs, debugging and peers that only speak JSON.
 * It is not the wire format. Found with {@link java.util.ServiceLoader}; the {@code netutils-serde-json}
 * module provides the {@code "json"} one.
 */
public interface MessageTextFormat {

    /**
     * The format's name; {@code Frames.toJson} asks for {@code "json"}.
     *
     * @return the name
     */
    String name();

    /**
     * Writes the message as text.
     *
     * @param message the message
     * @return its text
     * @throws IllegalArgumentException if the text would not fit a Java string
     */
    String write(Message message);

    /**
     * Reads a message written by {@link #write}, refusing unknown keys (see
     * {@link EnvelopeSchema#messageFromText}).
     *
     * @param text text written by {@link #write}
     * @return the message
     * @throws ProtocolException naming what is wrong with the text
     */
    Message read(String text) throws ProtocolException;
}
