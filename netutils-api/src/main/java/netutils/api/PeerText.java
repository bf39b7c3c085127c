package netutils.api;

/**
 * Makes text that came from a peer safe to put in an exception message, a log line or a terminal. A peer may
 * send an {@code error} whose detail is a megabyte long, or full of ANSI escape sequences (which recolour,
 * move the cursor or retitle a terminal), carriage returns and newlines (which forge log lines), or Unicode
 * bidirectional overrides (which make text read differently than it is). {@link #printable} keeps such text to
 * one line of bounded length, with every such character shown as a visible {@code \}{@code uXXXX} escape, so
 * what the peer tried is still readable but does nothing.
 *
 * <p>{@link RemoteErrorException} applies it to the peer's code and detail; use it wherever your own code
 * prints or logs strings from a peer's messages (metadata, ids, tensor names).
 */
public final class PeerText {
    /** How many characters of a peer's text {@link #printable(String)} keeps: 4 KiB of text is a lot of error. */
    public static final int MAX_CHARS = 4096;

    private PeerText() {
    }

    /**
     * {@code text} as one printable line of at most {@value #MAX_CHARS} characters plus a note of what was cut;
     * {@link #printable(String, int)} with {@link #MAX_CHARS}.
     *
     * @param text a string from a peer, or {@code null}
     * @return the string with unsafe characters escaped and cut to {@value #MAX_CHARS} characters
     */
    public static String printable(String text) {
        return printable(text, MAX_CHARS);
    }

    /**
     * {@code text} as one printable line: control characters (C0 including tab, CR and LF, DEL, C1 including the
     * one-byte CSI {@code U+009B}), format characters (bidirectional overrides and isolates, zero-width joiners),
     * line and paragraph separators, unpaired surrogates, and private-use and unassigned code points are replaced
     * by a visible {@code \}{@code uXXXX} escape; the result keeps at most {@code maxChars} characters of it
     * (escapes included) and then says how many characters of the original were cut. {@code null} becomes
     * {@code "null"}.
     *
     * @param text a string from a peer, or {@code null}
     * @param maxChars how many characters of escaped text to keep, not counting the note of what was cut
     * @return the string as one line with unsafe characters escaped, cut to {@code maxChars} characters and a note
     * @throws IllegalArgumentException if {@code maxChars} is less than 1
     */
    public static String printable(String text, int maxChars) {
        if (maxChars < 1) {
            throw new IllegalArgumentException("maxChars must be at least 1, got " + maxChars);
        }
        if (text == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder(Math.min(text.length(), maxChars) + 16);
        int i = 0;
        while (i < text.length()) {
            int codePoint = text.codePointAt(i);
            int width = Character.charCount(codePoint);
            String piece = isSafe(codePoint) ? text.substring(i, i + width) : String.format("\\u%04X", codePoint);
            if (out.length() + piece.length() > maxChars) {
                break;
            }
            out.append(piece);
            i += width;
        }
        if (i < text.length()) {
            // Characters as docs/PROTOCOL.md counts them: code points, so an emoji is one.
            out.append(" [... ").append(String.format("%,d", text.codePointCount(i, text.length())))
                    .append(" more characters cut]");
        }
        return out.toString();
    }

    private static boolean isSafe(int codePoint) {
        return switch (Character.getType(codePoint)) {
            case Character.CONTROL, Character.FORMAT, Character.LINE_SEPARATOR, Character.PARAGRAPH_SEPARATOR,
                 Character.SURROGATE, Character.PRIVATE_USE, Character.UNASSIGNED -> false;
            default -> true;
        };
    }
}
