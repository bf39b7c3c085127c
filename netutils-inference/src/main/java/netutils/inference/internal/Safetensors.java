package netutils.inference.internal;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SequencedMap;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * Reads and writes the safetensors format: an 8-byte little-endian header length {@code n}, {@code n} bytes of
 * JSON ({@code {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}}),
 * then the data, each tensor's bytes at its offsets from the end of the header. The file is memory-mapped, so
 * only the tensors a stage asks for are ever read.
 */
public final class Safetensors implements AutoCloseable {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    /** Headers beyond this are refused: real checkpoints have headers of some hundred KiB. */
    private static final long MAX_HEADER = 100L << 20;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** One tensor of the file. */
    public record Entry(String name, String dtype, long[] shape, MemorySegment bytes) {
        /** The number of elements. */
        public long elements() {
            long count = 1;
            for (long d : shape) {
                count *= d;
            }
            return count;
        }
    }

    private final Arena arena;
    private final Path file;
    private final SequencedMap<String, Entry> entries;

    private Safetensors(Arena arena, Path file, SequencedMap<String, Entry> entries) {
        this.arena = arena;
        this.file = file;
        this.entries = entries;
    }

    /**
     * Maps {@code file} and parses its header.
     *
     * @throws IOException naming the file and what is wrong with it
     */
    public static Safetensors open(Path file) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < 8) {
                throw new IOException(file + " is not safetensors: " + size + " bytes, shorter than the 8-byte header length");
            }
            MemorySegment all = channel.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long headerLength = all.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
            if (headerLength < 2 || headerLength > MAX_HEADER || 8 + headerLength > size) {
                throw new IOException(file + " is not safetensors: header length " + headerLength + " in a file of "
                        + size + " bytes");
            }
            String header = new String(all.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
            MemorySegment data = all.asSlice(8 + headerLength);
            SequencedMap<String, Entry> entries = new LinkedHashMap<>();
            JsonNode root;
            try {
                root = JSON.readTree(header);
            } catch (JacksonException e) {
                throw new IOException(file + ": safetensors header is not JSON: " + e.getOriginalMessage(), e);
            }
            if (!root.isObject()) {
                throw new IOException(file + ": safetensors header is not a JSON object");
            }
            for (Map.Entry<String, JsonNode> field : root.properties()) {
                if (field.getKey().equals("__metadata__")) {
                    continue;
                }
                entries.put(field.getKey(), parseEntry(file, field.getKey(), field.getValue(), data));
            }
            return new Safetensors(arena, file, Collections.unmodifiableSequencedMap(entries));
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static Entry parseEntry(Path file, String name, JsonNode node, MemorySegment data) throws IOException {
        String where = file + ": tensor '" + name + "'";
        JsonNode dtype = node.get("dtype");
        JsonNode shape = node.get("shape");
        JsonNode offsets = node.get("data_offsets");
        if (dtype == null || !dtype.isString() || shape == null || !shape.isArray() || offsets == null
                || !offsets.isArray() || offsets.size() != 2) {
            throw new IOException(where + " needs dtype, shape and two data_offsets");
        }
        long[] dims = new long[shape.size()];
        long count = 1;
        for (int i = 0; i < dims.length; i++) {
            dims[i] = shape.get(i).asLong();
            if (dims[i] < 0) {
                throw new IOException(where + " has a negative dimension in " + shape);
            }
            count = Math.multiplyExact(count, dims[i]);
        }
        int width = byteWidth(dtype.asString());
        long begin = offsets.get(0).asLong();
        long end = offsets.get(1).asLong();
        if (begin < 0 || end < begin || end > data.byteSize()) {
            throw new IOException(where + " has data_offsets [" + begin + ", " + end + "] outside the "
                    + data.byteSize() + "-byte data area");
        }
        if (width > 0 && end - begin != count * width) {
            throw new IOException(where + " is " + dtype.asString() + " " + Arrays.toString(dims) + " (" + count * width
                    + " bytes) but its data_offsets span " + (end - begin) + " bytes");
        }
        return new Entry(name, dtype.asString(), dims, data.asSlice(begin, end - begin));
    }

    private static int byteWidth(String dtype) {
        return switch (dtype) {
            case "F64", "I64", "U64" -> 8;
            case "F32", "I32", "U32" -> 4;
            case "F16", "BF16", "I16", "U16" -> 2;
            case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2" -> 1;
            default -> 0; // unknown dtypes are listed but cannot be read as floats
        };
    }

    /** The tensors, in file order. */
    public SequencedMap<String, Entry> entries() {
        return entries;
    }

    /**
     * The tensor {@code name} as floats (F32 as is, BF16 and F16 widened), checked against the expected shape.
     *
     * @throws IOException if the tensor is missing, has another shape, or is not a float dtype
     */
    public float[] floats(String name, long... expectedShape) throws IOException {
        Entry entry = entries.get(name);
        if (entry == null) {
            throw new IOException(file + " has no tensor '" + name + "'");
        }
        if (!Arrays.equals(entry.shape(), expectedShape)) {
            throw new IOException(file + ": tensor '" + name + "' has shape " + Arrays.toString(entry.shape())
                    + ", the config needs " + Arrays.toString(expectedShape));
        }
        long count = entry.elements();
        if (count > Integer.MAX_VALUE - 8) {
            throw new IOException(file + ": tensor '" + name + "' has " + count + " elements, more than a Java array holds");
        }
        float[] out = new float[(int) count];
        MemorySegment bytes = entry.bytes();
        switch (entry.dtype()) {
            case "F32" -> MemorySegment.copy(bytes, F32, 0, out, 0, out.length);
            case "BF16" -> {
                for (int i = 0; i < out.length; i++) {
                    out[i] = Float.intBitsToFloat(bytes.getAtIndex(I16, i) << 16);
                }
            }
            case "F16" -> {
                for (int i = 0; i < out.length; i++) {
                    out[i] = Float.float16ToFloat(bytes.getAtIndex(I16, i));
                }
            }
            default -> throw new IOException(file + ": tensor '" + name + "' is " + entry.dtype()
                    + "; the model reads F32, BF16 and F16");
        }
        return out;
    }

    /** Whether the file has a tensor of this name. */
    public boolean has(String name) {
        return entries.containsKey(name);
    }

    /** Unmaps the file; tensors read with {@link #floats} stay valid. */
    @Override
    public void close() {
        arena.close();
    }

    /** A tensor to write: F32 is written as is, BF16 rounded to nearest even. */
    public record Output(String dtype, long[] shape, float[] values) {
        /** Checks the dtype and that the values fill the shape. */
        public Output {
            if (!dtype.equals("F32") && !dtype.equals("BF16")) {
                throw new IllegalArgumentException("the writer writes F32 or BF16, not " + dtype);
            }
            long count = 1;
            for (long d : shape) {
                count *= d;
            }
            if (count != values.length) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " needs " + count + " values, got "
                        + values.length);
            }
        }
    }

    /**
     * Writes tensors in the given order to {@code file} (through a temporary file and a rename, so a reader never
     * sees half a file).
     */
    public static void write(Path file, SequencedMap<String, Output> tensors, Map<String, String> metadata)
            throws IOException {
        ObjectNode header = JSON.createObjectNode();
        ObjectNode meta = header.putObject("__metadata__");
        metadata.forEach(meta::put);
        long offset = 0;
        for (Map.Entry<String, Output> e : tensors.entrySet()) {
            Output t = e.getValue();
            long bytes = (long) t.values().length * (t.dtype().equals("F32") ? 4 : 2);
            ObjectNode node = header.putObject(e.getKey());
            node.put("dtype", t.dtype());
            var shape = node.putArray("shape");
            for (long d : t.shape()) {
                shape.add(d);
            }
            node.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        byte[] json = JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        // The format pads the header with spaces so the data starts 8-byte aligned.
        int padded = (json.length + 7) & -8;
        byte[] headerBytes = Arrays.copyOf(json, padded);
        Arrays.fill(headerBytes, json.length, padded, (byte) ' ');
        Path temporary = Files.createTempFile(file.toAbsolutePath().getParent(), file.getFileName().toString(), ".part");
        readableByAll(temporary);
        try (FileChannel out = FileChannel.open(temporary, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, padded);
            writeFully(out, length);
            writeFully(out, ByteBuffer.wrap(headerBytes));
            for (Output t : tensors.values()) {
                boolean f32 = t.dtype().equals("F32");
                ByteBuffer buffer = ByteBuffer.allocate(t.values().length * (f32 ? 4 : 2)).order(ByteOrder.LITTLE_ENDIAN);
                for (float v : t.values()) {
                    if (f32) {
                        buffer.putFloat(v);
                    } else {
                        buffer.putShort(Ops.toBFloat16(v));
                    }
                }
                writeFully(out, buffer.flip());
            }
        }
        Files.move(temporary, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    /** Temporary files are private (0600); a checkpoint is for every user of the machine to read. */
    public static void readableByAll(Path file) throws IOException {
        try {
            Files.setPosixFilePermissions(file, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        } catch (UnsupportedOperationException notPosix) {
            // the file system's defaults apply
        }
    }

    private static void writeFully(FileChannel out, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            out.write(buffer);
        }
    }
}
