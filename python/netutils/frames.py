"""The frame codec of docs/PROTOCOL.md: messages to frames and back, with every check of Java's FrameDecoder.

Encoding never copies tensor bytes: a frame is a small prefix (header, envelope length, envelope, padding)
followed by memoryviews of the tensors' own memory, which a socket sends with ``sendmsg``. Decoding reads
from a *source* (a socket or a bytes-like object) straight into each tensor's freshly allocated numpy array,
allocated only when its bytes are about to arrive.

Frame (all integers big-endian)::

    0   2  magic "NU"
    2   1  version 1
    3   1  serializer id (1 json, 2 msgpack)
    4   1  flags (bit 0: CRC32C trailer)
    5   3  reserved, zero
    8   4  body length n
    12  n  body: envelope length e (4), envelope (e), zero padding to align64(4 + e), data area
    12+n 4 CRC32C of the body, only with flag bit 0
"""

import struct

import numpy

from . import checksum, dtypes, envelope
from .errors import FrameTooLargeError, Kind, ProtocolError
from .message import Message, MessageType, check_name

MAGIC = 0x4E55
VERSION = 1
HEADER_LENGTH = 12
FLAG_CHECKSUM = 1
CHECKSUM_LENGTH = 4
ENVELOPE_LENGTH_FIELD = 4
DATA_ALIGNMENT = 64
#: the largest body a frame can carry: an unsigned 32-bit length
MAX_BODY_LENGTH = 0xFFFFFFFF
#: receivers' defaults, as Java's TcpOptions
DEFAULT_MAX_FRAME_BYTES = 1 << 30
DEFAULT_MAX_ENVELOPE_BYTES = 16 << 20
#: with a checksum, tensor bytes are read in slices this large so the CRC runs over bytes still in cache
CHECKSUM_SLICE = 1 << 20
_MAX_LONG = (1 << 63) - 1

_HEADER = struct.Struct(">HBBB3sI")
_U32 = struct.Struct(">I")
_ZEROS = bytes(3 * DATA_ALIGNMENT)


def align(n):
    return (n + DATA_ALIGNMENT - 1) & ~(DATA_ALIGNMENT - 1)


# ====================================================================== encoding

class EncodedFrame:
    """A frame ready to send: ``buffers()`` are its bytes in order, tensor data as views of tensor memory."""

    __slots__ = ("prefix", "tensors", "trailer", "length")

    def __init__(self, prefix, tensors, trailer, length):
        self.prefix = prefix      # bytes: header, envelope length, envelope, padding to the data area
        self.tensors = tensors    # [(padding before it, flat uint8 numpy view of its bytes)]
        self.trailer = trailer    # bytes: the CRC32C, or b""
        self.length = length      # bytes of the whole frame

    def buffers(self):
        out = [self.prefix]
        for padding, data in self.tensors:
            if padding:
                out.append(_ZEROS[:padding])
            if data.size:
                out.append(memoryview(data))
        if self.trailer:
            out.append(self.trailer)
        return out

    def to_bytes(self):
        return b"".join(self.buffers())


def encode(message, serializer="json", checksum_body=False):
    """Encodes a Message; FrameTooLargeError before any work on data when the body would pass 4 GiB."""
    if not isinstance(message, Message):
        raise TypeError("send a netutils.Message, got %s (wrap data with Message(MessageType.x, data))"
                        % type(message).__name__)
    wire_id = envelope.serializer_id(serializer)
    # sizes first: a message too large for a frame is refused before any tensor is made contiguous
    entries, offset = [], 0
    for name, value in message.tensors.items():
        _, dtype, shape = dtypes.normalize(value, "tensor %r" % name)
        nbytes = dtypes.WIDTHS[dtype]
        for dim in shape:
            nbytes *= int(dim)
        start = align(offset)
        entries.append((name, dtype, [int(d) for d in shape], start, nbytes))
        offset = start + nbytes
    env = envelope.write(wire_id, str(message.type), message.id, message.reply_to, message.meta, entries)
    data_start = align(ENVELOPE_LENGTH_FIELD + len(env))
    _check_body_length(data_start + offset)
    views = []
    for (name, dtype, _, start, nbytes), value in zip(entries, message.tensors.values()):
        data = dtypes.byte_view(dtypes.to_wire(value, "tensor %r" % name)[2])
        if data.size != nbytes:  # a tensor changed while being encoded
            raise ValueError("tensor %r has %d bytes, %d when the envelope was written" % (name, data.size, nbytes))
        views.append(data)
    # where large tensors go depends on where the data area starts, which depends on the envelope: as Java's
    # FrameEncoder, redo the layout while the start moves, never below the last try (so it settles); every layout
    # tried is a valid frame
    plain = offsets = [entry[3] for entry in entries]
    plain_env, plain_start = env, data_start
    for _ in range(4):
        placed = _layout(views, HEADER_LENGTH + data_start, offsets)
        if placed == offsets:
            break
        offsets = placed
        entries = [entry[:3] + (start,) + entry[4:] for entry, start in zip(entries, offsets)]
        env = envelope.write(wire_id, str(message.type), message.id, message.reply_to, message.meta, entries)
        moved = align(ENVELOPE_LENGTH_FIELD + len(env))
        if moved == data_start:
            break
        data_start = moved
    body_length = data_start + _data_end(views, offsets)
    if body_length > MAX_BODY_LENGTH:  # placing added padding (a few hundred bytes a tensor): the plain one fits
        offsets, env, data_start = plain, plain_env, plain_start
        body_length = data_start + _data_end(views, offsets)
    tensors, end = [], 0
    for start, data in zip(offsets, views):
        tensors.append((start - end, data))
        end = start + data.size
    prefix = bytearray(HEADER_LENGTH + data_start)
    _HEADER.pack_into(prefix, 0, MAGIC, VERSION, wire_id, FLAG_CHECKSUM if checksum_body else 0, b"\0\0\0",
                      body_length)
    _U32.pack_into(prefix, HEADER_LENGTH, len(env))
    prefix[HEADER_LENGTH + 4:HEADER_LENGTH + 4 + len(env)] = env
    trailer = b""
    if checksum_body:
        checksum.check_size(body_length, "sending a checksummed frame")
        crc = checksum.update(0, memoryview(prefix)[HEADER_LENGTH:])
        for padding, data in tensors:
            if padding:
                crc = checksum.update(crc, _ZEROS[:padding])
            if data.size:
                crc = checksum.update(crc, memoryview(data))
        trailer = _U32.pack(crc)
    return EncodedFrame(bytes(prefix), tensors, trailer, HEADER_LENGTH + body_length + len(trailer))


def _check_body_length(body_length):
    if body_length > MAX_BODY_LENGTH:
        raise FrameTooLargeError("message needs a frame body of {:,} bytes, {:,} bytes over the {:,}-byte maximum"
                                 .format(body_length, body_length - MAX_BODY_LENGTH, MAX_BODY_LENGTH),
                                 body_length - MAX_BODY_LENGTH)


#: tensors this large are placed where copying them is fast (docs/PROTOCOL.md, "Where a writer puts large tensors")
PLACED_MIN_BYTES = 64 * 1024
_PAGE = 4096


def _aliases(destination_ahead):
    """A forward copy slows down when its destination runs 1 to 63 bytes ahead of its source, modulo a page."""
    return 0 < destination_ahead % _PAGE < DATA_ALIGNMENT


def _data_end(views, offsets):
    return offsets[-1] + views[-1].size if views else 0


def _layout(views, data_start_in_frame, floor):
    """Each tensor's offset: the first multiple of 64 after the previous one's end and not below its ``floor``
    offset, moved one or two multiples on for a large tensor whose copies would be slow there (the sender's from
    its memory into socket pages that start with the frame, a receiver's into page-aligned memory); as Java's
    FrameEncoder.layout."""
    offsets, end = [], 0
    for data, lowest in zip(views, floor):
        offset = max(align(end), lowest)
        if data.size >= PLACED_MIN_BYTES:
            source = data.__array_interface__["data"][0]
            for _ in range(2):  # each condition rules out one place in 64: two moves always suffice
                position = data_start_in_frame + offset
                if not (_aliases(position - source) or _aliases(-position)):
                    break
                offset += DATA_ALIGNMENT
        offsets.append(offset)
        end = offset + data.size
    return offsets


# ====================================================================== decoding

def parse_header(header, max_body_length):
    """(serializer id, flags, body length) of 12 header bytes, refusing them as Java's FrameHeader.decode does,
    in the same order: magic, version, flags, reserved bytes, reserved serializer ids, length over the limit;
    then a serializer this package cannot read."""
    magic, version, serializer_id, flags, reserved, body_length = _HEADER.unpack(header)
    if magic != MAGIC:
        raise ProtocolError(Kind.BAD_MAGIC, 'bad magic 0x%04X: not a netutils frame (expected 0x4E55, "NU")' % magic)
    if version != VERSION:
        raise ProtocolError(Kind.UNSUPPORTED_VERSION, "unsupported protocol version %d (this library speaks "
                            "version %d)" % (version, VERSION))
    if flags & ~FLAG_CHECKSUM:
        raise ProtocolError(Kind.RESERVED_BITS_SET, "reserved flag bits set: flags 0x%02X (only bit 0, checksum, "
                            "is defined)" % flags)
    if reserved != b"\0\0\0":
        raise ProtocolError(Kind.RESERVED_BITS_SET, "reserved header bytes 5..7 must be zero, got 0x%s"
                            % reserved.hex().upper())
    if serializer_id == 0 or 4 <= serializer_id <= 127:
        raise ProtocolError(Kind.UNKNOWN_SERIALIZER, "serializer id %d is reserved (valid: 1 json, 2 msgpack, "
                            "3 kryo, 128..255 user serializers)" % serializer_id)
    if body_length > max_body_length:
        raise ProtocolError(Kind.FRAME_TOO_LARGE, "frame body of {:,} bytes exceeds the limit of {:,} bytes (raise "
                            "max_frame_bytes to accept it)".format(body_length, max_body_length))
    problem = envelope.unknown_serializer(serializer_id)
    if problem is not None:
        raise problem
    return serializer_id, flags, body_length


def truncated(what, got, of):
    return ProtocolError(Kind.TRUNCATED, "peer stopped in the middle of a frame: got %d of %d bytes of %s"
                         % (got, of, what))


class Decoded:
    __slots__ = ("message", "serializer_id", "frame_length")

    def __init__(self, message, serializer_id, frame_length):
        self.message = message
        self.serializer_id = serializer_id
        self.frame_length = frame_length


def read_frame(source, max_body_length=MAX_BODY_LENGTH, max_envelope_length=DEFAULT_MAX_ENVELOPE_BYTES,
               tensors="auto", buffer=None, on_header=None):
    """Reads the next frame from ``source``; None if the source ended cleanly before the frame began.

    ``source`` has ``read_into(memoryview) -> int`` (fewer bytes only at the end of input) and
    ``start_frame(memoryview) -> bool`` (False at a clean end before any byte). ``buffer``: a writable
    bytes-like object to place the tensors in, one after the other at 64-byte boundaries, instead of fresh
    arrays (see NetworkConnection.receive_data). ``on_header``: called once the header has arrived and passed.
    """
    header = bytearray(HEADER_LENGTH)
    view = memoryview(header)
    if not source.start_frame(view):
        return None
    serializer_id, flags, body_length = parse_header(header, max_body_length)
    if on_header is not None:
        on_header()
    reader = _BodyReader(source, body_length, flags & FLAG_CHECKSUM, _Slicer(buffer) if buffer is not None else None)
    message = reader.read(serializer_id, max_envelope_length, tensors)
    frame_length = HEADER_LENGTH + body_length + (CHECKSUM_LENGTH if flags & FLAG_CHECKSUM else 0)
    return Decoded(message, serializer_id, frame_length)


class _BodyReader:
    __slots__ = ("source", "body_length", "crc", "body_read", "slicer")

    def __init__(self, source, body_length, with_checksum, slicer):
        self.slicer = slicer
        self.source = source
        self.body_length = body_length
        if with_checksum:
            checksum.check_size(body_length, "verifying a received frame")
        self.crc = 0 if with_checksum else None
        self.body_read = 0

    def fill(self, view, what):
        got = self.source.read_into(view)
        if got < len(view):
            raise truncated(what, got, len(view))
        if self.crc is not None:
            self.crc = checksum.update(self.crc, view)
        self.body_read += got

    def skip_to(self, body_offset):
        if self.body_read >= body_offset:
            return
        scratch = memoryview(bytearray(min(64 * 1024, body_offset - self.body_read)))
        while self.body_read < body_offset:
            self.fill(scratch[:min(len(scratch), body_offset - self.body_read)], "padding")

    def read(self, serializer_id, max_envelope_length, tensors):
        body_length = self.body_length
        if body_length < ENVELOPE_LENGTH_FIELD:
            raise ProtocolError(Kind.MALFORMED_ENVELOPE, "frame body of %d bytes is too short to hold the 4-byte "
                                "envelope length" % body_length)
        field = bytearray(4)
        self.fill(memoryview(field), "the envelope length")
        (envelope_length,) = _U32.unpack(field)
        if envelope_length > body_length - ENVELOPE_LENGTH_FIELD:
            raise ProtocolError(Kind.MALFORMED_ENVELOPE, "envelope length %d runs past the end of the %d-byte body"
                                % (envelope_length, body_length))
        if envelope_length > max_envelope_length:
            raise ProtocolError(Kind.MALFORMED_ENVELOPE, "envelope of %d bytes exceeds the limit of %d bytes"
                                % (envelope_length, max_envelope_length))
        env_bytes = bytearray(envelope_length)
        self.fill(memoryview(env_bytes), "the envelope")
        type_name, id, reply_to, meta, entries = envelope.read(serializer_id, env_bytes)
        try:
            message_type = MessageType(type_name)
            for key in meta:
                check_name("metadata key", key)
        except (ValueError, TypeError) as e:
            raise ProtocolError(Kind.MALFORMED_ENVELOPE, "envelope is invalid: %s" % e) from None
        data_start = align(ENVELOPE_LENGTH_FIELD + envelope_length)
        _validate_table(entries, body_length, data_start)

        received = {}
        for name, dtype, shape, offset, nbytes in entries:
            self.skip_to(data_start + offset)
            if self.slicer is not None:
                array = self.slicer.take(name, dtype, shape, nbytes)
            else:
                array = _allocate(name, dtype, shape, nbytes)
            self.read_tensor(dtypes.byte_view(array), name)
            received[name] = dtypes.from_wire(dtype, array, tensors)
        self.skip_to(body_length)
        if self.crc is not None:
            trailer = bytearray(CHECKSUM_LENGTH)
            got = self.source.read_into(memoryview(trailer))
            if got < CHECKSUM_LENGTH:
                raise truncated("the checksum", got, CHECKSUM_LENGTH)
            (expected,) = _U32.unpack(trailer)
            if expected != self.crc:
                raise ProtocolError(Kind.CHECKSUM_MISMATCH, "body checksum mismatch: frame says CRC32C 0x%08X, body "
                                    "has 0x%08X" % (expected, self.crc))
        return _message(message_type, received, meta, id, reply_to)

    def read_tensor(self, data, name):
        total = data.size
        view = memoryview(data)
        if self.crc is None:
            got = self.source.read_into(view)
            self.body_read += got
            if got < total:
                raise truncated("tensor '%s'" % name, got, total)
            return
        for position in range(0, total, CHECKSUM_SLICE):
            part = view[position:position + CHECKSUM_SLICE]
            got = self.source.read_into(part)
            self.body_read += got
            if got < len(part):
                raise truncated("tensor '%s'" % name, position + got, total)
            self.crc = checksum.update(self.crc, part)


def _validate_table(entries, body_length, data_start):
    """The checks of Java's FrameDecoder.validateTable, in its order and with its messages."""
    data_length = body_length - data_start
    if entries and data_length < 0:
        raise ProtocolError(Kind.BAD_TENSOR, "frame has tensors but its %d-byte body ends before the data area "
                            "starts at byte %d" % (body_length, data_start))
    names = set()
    previous_end, previous_name = 0, None
    for i, (name, dtype, shape, offset, nbytes) in enumerate(entries):
        try:
            check_name("tensor %d name" % i, name)
        except ValueError:
            raise ProtocolError(Kind.MALFORMED_ENVELOPE, "tensor %d has a name of %d characters (1..%d allowed)"
                                % (i, len(name), 1024)) from None
        if name in names:
            raise ProtocolError(Kind.MALFORMED_ENVELOPE, "tensor name '%s' appears twice" % name)
        names.add(name)
        if dtype not in dtypes.WIDTHS:
            raise ProtocolError(Kind.BAD_TENSOR, "tensor '%s': unknown dtype '%s'; known: [%s]"
                                % (name, dtype, ", ".join(dtypes.WIDTHS)))
        if len(shape) > dtypes.MAX_RANK:
            raise ProtocolError(Kind.BAD_TENSOR, "tensor '%s' has rank %d, over the maximum of %d"
                                % (name, len(shape), dtypes.MAX_RANK))
        count = 1
        for dim in shape:
            count *= dim
            if count > _MAX_LONG:
                raise ProtocolError(Kind.BAD_TENSOR, "tensor '%s': shape %s overflows 64 bits" % (name, _java(shape)))
        expected = count * dtypes.WIDTHS[dtype]
        if expected > _MAX_LONG:
            raise ProtocolError(Kind.BAD_TENSOR, "tensor '%s': shape %s of %s overflows 64 bits"
                                % (name, _java(shape), dtype))
        if nbytes != expected:
            raise ProtocolError(Kind.BAD_TENSOR, "tensor '%s' declares %d bytes but %s %s needs %d"
                                % (name, nbytes, dtype, _java(shape), expected))
        if offset % DATA_ALIGNMENT:
            raise ProtocolError(Kind.BAD_TENSOR, "tensor '%s' has offset %d, which is not a non-negative multiple "
                                "of %d" % (name, offset, DATA_ALIGNMENT))
        if offset < previous_end:
            raise ProtocolError(Kind.BAD_TENSOR, "tensor '%s' at offset %d overlaps tensor '%s', which ends at %d "
                                "(tensors must be in ascending offset order)"
                                % (name, offset, previous_name, previous_end))
        end = offset + nbytes
        if end > data_length:
            raise ProtocolError(Kind.BAD_TENSOR, "tensor '%s' ends at byte %d of the data area, but the frame's "
                                "data area has %d bytes" % (name, end, data_length))
        previous_end, previous_name = end, name


def _java(shape):
    return "[%s]" % ", ".join(str(d) for d in shape)


def _allocate(name, dtype, shape, nbytes):
    """Fresh memory for one tensor, allocated only now that its bytes are next on the wire."""
    numpy_dtype = dtypes.NUMPY.get(dtype) or dtypes.RAW_BITS[dtype]
    try:
        return numpy.empty(shape, dtype=numpy_dtype)
    except MemoryError:
        raise MemoryError("cannot allocate %d bytes for tensor '%s'" % (nbytes, name)) from None
    except ValueError as e:  # e.g. a zero-element shape whose other dimensions numpy cannot index
        raise ProtocolError(Kind.BAD_TENSOR, "tensor '%s': numpy cannot hold %s %s: %s"
                            % (name, dtype, _java(shape), e)) from None


class _Slicer:
    """Places received tensors one after the other in a caller's buffer (Java's slicing allocator)."""

    __slots__ = ("buffer", "position")

    def __init__(self, buffer):
        view = memoryview(buffer)
        if view.readonly:
            raise ValueError("the receive buffer must be writable")
        self.buffer = numpy.frombuffer(view.cast("B") if view.format != "B" or view.ndim != 1 else view,
                                       dtype=numpy.uint8)
        self.position = 0

    def take(self, name, dtype, shape, nbytes):
        start = align(self.position)
        if start + nbytes > self.buffer.size:
            raise ValueError("the receive buffer of %d bytes has no room for tensor '%s' (%d bytes at offset %d)"
                             % (self.buffer.size, name, nbytes, start))
        self.position = start + nbytes
        numpy_dtype = dtypes.NUMPY.get(dtype) or dtypes.RAW_BITS[dtype]
        return self.buffer[start:start + nbytes].view(numpy_dtype).reshape(shape)


def _message(message_type, received, meta, id, reply_to):
    """A Message of values the decoder already checked, without checking them again."""
    message = Message.__new__(Message)
    message.type = message_type
    message.tensors = received
    message.meta = meta
    message.id = id
    message.reply_to = reply_to
    return message


class MemorySource:
    """A source over a bytes-like object holding frames."""

    __slots__ = ("view", "position")

    def __init__(self, data):
        self.view = memoryview(data).cast("B") if memoryview(data).format != "B" else memoryview(data)
        self.position = 0

    def remaining(self):
        return len(self.view) - self.position

    def read_into(self, destination):
        count = min(len(destination), len(self.view) - self.position)
        destination[:count] = self.view[self.position:self.position + count]
        self.position += count
        return count

    def start_frame(self, header):
        if self.position >= len(self.view):
            return False
        got = self.read_into(header)
        if got < len(header):
            raise truncated("the frame header", got, len(header))
        return True


def decode_whole(raw_message, tensors="auto"):
    """The Message of a bytes-like object holding exactly one frame (Java's ``Frames.fromRawMessage``)."""
    tensors = dtypes.resolve_tensors_choice(dtypes.check_tensors_choice(tensors))
    try:
        source = MemorySource(raw_message)
    except TypeError:
        raise TypeError("from_raw_message takes bytes-like data, got %s" % type(raw_message).__name__) from None
    decoded = read_frame(source, MAX_BODY_LENGTH, (1 << 31) - 9, tensors)
    if decoded is None:
        raise ProtocolError(Kind.TRUNCATED, "raw message is empty: a frame has at least %d bytes" % HEADER_LENGTH)
    if source.remaining():
        raise ProtocolError(Kind.TRAILING_BYTES, "raw message has %d bytes after the end of its %d-byte frame"
                            % (source.remaining(), decoded.frame_length))
    return decoded.message
