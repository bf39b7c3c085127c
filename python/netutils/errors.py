"""The exceptions of netutils, matching the Java ones (ProtocolException.Kind, RemoteErrorException, ...)."""

import enum


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
        super().__init__(message)
        self.kind = Kind(kind)

    def __str__(self):
        return "%s: %s" % (self.kind.value, self.args[0])


class RemoteError(NetutilsError):
    """The peer sent an ``error`` message (it found our input bad, is busy, or its handler failed).

    ``code`` is the peer's reason (``BAD_MAGIC``, ..., ``SERVER_BUSY``, ``HANDLER_FAILED``), ``detail`` its text.
    """

    def __init__(self, code, detail):
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
