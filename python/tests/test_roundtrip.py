"""Python <-> Python: every dtype and message type, both serializers, with and without checksum, as raw frames,
over TCP, and as JSON text; the frame layout of docs/PROTOCOL.md byte for byte."""

import json
import struct

import numpy
import pytest

from helpers import serving
from netutils import Message, MessageType, NetworkConnection, RawTensor, frames, of_requests
from values import MESSAGE_TYPES, SHAPES, expected_messages

ALL = list(expected_messages())


def test_the_protocol_pages_example_frame_byte_for_byte():
    # docs/PROTOCOL.md, "Example: a complete frame"
    expected = bytes.fromhex(
        "4e550101000000000000008800000071"
        + b'{"type":"KV_index","id":"7","meta":{},"tensors":[{"name":"data","dtype":"I64","shape":[],"offset":0,'
          b'"nbytes":8}]}'.hex()
        + "00" * 11 + "2a00000000000000")
    message = Message(MessageType.KV_index, numpy.array(42, dtype=numpy.int64), id="7")
    assert message.to_raw_message() == expected
    assert len(expected) == 148
    assert Message.from_raw_message(expected) == message
    assert int(Message.from_raw_message(expected).data) == 42


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
@pytest.mark.parametrize("checksum", [False, True])
def test_every_type_and_dtype_round_trips_as_a_raw_frame(serializer, checksum):
    for stem, msg_type, tensors in ALL:
        message = Message(msg_type, tensors, id=stem, reply_to="r" + stem, meta={"k": "v", "ü": "∂"})
        raw = message.to_raw_message(serializer, checksum=checksum)
        assert raw[3] == {"json": 1, "msgpack": 2}[serializer]
        assert raw[4] == (1 if checksum else 0)
        back = Message.from_raw_message(raw, tensors="numpy")
        assert back == message, stem
        assert list(back.tensors) == ["matrix", "empty", "scalar"]
        for name, value in tensors.items():
            got = back.tensors[name]
            assert type(got) is type(value)
            assert got.shape == value.shape == tuple(SHAPES[name])


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_every_type_and_dtype_round_trips_over_tcp(serializer):
    with serving(of_requests(lambda request: request), tensors="numpy") as server, \
            NetworkConnection("127.0.0.1", server.port, serializer=serializer, tensors="numpy") as connection:
        for stem, msg_type, tensors in ALL:
            message = Message(msg_type, tensors, id=stem, meta={"n": stem})
            reply = connection.request(message)
            assert reply.reply_to == stem
            assert connection.last_serializer == serializer  # the server answered in the request's format
            assert Message(reply.type, reply.tensors, id=reply.id, meta=reply.meta) == message


def test_layout_follows_the_protocol():
    message = Message(MessageType.mask, {"a": numpy.array([1, 2, 3], dtype=numpy.uint8),
                                         "b": numpy.array([9], dtype=numpy.uint8)})
    raw = message.to_raw_message()
    assert raw[:2] == b"NU"
    (body,) = struct.unpack_from(">I", raw, 8)
    (envelope_length,) = struct.unpack_from(">I", raw, 12)
    data_start = 12 + ((4 + envelope_length + 63) & ~63)
    assert raw[data_start] == 1 and raw[data_start + 2] == 3
    assert raw[data_start + 64] == 9  # the second tensor starts at the next multiple of 64
    assert body == data_start - 12 + 65 and len(raw) == 12 + body
    envelope = json.loads(raw[16:16 + envelope_length])
    assert list(envelope) == ["type", "meta", "tensors"]  # no id / reply_to when absent
    assert envelope["tensors"][1] == {"name": "b", "dtype": "U8", "shape": [1], "offset": 64, "nbytes": 1}
    assert raw[16 + envelope_length:data_start] == bytes(data_start - 16 - envelope_length)



def test_large_tensors_are_placed_where_copying_them_is_fast():
    # as Java's RawFrameTest: never 1-63 bytes (mod 4096) past the sender's address, nor 1-63 bytes before a page
    # boundary of the frame (a receiver's page-aligned memory); docs/PROTOCOL.md, "Where a writer puts large tensors"
    size = 64 * 1024
    memory = numpy.arange(size + 8192, dtype=numpy.uint64).astype(numpy.uint8)
    first_page = -memory.__array_interface__["data"][0] % 4096
    moved = 0
    for step, shift in enumerate(range(first_page, first_page + 4096, 8)):
        # envelopes of every length mod 64 (moving a tensor can lengthen the envelope past a multiple of 64, which
        # moves the data area) and near 4 KiB (the receiver's condition)
        for pad in ("x" * (step % 64), "x" * (3780 + step % 128)):
            data = memory[shift:shift + size]
            message = Message(MessageType.KV_cache, {"small": numpy.array([5], dtype=numpy.uint8), "cache": data},
                              meta={"pad": pad})
            for serializer in ("json", "msgpack"):
                raw = message.to_raw_message(serializer, checksum=step % 2 == 1)
                frame = Message.from_raw_message(raw)
                assert frame == message
                (envelope_length,) = struct.unpack_from(">I", raw, 12)
                data_start = 12 + ((4 + envelope_length + 63) & ~63)
                position = raw.index(data.tobytes()[:256], data_start)
                offset = position - data_start
                assert offset % 64 == 0 and 64 <= offset <= 320
                moved += offset > 64
                ahead = (position - data.__array_interface__["data"][0]) % 4096
                assert ahead == 0 or ahead >= 64, (shift, ahead)
                assert -position % 4096 == 0 or -position % 4096 >= 64, (shift, position)
                assert struct.unpack_from(">I", raw, 8)[0] == position - 12 + size
    assert moved > 0


def test_each_placement_condition_on_its_own():
    # as Java's FrameLayoutTest; positions are from the start of the frame, the data area starts at the 2nd argument
    big = frames.PLACED_MIN_BYTES
    pages = numpy.zeros(big + 3 * 4096, dtype=numpy.uint8)
    page = -pages.__array_interface__["data"][0] % 4096

    def at(page_offset, size=big):
        return pages[page + page_offset:page + page_offset + size]

    assert frames._layout([at(64)], 76, [0]) == [64]  # the sender's copy would run 12 bytes ahead
    assert frames._layout([at(64)], 140, [0]) == [0]
    assert frames._layout([at(2048)], 4044, [0]) == [64]  # 52 bytes before a page: a receiver's copy
    assert frames._layout([at(2048)], 3980, [0]) == [0]
    assert frames._layout([at(3968)], 3980, [0]) == [128]  # both in a row
    assert frames._layout([at(64, big - 1)], 76, [0]) == [0]  # small tensors stay
    assert frames._layout([at(64, big - 1), at(64)], 76, [0, 0]) == [0, big + 64]
    assert frames._layout([at(0), at(0, 8)], 140, [192, 0]) == [192, 192 + big]  # never below the last try

def test_message_types_are_the_original_names_and_strings():
    assert [MessageType.hidden_state, MessageType.CIS, MessageType.KV_index, MessageType.KV_cache,
            MessageType.mask] == MESSAGE_TYPES
    assert MessageType.error == "error"
    assert MessageType.of("logits") == MessageType("logits") == "logits"
    assert Message("logits").type == MessageType("logits")
    with pytest.raises(ValueError, match="1 to 256 characters, got 257"):
        MessageType("x" * 257)
    with pytest.raises(ValueError, match="control character at index 1"):
        MessageType("a\nb")
    with pytest.raises(ValueError, match="1 to 256 characters, got 0"):
        MessageType("")


def test_a_bare_array_is_the_data_tensor_and_a_dict_names_several():
    hidden = numpy.ones((1, 2, 4), dtype=numpy.float32)
    message = Message(MessageType.hidden_state, hidden)
    assert list(message.tensors) == ["data"] and message.data is hidden
    cache = Message(MessageType.KV_cache, {"layer0.k": hidden, "layer0.v": hidden * 2})
    assert list(cache.tensors) == ["layer0.k", "layer0.v"]
    with pytest.raises(KeyError, match="no tensor 'data' and 2 others"):
        cache.data
    assert Message(MessageType.mask).tensors == {}
    position = Message(MessageType.KV_index, 17)
    assert position.data.dtype == numpy.int64 and position.data.shape == ()
    assert Message(MessageType.mask, [[True, False]]).data.dtype == numpy.bool_


def test_metadata_ids_and_reply_to_of_the_wrong_kind_say_so():
    # The constructor's parameter named "type" (the original module's) hid the builtin: these raised
    # "TypeError: 'MessageType' object is not callable" instead of saying what was wrong.
    with pytest.raises(TypeError, match="metadata 'pos' must be a str, got int"):
        Message(MessageType.KV_index, numpy.int64(1), meta={"pos": 5})
    with pytest.raises(TypeError, match="id must be a str or None, got int"):
        Message(MessageType.KV_index, numpy.int64(1), id=5)
    with pytest.raises(TypeError, match="reply_to must be a str or None, got int"):
        Message(MessageType.KV_index, numpy.int64(1), reply_to=7)


def test_json_text_round_trips_every_dtype_and_has_javas_layout():
    for stem, msg_type, tensors in ALL:
        message = Message(msg_type, tensors, id=stem, meta={"k": "v"})
        assert Message.from_json(message.to_json(), tensors="numpy") == message
    text = Message(MessageType.KV_index, numpy.array(1, dtype=numpy.int64), id="7", reply_to="6",
                   meta={"k": "v"}).to_json()
    # the text Java's Message.toJson() writes for the same message (JsonTextTest.textIsPlainJsonWithBase64Data)
    assert text == ('{"type":"KV_index","id":"7","reply_to":"6","meta":{"k":"v"},"tensors":[{"name":"data",'
                    '"dtype":"I64","shape":[],"data":"AQAAAAAAAAA="}]}')


def test_bad_json_text_says_what_is_wrong():
    with pytest.raises(ValueError, match="type must be a string"):
        Message.from_json('{"type": 3}')
    with pytest.raises(ValueError, match="needs 8 bytes, data has 3"):
        Message.from_json('{"type":"mask","tensors":[{"name":"m","dtype":"F32","shape":[2],"data":"AAAA"}]}')
    with pytest.raises(ValueError, match="does not parse"):
        Message.from_json("{not json")
    with pytest.raises(ValueError, match="key 'type' appears twice"):
        Message.from_json('{"type":"mask","type":"error"}')
    # unknown keys are refused as Java refuses them, not ignored (a misspelt "reply_to" must not vanish)
    with pytest.raises(ValueError, match="unknown key 'replyTo'"):
        Message.from_json('{"type":"mask","replyTo":"7"}')
    with pytest.raises(ValueError, match="unknown key 'offset' in tensors\\[0\\]"):
        Message.from_json('{"type":"mask","tensors":[{"name":"m","dtype":"U8","shape":[1],"data":"AA==","offset":0}]}')
    with pytest.raises(ValueError, match="meta must be an object, got bool"):
        Message.from_json('{"type":"mask","meta":false}')
    with pytest.raises(ValueError, match="tensors must be an array, got int"):
        Message.from_json('{"type":"mask","tensors":0}')
    with pytest.raises(ValueError, match="does not parse"):
        Message.from_json("[" * 100000 + "]" * 100000)
    # no elements, but a dimension numpy cannot index: a ValueError too (it was a ProtocolError)
    with pytest.raises(ValueError, match="numpy cannot hold F32 \\[0, 4611686018427387904\\]"):
        Message.from_json('{"type":"a","tensors":[{"name":"d","dtype":"F32","shape":[0,4611686018427387904],"data":""}]}')
    # strict base64 with padding, the same inputs Java's JsonTextTest refuses
    for data in ("AA\\n==", "AA", "AA==\\n", "A A=", "AA=A", "AA==AA==", "AAAA=", "AAA=="):
        with pytest.raises(ValueError, match="tensors\\[0\\].data is not base64"):
            Message.from_json('{"type":"mask","tensors":[{"name":"m","dtype":"U8","shape":[1],"data":"%s"}]}' % data)


def test_equality_is_bit_exact():
    nan = numpy.array([numpy.nan], dtype=numpy.float32)
    assert Message("t", nan) == Message("t", nan.copy())
    assert Message("t", numpy.array([0.0])) != Message("t", numpy.array([-0.0]))
    assert Message("t", numpy.zeros(2, numpy.float32)) != Message("t", numpy.zeros(2, numpy.int32))
    assert Message("t", RawTensor("BF16", numpy.array([1], numpy.uint16))) != \
        Message("t", numpy.array([1], numpy.int16))
