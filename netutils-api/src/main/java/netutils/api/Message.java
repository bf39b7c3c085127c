package netutils.api;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.NoSuchElementException;
import java.util.Objects;
import java.util.Optional;
import java.util.SequencedMap;

/**
 * What travels on a {@link Connection}: a {@link MessageType}, named {@link Tensor tensors} in order, string
 * metadata in order, and an optional id and the id of the message it answers.
 *
 * <p>Messages are immutable. One tensor is {@link #of(MessageType, Tensor)}; more use the {@link #builder}:
 *
 * <pre>{@code
 * Message cache = Message.builder(MessageType.KV_CACHE)
 *         .tensor("layer0.k", k0).tensor("layer0.v", v0)
 *         .meta("model", "llama-3-8b")
 *         .id("req-17")
 *         .build();
 * }</pre>
 *
 * <p>A message is a plain value: it knows nothing of encodings. {@code netutils.api.wire.Frames} turns it into
 * a frame ({@code toRawMessage}) and back ({@code fromRawMessage}), or into a self-contained JSON text
 * ({@code toJson}, {@code fromJson}).
 */
public final class Message {
    /** The name {@link #of(MessageType, Tensor)} gives its single tensor. */
    public static final String DEFAULT_TENSOR_NAME = "data";
    /** The longest tensor name or metadata key accepted, in characters (Unicode code points). */
    public static final int MAX_NAME_LENGTH = 1024;

    private final MessageType type;
    private final SequencedMap<String, Tensor> tensors;
    private final SequencedMap<String, String> meta;
    private final String id;
    private final String replyTo;

    private Message(Builder builder) {
        this.type = builder.type;
        this.tensors = Collections.unmodifiableSequencedMap(new LinkedHashMap<>(builder.tensors));
        this.meta = Collections.unmodifiableSequencedMap(new LinkedHashMap<>(builder.meta));
        this.id = builder.id;
        this.replyTo = builder.replyTo;
    }

    /**
     * A message with no tensors.
     *
     * @param type the message type
     * @return the message
     */
    public static Message of(MessageType type) {
        return builder(type).build();
    }

    /**
     * A message with one tensor named {@value #DEFAULT_TENSOR_NAME}: the original module's {@code Message(type, data)}.
     *
     * @param type the message type
     * @param data the tensor
     * @return the message
     */
    public static Message of(MessageType type, Tensor data) {
        return builder(type).tensor(DEFAULT_TENSOR_NAME, data).build();
    }

    /**
     * An {@link MessageType#ERROR error} message with the code and description in its metadata.
     *
     * @param code a short upper-case code, e.g. {@code "BAD_MAGIC"}
     * @param detail a description for people
     * @return the message
     */
    public static Message error(String code, String detail) {
        return builder(MessageType.ERROR).meta("code", code).meta("detail", detail).build();
    }

    /**
     * A builder for a message of this type.
     *
     * @param type the message type
     * @return an empty builder
     */
    public static Builder builder(MessageType type) {
        return new Builder(type);
    }

    /**
     * A builder holding everything of this message, to derive another from it.
     *
     * @return a builder with this message's type, tensors, metadata and ids
     */
    public Builder toBuilder() {
        Builder builder = new Builder(type);
        builder.tensors.putAll(tensors);
        builder.meta.putAll(meta);
        builder.id = id;
        builder.replyTo = replyTo;
        return builder;
    }

    /**
     * The type.
     *
     * @return the message type
     */
    public MessageType type() {
        return type;
    }

    /**
     * The tensors by name, in the order they were added (and travel).
     *
     * @return an unmodifiable map, empty if there are no tensors
     */
    public SequencedMap<String, Tensor> tensors() {
        return tensors;
    }

    /**
     * The tensor with this name.
     *
     * @param name the tensor's name
     * @return the tensor
     * @throws NoSuchElementException naming the tensors the message has
     */
    public Tensor tensor(String name) {
        Tensor tensor = tensors.get(name);
        if (tensor == null) {
            throw new NoSuchElementException("message " + type + " has no tensor '" + name + "'; it has " + tensors.keySet());
        }
        return tensor;
    }

    /**
     * The tensor named {@value #DEFAULT_TENSOR_NAME}, or the only tensor: the original module's {@code data}.
     *
     * @return the tensor
     * @throws NoSuchElementException if there is neither
     */
    public Tensor data() {
        Tensor named = tensors.get(DEFAULT_TENSOR_NAME);
        if (named != null) {
            return named;
        }
        if (tensors.size() == 1) {
            return tensors.firstEntry().getValue();
        }
        throw new NoSuchElementException("message " + type + " has no tensor '" + DEFAULT_TENSOR_NAME
                + "' and " + tensors.size() + " others; use tensor(name) with one of " + tensors.keySet());
    }

    /**
     * The metadata, in order.
     *
     * @return an unmodifiable map, empty if there is none
     */
    public SequencedMap<String, String> meta() {
        return meta;
    }

    /**
     * The metadata value for this key, if present.
     *
     * @param key the metadata key
     * @return the value, or empty
     */
    public Optional<String> meta(String key) {
        return Optional.ofNullable(meta.get(key));
    }

    /**
     * The message id, if one was set.
     *
     * @return the id, or empty
     */
    public Optional<String> id() {
        return Optional.ofNullable(id);
    }

    /**
     * The id of the message this one answers, if any.
     *
     * @return the request's id, or empty
     */
    public Optional<String> replyTo() {
        return Optional.ofNullable(replyTo);
    }

    /**
     * The sum of the tensors' byte sizes.
     *
     * @return the bytes of tensor data the message carries
     */
    public long tensorBytes() {
        long total = 0;
        for (Tensor tensor : tensors.values()) {
            total += tensor.byteSize();
        }
        return total;
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof Message that
                && type.equals(that.type)
                && Objects.equals(id, that.id)
                && Objects.equals(replyTo, that.replyTo)
                && meta.equals(that.meta)
                && tensors.equals(that.tensors)
                && tensors.sequencedKeySet().stream().toList().equals(that.tensors.sequencedKeySet().stream().toList());
    }

    @Override
    public int hashCode() {
        return Objects.hash(type, id, replyTo, meta, tensors.keySet());
    }

    @Override
    public String toString() {
        StringBuilder out = new StringBuilder("Message[").append(type);
        if (id != null) {
            out.append(" id=").append(id);
        }
        if (replyTo != null) {
            out.append(" replyTo=").append(replyTo);
        }
        tensors.forEach((name, tensor) -> out.append(' ').append(name).append('=').append(tensor.dtype())
                .append(java.util.Arrays.toString(tensor.shape())));
        if (!meta.isEmpty()) {
            out.append(" meta=").append(meta);
        }
        return out.append(']').toString();
    }

    /** Builds a {@link Message}. Not thread-safe. */
    public static final class Builder {
        private final MessageType type;
        private final LinkedHashMap<String, Tensor> tensors = new LinkedHashMap<>();
        private final LinkedHashMap<String, String> meta = new LinkedHashMap<>();
        private String id;
        private String replyTo;

        private Builder(MessageType type) {
            this.type = Objects.requireNonNull(type, "type");
        }

        /**
         * Adds a tensor; names are unique within a message and keep their order.
         *
         * @param name the tensor's name, unique within the message
         * @param tensor the tensor
         * @return this builder
         * @throws IllegalArgumentException if the name is empty, too long, or already used
         */
        public Builder tensor(String name, Tensor tensor) {
            checkName("tensor name", name);
            Objects.requireNonNull(tensor, "tensor");
            if (tensors.putIfAbsent(name, tensor) != null) {
                throw new IllegalArgumentException("tensor '" + name + "' is already in this message");
            }
            return this;
        }

        /**
         * Sets a metadata entry, replacing an earlier value of the same key.
         *
         * @param key the metadata key
         * @param value the value
         * @return this builder
         */
        public Builder meta(String key, String value) {
            checkName("metadata key", key);
            meta.put(key, Objects.requireNonNull(value, "value"));
            return this;
        }

        /**
         * Sets the message id (for request/response), or clears it with {@code null}.
         *
         * @param id the id, or {@code null}
         * @return this builder
         */
        public Builder id(String id) {
            this.id = id;
            return this;
        }

        /**
         * Sets the id of the message this one answers, or clears it with {@code null}.
         *
         * @param requestId the request's id, or {@code null}
         * @return this builder
         */
        public Builder replyTo(String requestId) {
            this.replyTo = requestId;
            return this;
        }

        /**
         * Marks this message as the answer to {@code request}, when the request has an id.
         *
         * @param request the message being answered
         * @return this builder
         */
        public Builder replyTo(Message request) {
            this.replyTo = request.id;
            return this;
        }

        /**
         * The message.
         *
         * @return an immutable message
         */
        public Message build() {
            return new Message(this);
        }

        private static void checkName(String what, String name) {
            Objects.requireNonNull(name, what);
            int characters = name.codePointCount(0, name.length());
            if (characters == 0 || characters > MAX_NAME_LENGTH) {
                throw new IllegalArgumentException(what + " must have 1 to " + MAX_NAME_LENGTH + " characters, got "
                        + characters);
            }
        }
    }
}
