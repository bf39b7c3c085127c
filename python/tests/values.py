"""The deterministic tensor contents both languages compute for the interop tests (InteropValues.java in
netutils-examples computes the same bytes)."""

import numpy

from netutils import RawTensor
from netutils.dtypes import NUMPY, WIDTHS

MESSAGE_TYPES = ["hidden_state", "CIS", "KV_index", "KV_cache", "mask"]
SHAPES = {"matrix": [3, 5], "empty": [0, 4], "scalar": []}
DTYPES = list(WIDTHS)


def values(dtype, shape):
    """Element i of a tensor of this dtype: a numpy array, or a RawTensor for BF16 and the 8-bit floats."""
    count = int(numpy.prod(shape, dtype=numpy.int64)) if shape else 1
    i = numpy.arange(count, dtype=numpy.int64)
    if dtype in ("F64", "F32", "F16"):
        out = (i % 251) * 0.5 - 60
    elif dtype == "BF16":
        bits = (((i % 251) * 0.5 - 60).astype("<f4").view("<u4") >> 16).astype("<u2")
        return RawTensor("BF16", bits.reshape(shape))
    elif dtype == "I64":
        out = i * 1_000_000_007 - 5_000_000_000_000
    elif dtype == "I32":
        out = i * 7919 - 100_000
    elif dtype == "I16":
        out = (i * 31) % 65536 - 32768
    elif dtype == "I8":
        out = i % 256 - 128
    elif dtype in ("U8", "F8_E4M3", "F8_E5M2"):
        out = ((i * 7) % 256).astype("u1")
        if dtype != "U8":
            return RawTensor(dtype, out.reshape(shape))
    elif dtype == "BOOL":
        out = i % 3 == 0
    elif dtype == "C64":
        out = i * 0.25 - 1j * (i * 0.5)
    else:
        raise ValueError(dtype)
    return numpy.asarray(out).astype(NUMPY[dtype]).reshape(shape)


def expected_messages():
    """(file stem, type, {name: tensor}) for every message type and dtype."""
    for msg_type in MESSAGE_TYPES:
        for dtype in DTYPES:
            yield "%s_%s" % (msg_type, dtype), msg_type, {name: values(dtype, shape) for name, shape in SHAPES.items()}
