package netutils.api;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Objects;
import netutils.api.internal.Memory;

/**
 * An n-dimensional array: a {@link DType}, a shape of rank 0 to {@value #MAX_RANK}, and contiguous row-major
 * little-endian data held in a {@link MemorySegment}.
 *
 * <p>Because the data is a {@code MemorySegment}, one tensor may be larger than 2 GiB; the array accessors
 * ({@link #toFloatArray()} and its siblings) are for tensors that fit a Java array. The byte size of the
 * data always equals the product of the shape times {@link DType#byteWidth()}; the factories check it.
 *
 * <p>Tensors are immutable values: the factories that take arrays or buffers copy them, and {@link #data()}
 * is a read-only view. {@link #wrap} is the zero-copy exception for large data the caller already holds;
 * the caller then must not change the memory while the tensor is in use. Memory allocated by this class
 * (copies, received tensors) is freed by the garbage collector once the tensor is unreachable.
 *
 * <pre>{@code
 * Tensor hidden = Tensor.ofFloats(new float[] {0.1f, 0.2f, 0.3f, 0.4f}, 1, 2, 2); // F32 [1, 2, 2]
 * Tensor position = Tensor.scalar(42);                                          // I64 []
 * float[] back = hidden.toFloatArray();
 * }</pre>
 */
public final class Tensor {
    /** The largest rank accepted. */
    public static final int MAX_RANK = 8;
    /**
     * The alignment of native memory that netutils allocates for tensors (copies, received tensors over
     * {@value #HEAP_LIMIT} bytes), like the frame's data area. Tensors of up to {@value #HEAP_LIMIT} bytes live
     * on the Java heap in a {@code byte[]}, which has no alignment guarantee; every accessor of this class reads
     * unaligned, so alignment matters only to code that reads {@link #data()} with aligned layouts (check
     * {@link MemorySegment#isNative()} first). Memory given to {@link #wrap} keeps whatever alignment it has.
     */
    public static final int ALIGNMENT = 64;
    /** Tensors netutils allocates of up to this many bytes live on the Java heap, in a {@code byte[]}. */
    public static final int HEAP_LIMIT = (int) Memory.SMALL;

    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64_LE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final DType dtype;
    private final long[] shape;
    private final MemorySegment memory;
    /** Set for tensors of a received message whose memory is lent from a pool; checked on every access. */
    private final MemoryLease lease;

    private Tensor(DType dtype, long[] shape, MemorySegment data, MemoryLease lease) {
        this.dtype = dtype;
        this.shape = shape;
        this.memory = data.asReadOnly();
        this.lease = lease;
    }

    /** This tensor bound to {@code lease}: every later access checks that the lease is still held. */
    Tensor leased(MemoryLease lease) {
        return lease == this.lease ? this : new Tensor(dtype, shape, memory, lease);
    }

    /** The memory, after checking that it has not gone back to a pool. */
    private MemorySegment live() {
        if (lease != null) {
            lease.checkHeld(this);
        }
        return memory;
    }

    // ---------------------------------------------------------------- factories

    /**
     * A tensor over {@code data} without copying it. The segment must hold exactly
     * {@code product(shape) * dtype.byteWidth()} bytes, little-endian, row-major.
     *
     * @param dtype the element type
     * @param data the little-endian, row-major bytes; the tensor keeps a read-only view of them
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor that shares {@code data}'s memory
     * @throws IllegalArgumentException if the byte size disagrees with the shape, or the shape is invalid
     */
    public static Tensor wrap(DType dtype, MemorySegment data, long... shape) {
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(data, "data");
        long[] checkedShape = checkShape(shape);
        long expected = byteSize(dtype, checkedShape);
        if (data.byteSize() != expected) {
            throw new IllegalArgumentException("tensor of " + dtype + " " + Arrays.toString(checkedShape) + " needs "
                    + expected + " bytes, data has " + data.byteSize());
        }
        return new Tensor(dtype, checkedShape, data, null);
    }

    /**
     * A tensor holding a copy of {@code data}; see {@link #wrap} for the size rule.
     *
     * @param dtype the element type
     * @param data the little-endian, row-major bytes to copy
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh memory
     * @throws IllegalArgumentException if the byte size disagrees with the shape, or the shape is invalid
     */
    public static Tensor copyOf(DType dtype, MemorySegment data, long... shape) {
        Objects.requireNonNull(data, "data");
        MemorySegment copy = allocate(data.byteSize());
        copy.copyFrom(data);
        return wrap(dtype, copy, shape);
    }

    /**
     * A tensor holding a copy of the remaining bytes of {@code data} (raw little-endian element bytes,
     * whatever the buffer's own byte order setting). The buffer's position is not changed.
     *
     * @param dtype the element type
     * @param data the element bytes, from its position to its limit
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh memory
     * @throws IllegalArgumentException if the byte size disagrees with the shape, or the shape is invalid
     */
    public static Tensor of(DType dtype, ByteBuffer data, long... shape) {
        Objects.requireNonNull(data, "data");
        return copyOf(dtype, MemorySegment.ofBuffer(data), shape);
    }

    /**
     * A tensor of raw little-endian element bytes of any dtype (copied).
     *
     * @param dtype the element type
     * @param littleEndianBytes the element bytes
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh memory
     * @throws IllegalArgumentException if the byte size disagrees with the shape, or the shape is invalid
     */
    public static Tensor ofBytes(DType dtype, byte[] littleEndianBytes, long... shape) {
        return copyOf(dtype, MemorySegment.ofArray(littleEndianBytes), shape);
    }

    /**
     * A tensor of any floating-point dtype from float values, each rounded to the nearest value of
     * {@code dtype} (ties to even): {@link DType#F32} exactly, {@link DType#F64} widened, {@link DType#F16},
     * {@link DType#BF16}, {@link DType#F8_E4M3} (out of range becomes NaN, as E4M3 has no infinity) and
     * {@link DType#F8_E5M2}; {@link DType#C64} takes interleaved (real, imaginary) pairs, two floats per element.
     * The inverse of {@link #toFloatArray()}.
     *
     * @param dtype a floating-point element type
     * @param values the values in row-major order (for {@link DType#C64}, two per element)
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh memory
     * @throws IllegalArgumentException if {@code dtype} is not a floating-point type, or the count disagrees with
     *     the shape
     */
    public static Tensor of(DType dtype, float[] values, long... shape) {
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(values, "values");
        switch (dtype) {
            case F32 -> {
                MemorySegment segment = allocateFor(dtype, values.length, shape);
                MemorySegment.copy(values, 0, segment, F32_LE, 0, values.length);
                return wrap(dtype, segment, shape);
            }
            case C64 -> {
                if (values.length % 2 != 0) {
                    throw new IllegalArgumentException("complex values come in (real, imaginary) pairs; got an odd "
                            + "count " + values.length);
                }
                MemorySegment segment = allocateFor(dtype, values.length / 2, shape);
                MemorySegment.copy(values, 0, segment, F32_LE, 0, values.length);
                return wrap(dtype, segment, shape);
            }
            case F64 -> {
                MemorySegment segment = allocateFor(dtype, values.length, shape);
                for (int i = 0; i < values.length; i++) {
                    segment.setAtIndex(F64_LE, i, values[i]);
                }
                return wrap(dtype, segment, shape);
            }
            case F16, BF16 -> {
                MemorySegment segment = allocateFor(dtype, values.length, shape);
                for (int i = 0; i < values.length; i++) {
                    segment.setAtIndex(I16_LE, i, dtype == DType.F16 ? Float.floatToFloat16(values[i])
                            : floatToBFloat16(values[i]));
                }
                return wrap(dtype, segment, shape);
            }
            case F8_E4M3, F8_E5M2 -> {
                MemorySegment segment = allocateFor(dtype, values.length, shape);
                Float8 format = dtype == DType.F8_E4M3 ? Float8.E4M3 : Float8.E5M2;
                for (int i = 0; i < values.length; i++) {
                    segment.set(ValueLayout.JAVA_BYTE, i, format.encode(values[i]));
                }
                return wrap(dtype, segment, shape);
            }
            default -> throw new IllegalArgumentException("Tensor.of(DType, float[]) makes floating-point tensors; "
                    + dtype + " is not one (use ofLongs, ofInts, ofShorts, ofBooleans or ofBytes)");
        }
    }

    /**
     * An {@link DType#F32} tensor; the same as {@code of(DType.F32, values, shape)}.
     *
     * @param values the values in row-major order
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh memory
     */
    public static Tensor ofFloats(float[] values, long... shape) {
        return of(DType.F32, values, shape);
    }

    /**
     * An {@link DType#F16} tensor, each value rounded to the nearest half-precision value.
     *
     * @param values the values in row-major order
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh memory
     */
    public static Tensor ofHalfFloats(float[] values, long... shape) {
        return of(DType.F16, values, shape);
    }

    /**
     * A {@link DType#BF16} tensor, each value rounded to nearest-even bfloat16.
     *
     * @param values the values in row-major order
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh memory
     */
    public static Tensor ofBFloat16(float[] values, long... shape) {
        return of(DType.BF16, values, shape);
    }

    /**
     * A {@link DType#C64} tensor from interleaved (real, imaginary) pairs: two floats per element.
     *
     * @param interleavedRealImaginary real and imaginary parts of each element in turn, row-major
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh memory
     */
    public static Tensor ofComplex(float[] interleavedRealImaginary, long... shape) {
        return of(DType.C64, interleavedRealImaginary, shape);
    }

    /**
     * An {@link DType#F64} tensor.
     *
     * @param values the values in row-major order
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh memory
     */
    public static Tensor ofDoubles(double[] values, long... shape) {
        MemorySegment segment = allocateFor(DType.F64, values.length, shape);
        MemorySegment.copy(values, 0, segment, F64_LE, 0, values.length);
        return wrap(DType.F64, segment, shape);
    }

    /**
     * An {@link DType#I64} tensor.
     *
     * @param values the values in row-major order
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh memory
     */
    public static Tensor ofLongs(long[] values, long... shape) {
        MemorySegment segment = allocateFor(DType.I64, values.length, shape);
        MemorySegment.copy(values, 0, segment, I64_LE, 0, values.length);
        return wrap(DType.I64, segment, shape);
    }

    /**
     * An {@link DType#I32} tensor.
     *
     * @param values the values in row-major order
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh memory
     */
    public static Tensor ofInts(int[] values, long... shape) {
        MemorySegment segment = allocateFor(DType.I32, values.length, shape);
        MemorySegment.copy(values, 0, segment, I32_LE, 0, values.length);
        return wrap(DType.I32, segment, shape);
    }

    /**
     * An {@link DType#I16} tensor.
     *
     * @param values the values in row-major order
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh memory
     */
    public static Tensor ofShorts(short[] values, long... shape) {
        MemorySegment segment = allocateFor(DType.I16, values.length, shape);
        MemorySegment.copy(values, 0, segment, I16_LE, 0, values.length);
        return wrap(DType.I16, segment, shape);
    }

    /**
     * A {@link DType#BOOL} tensor, one byte per value.
     *
     * @param values the values in row-major order
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh memory
     */
    public static Tensor ofBooleans(boolean[] values, long... shape) {
        MemorySegment segment = allocateFor(DType.BOOL, values.length, shape);
        for (int i = 0; i < values.length; i++) {
            segment.set(ValueLayout.JAVA_BYTE, i, values[i] ? (byte) 1 : (byte) 0);
        }
        return wrap(DType.BOOL, segment, shape);
    }

    /**
     * A rank-0 {@link DType#I64} tensor, the natural form of a {@code KV_index}.
     *
     * @param value the value
     * @return a tensor of shape {@code []} holding {@code value}
     */
    public static Tensor scalar(long value) {
        return ofLongs(new long[] {value});
    }

    /**
     * A tensor of zero bytes (all-zero bit patterns) of any dtype and shape, possibly over 2 GiB.
     *
     * @param dtype the element type
     * @param shape the size of each dimension, none for a scalar
     * @return a tensor on fresh, zeroed memory
     */
    public static Tensor zeros(DType dtype, long... shape) {
        long[] checked = checkShape(shape);
        return wrap(dtype, allocate(byteSize(dtype, checked)), checked);
    }

    // ---------------------------------------------------------------- accessors

    /**
     * The element type.
     *
     * @return the dtype of every element
     */
    public DType dtype() {
        return dtype;
    }

    /**
     * A copy of the shape; empty for a scalar.
     *
     * @return the size of each dimension, outermost first
     */
    public long[] shape() {
        return shape.clone();
    }

    /**
     * The number of dimensions.
     *
     * @return the length of {@link #shape()}, 0 for a scalar
     */
    public int rank() {
        return shape.length;
    }

    /**
     * The size of dimension {@code axis}.
     *
     * @param axis the dimension, from 0 (outermost) to {@code rank() - 1}
     * @return the size of that dimension
     */
    public long dim(int axis) {
        return shape[axis];
    }

    /**
     * The number of elements: the product of the shape, 1 for a scalar.
     *
     * @return how many elements the tensor holds
     */
    public long elementCount() {
        return elementCount(shape);
    }

    /**
     * The size of the data in bytes.
     *
     * @return {@link #elementCount()} times the dtype's byte width
     */
    public long byteSize() {
        return memory.byteSize();
    }

    /**
     * The data, read-only, little-endian, row-major.
     *
     * @return a read-only view of the tensor's memory
     */
    public MemorySegment data() {
        return live();
    }

    /**
     * The data as a read-only little-endian {@link ByteBuffer}, for code built on NIO buffers. It is a view of
     * the tensor's own memory when that memory is native or a {@code byte[]} (every tensor netutils allocates or
     * receives, and anything built with {@code MemorySegment.ofBuffer} of a direct or array-backed buffer); a
     * tensor {@link #wrap wrapped} around another kind of Java array is copied once into a new buffer.
     *
     * @return a read-only buffer of {@link #byteSize()} bytes, position 0, in little-endian order
     * @throws IllegalStateException if the tensor has 2 GiB or more, which no ByteBuffer can hold; use
     *     {@link #data()} or {@link #copyTo(MemorySegment)}
     */
    public ByteBuffer asByteBuffer() {
        if (live().byteSize() > Integer.MAX_VALUE) {
            throw new IllegalStateException("a tensor of " + live().byteSize() + " bytes does not fit a ByteBuffer "
                    + "(at most " + Integer.MAX_VALUE + "); read data() instead");
        }
        ByteBuffer view;
        if (live().isNative() || live().heapBase().orElse(null) instanceof byte[]) {
            view = live().asByteBuffer();
        } else {
            view = ByteBuffer.wrap(live().toArray(ValueLayout.JAVA_BYTE)).asReadOnlyBuffer();
        }
        return view.order(ByteOrder.LITTLE_ENDIAN);
    }

    /**
     * Copies the data into {@code destination}, which must have exactly {@link #byteSize()} bytes; works for
     * tensors of any size.
     *
     * @param destination memory of exactly {@link #byteSize()} bytes
     * @throws IllegalArgumentException if the sizes differ
     */
    public void copyTo(MemorySegment destination) {
        if (destination.byteSize() != live().byteSize()) {
            throw new IllegalArgumentException("destination has " + destination.byteSize() + " bytes, the tensor "
                    + live().byteSize());
        }
        destination.copyFrom(live());
    }

    /**
     * Copies the data into {@code destination} at its position, which advances by {@link #byteSize()}.
     *
     * @param destination a buffer with at least {@link #byteSize()} bytes remaining
     * @throws java.nio.BufferOverflowException if fewer bytes remain
     */
    public void copyTo(ByteBuffer destination) {
        if (destination.remaining() < live().byteSize()) {
            throw new java.nio.BufferOverflowException();
        }
        int size = (int) live().byteSize();
        MemorySegment.ofBuffer(destination).copyFrom(live());
        destination.position(destination.position() + size);
    }

    /**
     * The raw little-endian bytes of any dtype.
     *
     * @return a new array of {@link #byteSize()} bytes
     */
    public byte[] toByteArray() {
        checkArraySized(live().byteSize());
        return live().toArray(ValueLayout.JAVA_BYTE);
    }

    /**
     * The values as floats, from any floating-point dtype: exact for {@link DType#F32}, widened for
     * {@link DType#F16}, {@link DType#BF16} and the two 8-bit floats, rounded to nearest for {@link DType#F64},
     * interleaved (real, imaginary) pairs for {@link DType#C64}. The inverse of {@link #of(DType, float[], long...)}.
     *
     * @return a new array, one float per element (two for {@link DType#C64})
     * @throws IllegalStateException if the dtype is an integer or boolean type, or the values do not fit an array
     */
    public float[] toFloatArray() {
        return switch (dtype) {
            case F64 -> {
                float[] out = new float[arrayLength()];
                for (int i = 0; i < out.length; i++) {
                    out[i] = (float) live().getAtIndex(F64_LE, i);
                }
                yield out;
            }
            case F8_E4M3, F8_E5M2 -> {
                float[] out = new float[arrayLength()];
                Float8 format = dtype == DType.F8_E4M3 ? Float8.E4M3 : Float8.E5M2;
                for (int i = 0; i < out.length; i++) {
                    out[i] = format.decode(live().get(ValueLayout.JAVA_BYTE, i));
                }
                yield out;
            }
            case F32, C64 -> {
                long count = live().byteSize() / Float.BYTES;
                checkArraySized(count);
                float[] out = new float[(int) count];
                MemorySegment.copy(live(), F32_LE, 0, out, 0, out.length);
                yield out;
            }
            case F16, BF16 -> {
                long count = elementCount();
                checkArraySized(count);
                float[] out = new float[(int) count];
                for (int i = 0; i < out.length; i++) {
                    short bits = live().getAtIndex(I16_LE, i);
                    out[i] = dtype == DType.F16 ? Float.float16ToFloat(bits) : Float.intBitsToFloat(bits << 16);
                }
                yield out;
            }
            default -> throw wrongType("toFloatArray", "a floating-point dtype");
        };
    }

    /**
     * The values of an {@link DType#F64} tensor.
     *
     * @return a new array, one value per element in row-major order
     */
    public double[] toDoubleArray() {
        requireType(DType.F64, "toDoubleArray");
        double[] out = new double[arrayLength()];
        MemorySegment.copy(live(), F64_LE, 0, out, 0, out.length);
        return out;
    }

    /**
     * The values of an {@link DType#I64} tensor.
     *
     * @return a new array, one value per element in row-major order
     */
    public long[] toLongArray() {
        requireType(DType.I64, "toLongArray");
        long[] out = new long[arrayLength()];
        MemorySegment.copy(live(), I64_LE, 0, out, 0, out.length);
        return out;
    }

    /**
     * The values of an {@link DType#I32} tensor.
     *
     * @return a new array, one value per element in row-major order
     */
    public int[] toIntArray() {
        requireType(DType.I32, "toIntArray");
        int[] out = new int[arrayLength()];
        MemorySegment.copy(live(), I32_LE, 0, out, 0, out.length);
        return out;
    }

    /**
     * The values of an {@link DType#I16} tensor.
     *
     * @return a new array, one value per element in row-major order
     */
    public short[] toShortArray() {
        requireType(DType.I16, "toShortArray");
        short[] out = new short[arrayLength()];
        MemorySegment.copy(live(), I16_LE, 0, out, 0, out.length);
        return out;
    }

    /**
     * The values of a {@link DType#BOOL} tensor (any non-zero byte is true).
     *
     * @return a new array, one value per element in row-major order
     */
    public boolean[] toBooleanArray() {
        requireType(DType.BOOL, "toBooleanArray");
        boolean[] out = new boolean[arrayLength()];
        for (int i = 0; i < out.length; i++) {
            out[i] = live().get(ValueLayout.JAVA_BYTE, i) != 0;
        }
        return out;
    }

    /**
     * The single value of a one-element integer tensor (I64, I32, I16, I8, U8 or BOOL), such as a
     * {@code KV_index}.
     *
     * @return the value as a {@code long}: U8 read as unsigned, the other types sign-extended
     */
    public long longValue() {
        if (elementCount() != 1) {
            throw new IllegalStateException("longValue needs a one-element tensor, this one has shape "
                    + Arrays.toString(shape));
        }
        return switch (dtype) {
            case I64 -> live().get(I64_LE, 0);
            case I32 -> live().get(I32_LE, 0);
            case I16 -> live().get(I16_LE, 0);
            case I8, BOOL -> live().get(ValueLayout.JAVA_BYTE, 0);
            case U8 -> Byte.toUnsignedLong(live().get(ValueLayout.JAVA_BYTE, 0));
            default -> throw wrongType("longValue", "an integer type");
        };
    }

    /** Equal when dtype, shape and every data byte are equal. */
    @Override
    public boolean equals(Object other) {
        return other instanceof Tensor that
                && dtype == that.dtype
                && Arrays.equals(shape, that.shape)
                && live().mismatch(that.live()) == -1;
    }

    @Override
    public int hashCode() {
        return 31 * dtype.hashCode() + Arrays.hashCode(shape);
    }

    @Override
    public String toString() {
        return "Tensor[" + dtype + " " + Arrays.toString(shape) + ", " + memory.byteSize() + " bytes"
                + (lease != null && lease.isReleased() ? ", released" : "") + "]";
    }

    // ---------------------------------------------------------------- shape arithmetic

    /**
     * The byte size a tensor of this dtype and shape has.
     *
     * @param dtype the element type
     * @param shape the size of each dimension, none for a scalar
     * @return the product of the shape times the dtype's byte width
     * @throws IllegalArgumentException if the shape is invalid or the size overflows a {@code long}
     */
    public static long byteSize(DType dtype, long[] shape) {
        try {
            return Math.multiplyExact(elementCount(shape), dtype.byteWidth());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " of " + dtype + " overflows 64 bits");
        }
    }

    private static long elementCount(long[] shape) {
        long count = 1;
        for (long dim : shape) {
            try {
                count = Math.multiplyExact(count, dim);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " overflows 64 bits");
            }
        }
        return count;
    }

    private static long[] checkShape(long[] shape) {
        Objects.requireNonNull(shape, "shape");
        if (shape.length > MAX_RANK) {
            throw new IllegalArgumentException("rank " + shape.length + " exceeds the maximum of " + MAX_RANK);
        }
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] < 0) {
                throw new IllegalArgumentException("dimension " + i + " of shape " + Arrays.toString(shape) + " is negative");
            }
        }
        elementCount(shape);
        return shape.clone();
    }

    private static MemorySegment allocateFor(DType dtype, long valueCount, long[] shape) {
        long expected = elementCount(checkShape(shape));
        if (valueCount != expected) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has " + expected
                    + " elements, got " + valueCount + " " + dtype + " values");
        }
        return allocate(Math.multiplyExact(valueCount, (long) dtype.byteWidth()));
    }

    private static MemorySegment allocate(long bytes) {
        return Memory.allocate(bytes);
    }

    private static short floatToBFloat16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) ((bits >>> 16) | 0x40); // keep it a quiet NaN after truncation
        }
        int roundingBias = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + roundingBias) >>> 16);
    }

    private int arrayLength() {
        long count = elementCount();
        checkArraySized(count);
        return (int) count;
    }

    private static void checkArraySized(long count) {
        if (count > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException(count + " values do not fit a Java array; read data() instead");
        }
    }

    private void requireType(DType expected, String accessor) {
        if (dtype != expected) {
            throw wrongType(accessor, expected.toString());
        }
    }

    private IllegalStateException wrongType(String accessor, String expected) {
        return new IllegalStateException(accessor + " needs " + expected + ", this tensor is " + dtype);
    }
}
