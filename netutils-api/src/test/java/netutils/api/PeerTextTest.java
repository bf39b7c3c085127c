package netutils.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import netutils.api.wire.RemoteErrors;
import org.junit.jupiter.api.Test;

/** A peer's text reaches exception messages, logs and terminals only printable, on one line, and capped. */
class PeerTextTest {
    /** 1 MiB of terminal escapes (red, clear screen, cursor home, retitle the window) and a forged log line. */
    private static final String HOSTILE = "\u001b[31m\u001b[2J\u001b[H\u001b]0;owned\u0007".repeat((1 << 20) / 24)
            + "\r\n2026-01-01 INFO server: all good\n";

    @Test
    void anErrorOfAMegabyteOfEscapesBecomesOneCappedPrintableLine() {
        RemoteErrorException error = new RemoteErrorException("BAD\u001b[0m\nCODE", HOSTILE);
        String message = error.getMessage();
        assertNoControlCharacters(message);
        assertThat(error.detail()).startsWith("\\u001B[31m\\u001B[2J\\u001B[H\\u001B]0;owned\\u0007")
                .endsWith(" more characters cut]").contains(" [... ");
        assertThat(error.detail().length()).isLessThan(RemoteErrorException.MAX_DETAIL_CHARS + 64);
        assertThat(error.code()).isEqualTo("BAD\\u001B[0m\\u000ACODE");
        assertThat(message).startsWith("peer reported BAD\\u001B[0m\\u000ACODE: ");
        // How much was cut is said exactly: the kept part is whole escapes of the original's characters.
        long cut = Long.parseLong(error.detail().replaceAll(".* \\[\\.\\.\\. ([0-9,]+) more characters cut]$", "$1")
                .replace(",", ""));
        assertThat(cut).isGreaterThan(HOSTILE.length() - 4096).isLessThan(HOSTILE.length());
    }

    @Test
    void anErrorMessageFromThePeerIsCheckedIntoAPrintableException() {
        Message error = Message.error("SERVER_BUSY\u009b2J", "try later\r\n[WARN] forged line \u202eevil\u202c");
        assertThatThrownBy(() -> RemoteErrors.check(error)).isInstanceOfSatisfying(RemoteErrorException.class, e -> {
            assertNoControlCharacters(e.getMessage());
            assertThat(e.getMessage()).isEqualTo("peer reported SERVER_BUSY\\u009B2J: try later\\u000D\\u000A[WARN] "
                    + "forged line \\u202Eevil\\u202C");
        });
    }

    @Test
    void ordinaryTextIncludingEmojiAndAccentsIsKeptAsItIs() {
        String text = "tensor 'couche.0' de forme [1, 16] \ud83d\ude00 \u4e2d\u6587";
        assertThat(PeerText.printable(text)).isEqualTo(text);
        assertThat(new RemoteErrorException("BAD_TENSOR", text).getMessage()).isEqualTo("peer reported BAD_TENSOR: "
                + text);
        assertThat(PeerText.printable(null)).isEqualTo("null");
    }

    @Test
    void theCapNeverSplitsACharacterAndLoneSurrogatesAreEscaped() {
        String emoji = "\ud83d\ude00".repeat(10);
        String capped = PeerText.printable(emoji, 5);
        assertThat(capped).startsWith("\ud83d\ude00\ud83d\ude00 [... 8 more characters cut]");
        assertThat(PeerText.printable("a\ud800b")).isEqualTo("a\\uD800b");
        assertThatThrownBy(() -> PeerText.printable("x", 0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void protocolExceptionsThatQuoteThePeerArePrintableAndCappedToo() {
        String key = "\u001b[1m" + "k".repeat(100_000);
        ProtocolException e = new ProtocolException(ProtocolException.Kind.MALFORMED_ENVELOPE,
                "key '" + key + "' appears twice");
        assertNoControlCharacters(e.getMessage());
        assertThat(e.getMessage()).startsWith("key '\\u001B[1mkkk").endsWith(" more characters cut]")
                .hasSizeLessThan(PeerText.MAX_CHARS + 64);
    }

    private static void assertNoControlCharacters(String text) {
        assertThat(text.codePoints().filter(c -> Character.isISOControl(c) || Character.getType(c) == Character.FORMAT
                || Character.getType(c) == Character.SURROGATE)).as("control or format characters in %s",
                text.substring(0, Math.min(200, text.length()))).isEmpty();
    }
}
