"""Shared pieces of the tests: a frame around a hand-written envelope, and a server on a free port."""

import contextlib
import struct

from netutils import create_server


def frame(envelope_json, data=b"", serializer_id=1, flags=0):
    """A frame around a hand-written envelope and data area (as RawFrameTest.frame in Java)."""
    envelope = envelope_json.encode("utf-8") if isinstance(envelope_json, str) else envelope_json
    data_start = (4 + len(envelope) + 63) & ~63
    body = bytearray(data_start + len(data))
    struct.pack_into(">I", body, 0, len(envelope))
    body[4:4 + len(envelope)] = envelope
    body[data_start:] = data
    return struct.pack(">HBBB3xI", 0x4E55, 1, serializer_id, flags, len(body)) + bytes(body)


@contextlib.contextmanager
def serving(handler, **options):
    server = create_server("127.0.0.1", 0, **options).serve(handler)
    try:
        yield server
    finally:
        server.close()


def read_to_end(sock, timeout=10):
    """Every byte a peer sends on a raw socket until it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
