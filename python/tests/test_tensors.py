"""numpy and torch tensors: every dtype mapped both ways or refused by name; bfloat16 without a float32 detour."""

import numpy
import pytest

from helpers import serving
from netutils import Message, MessageType, NetworkConnection, RawTensor, of_requests
from netutils.dtypes import WIDTHS

ECHO = of_requests(lambda request: request)


def test_numpy_dtypes_without_a_wire_dtype_are_refused_by_name():
    for dtype, text in [(numpy.uint16, "no U16; for bfloat16 bit patterns use RawTensor"),
                        (numpy.uint32, "no U32"), (numpy.uint64, "no U64"),
                        (numpy.complex128, "only complex dtype is C64"),
                        (numpy.longdouble, "has no netutils dtype")]:
        with pytest.raises(TypeError, match=text):
            Message(MessageType.hidden_state, numpy.zeros(2, dtype=dtype))
    with pytest.raises(TypeError, match="numpy dtype <U1 has no netutils dtype"):
        Message(MessageType.mask, numpy.array(["a"]))
    with pytest.raises(TypeError, match="cannot send a builtins.dict|cannot send a builtins.str"):
        Message(MessageType.mask, {"data": "text"})
    with pytest.raises(TypeError, match="complex dtype is C64"):
        Message(MessageType.CIS, 1j)  # a Python complex is complex128: refused, not narrowed
    with pytest.raises(ValueError, match="rank 9 is over the maximum of 8"):
        Message(MessageType.mask, numpy.zeros((1,) * 9))


def test_big_endian_and_strided_arrays_travel_with_their_values():
    big_endian = numpy.arange(6, dtype=">f4").reshape(2, 3)
    strided = numpy.arange(20, dtype=numpy.int32).reshape(4, 5)[:, ::2]
    back = Message.from_raw_message(Message("t", {"be": big_endian, "st": strided}).to_raw_message(),
                                    tensors="numpy")
    assert back.tensors["be"].dtype == numpy.dtype("<f4") and numpy.array_equal(back.tensors["be"], big_endian)
    assert back.tensors["st"].flags.c_contiguous and numpy.array_equal(back.tensors["st"], strided)


def test_contiguous_arrays_are_sent_from_their_own_memory():
    from netutils import frames
    array = numpy.arange(1 << 16, dtype=numpy.float32)
    encoded = frames.encode(Message(MessageType.hidden_state, array))
    (_, data), = encoded.tensors
    assert numpy.shares_memory(data, array)


def test_raw_tensor_holds_bits_and_widens_bfloat16_exactly():
    exact = numpy.array([1.5, -2.0, 0.0, 65280.0], dtype=numpy.float32)
    raw = RawTensor.bfloat16_from_float32(exact)
    assert raw.bits.dtype == numpy.dtype("<u2") and list(raw.bits) == [0x3FC0, 0xC000, 0, 0x477F]
    assert numpy.array_equal(raw.to_float32(), exact)
    with pytest.raises(ValueError, match="not exact bfloat16 values.*0.1"):
        RawTensor.bfloat16_from_float32(numpy.array([0.1], dtype=numpy.float32))
    with pytest.raises(TypeError, match="integer array of 2 bytes per element"):
        RawTensor("BF16", numpy.zeros(2, dtype=numpy.float16))
    with pytest.raises(ValueError, match="F32 travels as a plain numpy array"):
        RawTensor("F32", numpy.zeros(2, dtype=numpy.uint32))
    with pytest.raises(TypeError, match="numpy has no F8_E4M3 type"):
        RawTensor("F8_E4M3", numpy.zeros(2, dtype=numpy.uint8)).to_float32()


def test_scalars_keep_their_empty_shape():
    for value in (numpy.array(3, dtype=numpy.int64), RawTensor("BF16", numpy.array(0x3FC0, dtype=numpy.uint16)),
                  RawTensor("F8_E4M3", numpy.array(7, dtype=numpy.uint8))):
        assert value.shape == ()
        raw = Message("t", value).to_raw_message()
        assert b'"shape":[]' in raw
        assert Message.from_raw_message(raw, tensors="numpy").data.shape == ()


def test_received_dtypes_numpy_lacks_arrive_as_raw_tensors_with_tensors_numpy():
    for dtype in ("BF16", "F8_E4M3", "F8_E5M2"):
        bits = numpy.arange(6, dtype=numpy.uint16 if dtype == "BF16" else numpy.uint8).reshape(2, 3)
        back = Message.from_raw_message(Message("t", RawTensor(dtype, bits)).to_raw_message(), tensors="numpy")
        assert back.data == RawTensor(dtype, bits)


def test_every_numpy_dtype_maps_to_its_wire_name():
    from netutils.dtypes import NUMPY
    for name, dtype in NUMPY.items():
        raw = Message("t", numpy.zeros(3, dtype=dtype)).to_raw_message()
        assert ('"dtype":"%s"' % name).encode() in raw
        assert Message.from_raw_message(raw, tensors="numpy").data.dtype == dtype
    assert set(NUMPY) | {"BF16", "F8_E4M3", "F8_E5M2"} == set(WIDTHS)


def test_auto_gives_numpy_to_a_program_without_torch_and_torch_to_one_with_it():
    import os
    import subprocess
    import sys
    code = """
import sys, numpy
from netutils import Message, RawTensor
f32 = Message("t", numpy.ones(2, numpy.float32)).to_raw_message()
bf16 = Message("t", RawTensor("BF16", numpy.array([0x3FC0], numpy.uint16))).to_raw_message()
print(type(Message.from_raw_message(f32).data).__module__, "torch" in sys.modules)
print(type(Message.from_raw_message(bf16).data).__module__, Message.from_raw_message(bf16).data.dtype)
print(type(Message.from_raw_message(f32).data).__module__)
print(type(Message.from_raw_message(f32, tensors="numpy").data).__module__)
"""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "numpy False"  # no torch imported: numpy arrays, and torch is not imported for them
    if lines[1].startswith("torch"):
        assert lines[1] == "torch torch.bfloat16"  # BF16 needs torch to be values
        assert lines[2] == "torch"  # the program now has torch: later messages are torch tensors
    else:
        assert lines[1].startswith("netutils.dtypes")  # no torch installed: the bit patterns
    assert lines[3] == "numpy"


# ------------------------------------------------------------------ torch

torch = pytest.importorskip("torch")  # CI installs python3-torch, so these run there


def test_torch_bfloat16_is_sent_as_its_own_bits_and_arrives_as_torch_bfloat16():
    values = torch.tensor([[0.126, -0.132, 0.640], [3.0e38, -1.0e-38, float("inf")]]).to(torch.bfloat16)
    raw = Message(MessageType.hidden_state, values).to_raw_message()
    data = numpy.frombuffer(raw[-12:], dtype="<u2")
    assert list(data) == list(values.view(torch.int16).numpy().view(numpy.uint16).reshape(-1))  # no float32 detour
    back = Message.from_raw_message(raw)  # tensors="auto": BF16 as torch when torch is importable
    assert back.data.dtype == torch.bfloat16 and torch.equal(back.data, values)
    assert not torch.equal(back.data, torch.zeros(2, 3, dtype=torch.bfloat16))


def test_every_torch_dtype_round_trips_over_tcp_as_torch_tensors():
    generator = torch.Generator().manual_seed(3)
    tensors = {
        "f64": torch.randn(2, 3, dtype=torch.float64, generator=generator),
        "f32": torch.randn(4, dtype=torch.float32, generator=generator),
        "f16": torch.randn(1, 5, dtype=torch.float32, generator=generator).half(),
        "bf16": torch.randn(1, 16, 64, generator=generator).to(torch.bfloat16),
        "i64": torch.tensor(42), "i32": torch.arange(-3, 3, dtype=torch.int32),
        "i16": torch.arange(-3, 3, dtype=torch.int16), "i8": torch.arange(-3, 3, dtype=torch.int8),
        "u8": torch.arange(250, 256, dtype=torch.uint8), "bool": torch.tensor([[True, False]]),
        "c64": torch.polar(torch.ones(4), torch.arange(4.0)),
        "empty": torch.zeros(0, 4, dtype=torch.bfloat16),
    }
    with serving(ECHO, tensors="torch") as server, \
            NetworkConnection("127.0.0.1", server.port, serializer="msgpack", tensors="torch") as connection:
        reply = connection.request(Message(MessageType.KV_cache, tensors))
    assert list(reply.tensors) == list(tensors)
    for name, value in tensors.items():
        got = reply.tensors[name]
        assert isinstance(got, torch.Tensor) and got.dtype == value.dtype, name
        assert got.shape == value.shape and torch.equal(got, value), name


def test_torch_views_are_sent_with_their_values():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    conj = torch.polar(torch.ones(3), torch.arange(3.0)).conj()  # a lazily conjugated view
    back = Message.from_raw_message(Message("t", {"t": base.t(), "c": conj,
                                                  "g": base.requires_grad_(True)}).to_raw_message(), tensors="torch")
    assert torch.equal(back.tensors["t"], base.detach().t())
    assert torch.equal(back.tensors["c"], conj.resolve_conj())
    assert torch.equal(back.tensors["g"], base.detach())


def test_torch_tensors_numpy_cannot_hold_are_refused_by_name():
    with pytest.raises(TypeError, match="torch dtype torch.complex128 has no netutils dtype.*complex64"):
        Message("t", torch.zeros(2, dtype=torch.complex128))
    with pytest.raises(ValueError, match="on device meta; move it with .cpu"):
        Message("t", torch.empty(2, device="meta"))
    with pytest.raises(ValueError, match="layout torch.sparse_coo"):
        Message("t", torch.eye(2).to_sparse())


def test_raw_bfloat16_from_numpy_arrives_as_torch_and_back():
    bits = numpy.array([0x3FC0, 0xC000], dtype=numpy.uint16)
    as_torch = Message.from_raw_message(Message("t", RawTensor("BF16", bits)).to_raw_message())
    assert torch.equal(as_torch.data, torch.tensor([1.5, -2.0], dtype=torch.bfloat16))
    as_raw = Message.from_raw_message(Message("t", as_torch.data).to_raw_message(), tensors="numpy")
    assert as_raw.data == RawTensor("BF16", bits)
    assert torch.equal(as_raw.data.to_torch(), as_torch.data)
