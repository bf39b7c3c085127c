package netutils.api.spi;

import netutils.api.ProtocolException;

/**
 * Writes and reads the envelope of a frame: the small description of a message (type, ids, metadata and
 * the table of tensors) that precedes the raw tensor bytes. Tensor bytes never pass through a serializer.
 *
 * <p>Implementations are found with {@link java.util.ServiceLoader}: a named module declares
 * {@code provides netutils.api.spi.Serializer with ...}, a class-path jar lists the class in
 * {@code META-INF/services/netutils.api.spi.Serializer}. They need a public no-argument constructor and
 * must be safe to use from many threads at once.
 *
 * <p>Wire ids: 1 json, 2 msgpack, 3 kryo are the project's; 128 to 255 are free for users; the rest are
 * reserved. {@link #readEnvelope} only parses: the caller validates the content (dtypes, sizes, offsets)
 * and bounds the input to the configured envelope limit, but an implementation must still not allocate
 * more than the input's size suggests (check every declared count against the bytes that remain).
 */
public interface Serializer {

    /**
     * The id written in byte 3 of every frame header: 1..3 for the project's serializers, 128..255 for users'.
     *
     * @return the wire id
     */
    int id();

    /**
     * A short lower-case name, e.g. {@code "msgpack"}, used in options and error messages.
     *
     * @return the name
     */
    String name();

    /**
     * Encodes the envelope.
     *
     * @param envelope the envelope of one frame
     * @return the envelope's bytes, as they go into the frame body
     */
    byte[] writeEnvelope(Envelope envelope);

    /**
     * Decodes an envelope written by {@link #writeEnvelope} (by this or any other implementation of the
     * same wire id).
     *
     * @param bytes the envelope's bytes from a frame body
     * @return the envelope
     * @throws ProtocolException of kind {@link ProtocolException.Kind#MALFORMED_ENVELOPE} when the bytes do not
     *     parse, naming what was wrong
     */
    Envelope readEnvelope(byte[] bytes) throws ProtocolException;
}
