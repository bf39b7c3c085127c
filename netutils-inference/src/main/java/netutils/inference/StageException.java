package netutils.inference;

/** Something wrong with a message a stage received: becomes an {@code error} message with {@link #code()}. */
final class StageException extends Exception {
    private static final long serialVersionUID = 1L;
    private final String code;

    StageException(String code, String detail) {
        super(detail);
        this.code = code;
    }

    String code() {
        return code;
    }
}
