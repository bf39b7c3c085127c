"""A reader and writer of netutils frames, written from docs/PROTOCOL.md alone.

Standard library plus numpy and msgpack. Tensors are numpy arrays; each carries its netutils dtype name,
because numpy has no bfloat16 or float8 (those travel as raw uint16 / uint8 arrays).

    frame = encode_frame("KV_index", {"data": ("I64", numpy.array(42, dtype="<i8"))}, id="7")
    message = decode_frame(frame)
    message["tensors"]["data"]  # -> ("I64", array(42))
"""

import json
import socket
import struct

import msgpack
import numpy

MAGIC = b"NU"
VERSION = 1
SERIALIZERS = {"json": 1, "msgpack": 2}
FLAG_CHECKSUM = 1
MAX_BODY = 0xFFFFFFFF

# netutils dtype -> numpy dtype of the same little-endian bytes
DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1",
    "BOOL": "?", "C64": "<c8", "F8_E4M3": "u1", "F8_E5M2": "u1",
}


class ProtocolError(Exception):
    """A frame that breaks docs/PROTOCOL.md."""


def _align64(n):
    return (n + 63) & ~63


def _crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """CRC32C (Castagnoli), as in the frame trailer."""
    crc ^= 0xFFFFFFFF
    for byte in bytes(data):
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def encode_frame(msg_type, tensors, meta=None, id=None, reply_to=None, serializer="json", checksum=False):
    """Bytes of one frame. tensors: dict name -> (dtype name, numpy array)."""
    entries, chunks, offset = [], [], 0
    for name, (dtype, array) in tensors.items():
        data = numpy.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes()
        offset = _align64(offset)
        entries.append({"name": name, "dtype": dtype, "shape": list(numpy.shape(array)),
                        "offset": offset, "nbytes": len(data)})
        chunks.append((offset, data))
        offset += len(data)
    envelope = {"type": msg_type}
    if id is not None:
        envelope["id"] = id
    if reply_to is not None:
        envelope["reply_to"] = reply_to
    envelope["meta"] = dict(meta or {})
    envelope["tensors"] = entries
    if serializer == "json":
        env_bytes = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
    elif serializer == "msgpack":
        env_bytes = msgpack.packb(envelope, use_bin_type=True)
    else:
        raise ValueError("serializer must be json or msgpack")
    data_start = _align64(4 + len(env_bytes))
    body = bytearray(data_start + offset)
    struct.pack_into(">I", body, 0, len(env_bytes))
    body[4:4 + len(env_bytes)] = env_bytes
    for chunk_offset, data in chunks:
        body[data_start + chunk_offset:data_start + chunk_offset + len(data)] = data
    if len(body) > MAX_BODY:
        raise ValueError("body of %d bytes exceeds the frame maximum" % len(body))
    flags = FLAG_CHECKSUM if checksum else 0
    header = MAGIC + struct.pack(">BBB3xI", VERSION, SERIALIZERS[serializer], flags, len(body))
    trailer = struct.pack(">I", crc32c(body)) if checksum else b""
    return header + bytes(body) + trailer


def parse_header(header, max_body=MAX_BODY):
    """(serializer id, flags, body length) of a 12-byte header, validated."""
    if len(header) != 12:
        raise ProtocolError("header needs 12 bytes")
    if header[:2] != MAGIC:
        raise ProtocolError("bad magic %r" % header[:2])
    version, serializer_id, flags, r0, r1, r2, length = struct.unpack(">BBBBBBI", header[2:])
    if version != VERSION:
        raise ProtocolError("unsupported version %d" % version)
    if flags & ~FLAG_CHECKSUM or r0 or r1 or r2:
        raise ProtocolError("reserved bits set")
    if serializer_id not in (1, 2):
        raise ProtocolError("serializer id %d is not supported here" % serializer_id)
    if length > max_body:
        raise ProtocolError("body of %d bytes over the limit" % length)
    return serializer_id, flags, length


def decode_body(serializer_id, body):
    """The message dict of one body: type, id, reply_to, meta, tensors {name: (dtype, array)}, serializer."""
    (env_len,) = struct.unpack_from(">I", body, 0)
    if env_len > len(body) - 4:
        raise ProtocolError("envelope length runs past the body")
    env_bytes = bytes(body[4:4 + env_len])
    envelope = json.loads(env_bytes) if serializer_id == 1 else msgpack.unpackb(env_bytes, raw=False)
    data_start = _align64(4 + env_len)
    tensors, previous_end = {}, 0
    for entry in envelope.get("tensors", []):
        dtype, shape = entry["dtype"], [int(d) for d in entry["shape"]]
        np_dtype = numpy.dtype(DTYPES[dtype])
        count = int(numpy.prod(shape, dtype=numpy.int64)) if shape else 1
        if entry["nbytes"] != count * np_dtype.itemsize:
            raise ProtocolError("tensor %r: nbytes disagrees with its shape" % entry["name"])
        if entry["offset"] % 64 or entry["offset"] < previous_end:
            raise ProtocolError("tensor %r: bad offset" % entry["name"])
        start = data_start + entry["offset"]
        if start + entry["nbytes"] > len(body):
            raise ProtocolError("tensor %r runs past the body" % entry["name"])
        array = numpy.frombuffer(body, dtype=np_dtype, count=count, offset=start).reshape(shape)
        tensors[entry["name"]] = (dtype, array)
        previous_end = entry["offset"] + entry["nbytes"]
    return {"type": envelope["type"], "id": envelope.get("id"), "reply_to": envelope.get("reply_to"),
            "meta": envelope.get("meta") or {}, "tensors": tensors,
            "serializer": {1: "json", 2: "msgpack"}[serializer_id]}


def decode_frame(frame):
    """The message dict of one whole frame (bytes)."""
    serializer_id, flags, length = parse_header(frame[:12])
    trailer = 4 if flags & FLAG_CHECKSUM else 0
    if len(frame) != 12 + length + trailer:
        raise ProtocolError("frame has %d bytes, header says %d" % (len(frame), 12 + length + trailer))
    body = frame[12:12 + length]
    if trailer and struct.unpack(">I", frame[12 + length:])[0] != crc32c(body):
        raise ProtocolError("checksum mismatch")
    return decode_body(serializer_id, body)


def _read_exactly(sock, n):
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        count = sock.recv_into(view[got:], n - got)
        if count == 0:
            raise EOFError("peer closed the connection after %d of %d bytes" % (got, n))
        got += count
    return buf


def read_frame(sock):
    """Reads one frame from a socket; raises EOFError when the peer closed."""
    header = bytes(_read_exactly(sock, 12))
    serializer_id, flags, length = parse_header(header)
    body = _read_exactly(sock, length)
    if flags & FLAG_CHECKSUM:
        (expected,) = struct.unpack(">I", _read_exactly(sock, 4))
        if expected != crc32c(body):
            raise ProtocolError("checksum mismatch")
    return decode_body(serializer_id, body)


def connect(host, port, timeout=30):
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
