"""The JSON text of a message (``to_json`` / ``from_json``), the format of Java's ``Frames.toJson(message)``:

    {"type":..,"id":..,"reply_to":..,"meta":{..},"tensors":[{"name":..,"dtype":..,"shape":[..],"data":"<base64>"}]}

``id`` and ``reply_to`` are left out when absent; ``data`` is the tensor's little-endian bytes in standard
base64 with padding. Written compactly with keys in Java's order, so a text from either side reads back on the
other and, for ASCII-only names, is written back byte for byte.
"""

import base64
import binascii
import json

import numpy

from . import dtypes, envelope
from .errors import ProtocolError
from .frames import _allocate, _message
from .message import MessageType, check_name


def write(message):
    tensors = []
    for name, value in message.tensors.items():
        dtype, shape, array = dtypes.to_wire(value, "tensor %r" % name)
        tensors.append({"name": name, "dtype": dtype, "shape": [int(d) for d in shape],
                        "data": base64.b64encode(dtypes.byte_view(array)).decode("ascii")})
    root = {"type": str(message.type)}
    if message.id is not None:
        root["id"] = message.id
    if message.reply_to is not None:
        root["reply_to"] = message.reply_to
    root["meta"] = message.meta
    root["tensors"] = tensors
    return json.dumps(root, ensure_ascii=False, separators=(",", ":"))


_MESSAGE_KEYS = ("type", "id", "reply_to", "meta", "tensors")
_TENSOR_KEYS = ("name", "dtype", "shape", "data")


def _known_keys(obj, known, where):
    """Unknown keys are refused, never ignored, as Java's Frames.fromJson does: a misspelt field must not vanish."""
    for key in obj:
        if key not in known:
            raise ValueError("message JSON: unknown key %r%s (the text is {%s}, as to_json() writes it)"
                             % (key, where, ", ".join('"%s"' % k for k in known)))


def _refuse_constant(name):
    raise ValueError("%s is not JSON" % name)


def _string(parent, field, path, optional=False):
    value = parent.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError("message JSON: %s%s must be a string%s, got %s"
                         % (path, field, " or null" if optional else "",
                            "nothing (missing)" if field not in parent else type(value).__name__))
    return _unicode(value, path + field)


def _unicode(value, path):
    try:
        return envelope._unicode(value, path)
    except envelope._Invalid as e:
        raise ValueError("message JSON: %s" % e) from None


def read(text, tensors="auto"):
    tensors = dtypes.resolve_tensors_choice(dtypes.check_tensors_choice(tensors))
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    try:
        root = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=envelope.unique_pairs)
    except envelope._Invalid as e:
        raise ValueError("message JSON: %s" % e) from None
    except (ValueError, RecursionError) as e:
        raise ValueError("message JSON does not parse: %s" % e) from None
    if not isinstance(root, dict):
        raise ValueError("message JSON: message must be an object, got %s" % type(root).__name__)
    _known_keys(root, _MESSAGE_KEYS, "")
    message_type = MessageType(_string(root, "type", ""))
    id = _string(root, "id", "", optional=True)
    reply_to = _string(root, "reply_to", "", optional=True)
    meta = root.get("meta")
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        raise ValueError("message JSON: meta must be an object, got %s" % type(meta).__name__)
    for key, value in meta.items():
        check_name("metadata key", key)
        if not isinstance(value, str):
            raise ValueError("message JSON: meta.%s must be a string, got %s" % (key, type(value).__name__))
        _unicode(key, "meta key")
        _unicode(value, "meta.%s" % key)
    entries = root.get("tensors")
    if entries is None:
        entries = []
    elif not isinstance(entries, list):
        raise ValueError("message JSON: tensors must be an array, got %s" % type(entries).__name__)
    received = {}
    for i, entry in enumerate(entries):
        path = "tensors[%d]." % i
        if not isinstance(entry, dict):
            raise ValueError("message JSON: tensors[%d] must be an object" % i)
        _known_keys(entry, _TENSOR_KEYS, " in tensors[%d]" % i)
        name = check_name("tensor name", _string(entry, "name", path))
        if name in received:
            raise ValueError("message JSON: tensor %r is already in this message" % name)
        dtype = _string(entry, "dtype", path)
        try:
            dtypes.check_dtype(dtype)
        except ValueError as e:
            raise ValueError("message JSON: %s%s" % (path, e)) from None
        shape = entry.get("shape")
        if not isinstance(shape, list) or any(type(d) is not int or d < 0 or d >= 1 << 63 for d in shape):
            raise ValueError("message JSON: %sshape must be an array of non-negative 64-bit integers, got %r"
                             % (path, shape))
        if len(shape) > dtypes.MAX_RANK:
            raise ValueError("message JSON: %sshape has rank %d, over the maximum of %d"
                             % (path, len(shape), dtypes.MAX_RANK))
        text = _string(entry, "data", path)
        try:
            data = base64.b64decode(text, validate=True)
        except binascii.Error as e:
            raise ValueError("message JSON: %sdata is not base64: %s" % (path, e)) from None
        if len(text) % 4:  # Python before 3.11 decodes "AAAA=" leniently; Java refuses it
            raise ValueError("message JSON: %sdata is not base64 with padding: %d characters, not a multiple of 4"
                             % (path, len(text)))
        count = 1
        for d in shape:
            count *= d
        needs = count * dtypes.WIDTHS[dtype]
        if needs != len(data):
            raise ValueError("message JSON: tensor %r: %s %s needs %d bytes, data has %d"
                             % (name, dtype, list(shape), needs, len(data)))
        try:
            array = _allocate(name, dtype, shape, needs)
        except ProtocolError as e:  # a shape numpy cannot hold: this reader's promise is a ValueError
            raise ValueError("message JSON: %s" % e.args[0]) from None
        dtypes.byte_view(array)[:] = numpy.frombuffer(data, dtype=numpy.uint8)
        received[name] = dtypes.from_wire(dtype, array, tensors)
    return _message(message_type, received, dict(meta), id, reply_to)
