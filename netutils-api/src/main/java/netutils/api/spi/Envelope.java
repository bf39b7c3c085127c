package netutils.api.spi;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The envelope of a frame, as a serializer writes and reads it. Field names on the wire are the ones of
 * {@code docs/PROTOCOL.md}: {@code type}, {@code id}, {@code reply_to}, {@code meta}, {@code tensors} with
 * {@code name}, {@code dtype}, {@code shape}, {@code offset}, {@code nbytes}.
 *
 * @param type the message type name
 * @param id the message id, or {@code null}
 * @param replyTo the id of the message this one answers, or {@code null}
 * @param meta string metadata in order
 * @param tensors the tensor table in order of offset
 */
public record Envelope(String type, String id, String replyTo, Map<String, String> meta, List<Entry> tensors) {

    /** Copies the collections; {@code type}, {@code meta} and {@code tensors} must not be null. */
    public Envelope {
        Objects.requireNonNull(type, "type");
        meta = meta.isEmpty() ? Map.of() : java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(meta));
        tensors = List.copyOf(tensors);
    }

    /**
     * One row of the tensor table.
     *
     * @param name the tensor's name, unique in the message
     * @param dtype the dtype's wire name, e.g. {@code "F32"} (a string, so that an unknown one can be reported)
     * @param shape the dimensions
     * @param offset where the bytes start, from the start of the data area; a multiple of 64
     * @param nbytes how many bytes the tensor has
     */
    public record Entry(String name, String dtype, long[] shape, long offset, long nbytes) {
        /** Copies the shape. */
        public Entry {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(dtype, "dtype");
            shape = shape.clone();
        }

        /**
         * A copy of the shape.
         *
         * @return the size of each dimension, outermost first
         */
        @Override
        public long[] shape() {
            return shape.clone();
        }

        /** The shape itself, not a copy: for readers within the SDK that do not change it. */
        long[] shapeView() {
            return shape;
        }

        @Override
        public boolean equals(Object other) {
            return other instanceof Entry that && name.equals(that.name) && dtype.equals(that.dtype)
                    && Arrays.equals(shape, that.shape) && offset == that.offset && nbytes == that.nbytes;
        }

        @Override
        public int hashCode() {
            return Objects.hash(name, dtype, Arrays.hashCode(shape), offset, nbytes);
        }

        @Override
        public String toString() {
            return "Entry[" + name + " " + dtype + " " + Arrays.toString(shape) + " @" + offset + " +" + nbytes + "]";
        }
    }
}
