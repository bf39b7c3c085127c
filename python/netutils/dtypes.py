"""The dtypes of docs/PROTOCOL.md and how numpy arrays and torch tensors map to them, both ways.

Nothing here changes a value: a tensor is sent as the bytes it holds, and a dtype without a lossless match is
refused with an error that names it. numpy has no bfloat16 or 8-bit floats, so those travel as their bit
patterns (uint16 / uint8) wrapped in :class:`RawTensor`, or as torch tensors.
"""

import sys

import numpy

#: wire name -> width in bytes, in the order of docs/PROTOCOL.md
WIDTHS = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "BOOL": 1, "C64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
}

#: wire name -> the numpy dtype holding the same little-endian values; dtypes numpy lacks are absent
NUMPY = {
    "F64": numpy.dtype("<f8"), "F32": numpy.dtype("<f4"), "F16": numpy.dtype("<f2"),
    "I64": numpy.dtype("<i8"), "I32": numpy.dtype("<i4"), "I16": numpy.dtype("<i2"), "I8": numpy.dtype("i1"),
    "U8": numpy.dtype("u1"), "BOOL": numpy.dtype("?"), "C64": numpy.dtype("<c8"),
}

#: dtypes numpy cannot hold as values: the numpy dtype of their raw bits
RAW_BITS = {"BF16": numpy.dtype("<u2"), "F8_E4M3": numpy.dtype("u1"), "F8_E5M2": numpy.dtype("u1")}

#: the largest rank the protocol accepts
MAX_RANK = 8

_FROM_NUMPY = {(dt.kind, dt.itemsize): name for name, dt in NUMPY.items()}

# numpy dtypes people reach for that have no lossless wire dtype, and what to do instead
_NUMPY_ADVICE = {
    ("u", 2): "the protocol has no U16; for bfloat16 bit patterns use RawTensor('BF16', array)",
    ("u", 4): "the protocol has no U32; convert explicitly (e.g. .astype(numpy.int64)) if the values fit",
    ("u", 8): "the protocol has no U64; convert explicitly (e.g. .astype(numpy.int64)) if the values fit",
    ("c", 16): "the protocol's only complex dtype is C64 (complex64); convert with .astype(numpy.complex64) "
               "if you accept the lost precision",
}


def contiguous(array):
    """The array itself if C-contiguous, else a C-contiguous copy. (numpy.ascontiguousarray would turn a 0-d
    array into a 1-d one: a scalar tensor must keep its shape [].)"""
    return array if array.flags.c_contiguous else numpy.array(array, order="C")


def check_dtype(name):
    """``name`` if it is a wire dtype, else ValueError naming the known ones."""
    if name not in WIDTHS:
        raise ValueError("unknown dtype %r; known: %s" % (name, ", ".join(WIDTHS)))
    return name


def _torch():
    """The torch module if the caller could have made a torch tensor (imported), else None. Never imports it:
    torch takes seconds to import and most frames do not need it."""
    return sys.modules.get("torch")


def import_torch(why):
    try:
        import torch
    except ImportError as e:
        raise ImportError("%s needs PyTorch, which is not importable here (apt-get install python3-torch): %s"
                          % (why, e)) from e
    return torch


def _torch_dtypes(torch):
    table = {
        torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
        torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
        torch.bool: "BOOL", torch.complex64: "C64",
    }
    # float8 dtypes exist from PyTorch 2.1; e4m3fn is the OCP E4M3 (finite, no infinities)
    if hasattr(torch, "float8_e4m3fn"):
        table[torch.float8_e4m3fn] = "F8_E4M3"
    if hasattr(torch, "float8_e5m2"):
        table[torch.float8_e5m2] = "F8_E5M2"
    return table


class RawTensor:
    """A tensor of a dtype numpy has no type for (``BF16``, ``F8_E4M3``, ``F8_E5M2``), held as its bit patterns.

    ``bits`` is a numpy array of unsigned integers of the dtype's width (uint16 for BF16, uint8 for the 8-bit
    floats) with the tensor's shape; its values are the raw encodings, never numbers of the tensor. Make one to
    send bfloat16 from numpy without PyTorch; receive one when PyTorch is not there to hold the values.

    >>> t = RawTensor.bfloat16_from_float32(numpy.array([1.5, -2.0], dtype=numpy.float32))  # exact values only
    >>> t.to_float32()
    array([ 1.5, -2. ], dtype=float32)
    """

    __slots__ = ("dtype", "bits")

    def __init__(self, dtype, bits):
        check_dtype(dtype)
        if dtype not in RAW_BITS:
            raise ValueError("RawTensor is for dtypes numpy lacks (%s); %s travels as a plain numpy array of %s"
                             % (", ".join(RAW_BITS), dtype, NUMPY[dtype]))
        bits = numpy.asarray(bits)
        want = RAW_BITS[dtype]
        if bits.dtype.kind not in "ui" or bits.dtype.itemsize != want.itemsize:
            raise TypeError("the bits of a %s tensor must be an integer array of %d bytes per element (%s), got %s"
                            % (dtype, want.itemsize, want, bits.dtype))
        if bits.ndim > MAX_RANK:
            raise ValueError("rank %d is over the maximum of %d" % (bits.ndim, MAX_RANK))
        self.dtype = dtype
        # a view: the same bytes read as unsigned, little-endian (a big-endian input is byte-swapped, a copy)
        self.bits = contiguous(bits).astype(want, copy=False) if bits.dtype.byteorder == ">" \
            else contiguous(bits).view(want)

    @property
    def shape(self):
        return self.bits.shape

    @classmethod
    def bfloat16_from_float32(cls, values):
        """A BF16 tensor of float32 values that bfloat16 holds exactly (the low 16 bits of each are zero).

        Refuses values that would need rounding, naming the first one: round in PyTorch
        (``tensor.to(torch.bfloat16)``) when you mean to.
        """
        values = numpy.asarray(values)
        if values.dtype != numpy.float32:
            raise TypeError("bfloat16_from_float32 takes a float32 array, got %s" % values.dtype)
        values = contiguous(values.astype("<f4", copy=False))
        words = values.view("<u4")
        inexact = numpy.flatnonzero(words & 0xFFFF)
        if inexact.size:
            first = int(inexact[0])
            raise ValueError("%d of %d float32 values are not exact bfloat16 values (the first, at flat index %d, "
                             "is %r); round them with torch's .to(torch.bfloat16) if that is what you mean"
                             % (inexact.size, values.size, first, float(values.reshape(-1)[first])))
        return cls("BF16", (words >> 16).astype("<u2"))

    def to_float32(self):
        """BF16 values widened to float32, exactly (bfloat16 is the upper half of a float32)."""
        if self.dtype != "BF16":
            raise TypeError("numpy has no %s type and netutils does not decode it; use to_torch() with "
                            "PyTorch 2.1 or newer" % self.dtype)
        return (self.bits.astype("<u4") << 16).view("<f4")

    def to_torch(self):
        """The values as a torch tensor sharing this memory (bfloat16, or float8 on PyTorch 2.1+)."""
        torch = import_torch("RawTensor.to_torch()")
        target = {v: k for k, v in _torch_dtypes(torch).items()}.get(self.dtype)
        if target is None:
            raise TypeError("PyTorch %s has no %s dtype (float8 needs PyTorch 2.1 or newer)"
                            % (torch.__version__, self.dtype))
        signed = self.bits.view("<i2" if self.dtype == "BF16" else "u1")  # torch 1.x reads no uint16 arrays
        return torch.from_numpy(signed).view(target)

    def __eq__(self, other):
        return isinstance(other, RawTensor) and self.dtype == other.dtype and self.bits.shape == other.bits.shape \
            and numpy.array_equal(self.bits, other.bits)

    def __hash__(self):
        return hash((self.dtype, self.bits.shape))

    def __repr__(self):
        return "RawTensor(%r, shape=%s)" % (self.dtype, list(self.bits.shape))


def _numpy_name(array, what):
    key = (array.dtype.kind, array.dtype.itemsize)
    name = _FROM_NUMPY.get(key)
    if name is None:
        advice = _NUMPY_ADVICE.get(key, "the protocol's dtypes are %s" % ", ".join(WIDTHS))
        raise TypeError("%s: numpy dtype %s has no netutils dtype: %s" % (what, array.dtype, advice))
    if array.ndim > MAX_RANK:
        raise ValueError("%s: rank %d is over the maximum of %d" % (what, array.ndim, MAX_RANK))
    return name


def _torch_name(torch, tensor, what):
    name = _torch_dtypes(torch).get(tensor.dtype)
    if name is None:
        advice = " (convert with .to(torch.complex64) if you accept the lost precision)" \
            if tensor.dtype == torch.complex128 else ""
        raise TypeError("%s: torch dtype %s has no netutils dtype%s; the protocol's dtypes are %s"
                        % (what, tensor.dtype, advice, ", ".join(WIDTHS)))
    if tensor.device.type != "cpu":
        raise ValueError("%s: tensor is on device %s; move it with .cpu() first (netutils sends host memory)"
                         % (what, tensor.device))
    if tensor.layout != torch.strided:
        raise ValueError("%s: tensor has layout %s; convert it with .to_dense() first" % (what, tensor.layout))
    if tensor.dim() > MAX_RANK:
        raise ValueError("%s: rank %d is over the maximum of %d" % (what, tensor.dim(), MAX_RANK))
    return name


def normalize(value, what="tensor"):
    """(value to keep in a Message, wire dtype, shape) for anything to_wire accepts, checked without copying
    tensor data. Python numbers and lists become numpy arrays (int -> I64, float -> F64, bool -> BOOL, the
    values numpy gives them); arrays, tensors and RawTensors are kept as they are."""
    if isinstance(value, RawTensor):
        return value, value.dtype, tuple(value.shape)
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        return value, _torch_name(torch, value, what), tuple(value.shape)
    if not isinstance(value, numpy.ndarray):
        if not isinstance(value, (numpy.generic, bool, int, float, complex, list, tuple)):
            raise TypeError("%s: cannot send a %s.%s; send a numpy array, a torch tensor or a RawTensor"
                            % (what, type(value).__module__, type(value).__qualname__))
        try:
            value = numpy.asarray(value)
        except (ValueError, OverflowError) as e:
            raise TypeError("%s: numpy cannot make an array of this %s: %s" % (what, type(value).__name__, e))
    return value, _numpy_name(value, what), tuple(value.shape)


def to_wire(value, what="tensor"):
    """(wire dtype, shape tuple, C-contiguous little-endian numpy array of the tensor's bytes) for a value.

    Accepts what :func:`normalize` accepts. The array shares memory with the value when it is already
    contiguous and little-endian (the usual case): tensor bytes are not copied to be sent.
    """
    value, name, shape = normalize(value, what)
    if isinstance(value, RawTensor):
        return name, shape, value.bits
    if isinstance(value, numpy.ndarray):
        array = value
        if array.dtype.byteorder == ">":
            array = array.astype(NUMPY[name])  # same values, bytes swapped to the wire's little-endian
        return name, shape, contiguous(array)
    torch = _torch()
    tensor = value.detach()
    if tensor.is_conj():
        tensor = tensor.resolve_conj()
    if tensor.is_neg():
        tensor = tensor.resolve_neg()
    tensor = tensor.contiguous()
    if name == "BF16":
        # the same 2 bytes per element reinterpreted, no float32 detour (torch 1.x has no uint16)
        array = tensor.view(torch.int16).numpy().view("<u2")
    elif name in ("F8_E4M3", "F8_E5M2"):
        array = tensor.view(torch.uint8).numpy()
    else:
        array = tensor.numpy()
    return name, shape, array


def byte_view(array):
    """A flat uint8 view of a contiguous array's bytes (also for 0-d arrays, which cannot change dtype)."""
    return array.reshape(-1).view(numpy.uint8)


def from_wire(dtype, array, tensors):
    """The object handed to the user for a received tensor whose bytes are in ``array`` (numpy, of NUMPY[dtype]
    or RAW_BITS[dtype]). ``tensors``: "auto", "numpy" or "torch" (see NetworkConnection)."""
    if tensors == "torch":
        torch = import_torch("tensors='torch'")
        if dtype in RAW_BITS:
            raw = RawTensor(dtype, array)
            try:
                return raw.to_torch()
            except TypeError:
                return raw  # float8 on a PyTorch without float8: the bits, documented
        return torch.from_numpy(array)
    if dtype in RAW_BITS:
        raw = RawTensor(dtype, array)
        if tensors == "auto" and dtype == "BF16":
            try:
                import torch  # noqa: F401  (only imported when a BF16 tensor arrives)
            except ImportError:
                return raw
            return raw.to_torch()
        return raw
    return array


TENSOR_CHOICES = ("auto", "numpy", "torch")


def check_tensors_choice(tensors):
    if tensors not in TENSOR_CHOICES:
        raise ValueError("tensors must be one of %s, got %r" % (", ".join(TENSOR_CHOICES), tensors))
    if tensors == "torch":
        import_torch("tensors='torch'")
    return tensors


def resolve_tensors_choice(tensors):
    """What "auto" means now: "torch" when the program has imported PyTorch (a PyTorch program gets PyTorch
    tensors), else "auto" (numpy arrays, BF16 as torch.bfloat16 if PyTorch is importable). Decided once per
    connection, so its messages do not change kind halfway."""
    if tensors == "auto" and _torch() is not None:
        return "torch"
    return tensors
