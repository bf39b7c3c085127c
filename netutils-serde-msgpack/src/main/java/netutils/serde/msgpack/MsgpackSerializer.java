package netutils.serde.msgpack;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import netutils.api.ProtocolException;
import netutils.api.spi.Envelope;
import netutils.api.spi.EnvelopeSchema;
import netutils.api.spi.Serializer;
import org.msgpack.core.MessageBufferPacker;
import org.msgpack.core.MessageFormat;
import org.msgpack.core.MessagePack;
import org.msgpack.core.MessagePackException;
import org.msgpack.core.MessageUnpacker;

/**
 * MessagePack envelopes, wire id 2: a map with the keys of the JSON envelope ({@code type}, {@code id},
 * {@code reply_to}, {@code meta}, {@code tensors} of {@code name}, {@code dtype}, {@code shape}, {@code offset},
 * {@code nbytes}); {@link EnvelopeSchema} owns the keys and the rules, this class only moves trees of plain
 * values. Every count and string length read from the wire is checked against the bytes that remain before
 * anything is allocated, and a key that appears twice in a map is refused.
 */
public final class MsgpackSerializer implements Serializer {
    /** The wire id. */
    public static final int ID = 2;

    static {
        // msgpack-core picks Unsafe-based buffers unless told otherwise, and JDK 24+ warns on every console
        // that loads them. The portable ByteBuffer-based ones are plenty for envelopes of a few hundred bytes.
        // This must run before msgpack's MessageBuffer class loads; a user's explicit setting wins.
        if (System.getProperty("msgpack.universal-buffer") == null) {
            System.setProperty("msgpack.universal-buffer", "true");
        }
    }

    /**
     * The default packer starts with an 8 KiB buffer, costlier to allocate than the whole envelope is to write;
     * envelopes are a few hundred bytes, and the buffer grows when one is larger.
     */
    private static final MessagePack.PackerConfig PACKER = new MessagePack.PackerConfig().withBufferSize(512);

    /** Used by {@link java.util.ServiceLoader}. */
    public MsgpackSerializer() {
    }

    @Override
    public int id() {
        return ID;
    }

    @Override
    public String name() {
        return "msgpack";
    }

    @Override
    public byte[] writeEnvelope(Envelope envelope) {
        byte[] canonical = CanonicalEnvelopes.write(envelope);
        return canonical != null ? canonical : writeWithPacker(envelope);
    }

    /** The general path of writing: msgpack-core encodes any string. */
    static byte[] writeWithPacker(Envelope envelope) {
        try (MessageBufferPacker packer = PACKER.newBufferPacker()) {
            EnvelopeSchema.write(envelope, new PackingWriter(packer));
            return packer.toByteArray();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("writing to memory cannot fail", e);
        }
    }

    /** Packs the envelope's values as {@link EnvelopeSchema#write} gives them, without a tree. */
    private record PackingWriter(MessageBufferPacker packer) implements EnvelopeSchema.TreeWriter {
        @Override
        public void startMap(int entries) {
            run(() -> packer.packMapHeader(entries));
        }

        @Override
        public void key(String key) {
            run(() -> packer.packString(key));
        }

        @Override
        public void string(String value) {
            run(() -> packer.packString(value));
        }

        @Override
        public void number(long value) {
            run(() -> packer.packLong(value));
        }

        @Override
        public void startList(int elements) {
            run(() -> packer.packArrayHeader(elements));
        }

        @Override
        public void endList() {
            // sizes come first in MessagePack: nothing marks the end
        }

        @Override
        public void endMap() {
            // as above
        }

        private interface Packing {
            void run() throws IOException;
        }

        private static void run(Packing packing) {
            try {
                packing.run();
            } catch (IOException e) {
                throw new java.io.UncheckedIOException("writing to memory cannot fail", e);
            }
        }
    }

    @Override
    public Envelope readEnvelope(byte[] bytes) throws ProtocolException {
        Envelope canonical = CanonicalEnvelopes.read(bytes);
        return canonical != null ? canonical : readWithUnpacker(bytes);
    }

    /** The general path of reading: anything msgpack-core parses, checked by {@link EnvelopeSchema#fromTree}. */
    static Envelope readWithUnpacker(byte[] bytes) throws ProtocolException {
        try (MessageUnpacker in = MessagePack.newDefaultUnpacker(bytes)) {
            Reader reader = new Reader(in, bytes.length);
            if (!in.hasNext()) {
                throw EnvelopeSchema.invalid("msgpack envelope is empty");
            }
            Object tree = reader.value(0, "");
            if (in.hasNext()) {
                throw EnvelopeSchema.invalid("msgpack envelope has " + (bytes.length - in.getTotalReadBytes())
                        + " bytes after its map");
            }
            return EnvelopeSchema.fromTree(tree);
        } catch (ProtocolException e) {
            throw e;
        } catch (MessagePackException | IOException e) {
            // Some of msgpack-core's exceptions carry no message (an EOF inside a value): name the exception then.
            String detail = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            throw EnvelopeSchema.invalid("msgpack envelope does not parse: " + detail);
        }
    }

    /** Bounded reads of plain values: every declared count is checked against the bytes that remain. */
    private static final class Reader {
        private final MessageUnpacker in;
        private final long size;
        private int values;

        Reader(MessageUnpacker in, long size) {
            this.in = in;
            this.size = size;
        }

        Object value(int depth, String path) throws IOException, ProtocolException {
            values = EnvelopeSchema.countValue(values);
            MessageFormat format = in.getNextFormat();
            switch (format.getValueType()) {
                case NIL -> {
                    in.unpackNil();
                    return null;
                }
                case BOOLEAN -> {
                    return in.unpackBoolean();
                }
                case INTEGER -> {
                    if (format == MessageFormat.UINT64) {
                        java.math.BigInteger big = in.unpackBigInteger();
                        if (big.bitLength() > 63) {
                            throw EnvelopeSchema.invalid(path + " is " + big + ", an integer over 64 bits, which no "
                                    + "envelope field holds");
                        }
                        return big.longValue();
                    }
                    return in.unpackLong();
                }
                case FLOAT -> {
                    return in.unpackDouble();
                }
                case STRING -> {
                    int length = in.unpackRawStringHeader();
                    checkCount(length, 1, path, "a string of", "bytes");
                    return utf8(in.readPayload(length), path);
                }
                case BINARY -> {
                    int length = in.unpackBinaryHeader();
                    checkCount(length, 1, path, "binary data of", "bytes");
                    return in.readPayload(length);
                }
                case ARRAY -> {
                    checkDepth(depth);
                    int count = in.unpackArrayHeader();
                    checkCount(count, 1, path, "", "elements");
                    List<Object> list = new ArrayList<>(count);
                    for (int i = 0; i < count; i++) {
                        list.add(value(depth + 1, path + "[" + i + "]"));
                    }
                    return list;
                }
                case MAP -> {
                    checkDepth(depth);
                    int count = in.unpackMapHeader();
                    checkCount(count, 2, path, "", "entries");
                    Map<String, Object> map = new LinkedHashMap<>();
                    for (int i = 0; i < count; i++) {
                        if (in.getNextFormat().getValueType() != org.msgpack.value.ValueType.STRING) {
                            throw EnvelopeSchema.invalid((path.isEmpty() ? "envelope" : path)
                                    + " has a key that is not a string");
                        }
                        String key = (String) value(depth + 1, path);
                        Object entry = value(depth + 1, path.isEmpty() ? key : path + "." + key);
                        if (map.containsKey(key)) {
                            throw EnvelopeSchema.duplicateKey(path, key);
                        }
                        map.put(key, entry);
                    }
                    return map;
                }
                default -> throw EnvelopeSchema.invalid(path + " holds a msgpack " + format + ", which envelopes do "
                        + "not use");
            }
        }

        private void checkDepth(int depth) throws ProtocolException {
            if (depth >= EnvelopeSchema.MAX_DEPTH) {
                throw EnvelopeSchema.tooDeep();
            }
        }

        private void checkCount(int count, int minBytesEach, String path, String what, String unit)
                throws ProtocolException {
            long remaining = size - in.getTotalReadBytes();
            if (count < 0 || (long) count * minBytesEach > remaining) {
                throw EnvelopeSchema.invalid((path.isEmpty() ? "envelope" : path) + " declares "
                        + (what.isEmpty() ? "" : what + " ") + Integer.toUnsignedString(count) + " " + unit
                        + " but only " + remaining + " bytes remain");
            }
        }
    }

    /**
     * Strict UTF-8: {@code new String(bytes, UTF_8)} turns malformed bytes (an encoded lone surrogate among them)
     * into U+FFFD without a word, a value converted to garbage; Python's reader refuses them, and so does this.
     */
    private static String utf8(byte[] bytes, String path) throws ProtocolException {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
                    .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT)
                    .decode(java.nio.ByteBuffer.wrap(bytes)).toString();
        } catch (java.nio.charset.CharacterCodingException e) {
            throw EnvelopeSchema.invalid(path + " is not valid UTF-8 (" + e.getMessage() + ")");
        }
    }
}
