package netutils.serde.json;

import java.util.Arrays;
import netutils.api.spi.Envelope;
import netutils.api.spi.EnvelopeSchema;

/**
 * The fast path of writing: an envelope whose strings are all printable ASCII without quotes or backslashes (type
 * names, ids, tensor names and dtypes nearly always are) is written as JSON bytes directly, the same bytes Jackson's
 * generator writes for it. Anything else ({@code null} from {@link #write}) goes to Jackson, which escapes and
 * encodes. Starting a generator, its context objects and the copy out of its stream cost more than writing a
 * 150-byte envelope; {@code AsciiEnvelopeWriterTest} holds the two paths to identical bytes.
 */
final class AsciiEnvelopeWriter implements EnvelopeSchema.TreeWriter {
    private static final int MAX_DEPTH = 8; // the schema nests 4 deep: envelope, tensors, a tensor, its shape

    private byte[] bytes = new byte[192];
    private int length;
    private int depth;
    /** Per open container: whether it is a list (values separated by commas) and whether it is still empty. */
    private final boolean[] isList = new boolean[MAX_DEPTH];
    private final boolean[] isEmpty = new boolean[MAX_DEPTH];
    /** Set when a string needs what only Jackson does (escapes, UTF-8) or the nesting is deeper than the schema's. */
    private boolean unusual;

    private AsciiEnvelopeWriter() {
    }

    /** The envelope as JSON, or {@code null} if it has a string this writer leaves to Jackson. */
    static byte[] write(Envelope envelope) {
        AsciiEnvelopeWriter writer = new AsciiEnvelopeWriter();
        EnvelopeSchema.write(envelope, writer);
        return writer.unusual ? null : Arrays.copyOf(writer.bytes, writer.length);
    }

    @Override
    public void startMap(int entries) {
        open('{', false);
    }

    @Override
    public void key(String key) {
        if (!isEmpty[depth]) {
            put((byte) ',');
        }
        isEmpty[depth] = false;
        quoted(key);
        put((byte) ':');
    }

    @Override
    public void string(String value) {
        beforeValue();
        quoted(value);
    }

    @Override
    public void number(long value) {
        beforeValue();
        if (value < 0) {
            unusual = true; // the schema has none; Jackson writes what it is given
            return;
        }
        int digits = 1;
        for (long rest = value / 10; rest > 0; rest /= 10) {
            digits++;
        }
        ensure(digits);
        length += digits;
        long rest = value;
        for (int i = length - 1; i >= length - digits; i--) {
            bytes[i] = (byte) ('0' + rest % 10);
            rest /= 10;
        }
    }

    @Override
    public void startList(int elements) {
        open('[', true);
    }

    @Override
    public void endList() {
        close(']');
    }

    @Override
    public void endMap() {
        close('}');
    }

    private void open(char bracket, boolean list) {
        beforeValue();
        put((byte) bracket);
        if (depth + 1 >= MAX_DEPTH) {
            unusual = true;
            return;
        }
        depth++;
        isList[depth] = list;
        isEmpty[depth] = true;
    }

    private void close(char bracket) {
        put((byte) bracket);
        if (depth > 0) {
            depth--;
        }
    }

    /** A value inside a list follows a comma unless it is the first; inside a map its key wrote the comma. */
    private void beforeValue() {
        if (depth > 0 && isList[depth]) {
            if (!isEmpty[depth]) {
                put((byte) ',');
            }
            isEmpty[depth] = false;
        }
    }

    private void quoted(String text) {
        int size = text.length();
        ensure(size + 2);
        bytes[length++] = '"';
        for (int i = 0; i < size; i++) {
            char c = text.charAt(i);
            if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
                unusual = true;
                return;
            }
            bytes[length++] = (byte) c;
        }
        bytes[length++] = '"';
    }

    private void put(byte b) {
        ensure(1);
        bytes[length++] = b;
    }

    private void ensure(int more) {
        if (length + more > bytes.length) {
            bytes = Arrays.copyOf(bytes, Math.max(bytes.length * 2, length + more));
        }
    }
}
