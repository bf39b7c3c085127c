"""The exceptions of netutils, matching the Java ones (ProtocolException.Kind, RemoteErrorException, ...)."""

import enum
import unicodedata

#: How many characters of a peer's text :func:`printable` keeps (Java's ``PeerText.MAX_CHARS``).
MAX_PEER_TEXT = 4096
#: How many characters of a peer's error code RemoteError keeps (Java's ``RemoteErrorException.MAX_CODE_CHARS``).
MAX_CODE_CHARS = 64
# Control (C0, DEL, C1), format (bidirectional overrides, zero-width joiners), line and paragraph separators,
# unpaired surrogates, private use and unassigned: Java's PeerText escapes the same categories.
_UNSAFE = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"))


def printable(text, max_chars=MAX_PEER_TEXT):
    """Text from a peer, made safe to put in an exception, a log line or a terminal, as Java's
    ``PeerText.printable``: every control, format, separator, surrogate, private-use or unassigned character
    becomes a visible ``\\uXXXX`` escape (so ANSI escape sequences, forged newlines and bidirectional overrides do
    nothing), and the result keeps at most ``max_chars`` characters, then says how many were cut."""
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1, got %d" % max_chars)
    if text is None:
        return "None"
    text = str(text)
    out = []
    length = 0
    for i, char in enumerate(text):
        piece = "\\u%04X" % ord(char) if unicodedata.category(char) in _UNSAFE else char
        if length + len(piece) > max_chars:
            out.append(" [... {:,} more characters cut]".format(len(text) - i))
            break
        out.append(piece)
        length += len(piece)
    return "".join(out)


class Kind(str, enum.Enum):
    """Which rule of docs/PROTOCOL.md a frame broke; the same names as Java's ProtocolException.Kind.

    A ``str`` enum, so ``error.kind == "BAD_MAGIC"`` works and the value is what an ``error`` frame carries as
    its ``code``.
    """

    BAD_MAGIC = "BAD_MAGIC"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    RESERVED_BITS_SET = "RESERVED_BITS_SET"
    UNKNOWN_SERIALIZER = "UNKNOWN_SERIALIZER"
    FRAME_TOO_LARGE = "FRAME_TOO_LARGE"
    MALFORMED_ENVELOPE = "MALFORMED_ENVELOPE"
    BAD_TENSOR = "BAD_TENSOR"
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    TRUNCATED = "TRUNCATED"
    TRAILING_BYTES = "TRAILING_BYTES"


class NetutilsError(Exception):
    """Base of every exception this package raises on purpose."""


class ProtocolError(NetutilsError):
    """A frame or envelope broke the wire contract; ``kind`` says which rule, the message what was found.

    A connection that receives such a frame tells the peer with an ``error`` message (unless the peer is gone
    mid-frame, kind TRUNCATED) and closes.
    """

    def __init__(self, kind, message):
        # The message may quote the peer (a type, a tensor name, a dtype): bounded and escaped, as in Java.
        super().__init__(printable(message))
        self.kind = Kind(kind)

    def __str__(self):
        return "%s: %s" % (self.kind.value, self.args[0])


class RemoteError(NetutilsError):
    """The peer sent an ``error`` message (it found our input bad, is busy, or its handler failed).

    ``code`` is the peer's reason (``BAD_MAGIC``, ..., ``SERVER_BUSY``, ``HANDLER_FAILED``), ``detail`` its text.
    Both come from a peer that may be hostile, so both are :func:`printable` (the code at most 64 characters, the
    detail 4,096), as Java's ``RemoteErrorException`` keeps them.
    """

    def __init__(self, code, detail):
        code = printable(code, MAX_CODE_CHARS)
        detail = printable(detail)
        super().__init__("peer reported %s: %s" % (code, detail))
        self.code = code
        self.detail = detail


class ConnectionClosedError(NetutilsError, ConnectionError):
    """The peer closed the connection between messages, or this side already closed it."""


class FrameTooLargeError(NetutilsError, ValueError):
    """A message does not fit one frame (4,294,967,295 body bytes); refused before anything is sent."""

    def __init__(self, message, excess_bytes):
        super().__init__(message)
        self.excess_bytes = excess_bytes


class NetworkTimeout(NetutilsError, TimeoutError):
    """A frame that had begun stalled longer than the read timeout, or a send made no progress for the write
    timeout; the connection is closed (its stream position is lost)."""
