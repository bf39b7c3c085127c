"""The Python pipeline stage (netutils-inference/python/stage_server.py): a whole pipeline of Python stages
computes what llama_ref's single pass computes, migrations between stages lose nothing, every mask form gives
the same result, and a malformed message of each type is answered with an ``error`` naming what was wrong
while the stage's other sessions go on unharmed. The JVM side (a Python stage between Java ones) is
InferencePythonStageTest in netutils-examples."""

import importlib.util
import json
import os
import socket
import struct
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "netutils-inference", "python"))

import llama_ref  # noqa: E402
import stage_server  # noqa: E402
from helpers import read_to_end  # noqa: E402
from netutils import Message, MessageType, NetworkConnection, RawTensor, RemoteError  # noqa: E402

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 172,
    "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "vocab_size": 256, "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "tie_word_embeddings": False,
}
SPLIT = "0:1,1:2,2:4"  # 3 processes over 4 layers, as Java's Slice.ofStage splits them
PROMPT = [1, 15, 200, 42, 7, 99]
BACKENDS = ["numpy"] + (["torch"] if importlib.util.find_spec("torch") else [])


def write_checkpoint(directory, seed=7):
    """A small LLaMA checkpoint: config.json and model.safetensors, BF16 matrices and F32 norms (as Java's demo
    checkpoint), weights scaled 1/sqrt(fan_in) so the tokens vary."""
    rng = np.random.default_rng(seed)
    c = CONFIG
    d, m, hd = c["hidden_size"], c["intermediate_size"], c["head_dim"]
    shapes = {"model.embed_tokens.weight": (c["vocab_size"], d), "model.norm.weight": (d,),
              "lm_head.weight": (c["vocab_size"], d)}
    for layer in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % layer
        shapes.update({p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
                       p + "self_attn.q_proj.weight": (c["num_attention_heads"] * hd, d),
                       p + "self_attn.k_proj.weight": (c["num_key_value_heads"] * hd, d),
                       p + "self_attn.v_proj.weight": (c["num_key_value_heads"] * hd, d),
                       p + "self_attn.o_proj.weight": (d, c["num_attention_heads"] * hd),
                       p + "mlp.gate_proj.weight": (m, d), p + "mlp.up_proj.weight": (m, d),
                       p + "mlp.down_proj.weight": (d, m)})
    header, blobs, offset = {}, [], 0
    for name, shape in shapes.items():
        if len(shape) == 1:
            raw = (1.0 + 0.1 * rng.standard_normal(shape)).astype("<f4").tobytes()
            dtype = "F32"
        else:
            values = (rng.standard_normal(shape) / np.sqrt(shape[1])).astype(np.float32)
            if name == "model.embed_tokens.weight":
                values *= np.float32(np.sqrt(shape[1]))
            raw = stage_server.bf16_bits(values).astype("<u2").tobytes()
            dtype = "BF16"
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(c, f)
    return directory


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(str(tmp_path_factory.mktemp("tiny-llama")))


@pytest.fixture(scope="module")
def reference(checkpoint):
    return llama_ref.Model(checkpoint)


class Head:
    """Process 0 of the pipeline, in the test: embedding and layers 0:1 with llama_ref, then the step's four
    messages to stage 1 on one connection."""

    def __init__(self, model, first_stage, session, route="", serializer="json", sampling="greedy"):
        self.model = model
        self.connection = NetworkConnection(*stage_server.parse_address(first_stage), serializer=serializer,
                                            tensors="numpy").connect()
        self.session, self.route, self.sampling = session, route, sampling
        self.cache, self.position = {}, 0

    def reroute(self, first_stage):
        self.connection.close()
        self.connection = NetworkConnection(*stage_server.parse_address(first_stage), tensors="numpy").connect()

    def step_messages(self, tokens, mask_form="F32"):
        n, p = len(tokens), self.position
        hidden = self.model.w["model.embed_tokens.weight"][np.asarray(tokens)]
        cis = self.model.freqs_cis(p, n)
        mask = np.zeros((n, p + n), np.float32)
        mask[:, p:] = np.triu(np.full((n, n), -np.inf, np.float32), k=1)
        hidden = self.model.forward_layers(hidden, p, cis, mask, self.cache, 0, 1)
        meta = {"session": self.session}
        return [Message(MessageType.KV_index, np.array(p, np.int64), meta=meta),
                Message(MessageType.CIS, cis, meta=meta),
                Message(MessageType.mask, mask_tensor(mask, mask_form), meta=meta),
                Message(MessageType.hidden_state, hidden.reshape(1, n, -1), meta=dict(
                    meta, stage="1", split=SPLIT, route=self.route, sampling=self.sampling, **{"return": "logits"}))]

    def step(self, tokens, mask_form="F32"):
        for message in self.step_messages(tokens, mask_form):
            self.connection.send_data(message)
        answer = self.connection.receive_data()
        self.position += len(tokens)
        return answer

    def close(self):
        self.connection.close()


def mask_tensor(additive, form):
    """The step's additive float32 mask in one of the forms a PyTorch peer sends."""
    if form == "F32":
        return additive.reshape(1, 1, *additive.shape)
    if form == "F32-2d":
        return additive
    if form == "BOOL":
        return (additive == 0).reshape(1, *additive.shape)
    if form == "F16":  # transformers fills with the dtype's lowest value, not -inf
        return np.where(additive == 0, 0, np.finfo(np.float16).min).astype(np.float16).reshape(1, 1, *additive.shape)
    if form == "BF16":
        return RawTensor("BF16", stage_server.bf16_bits(np.where(additive == 0, 0, -3.3895314e38).astype(np.float32))
                         .reshape(1, 1, *additive.shape))
    raise ValueError(form)


@pytest.fixture(scope="module", params=BACKENDS)
def stages(request, checkpoint):
    """Stage 1 (layers 1:2), stage 2 (2:4, final norm + head) and a spare stage 1, Python all three."""
    servers = [stage_server.StageServer(checkpoint, 1, 3, backend=request.param).start(),
               stage_server.StageServer(checkpoint, 2, 3, serializer="msgpack", backend=request.param).start(),
               stage_server.StageServer(checkpoint, 1, 3, backend=request.param).start()]
    yield servers
    for server in servers:
        server.close()


def expected_logits(reference, sequence):
    return reference.forward(sequence)[-1]


def test_a_python_pipeline_computes_the_reference_model_and_migrates_without_recomputing(stages, reference):
    first, last, spare = stages
    assert first.layers.name.split()[0] in ("numpy", "torch")
    heads = [Head(reference, first.address, "gen-%d" % i, route=last.address) for i in range(2)]
    sequences = [list(PROMPT), list(PROMPT[::-1])]
    worst = 0.0
    try:
        answers = [head.step(seq) for head, seq in zip(heads, sequences)]
        for step in range(12):
            if step == 6:  # generation 0's stage-1 cache moves to the spare; the head routes there from now on
                with NetworkConnection(*stage_server.parse_address(first.address)) as control:
                    moved = control.request(Message(stage_server.MIGRATE, meta={
                        "session": "gen-0", "target": spare.address, "chunk_positions": "5"}))
                assert moved.meta["positions"] == str(len(sequences[0]))
                assert int(moved.meta["messages"]) == -(-len(sequences[0]) // 5)
                assert first.cached_positions("gen-0") == -1
                assert spare.cached_positions("gen-0") == len(sequences[0])
                heads[0].reroute(spare.address)
            for i, (head, seq, answer) in enumerate(zip(heads, sequences, answers)):
                assert answer.type == "logits", answer
                logits = np.asarray(answer.data).reshape(-1)
                want = expected_logits(reference, seq)
                worst = max(worst, float(np.max(np.abs(logits - want))))
                np.testing.assert_allclose(logits, want, atol=1e-4, rtol=0)
                token = int(answer.meta["token"])
                assert token == int(np.argmax(want))
                assert int(answer.meta["stage1.compute_ns"]) > 0 and int(answer.meta["stage2.downstream_ns"]) == 0
                assert answer.meta["stage1.bytes"].startswith("KV_index=")
                seq.append(token)
            answers = [head.step([seq[-1]]) for head, seq in zip(heads, sequences)]
        assert len(set(sequences[0][len(PROMPT):])) > 3, "a degenerate sequence proves little"
        # end_session frees the caches along the route
        ended = heads[0].connection.request(Message(stage_server.END_SESSION, meta={
            "session": "gen-0", "route": last.address}))
        assert ended.meta["ended"] == "2"
        assert spare.cached_positions("gen-0") == -1 and last.cached_positions("gen-0") == -1
        assert first.cached_positions("gen-1") == len(sequences[1])
    finally:
        for head in heads:
            head.close()
    print("max |logits - llama_ref| = %.2e" % worst)


@pytest.mark.parametrize("form", ["F32-2d", "BOOL", "F16", "BF16"])
def test_every_mask_form_gives_the_logits_of_the_f32_mask(stages, reference, form):
    first, last, _ = stages
    results = []
    for mask_form in ("F32", form):
        head = Head(reference, first.address, "mask-" + form + mask_form, route=last.address)
        try:
            head.step(PROMPT, mask_form)
            results.append(np.asarray(head.step([5], mask_form).data))
        finally:
            head.close()
    np.testing.assert_array_equal(results[0], results[1])


def test_a_last_stage_samples_with_javas_generator(stages, reference):
    first, last, _ = stages
    # java.util.SplittableRandom(seed * 0x9E3779B97F4A7C15L + position).nextDouble(), printed by the JDK
    for seed, position, java in [(0, 1, 0.5665615751722809), (42, 9, 0.4170638885251906),
                                 (-7, 500, 0.12828554480883347), (2 ** 63 - 1, 9, 0.07853595976862582)]:
        assert stage_server.SplittableRandom(seed * 0x9E3779B97F4A7C15 + position).next_double() == java
    head = Head(reference, first.address, "seeded", route=last.address, sampling="seeded:3:0.9:8")
    try:
        answer = head.step(PROMPT)
        logits = np.asarray(answer.data).reshape(-1)
        top8 = set(np.argsort(-logits)[:8].tolist())
        assert int(answer.meta["token"]) in top8
        assert int(answer.meta["token"]) == stage_server.Sampling("seeded:3:0.9:8").sample(logits, len(PROMPT))
    finally:
        head.close()


# ---------------------------------------------------------------------------------------- malformed input

def _m(type_, data=None, **meta):
    meta.setdefault("session", "bad")
    return Message(type_, data, meta=meta)


def _kv_index(p=0, **meta):
    return _m(MessageType.KV_index, np.array(p, np.int64), **meta)


def _cis(rows=1, **meta):
    angles = np.outer(np.arange(rows), 10000.0 ** (-np.arange(8) / 8.0))
    return _m(MessageType.CIS, np.exp(1j * angles).astype(np.complex64), **meta)


def _mask(rows=1, columns=1, **meta):
    return _m(MessageType.mask, np.zeros((1, 1, rows, columns), np.float32), **meta)


def _hidden(tokens=1, width=64, **meta):
    for key, value in (("stage", "1"), ("split", SPLIT), ("route", "127.0.0.1:9")):
        meta.setdefault(key, value)
    return _m(MessageType.hidden_state, np.zeros((1, tokens, width), np.float32), **meta)


def _kv_cache(layers="1:2", positions=2, dtype=np.float32, names=None, **meta):
    meta.setdefault("layers", layers)
    names = names or ["layer1.k", "layer1.v"]
    return _m(MessageType.KV_cache, {n: np.zeros((1, 2, positions, 16), dtype) for n in names}, **meta)


_nan_mask = np.zeros((1, 1, 1, 1), np.float32)
_nan_mask[0, 0, 0, 0] = np.nan

# (id, messages sent in order, expected code, words the detail must contain)
MALFORMED = [
    ("KV_index F32", [_m(MessageType.KV_index, np.array(0.0, np.float32))], "BAD_DTYPE", ["KV_index", "F32"]),
    ("KV_index shape [2]", [_m(MessageType.KV_index, np.array([0, 1], np.int64))], "BAD_SHAPE", ["[2]"]),
    ("KV_index negative", [_kv_index(-1)], "BAD_SHAPE", ["-1", "negative"]),
    ("KV_index beyond the cache", [_kv_index(99, session="live")], "POSITION_BEYOND_CACHE", ["99", "live"]),
    ("KV_index unknown session", [_kv_index(3, session="nobody")], "UNKNOWN_SESSION", ["nobody"]),
    ("KV_index without session", [Message(MessageType.KV_index, np.array(0, np.int64))], "BAD_META", ["session"]),
    ("KV_index two tensors", [_m(MessageType.KV_index, {"data": np.array(0), "x": np.array(1)})], "MISSING_PART",
     ["data", "x"]),
    ("CIS before KV_index", [_cis(session="live")], "MISSING_PART", ["before its KV_index"]),
    ("CIS unknown session", [_cis(session="nobody")], "UNKNOWN_SESSION", ["nobody"]),
    ("CIS F32", [_kv_index(), _m(MessageType.CIS, np.zeros((1, 8), np.float32))], "BAD_DTYPE", ["C64", "F32"]),
    ("CIS shape", [_kv_index(), _m(MessageType.CIS, np.zeros((1, 7), np.complex64))], "BAD_SHAPE",
     ["head_dim/2 = 8", "[1, 7]"]),
    ("CIS beyond capacity", [_kv_index(), _cis(129)], "POSITION_BEYOND_CACHE", ["capacity of 128"]),
    ("mask I32", [_kv_index(), _cis(), _m(MessageType.mask, np.zeros((1, 1), np.int32))], "BAD_DTYPE", ["I32"]),
    ("mask columns", [_kv_index(), _cis(), _mask(1, 3)], "BAD_SHAPE", ["columns", "0 + 1"]),
    ("mask rank", [_kv_index(), _cis(), _m(MessageType.mask, np.zeros((2, 1, 1, 1), np.float32))], "BAD_SHAPE",
     ["[2, 1, 1, 1]"]),
    ("mask hides a row", [_kv_index(), _cis(), _m(MessageType.mask, np.full((1, 1), -np.inf, np.float32))],
     "BAD_MASK", ["row 0 hides every key"]),
    ("mask NaN", [_kv_index(), _cis(), _m(MessageType.mask, _nan_mask)], "BAD_MASK", ["NaN"]),
    ("mask F16 lowest hides", [_kv_index(), _cis(), _m(MessageType.mask, np.full((1, 1), -65504, np.float16))],
     "BAD_MASK", ["hides every key"]),
    ("hidden_state I64", [_kv_index(), _cis(), _mask(), _m(MessageType.hidden_state, np.zeros((1, 1, 64), np.int64))],
     "BAD_DTYPE", ["I64"]),
    ("hidden_state width", [_kv_index(), _cis(), _mask(), _hidden(width=63)], "BAD_SHAPE",
     ["hidden_size = 64", "[1, 1, 63]"]),
    ("hidden_state tokens", [_kv_index(), _cis(), _mask(), _hidden(tokens=2)], "BAD_SHAPE", ["2 tokens", "1 rows"]),
    ("hidden_state without mask", [_kv_index(), _cis(), _hidden()], "MISSING_PART", ["without its mask"]),
    ("hidden_state without CIS", [_kv_index(), _mask(), _hidden()], "MISSING_PART", ["without its CIS"]),
    ("hidden_state wrong split", [_kv_index(), _cis(), _mask(), _hidden(split="0:2,2:3,3:4")], "WRONG_LAYERS",
     ["2:3", "1:2"]),
    ("hidden_state no stage", [_kv_index(), _cis(), _mask(), _hidden(stage="x")], "BAD_META", ["'stage'", "'x'"]),
    ("hidden_state as last", [_kv_index(), _cis(), _mask(), _hidden(split="0:1,1:2", route="")], "BAD_META",
     ["is not the last"]),
    ("hidden_state bad route", [_kv_index(), _cis(), _mask(), _hidden(route="nowhere")], "BAD_META",
     ["'nowhere' is not host:port"]),
    ("hidden_state unreachable", [_kv_index(), _cis(), _mask(), _hidden(route="127.0.0.1:1")], "DOWNSTREAM_FAILED",
     ["127.0.0.1:1"]),
    ("KV_cache wrong layers", [_kv_cache(layers="2:4")], "WRONG_LAYERS", ["2:4", "1:2"]),
    ("KV_cache missing tensor", [_kv_cache(names=["layer1.k"])], "MISSING_PART", ["layer1.v"]),
    ("KV_cache extra tensor", [_kv_cache(names=["layer1.k", "layer1.v", "layer9.k"])], "MISSING_PART", ["layer9.k"]),
    ("KV_cache I32", [_kv_cache(dtype=np.int32)], "BAD_DTYPE", ["I32"]),
    ("KV_cache shape", [_m(MessageType.KV_cache, {"layer1.k": np.zeros((1, 2, 2, 16), np.float32),
                                                  "layer1.v": np.zeros((1, 2, 3, 16), np.float32)}, layers="1:2")],
     "BAD_SHAPE", ["layer1.v", "positions = 2"]),
    ("KV_cache start unknown session", [_kv_cache(start="2", session="nobody")], "UNKNOWN_SESSION", ["nobody"]),
    ("KV_cache start beyond", [_kv_cache(start="99", session="live")], "POSITION_BEYOND_CACHE", ["99"]),
    ("KV_cache beyond capacity", [_kv_cache(positions=129)], "POSITION_BEYOND_CACHE", ["capacity of 128"]),
    ("KV_cache no layers", [_m(MessageType.KV_cache, {})], "BAD_META", ["layers"]),
    ("migrate unknown session", [_m(stage_server.MIGRATE, target="127.0.0.1:9", session="nobody")],
     "UNKNOWN_SESSION", ["nobody"]),
    ("migrate no target", [_m(stage_server.MIGRATE, session="live")], "BAD_META", ["target"]),
    ("migrate unreachable", [_m(stage_server.MIGRATE, target="127.0.0.1:1", session="live")], "DOWNSTREAM_FAILED",
     ["127.0.0.1:1"]),
    ("unexpected type", [_m("logits")], "UNEXPECTED_TYPE", ["logits"]),
]


@pytest.fixture(scope="module")
def live(stages, reference):
    """A generation in progress on the stages, on its own connection, to check after each refusal."""
    first, last, _ = stages
    head = Head(reference, first.address, "live", route=last.address)
    sequence = list(PROMPT)
    sequence.append(int(head.step(sequence).meta["token"]))
    yield head, sequence
    head.close()


@pytest.mark.parametrize("messages, code, words", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_message_is_answered_with_its_code_and_the_other_sessions_go_on(stages, reference, live,
                                                                                    messages, code, words):
    first, last, _ = stages
    head, sequence = live
    before = first.cached_positions("live")
    # a raw socket, to see exactly what the stage sends back: one error frame, then the end of the stream
    with socket.create_connection(stage_server.parse_address(first.address), timeout=10) as sock:
        for message in messages:  # the last one is the malformed one
            sock.sendall(message.to_raw_message("msgpack"))
        received = read_to_end(sock)
    refusal = Message.from_raw_message(received)  # one whole frame: anything after it would be TRAILING_BYTES
    assert refusal.type == "error", refusal
    assert refusal.meta["code"] == code, refusal.meta
    for word in words:
        assert word in refusal.meta["detail"], refusal.meta["detail"]
    assert first.cached_positions("live") == before  # ... and the session's cache is as it was
    answer = head.step([sequence[-1]])  # ... which goes on, on its own connection
    want = expected_logits(reference, sequence)
    np.testing.assert_allclose(np.asarray(answer.data).reshape(-1), want, atol=1e-4, rtol=0)
    sequence.append(int(answer.meta["token"]))


def test_an_error_of_the_next_stage_is_relayed_with_its_place(stages, reference):
    first, last, _ = stages
    head = Head(reference, first.address, "relay", route=last.address)
    try:
        messages = head.step_messages(PROMPT)
        messages[3].meta["split"] = "0:1,1:2,2:3"  # right for stage 1, wrong for stage 2
        for message in messages:
            head.connection.send_data(message)
        with pytest.raises(RemoteError) as refused:
            head.connection.receive_data(timeout=10)
        assert refused.value.code == "WRONG_LAYERS"
        assert ("stage 2 at %s: peer reported WRONG_LAYERS" % last.address) in refused.value.detail
    finally:
        head.close()
