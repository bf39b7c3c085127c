package netutils.api;

import java.util.Locale;

/**
 * The element type of a {@link Tensor}: its wire name (as in safetensors) and its width in bytes.
 *
 * <p>All multi-byte types are little-endian on the wire. {@link #C64} is a complex number made of two
 * little-endian F32 values (real, then imaginary), the layout of PyTorch's {@code complex64} used for
 * rotary {@code freqs_cis}.
 */
public enum DType {
    /** IEEE 754 binary64. */
    F64("F64", 8),
    /** IEEE 754 binary32. */
    F32("F32", 4),
    /** IEEE 754 binary16 (half precision). */
    F16("F16", 2),
    /** bfloat16: the upper 16 bits of a binary32. */
    BF16("BF16", 2),
    /** Signed 64-bit integer. */
    I64("I64", 8),
    /** Signed 32-bit integer. */
    I32("I32", 4),
    /** Signed 16-bit integer. */
    I16("I16", 2),
    /** Signed 8-bit integer. */
    I8("I8", 1),
    /** Unsigned 8-bit integer. */
    U8("U8", 1),
    /** Boolean, one byte: 0 is false, 1 is true. */
    BOOL("BOOL", 1),
    /** complex64: a pair of F32 (real, imaginary). */
    C64("C64", 8),
    /** 8-bit float, 4 exponent and 3 mantissa bits (OCP FP8 E4M3). */
    F8_E4M3("F8_E4M3", 1),
    /** 8-bit float, 5 exponent and 2 mantissa bits (OCP FP8 E5M2). */
    F8_E5M2("F8_E5M2", 1);

    private final String wireName;
    private final int byteWidth;

    DType(String wireName, int byteWidth) {
        this.wireName = wireName;
        this.byteWidth = byteWidth;
    }

    /**
     * The name written in envelopes, e.g. {@code "BF16"}.
     *
     * @return the wire name
     */
    public String wireName() {
        return wireName;
    }

    /**
     * Bytes per element.
     *
     * @return the size of one element in bytes
     */
    public int byteWidth() {
        return byteWidth;
    }

    /**
     * The dtype with this wire name.
     *
     * @param wireName a name as written in envelopes, e.g. {@code "F32"}
     * @return the dtype
     * @throws IllegalArgumentException naming the unknown dtype and the known ones
     */
    public static DType fromWireName(String wireName) {
        if (wireName != null) {
            for (DType type : values()) {
                if (type.wireName.equals(wireName)) {
                    return type;
                }
            }
        }
        throw new IllegalArgumentException("unknown dtype '" + wireName + "'; known: "
                + java.util.Arrays.toString(values()).toUpperCase(Locale.ROOT));
    }
}
