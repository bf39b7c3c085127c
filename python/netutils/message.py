"""Message and MessageType: the original module's names, with named tensors as in the Java API."""

import builtins
from collections.abc import Mapping

import numpy

from . import dtypes

#: the name ``Message(type, data)`` gives a single tensor, as Java's Message.DEFAULT_TENSOR_NAME
DEFAULT_TENSOR_NAME = "data"
#: the longest tensor name or metadata key, in UTF-16 code units (Java's String.length())
MAX_NAME_LENGTH = 1024
#: the longest message type name, in UTF-16 code units
MAX_TYPE_LENGTH = 256


def java_length(text):
    """len() as Java counts it (UTF-16 code units), so both sides accept exactly the same names."""
    if len(text) * 2 <= MAX_NAME_LENGTH:  # cannot exceed any limit even if every character were a pair
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def check_name(what, name):
    if not isinstance(name, str):
        raise TypeError("%s must be a str, got %s" % (what, type(name).__name__))
    length = java_length(name)
    if length == 0 or length > MAX_NAME_LENGTH:
        raise ValueError("%s must have 1 to %d characters, got %d" % (what, MAX_NAME_LENGTH, length))
    check_unicode(what, name)
    return name


def check_unicode(what, text, *what_args):
    """Refuses a str holding a lone surrogate: it has no UTF-8 form, so sending it would fail with a bare
    UnicodeEncodeError (as Java's Message refuses it when built). ``what % what_args`` names it, formatted only
    for the error."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError("%s is not valid Unicode: it holds a lone surrogate U+%04X at index %d, which UTF-8 "
                         "cannot carry" % (what % what_args, ord(text[e.start]), e.start)) from None
    return text


def mend_unicode(text):
    """``text`` with lone surrogates replaced by U+FFFD, for text that must get through (an error's detail that
    quotes a string cut inside a character), as Java's Unicode.mended."""
    if not text or text.isascii():
        return text
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


_BY_NAME = {}


class MessageType(str):
    """What a message carries, as its wire name. A ``str``: ``MessageType.hidden_state == "hidden_state"``.

    The original module's five constants, ``error`` (reserved: a peer sends it before closing because of bad
    input; receiving it raises :class:`netutils.RemoteError`), and any application type with
    ``MessageType("logits")`` or ``MessageType.of("logits")`` (1 to 256 characters, no control characters).
    """

    __slots__ = ()

    def __new__(cls, name):
        if isinstance(name, MessageType):
            return name
        known = _BY_NAME.get(name) if type(name) is str else None
        if known is not None:  # the common case on every received frame: no validation loop
            return known
        if not isinstance(name, str):
            raise TypeError("message type must be a str, got %s" % type(name).__name__)
        length = java_length(name) if len(name) * 2 > MAX_TYPE_LENGTH else len(name)
        if length == 0 or length > MAX_TYPE_LENGTH:
            raise ValueError("message type name must have 1 to %d characters, got %d" % (MAX_TYPE_LENGTH, length))
        for index, char in enumerate(name):
            code = ord(char)
            if code < 0x20 or 0x7F <= code <= 0x9F:  # Java's Character.isISOControl
                raise ValueError("message type name has a control character at index %d" % index)
        check_unicode("message type name", name)
        return super().__new__(cls, name)

    @classmethod
    def of(cls, name):
        """The type with this name (same as ``MessageType(name)``)."""
        return cls(name)

    @property
    def name(self):
        return str(self)

    def is_predefined(self):
        return str(self) in _PREDEFINED

    def __repr__(self):
        return "MessageType(%s)" % str.__repr__(self)


MessageType.hidden_state = MessageType("hidden_state")
MessageType.CIS = MessageType("CIS")
MessageType.KV_index = MessageType("KV_index")
MessageType.KV_cache = MessageType("KV_cache")
MessageType.mask = MessageType("mask")
MessageType.error = MessageType("error")
_PREDEFINED = ("hidden_state", "CIS", "KV_index", "KV_cache", "mask", "error")
_BY_NAME.update((name, getattr(MessageType, name)) for name in _PREDEFINED)


class Message:
    """A message: a type, named tensors in order, string metadata in order, an optional id and the id of the
    message it answers.

    ``Message(MessageType.hidden_state, tensor)`` holds one tensor named ``"data"``;
    ``Message(MessageType.KV_cache, {"layer0.k": k, "layer0.v": v})`` holds several. Tensors are numpy arrays,
    torch tensors (CPU), :class:`netutils.RawTensor`, or Python numbers and lists (made numpy arrays). Every
    value is checked here: a dtype the protocol lacks is refused, never converted.
    """

    __slots__ = ("type", "tensors", "meta", "id", "reply_to")

    def __init__(self, type, data=None, *, meta=None, id=None, reply_to=None):
        self.type = MessageType(type)
        if data is None:
            items = ()
        elif isinstance(data, Mapping):
            items = data.items()
        else:
            items = ((DEFAULT_TENSOR_NAME, data),)
        tensors = {}
        for name, value in items:
            check_name("tensor name", name)
            if value is None:
                raise TypeError("tensor %r is None" % name)
            tensors[name], _, _ = dtypes.normalize(value, "tensor %r" % name)
        self.tensors = tensors
        checked = {}
        for key, value in (meta or {}).items():
            check_name("metadata key", key)
            if not isinstance(value, str):
                # (builtins.type: the parameter named after the original module's keeps the builtin's name)
                raise TypeError("metadata %r must be a str, got %s (metadata is string to string)"
                                % (key, builtins.type(value).__name__))
            checked[key] = check_unicode("metadata value of %r", value, key)
        self.meta = checked
        for field, value in (("id", id), ("reply_to", reply_to)):
            if value is not None and not isinstance(value, str):
                raise TypeError("%s must be a str or None, got %s" % (field, builtins.type(value).__name__))
            if value is not None:
                check_unicode(field, value)
        self.id = id
        self.reply_to = reply_to

    @property
    def data(self):
        """The tensor named ``"data"``, or the only tensor: the original module's ``message.data``."""
        if DEFAULT_TENSOR_NAME in self.tensors:
            return self.tensors[DEFAULT_TENSOR_NAME]
        if len(self.tensors) == 1:
            return next(iter(self.tensors.values()))
        raise KeyError("message %s has no tensor %r and %d others; use message.tensors[name] with one of %s"
                       % (self.type, DEFAULT_TENSOR_NAME, len(self.tensors), list(self.tensors)))

    def tensor(self, name):
        """The tensor with this name; KeyError naming the tensors the message has."""
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError("message %s has no tensor %r; it has %s" % (self.type, name, list(self.tensors))) from None

    def tensor_bytes(self):
        """The sum of the tensors' byte sizes."""
        total = 0
        for value in self.tensors.values():
            _, name, shape = dtypes.normalize(value)
            total += int(numpy.prod(shape, dtype=object)) * dtypes.WIDTHS[name]
        return total

    def replying(self, type, data=None, *, meta=None, id=None):
        """A message answering this one (its ``reply_to`` is this message's id)."""
        return Message(type, data, meta=meta, id=id, reply_to=self.id)

    # ------------------------------------------------------------ text and raw forms

    def to_json(self):
        """The self-contained JSON text of this message (tensor bytes in base64), the format of Java's
        ``Frames.toJson(message)``: for logs, debugging and JSON-only peers. Not what goes on the wire."""
        from . import text
        return text.write(self)

    @staticmethod
    def from_json(json_string, tensors="auto"):
        """Reads the text of :meth:`to_json` (or Java's ``Frames.toJson``); ValueError naming what is wrong."""
        from . import text
        return text.read(json_string, tensors)

    def to_raw_message(self, serializer="json", checksum=False):
        """This message as one whole frame (bytes): header, body and, with ``checksum``, the CRC32C trailer."""
        from . import frames
        return frames.encode(self, serializer, checksum).to_bytes()

    @staticmethod
    def from_raw_message(raw_message, tensors="auto"):
        """Parses one whole frame (bytes-like), as Java's ``Frames.fromRawMessage``; ProtocolError naming what
        is wrong, including bytes after the frame (TRAILING_BYTES)."""
        from . import frames
        return frames.decode_whole(raw_message, tensors)

    # ------------------------------------------------------------ values

    def __eq__(self, other):
        if not isinstance(other, Message):
            return NotImplemented
        if (self.type, self.id, self.reply_to, self.meta) != (other.type, other.id, other.reply_to, other.meta):
            return False
        if list(self.tensors) != list(other.tensors):
            return False
        for name, value in self.tensors.items():
            if not tensors_equal(value, other.tensors[name]):
                return False
        return True

    __hash__ = None

    def __repr__(self):
        parts = [str(self.type)]
        if self.id is not None:
            parts.append("id=%s" % self.id)
        if self.reply_to is not None:
            parts.append("reply_to=%s" % self.reply_to)
        for name, value in self.tensors.items():
            _, dtype, shape = dtypes.normalize(value)
            parts.append("%s=%s%s" % (name, dtype, list(shape)))
        if self.meta:
            parts.append("meta=%s" % self.meta)
        return "Message[%s]" % " ".join(parts)


def tensors_equal(a, b):
    """Same wire dtype, shape and bytes (bit-exact: NaNs equal themselves, -0.0 differs from 0.0)."""
    dtype_a, shape_a, wire_a = dtypes.to_wire(a)
    dtype_b, shape_b, wire_b = dtypes.to_wire(b)
    if dtype_a != dtype_b or tuple(shape_a) != tuple(shape_b):
        return False
    return numpy.array_equal(dtypes.byte_view(wire_a), dtypes.byte_view(wire_b))
