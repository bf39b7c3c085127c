package netutils.serde.msgpack;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import netutils.api.spi.Envelope;
import netutils.api.spi.EnvelopeSchema;

/**
 * The fast paths of MessagePack envelopes. Writing: an envelope whose strings are printable ASCII of at most 255
 * bytes is packed byte by byte, into the same bytes msgpack-core packs. Reading: exactly that form (the schema's
 * keys in its order, smallest integer formats, fixstr/str8 ASCII strings, a few dozen entries at most) is read
 * byte by byte; any other byte gives up ({@code null}) and msgpack-core reads the envelope through the tree path,
 * which reports what is wrong. Starting a packer or an unpacker and building the tree cost more than the whole
 * envelope; {@code CanonicalEnvelopesTest} holds the writer to msgpack-core's bytes and the reader to accept only
 * what the tree path reads the same.
 */
final class CanonicalEnvelopes {
    /** More of anything than this goes to msgpack-core, so the fast reader never comes near the schema's limits. */
    private static final int MAX_ENTRIES = 64;
    private static final int MAX_STRING = 255;

    private static final byte[] TYPE = key(EnvelopeSchema.TYPE);
    private static final byte[] ID = key(EnvelopeSchema.ID);
    private static final byte[] REPLY_TO = key(EnvelopeSchema.REPLY_TO);
    private static final byte[] META = key(EnvelopeSchema.META);
    private static final byte[] TENSORS = key(EnvelopeSchema.TENSORS);
    private static final byte[] NAME = key(EnvelopeSchema.NAME);
    private static final byte[] DTYPE = key(EnvelopeSchema.DTYPE);
    private static final byte[] SHAPE = key(EnvelopeSchema.SHAPE);
    private static final byte[] OFFSET = key(EnvelopeSchema.OFFSET);
    private static final byte[] NBYTES = key(EnvelopeSchema.NBYTES);

    private CanonicalEnvelopes() {
    }

    // ------------------------------------------------------------------ writing

    /** The envelope packed, or {@code null} if it has a string this writer leaves to msgpack-core. */
    static byte[] write(Envelope envelope) {
        Packer packer = new Packer();
        EnvelopeSchema.write(envelope, packer);
        return packer.unusual ? null : Arrays.copyOf(packer.bytes, packer.length);
    }

    /** msgpack-core's choices of format, for the values envelopes have. */
    private static final class Packer implements EnvelopeSchema.TreeWriter {
        private byte[] bytes = new byte[160];
        private int length;
        private boolean unusual;

        @Override
        public void startMap(int entries) {
            header(entries, 0x80, 0xde, 0xdf);
        }

        @Override
        public void key(String key) {
            string(key);
        }

        @Override
        public void string(String value) {
            int size = value.length();
            if (size > MAX_STRING) {
                unusual = true;
                return;
            }
            ensure(size + 2);
            if (size < 32) {
                bytes[length++] = (byte) (0xa0 | size);
            } else {
                bytes[length++] = (byte) 0xd9;
                bytes[length++] = (byte) size;
            }
            for (int i = 0; i < size; i++) {
                char c = value.charAt(i);
                if (c < 0x20 || c > 0x7e) {
                    unusual = true; // UTF-8 is msgpack-core's to encode
                    return;
                }
                bytes[length++] = (byte) c;
            }
        }

        @Override
        public void number(long value) {
            ensure(9);
            if (value < 0) {
                unusual = true; // the schema has none
            } else if (value < 128) {
                bytes[length++] = (byte) value;
            } else if (value < 256) {
                bytes[length++] = (byte) 0xcc;
                bytes[length++] = (byte) value;
            } else if (value < 65536) {
                bytes[length++] = (byte) 0xcd;
                bigEndian(value, 2);
            } else if (value < (1L << 32)) {
                bytes[length++] = (byte) 0xce;
                bigEndian(value, 4);
            } else {
                bytes[length++] = (byte) 0xcf;
                bigEndian(value, 8);
            }
        }

        @Override
        public void startList(int elements) {
            header(elements, 0x90, 0xdc, 0xdd);
        }

        @Override
        public void endList() {
            // sizes come first in MessagePack: nothing marks the end
        }

        @Override
        public void endMap() {
            // as above
        }

        private void header(int count, int fix, int sixteen, int thirtyTwo) {
            ensure(5);
            if (count < 16) {
                bytes[length++] = (byte) (fix | count);
            } else if (count < 65536) {
                bytes[length++] = (byte) sixteen;
                bigEndian(count, 2);
            } else {
                bytes[length++] = (byte) thirtyTwo;
                bigEndian(count, 4);
            }
        }

        private void bigEndian(long value, int size) {
            for (int i = size - 1; i >= 0; i--) {
                bytes[length++] = (byte) (value >>> (8 * i));
            }
        }

        private void ensure(int more) {
            if (length + more > bytes.length) {
                bytes = Arrays.copyOf(bytes, Math.max(bytes.length * 2, length + more));
            }
        }
    }

    // ------------------------------------------------------------------ reading

    /** The envelope, or {@code null} if the bytes are not exactly of the form {@link #write} packs. */
    static Envelope read(byte[] bytes) {
        return new Unpacker(bytes).envelope();
    }

    private static final class Unpacker {
        private final byte[] in;
        private int at;

        Unpacker(byte[] in) {
            this.in = in;
        }

        Envelope envelope() {
            int entries = fixHeader(0x80);
            if (!expect(TYPE)) {
                return null;
            }
            String type = string();
            String id = null;
            String replyTo = null;
            if (expect(ID) && (id = string()) == null) {
                return null;
            }
            if (expect(REPLY_TO) && (replyTo = string()) == null) {
                return null;
            }
            if (type == null || entries != 3 + (id != null ? 1 : 0) + (replyTo != null ? 1 : 0) || !expect(META)) {
                return null;
            }
            Map<String, String> meta = meta();
            if (meta == null || !expect(TENSORS)) {
                return null;
            }
            List<Envelope.Entry> tensors = tensors();
            if (tensors == null || at != in.length) {
                return null;
            }
            return new Envelope(type, id, replyTo, meta, tensors);
        }

        private Map<String, String> meta() {
            int count = fixHeader(0x80);
            if (count < 0) {
                return null;
            }
            if (count == 0) {
                return Map.of();
            }
            Map<String, String> meta = new LinkedHashMap<>();
            for (int i = 0; i < count; i++) {
                String key = string();
                String value = string();
                if (key == null || value == null || meta.put(key, value) != null) {
                    return null; // a key twice: the tree path refuses it and says so
                }
            }
            return meta;
        }

        private List<Envelope.Entry> tensors() {
            int count = listHeader();
            if (count < 0) {
                return null;
            }
            List<Envelope.Entry> entries = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                if (fixHeader(0x80) != 5 || !expect(NAME)) {
                    return null;
                }
                String name = string();
                if (name == null || !expect(DTYPE)) {
                    return null;
                }
                String dtype = string();
                if (dtype == null || !expect(SHAPE)) {
                    return null;
                }
                int rank = listHeader();
                if (rank < 0) {
                    return null;
                }
                long[] shape = new long[rank];
                for (int d = 0; d < rank; d++) {
                    if ((shape[d] = number()) < 0) {
                        return null;
                    }
                }
                if (!expect(OFFSET)) {
                    return null;
                }
                long offset = number();
                if (offset < 0 || !expect(NBYTES)) {
                    return null;
                }
                long nbytes = number();
                if (nbytes < 0) {
                    return null;
                }
                entries.add(new Envelope.Entry(name, dtype, shape, offset, nbytes));
            }
            return entries;
        }

        /** The count of a fixmap ({@code fix} 0x80) or fixarray (0x90), or -1. */
        private int fixHeader(int fix) {
            if (at < in.length && (in[at] & 0xf0) == fix) {
                return in[at++] & 0x0f;
            }
            return -1;
        }

        /** An array's count of at most {@link #MAX_ENTRIES}, in the smallest format, or -1. */
        private int listHeader() {
            int count = fixHeader(0x90);
            if (count >= 0) {
                return count;
            }
            if (at + 3 <= in.length && (in[at] & 0xff) == 0xdc) {
                count = (in[at + 1] & 0xff) << 8 | in[at + 2] & 0xff;
                at += 3;
                return count >= 16 && count <= MAX_ENTRIES ? count : -1;
            }
            return -1;
        }

        /** A fixstr or str8 of printable ASCII, in the smallest format, or {@code null}. */
        private String string() {
            if (at >= in.length) {
                return null;
            }
            int lead = in[at] & 0xff;
            int size;
            int start;
            if ((lead & 0xe0) == 0xa0) {
                size = lead & 0x1f;
                start = at + 1;
            } else if (lead == 0xd9 && at + 1 < in.length && (in[at + 1] & 0xff) >= 32) {
                size = in[at + 1] & 0xff;
                start = at + 2;
            } else {
                return null;
            }
            if (start + size > in.length) {
                return null;
            }
            for (int i = start; i < start + size; i++) {
                if (in[i] < 0x20 || in[i] > 0x7e) {
                    return null; // UTF-8 or a control byte: msgpack-core's
                }
            }
            at = start + size;
            return new String(in, start, size, StandardCharsets.ISO_8859_1); // ASCII: a plain copy
        }

        /** A non-negative integer below 2^63 in the smallest unsigned format, or -1. */
        private long number() {
            if (at >= in.length) {
                return -1;
            }
            int lead = in[at] & 0xff;
            int size;
            long least;
            switch (lead) {
                case 0xcc -> {
                    size = 1;
                    least = 128;
                }
                case 0xcd -> {
                    size = 2;
                    least = 256;
                }
                case 0xce -> {
                    size = 4;
                    least = 65536;
                }
                case 0xcf -> {
                    size = 8;
                    least = 1L << 32;
                }
                default -> {
                    if (lead < 0x80) {
                        at++;
                        return lead;
                    }
                    return -1;
                }
            }
            if (at + 1 + size > in.length) {
                return -1;
            }
            long value = 0;
            for (int i = 1; i <= size; i++) {
                value = value << 8 | (in[at + i] & 0xff);
            }
            if (value < least) {
                return -1; // negative (past 2^63) or not the smallest format
            }
            at += 1 + size;
            return value;
        }

        private boolean expect(byte[] token) {
            if (at + token.length > in.length) {
                return false;
            }
            for (int i = 0; i < token.length; i++) {
                if (in[at + i] != token[i]) {
                    return false;
                }
            }
            at += token.length;
            return true;
        }
    }

    private static byte[] key(String key) {
        byte[] ascii = key.getBytes(StandardCharsets.US_ASCII);
        byte[] packed = new byte[ascii.length + 1];
        packed[0] = (byte) (0xa0 | ascii.length);
        System.arraycopy(ascii, 0, packed, 1, ascii.length);
        return packed;
    }
}
