"""Envelope serializers 1 (JSON) and 2 (MessagePack) of docs/PROTOCOL.md, with the checks of the Java readers.

Readers return ``(type, id, reply_to, meta, entries)`` with entries ``(name, dtype, shape, offset, nbytes)``
as they are on the wire; the frame decoder validates names, dtypes and sizes. Every malformation raises
ProtocolError(MALFORMED_ENVELOPE) with the path of the field (``tensors[2].shape[1]``), as Java does.
msgpack is imported only when a MessagePack envelope is written or read.
"""

import json

from .errors import Kind, ProtocolError

JSON, MSGPACK, KRYO = 1, 2, 3
NAMES = {JSON: "json", MSGPACK: "msgpack"}
IDS = {"json": JSON, "msgpack": MSGPACK}
_MAX_LONG = (1 << 63) - 1


class _Invalid(Exception):
    pass


def unique_pairs(pairs):
    """A map's pairs as a dict, refusing a key that appears twice (as Java's readers do): otherwise Python would
    keep the last value and a frame such as ``{"type": "hidden_state", "type": "error"}`` would mean one thing here
    and be refused there. Used as ``object_pairs_hook`` of the JSON and MessagePack parsers."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise _Invalid("key %s appears twice" % _quote(key))
        result[key] = value
    return result


def _quote(key):
    return "'%s'" % key if isinstance(key, str) else repr(key)


def serializer_id(name):
    """The wire id of a serializer name this package writes ("json" or "msgpack")."""
    try:
        wire_id = IDS[name]
    except (KeyError, TypeError):
        raise ValueError("serializer must be 'json' or 'msgpack' (kryo envelopes are Java-only), got %r"
                         % (name,)) from None
    if wire_id == MSGPACK:
        _msgpack()
    return wire_id


def _msgpack():
    try:
        import msgpack
    except ImportError as e:
        raise ImportError("MessagePack envelopes need the msgpack module (apt-get install python3-msgpack): %s"
                          % e) from e
    return msgpack


def unknown_serializer(wire_id):
    """The ProtocolError for an assignable serializer id this package cannot read, or None if it can."""
    if wire_id == JSON:
        return None
    if wire_id == MSGPACK:
        try:
            _msgpack()
            return None
        except ImportError:
            return ProtocolError(Kind.UNKNOWN_SERIALIZER, "frame uses serializer id 2 (msgpack), which is not "
                                 "installed: apt-get install python3-msgpack")
    if wire_id == KRYO:
        return ProtocolError(Kind.UNKNOWN_SERIALIZER, "frame uses serializer id 3 (kryo), which this Python "
                             "package cannot read: Kryo envelopes are Java-only; send json or msgpack")
    return ProtocolError(Kind.UNKNOWN_SERIALIZER, "frame uses user serializer id %d, which is not installed "
                         "here; installed ids: [1 json, 2 msgpack]" % wire_id)


def _fields(type_name, id, reply_to, meta, entries):
    envelope = {"type": type_name}
    if id is not None:
        envelope["id"] = id
    if reply_to is not None:
        envelope["reply_to"] = reply_to
    envelope["meta"] = meta
    envelope["tensors"] = [{"name": n, "dtype": d, "shape": list(s), "offset": o, "nbytes": b}
                           for n, d, s, o, b in entries]
    return envelope


def write(wire_id, type_name, id, reply_to, meta, entries):
    """The envelope bytes, keys in the order Java writes them (type, id, reply_to, meta, tensors)."""
    envelope = _fields(type_name, id, reply_to, meta, entries)
    if wire_id == JSON:
        return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _msgpack().packb(envelope, use_bin_type=True)


def read(wire_id, data):
    """Parses envelope bytes of a serializer that :func:`unknown_serializer` accepted."""
    name = NAMES[wire_id]
    try:
        if wire_id == JSON:
            return _read_json(data)
        return _read_msgpack(data)
    except _Invalid as e:
        raise ProtocolError(Kind.MALFORMED_ENVELOPE, "%s envelope: %s" % (name, e)) from None


# ---------------------------------------------------------------- JSON (the rules of Java's JsonTrees)

def _refuse_constant(name):
    raise ValueError("%s is not JSON" % name)


def _kind(value):
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number"}.get(type(value), type(value).__name__)


def _json_string(parent, field, path):
    value = parent.get(field, _MISSING)
    if not isinstance(value, str):
        raise _Invalid("%s%s must be a string, got %s" % (path, field, _got(value)))
    return _unicode(value, path + field)


def _json_optional_string(parent, field, path):
    value = parent.get(field)
    if value is not None and not isinstance(value, str):
        raise _Invalid("%s%s must be a string or null, got %s" % (path, field, _kind(value)))
    return value if value is None else _unicode(value, path + field)


def _unicode(value, path):
    """JSON's ``\\ud800`` escapes can spell a lone surrogate, which no UTF-8 text holds: refused here, rather
    than accepted and then failing (or being garbled) when the string is written again in a reply."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _Invalid("%s is not valid Unicode: it holds a lone surrogate \\u%04X at character %d"
                       % (path, ord(value[e.start]), e.start)) from None
    return value


def _long(value, path):
    if type(value) is not int or value < 0 or value > _MAX_LONG:
        raise _Invalid("%s must be a non-negative 64-bit integer, got %s" % (path, _describe(value)))
    return value


_MISSING = object()


def _got(value):
    return "nothing (missing)" if value is _MISSING else _kind(value)


def _describe(value):
    if value is _MISSING:
        return "nothing (missing)"
    return json.dumps(value) if isinstance(value, (int, float, str, bool, type(None))) else _kind(value)


def _json_shape(entry, path):
    shape = entry.get("shape", _MISSING)
    if not isinstance(shape, list):
        raise _Invalid("%sshape must be an array, got %s" % (path, _got(shape)))
    return [_long(dim, "%sshape[%d]" % (path, i)) for i, dim in enumerate(shape)]


def _read_json(data):
    try:
        root = json.loads(bytes(data), parse_constant=_refuse_constant, object_pairs_hook=unique_pairs)
    except (ValueError, RecursionError) as e:  # _Invalid from unique_pairs is neither, and passes through  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProtocolError(Kind.MALFORMED_ENVELOPE, "json envelope does not parse: %s" % e) from None
    if not isinstance(root, dict):
        raise _Invalid("envelope must be an object, got %s" % _kind(root))
    type_name = _json_string(root, "type", "")
    id = _json_optional_string(root, "id", "")
    reply_to = _json_optional_string(root, "reply_to", "")
    meta = root.get("meta")
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        raise _Invalid("meta must be an object, got %s" % _kind(meta))
    for key, value in meta.items():
        if not isinstance(value, str):
            raise _Invalid("meta.%s must be a string, got %s" % (key, _kind(value)))
        _unicode(key, "meta key")
        _unicode(value, "meta.%s" % key)
    tensors = root.get("tensors")
    if tensors is None:
        tensors = []
    elif not isinstance(tensors, list):
        raise _Invalid("tensors must be an array, got %s" % _kind(tensors))
    entries = []
    for i, entry in enumerate(tensors):
        path = "tensors[%d]." % i
        if not isinstance(entry, dict):
            raise _Invalid("tensors[%d] must be an object, got %s" % (i, _kind(entry)))
        entries.append((_json_string(entry, "name", path), _json_string(entry, "dtype", path),
                        _json_shape(entry, path), _long(entry.get("offset", _MISSING), path + "offset"),
                        _long(entry.get("nbytes", _MISSING), path + "nbytes")))
    return type_name, id, reply_to, meta, entries


# ---------------------------------------------------------------- MessagePack (the rules of Java's reader)

def _mp_kind(value):
    if value is None:
        return "NIL"
    return {dict: "MAP", list: "ARRAY", str: "STRING", bytes: "BINARY", bool: "BOOLEAN", int: "INTEGER",
            float: "FLOAT"}.get(type(value), "EXTENSION")


def _mp_string(value, path):
    if not isinstance(value, str):
        raise _Invalid("%s must be a string, got %s" % (path, _mp_kind(value)))
    return value


def _mp_long(value, path):
    if type(value) is not int:
        raise _Invalid("%s must be an integer, got %s" % (path, _mp_kind(value)))
    if value > _MAX_LONG:
        raise _Invalid("%s does not fit 64 bits" % path)
    if value < 0:
        raise _Invalid("%s must be a non-negative integer, got %d" % (path, value))
    return value


def _read_msgpack(data):
    msgpack = _msgpack()
    try:
        # strict_map_key=False: non-string keys are reported below by name, not as a library error
        root = msgpack.unpackb(bytes(data), raw=False, use_list=True, strict_map_key=False,
                               object_pairs_hook=unique_pairs)
    except msgpack.ExtraData as e:
        raise _Invalid("envelope has %d bytes after its map" % len(e.extra)) from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as e:
        # some of msgpack's exceptions have no text (a value cut short): name the exception then
        raise ProtocolError(Kind.MALFORMED_ENVELOPE, "msgpack envelope does not parse: %s"
                            % (str(e) or type(e).__name__)) from None
    if not isinstance(root, dict):
        raise _Invalid("envelope must be a map, got %s" % _mp_kind(root))
    type_name = id = reply_to = None
    meta, entries = {}, []
    for key, value in root.items():
        key = _mp_string(key, "envelope key")
        if key == "type":
            type_name = _mp_string(value, "type")
        elif key in ("id", "reply_to"):
            if value is not None:
                _mp_string(value, key)
            if key == "id":
                id = value
            else:
                reply_to = value
        elif key == "meta":
            if not isinstance(value, dict):
                raise _Invalid("meta must be a map, got %s" % _mp_kind(value))
            for meta_key, meta_value in value.items():
                meta_key = _mp_string(meta_key, "meta key")
                meta[meta_key] = _mp_string(meta_value, "meta." + meta_key)
        elif key == "tensors":
            if not isinstance(value, list):
                raise _Invalid("tensors must be an array, got %s" % _mp_kind(value))
            for i, entry in enumerate(value):
                entries.append(_mp_entry(entry, "tensors[%d]" % i))
    if type_name is None:
        raise _Invalid("type is missing")
    return type_name, id, reply_to, meta, entries


def _mp_entry(entry, path):
    if not isinstance(entry, dict):
        raise _Invalid("%s must be a map, got %s" % (path, _mp_kind(entry)))
    name = dtype = shape = None
    offset = nbytes = -1
    for key, value in entry.items():
        key = _mp_string(key, path + " key")
        if key == "name":
            name = _mp_string(value, path + ".name")
        elif key == "dtype":
            dtype = _mp_string(value, path + ".dtype")
        elif key == "shape":
            if not isinstance(value, list):
                raise _Invalid("%s.shape must be an array, got %s" % (path, _mp_kind(value)))
            shape = [_mp_long(dim, "%s.shape[%d]" % (path, d)) for d, dim in enumerate(value)]
        elif key == "offset":
            offset = _mp_long(value, path + ".offset")
        elif key == "nbytes":
            nbytes = _mp_long(value, path + ".nbytes")
    if name is None or dtype is None or shape is None or offset < 0 or nbytes < 0:
        raise _Invalid("%s needs name, dtype, shape, offset and nbytes" % path)
    return name, dtype, shape, offset, nbytes
