package netutils.serde.json;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import netutils.api.spi.Envelope;
import netutils.api.spi.EnvelopeSchema;

/**
 * The first path of reading: exactly the bytes {@link AsciiEnvelopeWriter} writes (keys in the schema's order,
 * no whitespace, printable ASCII strings without escapes, plain non-negative integers of at most 18 digits, a few
 * dozen entries at most), read byte by byte into an {@link Envelope}. Any other byte anywhere gives up
 * ({@code null}), and Jackson reads the envelope: {@link JsonSerializer.CommonEnvelopes}, then the tree path,
 * which reports what is wrong. What this reader accepts is a small subset of what those accept, with the same
 * meaning, so errors keep one definition; {@code AsciiEnvelopeReaderTest} checks it on random and mutated input.
 * Every netutils peer writes this form; Python's {@code json.dumps(separators=(",", ":"))} does too.
 */
final class AsciiEnvelopeReader {
    /** More of anything than this goes to Jackson, so this reader never comes near the schema's limits. */
    private static final int MAX_ENTRIES = 64;
    private static final int MAX_STRING = 256;
    private static final int MAX_DIGITS = 18; // 10^18 - 1 < 2^63: no overflow to check

    private static final byte[] TYPE = key("{", EnvelopeSchema.TYPE);
    private static final byte[] ID = key(",", EnvelopeSchema.ID);
    private static final byte[] REPLY_TO = key(",", EnvelopeSchema.REPLY_TO);
    private static final byte[] META = key(",", EnvelopeSchema.META);
    private static final byte[] TENSORS = key(",", EnvelopeSchema.TENSORS);
    private static final byte[] NAME = key("{", EnvelopeSchema.NAME);
    private static final byte[] DTYPE = key(",", EnvelopeSchema.DTYPE);
    private static final byte[] SHAPE = key(",", EnvelopeSchema.SHAPE);
    private static final byte[] OFFSET = key(",", EnvelopeSchema.OFFSET);
    private static final byte[] NBYTES = key(",", EnvelopeSchema.NBYTES);

    private final byte[] in;
    private int at;

    private AsciiEnvelopeReader(byte[] in) {
        this.in = in;
    }

    /** The envelope, or {@code null} if the bytes are not exactly of the form this reader takes. */
    static Envelope read(byte[] bytes) {
        return new AsciiEnvelopeReader(bytes).envelope();
    }

    private Envelope envelope() {
        if (!expect(TYPE)) {
            return null;
        }
        String type = string();
        String id = null;
        String replyTo = null;
        if (type == null) {
            return null;
        }
        if (expect(ID) && (id = string()) == null) {
            return null;
        }
        if (expect(REPLY_TO) && (replyTo = string()) == null) {
            return null;
        }
        if (!expect(META)) {
            return null;
        }
        Map<String, String> meta = meta();
        if (meta == null || !expect(TENSORS)) {
            return null;
        }
        List<Envelope.Entry> tensors = tensors();
        if (tensors == null || !expect('}') || at != in.length) {
            return null;
        }
        return new Envelope(type, id, replyTo, meta, tensors);
    }

    private Map<String, String> meta() {
        if (!expect('{')) {
            return null;
        }
        if (expect('}')) {
            return Map.of();
        }
        Map<String, String> meta = new LinkedHashMap<>();
        do {
            String key = string();
            String value;
            if (key == null || !expect(':') || (value = string()) == null || meta.put(key, value) != null
                    || meta.size() > MAX_ENTRIES) {
                return null; // a key twice: the tree path refuses it and says so
            }
        } while (expect(','));
        return expect('}') ? meta : null;
    }

    private List<Envelope.Entry> tensors() {
        if (!expect('[')) {
            return null;
        }
        if (expect(']')) {
            return List.of();
        }
        List<Envelope.Entry> entries = new ArrayList<>(2);
        do {
            if (!expect(NAME)) {
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
            long[] shape = shape();
            if (shape == null || !expect(OFFSET)) {
                return null;
            }
            long offset = number();
            if (offset < 0 || !expect(NBYTES)) {
                return null;
            }
            long nbytes = number();
            if (nbytes < 0 || !expect('}') || entries.size() >= MAX_ENTRIES) {
                return null;
            }
            entries.add(new Envelope.Entry(name, dtype, shape, offset, nbytes));
        } while (expect(','));
        return expect(']') ? entries : null;
    }

    private long[] shape() {
        if (!expect('[')) {
            return null;
        }
        if (expect(']')) {
            return new long[0];
        }
        long[] dims = new long[4];
        int rank = 0;
        do {
            long dim = number();
            if (dim < 0 || rank == MAX_ENTRIES) {
                return null;
            }
            if (rank == dims.length) {
                dims = Arrays.copyOf(dims, 2 * rank);
            }
            dims[rank++] = dim;
        } while (expect(','));
        return expect(']') ? (rank == dims.length ? dims : Arrays.copyOf(dims, rank)) : null;
    }

    /** A quoted string of printable ASCII without quotes or backslashes, or {@code null}. */
    private String string() {
        if (!expect('"')) {
            return null;
        }
        int start = at;
        int limit = Math.min(in.length, start + MAX_STRING + 1);
        for (int i = start; i < limit; i++) {
            byte b = in[i];
            if (b == '"') {
                at = i + 1;
                return new String(in, start, i - start, StandardCharsets.ISO_8859_1); // ASCII: a plain copy
            }
            if (b < 0x20 || b > 0x7e || b == '\\') {
                return null; // an escape, a control byte or UTF-8: Jackson's
            }
        }
        return null;
    }

    /** A plain non-negative integer of at most 18 digits without a leading zero, or -1. */
    private long number() {
        int start = at;
        long value = 0;
        while (at < in.length && in[at] >= '0' && in[at] <= '9') {
            value = value * 10 + (in[at] - '0');
            at++;
        }
        int digits = at - start;
        if (digits == 0 || digits > MAX_DIGITS || (digits > 1 && in[start] == '0')) {
            return -1;
        }
        if (at < in.length && (in[at] == '.' || in[at] == 'e' || in[at] == 'E')) {
            return -1; // a fraction or exponent: not an integer for Jackson either, and it is Jackson's to say so
        }
        return value;
    }

    private boolean expect(char c) {
        if (at < in.length && in[at] == c) {
            at++;
            return true;
        }
        return false;
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

    private static byte[] key(String before, String key) {
        return (before + '"' + key + "\":").getBytes(StandardCharsets.US_ASCII);
    }
}
