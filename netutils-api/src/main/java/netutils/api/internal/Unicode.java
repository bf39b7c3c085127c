package netutils.api.internal;

/**
 * Whether a string can travel: a lone UTF-16 surrogate has no UTF-8 form, so it would arrive as {@code ?} or not at
 * all depending on the serializer (the Python side refuses it). Messages refuse such strings when they are built,
 * and readers when they decode them.
 */
public final class Unicode {
    private Unicode() {
    }

    /**
     * What is wrong with {@code value}, or {@code null} if it is valid Unicode.
     *
     * @param value the string to look at
     * @return e.g. "it holds a lone surrogate U+D800 at index 3, which UTF-8 cannot carry", or {@code null}
     */
    public static String lonelySurrogate(String value) {
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (Character.isSurrogate(c)) {
                if (Character.isHighSurrogate(c) && i + 1 < value.length()
                        && Character.isLowSurrogate(value.charAt(i + 1))) {
                    i++; // a pair: one character beyond U+FFFF
                    continue;
                }
                return String.format("it holds a lone surrogate U+%04X at index %d, which UTF-8 cannot carry",
                        (int) c, i);
            }
        }
        return null;
    }

    /**
     * {@code value} with every lone surrogate replaced by U+FFFD, for text that must get through (an error's detail
     * that quotes a string cut inside a character); {@code null} stays {@code null}.
     *
     * @param value the text
     * @return the same text when it is valid Unicode, else a mended copy
     */
    public static String mended(String value) {
        if (value == null || lonelySurrogate(value) == null) {
            return value;
        }
        // code points see a pair as one character beyond U+FFFF and a lone half as a surrogate code point
        int[] mended = value.codePoints()
                .map(c -> c >= Character.MIN_SURROGATE && c <= Character.MAX_SURROGATE ? 0xFFFD : c).toArray();
        return new String(mended, 0, mended.length);
    }
}
