package netutils.examples;

import java.io.ByteArrayOutputStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Builds the hostile inputs the fuzz properties feed to the decoders: random envelope-like trees written by hand
 * in JSON, MessagePack and CBOR (hand-written so that they can lie: duplicate keys, lengths that claim more than
 * follows, nesting past the limit, numbers over 64 bits, wrong kinds where the schema wants others), and
 * mutations of valid bytes.
 */
final class HostileBytes {
    private HostileBytes() {
    }

    /** A map that may hold a key twice, which no {@link Map} can. */
    record Obj(List<Map.Entry<String, Object>> entries) {
    }

    /** A header that declares {@code count} items or bytes of a container or string, and then nothing of them. */
    record Lie(Kind kind, long count) {
    }

    /** What a {@link Lie} claims to be. */
    enum Kind { STRING, BINARY, ARRAY, MAP }

    /** A number literal too large for 64 bits. */
    record Big(BigInteger value) {
    }

    private static final String[] KEYS = {"type", "id", "reply_to", "meta", "tensors", "name", "dtype", "shape",
        "offset", "nbytes", "data", "", "x"};
    private static final String[] STRINGS = {"", "hidden_state", "KV_cache", "error", "F32", "BF16", "I64", "C64",
        "NOPE", "data", "\u0000", "\u001b[31m", "a\nb", "\ud83d\ude00", "\ud800", "é", "x".repeat(300)};
    private static final long[] LONGS = {0, 1, 7, 63, 64, 65, 128, -1, -64, 255, 256, 65535, 65536,
        Integer.MAX_VALUE, 0xFFFF_FFFFL, 1L << 32, 1L << 40, Long.MAX_VALUE, Long.MIN_VALUE, Long.MAX_VALUE - 63};

    // ------------------------------------------------------------------------------------------ trees

    /** A random tree, biased towards the envelope's shape so that the schema's checks are reached. */
    static Object envelopeTree(Random random) {
        List<Map.Entry<String, Object>> root = new ArrayList<>();
        if (random.nextInt(8) != 0) {
            root.add(entry("type", random.nextInt(6) == 0 ? value(random, 1) : pick(random, STRINGS)));
        }
        if (random.nextBoolean()) {
            root.add(entry(random.nextBoolean() ? "id" : "reply_to", random.nextInt(4) == 0 ? value(random, 1)
                    : pick(random, STRINGS)));
        }
        if (random.nextInt(4) != 0) {
            List<Map.Entry<String, Object>> meta = new ArrayList<>();
            for (int i = random.nextInt(4); i > 0; i--) {
                meta.add(entry(pick(random, STRINGS), random.nextInt(5) == 0 ? value(random, 2)
                        : pick(random, STRINGS)));
            }
            root.add(entry("meta", random.nextInt(8) == 0 ? value(random, 1) : new Obj(meta)));
        }
        if (random.nextInt(5) != 0) {
            List<Object> tensors = new ArrayList<>();
            for (int i = random.nextInt(4); i > 0; i--) {
                tensors.add(random.nextInt(6) == 0 ? value(random, 2) : tensorRow(random));
            }
            root.add(entry("tensors", random.nextInt(8) == 0 ? value(random, 1) : tensors));
        }
        if (random.nextInt(4) == 0) {
            // A duplicate of a key already there, or an unknown key with any value.
            Map.Entry<String, Object> extra = !root.isEmpty() && random.nextBoolean()
                    ? root.get(random.nextInt(root.size())) : entry(pick(random, KEYS), value(random, 0));
            root.add(random.nextInt(root.size() + 1), extra);
        }
        if (random.nextInt(12) == 0) {
            return nest(random, new Obj(root), 6 + random.nextInt(10));
        }
        return random.nextInt(20) == 0 ? value(random, 0) : new Obj(root);
    }

    private static Obj tensorRow(Random random) {
        List<Map.Entry<String, Object>> row = new ArrayList<>();
        row.add(entry("name", random.nextInt(6) == 0 ? value(random, 3) : pick(random, STRINGS)));
        row.add(entry("dtype", random.nextInt(6) == 0 ? value(random, 3) : pick(random, STRINGS)));
        List<Object> shape = new ArrayList<>();
        for (int i = random.nextInt(random.nextInt(10) == 0 ? 40 : 4); i > 0; i--) {
            shape.add(random.nextInt(8) == 0 ? value(random, 4) : number(random));
        }
        row.add(entry("shape", shape));
        row.add(entry("offset", random.nextInt(6) == 0 ? value(random, 3) : number(random)));
        row.add(entry("nbytes", random.nextInt(6) == 0 ? value(random, 3) : number(random)));
        if (random.nextInt(6) == 0) {
            row.remove(random.nextInt(row.size()));
        }
        if (random.nextInt(8) == 0) {
            row.add(row.get(random.nextInt(row.size())));
        }
        return new Obj(row);
    }

    private static Object number(Random random) {
        return switch (random.nextInt(10)) {
            case 0 -> new Big(BigInteger.TWO.pow(63 + random.nextInt(70)).add(BigInteger.valueOf(random.nextInt(5))));
            case 1, 2 -> (long) random.nextInt(1 << 20);
            default -> LONGS[random.nextInt(LONGS.length)];
        };
    }

    /** Any value, of any kind, nesting at most a few levels below {@code depth}. */
    static Object value(Random random, int depth) {
        int choice = random.nextInt(depth > 10 ? 7 : 11);
        return switch (choice) {
            case 0 -> null;
            case 1 -> random.nextBoolean();
            case 2 -> pick(random, STRINGS);
            case 3 -> number(random);
            case 4 -> random.nextDouble() * 1e6;
            case 5 -> {
                byte[] bytes = new byte[random.nextInt(16)];
                random.nextBytes(bytes);
                yield bytes;
            }
            case 6 -> new Lie(Kind.values()[random.nextInt(4)], LONGS[random.nextInt(LONGS.length)] & Long.MAX_VALUE);
            case 7, 8 -> {
                List<Object> list = new ArrayList<>();
                for (int i = random.nextInt(4); i > 0; i--) {
                    list.add(value(random, depth + 1));
                }
                yield list;
            }
            default -> {
                List<Map.Entry<String, Object>> entries = new ArrayList<>();
                for (int i = random.nextInt(4); i > 0; i--) {
                    entries.add(entry(pick(random, KEYS), value(random, depth + 1)));
                }
                yield new Obj(entries);
            }
        };
    }

    /** Wraps {@code inner} in {@code levels} arrays or maps: nesting past the envelope's limit of 8. */
    static Object nest(Random random, Object inner, int levels) {
        Object value = inner;
        for (int i = 0; i < levels; i++) {
            value = random.nextBoolean() ? java.util.Collections.singletonList(value)
                    : new Obj(List.of(entry(pick(random, KEYS), value)));
        }
        return value;
    }

    /** An entry that may hold null (JSON {@code null}), which {@code Map.entry} refuses. */
    private static Map.Entry<String, Object> entry(String key, Object value) {
        return new java.util.AbstractMap.SimpleImmutableEntry<>(key, value);
    }

    private static String pick(Random random, String[] values) {
        return values[random.nextInt(values.length)];
    }

    // ------------------------------------------------------------------------------------------ JSON

    static byte[] json(Object tree) {
        StringBuilder out = new StringBuilder();
        json(out, tree);
        return out.toString().getBytes(StandardCharsets.UTF_8);
    }

    private static void json(StringBuilder out, Object value) {
        switch (value) {
            case null -> out.append("null");
            case Boolean b -> out.append(b);
            case Long l -> out.append(l);
            case Double d -> out.append(d);
            case Big big -> out.append(big.value());
            case String s -> jsonString(out, s);
            case byte[] bytes -> jsonString(out, java.util.Base64.getEncoder().encodeToString(bytes));
            // JSON has no length prefixes; what a lie becomes is an unterminated container or string.
            case Lie lie -> out.append(switch (lie.kind()) {
                case STRING, BINARY -> "\"unterminated";
                case ARRAY -> "[1,";
                case MAP -> "{\"k\":";
            });
            case List<?> list -> {
                out.append('[');
                for (int i = 0; i < list.size(); i++) {
                    out.append(i == 0 ? "" : ",");
                    json(out, list.get(i));
                }
                out.append(']');
            }
            case Obj obj -> {
                out.append('{');
                for (int i = 0; i < obj.entries().size(); i++) {
                    out.append(i == 0 ? "" : ",");
                    jsonString(out, obj.entries().get(i).getKey());
                    out.append(':');
                    json(out, obj.entries().get(i).getValue());
                }
                out.append('}');
            }
            default -> throw new IllegalArgumentException(value.getClass().getName());
        }
    }

    private static void jsonString(StringBuilder out, String s) {
        out.append('"');
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        out.append('"');
    }

    // ------------------------------------------------------------------------------------------ MessagePack

    static byte[] msgpack(Object tree) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        msgpack(out, tree);
        return out.toByteArray();
    }

    private static void msgpack(ByteArrayOutputStream out, Object value) {
        switch (value) {
            case null -> out.write(0xc0);
            case Boolean b -> out.write(b ? 0xc3 : 0xc2);
            case Long l -> {
                out.write(0xd3);
                writeLong(out, l, 8);
            }
            case Double d -> {
                out.write(0xcb);
                writeLong(out, Double.doubleToLongBits(d), 8);
            }
            case Big big -> {
                out.write(0xcf); // uint64: the top bit makes it a value over Long.MAX_VALUE
                writeLong(out, big.value().longValue() | Long.MIN_VALUE, 8);
            }
            case String s -> {
                byte[] utf8 = s.getBytes(StandardCharsets.UTF_8);
                out.write(0xdb);
                writeLong(out, utf8.length, 4);
                out.writeBytes(utf8);
            }
            case byte[] bytes -> {
                out.write(0xc6);
                writeLong(out, bytes.length, 4);
                out.writeBytes(bytes);
            }
            case Lie lie -> {
                out.write(switch (lie.kind()) {
                    case STRING -> 0xdb;
                    case BINARY -> 0xc6;
                    case ARRAY -> 0xdd;
                    case MAP -> 0xdf;
                });
                writeLong(out, lie.count(), 4);
            }
            case List<?> list -> {
                out.write(0xdd);
                writeLong(out, list.size(), 4);
                list.forEach(element -> msgpack(out, element));
            }
            case Obj obj -> {
                out.write(0xdf);
                writeLong(out, obj.entries().size(), 4);
                for (Map.Entry<String, Object> entry : obj.entries()) {
                    msgpack(out, entry.getKey());
                    msgpack(out, entry.getValue());
                }
            }
            default -> throw new IllegalArgumentException(value.getClass().getName());
        }
    }

    // ------------------------------------------------------------------------------------------ CBOR

    static byte[] cbor(Object tree) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        cbor(out, tree);
        return out.toByteArray();
    }

    private static void cbor(ByteArrayOutputStream out, Object value) {
        switch (value) {
            case null -> out.write(0xf6);
            case Boolean b -> out.write(b ? 0xf5 : 0xf4);
            case Long l -> cborHead(out, l >= 0 ? 0 : 1, l >= 0 ? l : -1 - l);
            case Double d -> {
                out.write(0xfb);
                writeLong(out, Double.doubleToLongBits(d), 8);
            }
            case Big big -> cborHead(out, 0, big.value().longValue() | Long.MIN_VALUE); // unsigned over 2^63
            case String s -> {
                byte[] utf8 = s.getBytes(StandardCharsets.UTF_8);
                cborHead(out, 3, utf8.length);
                out.writeBytes(utf8);
            }
            case byte[] bytes -> {
                cborHead(out, 2, bytes.length);
                out.writeBytes(bytes);
            }
            case Lie lie -> cborHead(out, switch (lie.kind()) {
                case BINARY -> 2;
                case STRING -> 3;
                case ARRAY -> 4;
                case MAP -> 5;
            }, lie.count());
            case List<?> list -> {
                cborHead(out, 4, list.size());
                list.forEach(element -> cbor(out, element));
            }
            case Obj obj -> {
                cborHead(out, 5, obj.entries().size());
                for (Map.Entry<String, Object> entry : obj.entries()) {
                    cbor(out, entry.getKey());
                    cbor(out, entry.getValue());
                }
            }
            default -> throw new IllegalArgumentException(value.getClass().getName());
        }
    }

    /** A CBOR head with the 8-byte argument form, so every length can be as large as a lie wants. */
    private static void cborHead(ByteArrayOutputStream out, int major, long argument) {
        out.write(major << 5 | 27);
        writeLong(out, argument, 8);
    }

    private static void writeLong(ByteArrayOutputStream out, long value, int bytes) {
        for (int i = bytes - 1; i >= 0; i--) {
            out.write((int) (value >>> (8 * i)));
        }
    }

    // ------------------------------------------------------------------------------------------ mutations

    /** Bytes that make length fields and type markers lie in each format: huge counts, 8-byte heads, markers. */
    private static final int[] INTERESTING = {0x00, 0xff, 0x7f, 0x80, 0xdd, 0xdf, 0xdb, 0xc6, 0x9b, 0xbb, 0x5b, 0x7b,
        0x9f, 0xbf, 0x1b, '{', '[', '"', '\\', ':', ','};

    /** {@code original} with one to four random changes: flips, overwrites, inserts, deletes, cuts, copies. */
    static byte[] mutate(byte[] original, Random random) {
        byte[] bytes = original.clone();
        for (int changes = 1 + random.nextInt(4); changes > 0; changes--) {
            if (bytes.length == 0) {
                return new byte[] {(byte) random.nextInt(256)};
            }
            int at = random.nextInt(bytes.length);
            switch (random.nextInt(8)) {
                case 0 -> bytes[at] ^= (byte) (1 << random.nextInt(8));
                case 1 -> bytes[at] = (byte) random.nextInt(256);
                case 2 -> bytes[at] = (byte) INTERESTING[random.nextInt(INTERESTING.length)];
                case 3 -> { // a run of 0xFF: a length field that now claims gigabytes
                    for (int i = at; i < Math.min(bytes.length, at + 1 + random.nextInt(8)); i++) {
                        bytes[i] = (byte) 0xff;
                    }
                }
                case 4 -> bytes = java.util.Arrays.copyOf(bytes, at); // cut short
                case 5 -> { // delete a range
                    int length = Math.min(bytes.length - at, 1 + random.nextInt(16));
                    byte[] shorter = new byte[bytes.length - length];
                    System.arraycopy(bytes, 0, shorter, 0, at);
                    System.arraycopy(bytes, at + length, shorter, at, bytes.length - at - length);
                    bytes = shorter;
                }
                case 6 -> { // insert random bytes
                    byte[] inserted = new byte[1 + random.nextInt(8)];
                    random.nextBytes(inserted);
                    bytes = splice(bytes, at, inserted);
                }
                default -> { // copy a range of the input elsewhere (repeats keys, containers, headers)
                    int from = random.nextInt(bytes.length);
                    int length = Math.min(bytes.length - from, 1 + random.nextInt(32));
                    bytes = splice(bytes, at, java.util.Arrays.copyOfRange(bytes, from, from + length));
                }
            }
        }
        return bytes;
    }

    private static byte[] splice(byte[] bytes, int at, byte[] inserted) {
        byte[] longer = new byte[bytes.length + inserted.length];
        System.arraycopy(bytes, 0, longer, 0, at);
        System.arraycopy(inserted, 0, longer, at, inserted.length);
        System.arraycopy(bytes, at, longer, at + inserted.length, bytes.length - at);
        return longer;
    }
}
