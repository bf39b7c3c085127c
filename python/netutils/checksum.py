"""CRC32C (Castagnoli) of frame bodies: the ``crc32c`` module (Debian python3-crc32c, hardware-accelerated)
when installed, else a pure-Python table loop that is only allowed for small bodies."""

from .errors import NetutilsError

try:
    import crc32c as _crc32c
except ImportError:  # optional dependency
    _crc32c = None

#: without the crc32c module, checksummed bodies above this many bytes are refused: the pure-Python loop runs
#: at about 12 MiB/s, so a 4 GiB frame would take minutes while looking like a hang
PURE_PYTHON_LIMIT = 4 << 20


class ChecksumUnavailableError(NetutilsError, RuntimeError):
    """A checksummed body is too large for the pure-Python CRC32C and the crc32c module is not installed."""


def _table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = None


def available_fast():
    """Whether the fast crc32c module is installed."""
    return _crc32c is not None


def check_size(body_length, why):
    """Raises if a checksum over ``body_length`` bytes would need the slow loop above its limit."""
    if _crc32c is None and body_length > PURE_PYTHON_LIMIT:
        raise ChecksumUnavailableError(
            "%s needs a CRC32C over a %d-byte body, but the crc32c module is not installed and the pure-Python "
            "fallback is limited to %d bytes (it runs at ~12 MiB/s); install it: apt-get install python3-crc32c"
            % (why, body_length, PURE_PYTHON_LIMIT))


def update(crc, data):
    """The CRC32C of the bytes hashed so far (``crc``, 0 to start) followed by ``data`` (bytes-like)."""
    if _crc32c is not None:
        return _crc32c.crc32c(data, crc)
    global _TABLE
    if _TABLE is None:
        _TABLE = _table()
    table = _TABLE
    crc ^= 0xFFFFFFFF
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
