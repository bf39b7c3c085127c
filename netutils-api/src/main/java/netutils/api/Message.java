package netutils.api;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.NoSuchElementException;
import java.util.Objects;
import java.util.Optional;
import java.util.SequencedMap;
import netutils.api.internal.Unicode;

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
 * <p>A received message may hold its tensors in memory lent from a pool: {@link #close()} gives it back, so
 * that the next large message is received without allocating. Receive in try-with-resources when messages are
 * large and frequent:
 *
 * <pre>{@code
 * try (Message kv = connection.receive()) {
 *     store(kv.tensor("k").data());   // copy out what must outlive the message
 * }
 * }</pre>
 *
 * Closing is optional and idempotent; a message built here, or one that was never closed, is freed by the
 * garbage collector. Tensors of a closed message refuse access (see {@link MemoryLease}).
 *
 * <p>A message is a plain value: it knows nothing of encodings. {@code netutils.api.wire.Frames} turns it into
 * a frame ({@code toRawMessage}) and back ({@code fromRawMessage}), or into a self-contained JSON text
 * ({@code toJson}, {@code fromJson}).
 */
public final class Message implements AutoCloseable {
    /** The name {@link #of(MessageType, Tensor)} gives its single tensor. */
    public static final String DEFAULT_TENSOR_NAME = "data";
    /** The longest tensor name or metadata key accepted, in characters (Unicode code points). */
    public static final int MAX_NAME_LENGTH = 1024;

    private final MessageType type;
    private final SequencedMap<String, Tensor> tensors;
    private final SequencedMap<String, String> meta;
    /** The maps behind the two views above: never changed once the message exists, so builders may share them. */
    private final LinkedHashMap<String, Tensor> tensorMap;
    private final LinkedHashMap<String, String> metaMap;
    private final String id;
    private final String replyTo;
    private final MemoryLease lease;

    private Message(Builder builder) {
        this.type = builder.type;
        this.lease = builder.lease;
        LinkedHashMap<String, Tensor> tensors = builder.shareTensors();
        if (lease != null) {
            tensors = new LinkedHashMap<>(tensors);
            tensors.replaceAll((name, tensor) -> tensor.leased(lease));
        }
        this.tensorMap = tensors;
        this.metaMap = builder.shareMeta();
        this.tensors = Collections.unmodifiableSequencedMap(tensorMap);
        this.meta = Collections.unmodifiableSequencedMap(metaMap);
        this.id = builder.id;
        this.replyTo = builder.replyTo;
    }

    /**
     * A message with no tensors.
     *
     * @param type what the message is
     * @return a message of {@code type} with no tensors, metadata or ids
     */
    public static Message of(MessageType type) {
        return builder(type).build();
    }

    /**
     * A message with one tensor named {@value #DEFAULT_TENSOR_NAME}: the original module's {@code Message(type, data)}.
     *
     * @param type what the message is
     * @param data its only tensor
     * @return a message of {@code type} carrying {@code data} and no metadata or ids
     */
    public static Message of(MessageType type, Tensor data) {
        return builder(type).tensor(DEFAULT_TENSOR_NAME, data).build();
    }

    /**
     * An {@link MessageType#ERROR error} message with the code and description in its metadata.
     *
     * @param code a short machine-readable error code, e.g. {@code "HANDLER_FAILED"}; metadata {@code code}
     * @param detail a human-readable description of what went wrong; metadata {@code detail}. A lone surrogate in
     *     either (text cut inside a character, say) becomes U+FFFD: an error must still reach the peer, where any
     *     other message refuses such a string
     * @return an error message with no tensors and no ids (set {@code reply_to} through {@link #toBuilder()})
     */
    public static Message error(String code, String detail) {
        return builder(MessageType.ERROR).meta("code", Unicode.mended(code)).meta("detail", Unicode.mended(detail))
                .build();
    }

    /**
     * A builder for a message of this type.
     *
     * @param type what the message will be
     * @return an empty builder: no tensors, metadata or ids yet
     */
    public static Builder builder(MessageType type) {
        return new Builder(type);
    }

    /**
     * A builder holding everything of this message, to derive another from it. The pooled memory stays this
     * message's: the derived message's tensors share it, and stop working when this message is closed.
     *
     * @return a new builder with this message's type, tensors, metadata, id and {@code reply_to}
     */
    public Builder toBuilder() {
        Builder builder = new Builder(type);
        builder.tensors = tensorMap; // shared until either side would change it: the builder copies first
        builder.tensorsShared = true;
        builder.meta = metaMap;
        builder.metaShared = true;
        builder.id = id;
        builder.replyTo = replyTo;
        return builder;
    }

    /** {@return what this message is} */
    public MessageType type() {
        return type;
    }

    /** {@return the tensors by name, in the order they were added (and travel); unmodifiable} */
    public SequencedMap<String, Tensor> tensors() {
        return tensors;
    }

    /**
     * The tensor with this name.
     *
     * @param name the tensor's name
     * @return the tensor
     * @throws NoSuchElementException if there is no such tensor; its message names the tensors the message has
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
     * @return the tensor named {@value #DEFAULT_TENSOR_NAME} if there is one, otherwise the message's only tensor
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

    /** {@return the metadata, in the order the keys were first set; unmodifiable} */
    public SequencedMap<String, String> meta() {
        return meta;
    }

    /**
     * The metadata value for this key, if present.
     *
     * @param key the metadata key
     * @return the value, or empty if the message has no such key
     */
    public Optional<String> meta(String key) {
        return Optional.ofNullable(meta.get(key));
    }

    /** {@return the message id, if one was set} */
    public Optional<String> id() {
        return Optional.ofNullable(id);
    }

    /** {@return the id of the message this one answers, if any} */
    public Optional<String> replyTo() {
        return Optional.ofNullable(replyTo);
    }

    /** {@return the sum of the tensors' byte sizes} */
    public long tensorBytes() {
        long total = 0;
        for (Tensor tensor : tensors.values()) {
            total += tensor.byteSize();
        }
        return total;
    }

    /**
     * Gives the tensors' pooled memory back, if they have any; afterwards the tensors refuse access. Does nothing
     * for messages without pooled memory, and nothing the second time.
     */
    @Override
    public void close() {
        if (lease != null) {
            lease.release();
        }
    }

    /** {@return whether this message's tensors live in memory lent from a pool (which {@link #close()} gives back)} */
    public boolean isPooled() {
        return lease != null;
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

    /** Refuses a string that is not valid Unicode (see {@link Unicode#lonelySurrogate}). */
    static void requireUnicode(String what, String value) {
        String problem = Unicode.lonelySurrogate(value);
        if (problem != null) {
            throw new IllegalArgumentException(what + " is not valid Unicode: " + problem);
        }
    }

    /** Builds a {@link Message}. Not thread-safe. */
    public static final class Builder {
        private final MessageType type;
        /** An empty map that is never changed: builders start sharing it and copy on their first change. */
        private static final LinkedHashMap<?, ?> NONE = new LinkedHashMap<>(1);

        // Copy on write: a built message (or the message a builder came from) may share these maps; a builder
        // copies a shared map before its first change, so a message never sees a later change. Building a message
        // and deriving one from another copy nothing.
        private LinkedHashMap<String, Tensor> tensors = none();
        private boolean tensorsShared = true;
        private LinkedHashMap<String, String> meta = none();
        private boolean metaShared = true;
        private String id;
        private String replyTo;
        private MemoryLease lease;

        private Builder(MessageType type) {
            this.type = Objects.requireNonNull(type, "type");
        }

        /**
         * Adds a tensor; names are unique within a message and keep their order.
         *
         * @param name the tensor's name, 1 to {@value Message#MAX_NAME_LENGTH} characters
         * @param tensor the tensor
         * @return this builder
         * @throws IllegalArgumentException if the name is empty, too long, or already used
         */
        public Builder tensor(String name, Tensor tensor) {
            checkName("tensor name", name);
            Objects.requireNonNull(tensor, "tensor");
            if (tensors.containsKey(name)) {
                throw new IllegalArgumentException("tensor '" + name + "' is already in this message");
            }
            if (tensorsShared) {
                tensors = new LinkedHashMap<>(tensors);
                tensorsShared = false;
            }
            tensors.put(name, tensor);
            return this;
        }

        /**
         * Sets a metadata entry, replacing an earlier value of the same key (which keeps its place in the order).
         *
         * @param key the key, 1 to {@value Message#MAX_NAME_LENGTH} characters
         * @param value the value, not {@code null}
         * @return this builder
         * @throws IllegalArgumentException if the key is empty or too long
         */
        public Builder meta(String key, String value) {
            checkName("metadata key", key);
            Objects.requireNonNull(value, "value");
            String notUnicode = Unicode.lonelySurrogate(value); // the text naming the key only when needed
            if (notUnicode != null) {
                throw new IllegalArgumentException("metadata value of '" + key + "' is not valid Unicode: " + notUnicode);
            }
            if (metaShared) {
                meta = new LinkedHashMap<>(meta);
                metaShared = false;
            }
            meta.put(key, value);
            return this;
        }

        /**
         * Sets the message id (for request/response), or clears it with {@code null}.
         *
         * @param id the id, or {@code null} for none
         * @return this builder
         */
        public Builder id(String id) {
            if (id != null) {
                requireUnicode("id", id);
            }
            this.id = id;
            return this;
        }

        /**
         * Sets the id of the message this one answers, or clears it with {@code null}.
         *
         * @param requestId the id of the request answered, or {@code null} for none
         * @return this builder
         */
        public Builder replyTo(String requestId) {
            if (requestId != null) {
                requireUnicode("reply_to", requestId);
            }
            this.replyTo = requestId;
            return this;
        }

        /**
         * Marks this message as the answer to {@code request}, when the request has an id; when it has none, an
         * earlier {@code reply_to} is cleared.
         *
         * @param request the message answered
         * @return this builder
         */
        public Builder replyTo(Message request) {
            this.replyTo = request.id;
            return this;
        }

        /**
         * Binds the message's tensors to pooled memory that {@link Message#close()} gives back; for transports.
         * Tensors added before or after this call are all bound.
         *
         * @param lease the lease of the memory the tensors live in, or {@code null} for none
         * @return this builder
         */
        public Builder lease(MemoryLease lease) {
            this.lease = lease;
            return this;
        }

        @SuppressWarnings("unchecked")
        private static <K, V> LinkedHashMap<K, V> none() {
            return (LinkedHashMap<K, V>) NONE;
        }

        /** The tensors, for a message to keep: from now on this builder copies them before changing them. */
        private LinkedHashMap<String, Tensor> shareTensors() {
            tensorsShared = true;
            return tensors;
        }

        /** The metadata, as {@link #shareTensors}. */
        private LinkedHashMap<String, String> shareMeta() {
            metaShared = true;
            return meta;
        }

        /** {@return the message, immutable; later changes to this builder do not affect it} */
        public Message build() {
            return new Message(this);
        }

        private static void checkName(String what, String name) {
            Objects.requireNonNull(name, what);
            requireUnicode(what, name);
            int characters = name.codePointCount(0, name.length());
            if (characters == 0 || characters > MAX_NAME_LENGTH) {
                throw new IllegalArgumentException(what + " must have 1 to " + MAX_NAME_LENGTH + " characters, got "
                        + characters);
            }
        }
    }
}
