#!/usr/bin/env python3
"""A pipeline stage server in Python: the stage protocol of docs/INFERENCE.md, served with the netutils
Python package, computing its layers with PyTorch when it is importable and with numpy otherwise.

It is a drop-in peer for Java's StageServer: the head (Java's PipelineSession) and the other stages cannot
tell the difference except by the timings. It loads the same checkpoint (config.json + model.safetensors,
LLaMA key names, F32/BF16/F16) with llama_ref's reader, keeps a KV cache per session, runs a middle stage
(forwards the step to the next stage of the route and relays the answer with its timings) or the last one
(final norm, output head, greedy or seeded sampling as Java draws it), takes a session's cache (KV_cache),
hands one over to another server, Java or Python (migrate), ends sessions, and answers malformed input with
an ``error`` message of the same codes as Java, then closes that connection; other connections and every
session's cache are untouched (a step is checked whole before it changes a cache).

usage: stage_server.py --checkpoint DIR --stage I/N [--host 127.0.0.1] [--port 0]
                       [--serializer json|msgpack] [--backend auto|torch|numpy] [--threads 1]
  prints "python stage I/N (layers a:b[, final norm + head], BACKEND) listening on HOST:PORT" once it serves;
  run with the netutils package on the path (PYTHONPATH=python from the repository root).

Arithmetic is float32 like Java's, in another summation order: hidden states and logits agree with Java's
within a tolerance, not bit for bit (docs/INFERENCE.md, "Exactness").
"""
import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
try:
    import netutils  # noqa: F401
except ImportError:  # run from a checkout without PYTHONPATH: the package is in the repository's python/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(_HERE)), "python"))

import llama_ref  # noqa: E402  (beside this file)
from netutils import Message, MessageType, NetworkConnection, create_server  # noqa: E402
from netutils import dtypes, frames  # noqa: E402
from netutils.errors import ConnectionClosedError, NetutilsError, RemoteError  # noqa: E402

_log = logging.getLogger("netutils.stage")

# the protocol's names (Java: netutils.inference.StageProtocol)
LOGITS = MessageType("logits")
TOKEN = MessageType("token")
MIGRATE = MessageType("migrate")
END_SESSION = MessageType("end_session")

BAD_DTYPE = "BAD_DTYPE"
BAD_SHAPE = "BAD_SHAPE"
POSITION_BEYOND_CACHE = "POSITION_BEYOND_CACHE"
UNKNOWN_SESSION = "UNKNOWN_SESSION"
MISSING_PART = "MISSING_PART"
BAD_META = "BAD_META"
WRONG_LAYERS = "WRONG_LAYERS"
BAD_MASK = "BAD_MASK"
DOWNSTREAM_FAILED = "DOWNSTREAM_FAILED"
UNEXPECTED_TYPE = "UNEXPECTED_TYPE"

#: a migration sends at most this many tensor bytes per KV_cache message unless told otherwise (as Java)
CHUNK_BYTES = 64 << 20

#: an additive mask value at or below this hides its key (Java: AttentionMask.hides)
_LOWEST = {"F32": -np.finfo(np.float32).max, "F16": np.float32(-65504.0), "BF16": np.float32(-3.3895314e38)}


class StageError(Exception):
    """Bad input: answered with an ``error`` message of this code and detail."""

    def __init__(self, code, detail):
        super().__init__(detail)
        self.code = code
        self.detail = detail


def shape_text(shape):
    """A shape as Java's Arrays.toString writes it, so both servers' messages read alike."""
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def as_float32(value, dtype):
    """A received F32, F16 or BF16 tensor (numpy array or RawTensor) as a float32 numpy array."""
    if dtype == "BF16":
        return value.to_float32() if hasattr(value, "to_float32") else \
            (np.asarray(value.bits).astype(np.uint32) << 16).view(np.float32)
    return np.asarray(value, dtype=np.float32)


def bf16_bits(values):
    """float32 values rounded to nearest-even bfloat16, as uint16 bit patterns (Java's Tensor.ofBFloat16)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = ((bits + (0x7FFF + ((bits >> 16) & 1))) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    if nan.any():
        rounded[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded


def wire_tensor(dtype, values):
    """float32 ``values`` as a tensor of the hidden state's wire dtype."""
    if dtype == "F32":
        return np.ascontiguousarray(values, dtype=np.float32)
    if dtype == "F16":
        return values.astype(np.float16)
    return dtypes.RawTensor("BF16", bf16_bits(values))


class SplittableRandom:
    """java.util.SplittableRandom(seed): nextDouble() as the JDK computes it, for seeded sampling."""
    _MASK = (1 << 64) - 1
    _GOLDEN_GAMMA = 0x9E3779B97F4A7C15

    def __init__(self, seed):
        self.seed = seed & self._MASK

    def next_long(self):
        self.seed = (self.seed + self._GOLDEN_GAMMA) & self._MASK
        z = self.seed
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self._MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self._MASK
        return z ^ (z >> 31)

    def next_double(self):
        return (self.next_long() >> 11) * (1.0 / (1 << 53))


class Sampling:
    """``greedy`` or ``seeded:SEED[:TEMPERATURE[:TOP_K]]`` (Java's netutils.inference.Sampling)."""

    def __init__(self, text):
        self.seeded = False
        if text == "greedy":
            return
        parts = text.split(":")
        if parts[0] == "seeded" and 2 <= len(parts) <= 4:
            try:
                self.seed = int(parts[1])
                self.temperature = float(np.float32(parts[2])) if len(parts) > 2 else float(np.float32(0.8))
                self.top_k = int(parts[3]) if len(parts) > 3 else 40
            except ValueError:
                raise ValueError("sampling '%s' has a number that does not parse" % text) from None
            if not -(1 << 63) <= self.seed < (1 << 63):
                raise ValueError("sampling '%s' has a number that does not parse" % text)
            if not self.temperature > 0 or self.top_k <= 0:
                raise ValueError("seeded sampling needs a positive temperature and top_k, got %s, %d"
                                 % (parts[2] if len(parts) > 2 else "0.8", self.top_k))
            self.seeded = True
            return
        raise ValueError("sampling must be greedy or seeded:SEED[:TEMPERATURE[:TOP_K]], not '%s'" % text)

    def sample(self, logits, position):
        """The token to emit at ``position`` from float32 ``logits``, drawn as Java draws it."""
        if not self.seeded:
            return int(np.argmax(logits))  # the first of equal maxima, as Java's loop
        k = min(self.top_k, len(logits))
        order = sorted(range(len(logits)), key=lambda i: (-logits[i], i))[:k]
        top = logits[order[0]]
        weights = [math.exp(float(np.float32(logits[i] - top)) / self.temperature) for i in order]
        draw = SplittableRandom(self.seed * 0x9E3779B97F4A7C15 + position).next_double() * sum(weights)
        for i, w in zip(order, weights):
            draw -= w
            if draw < 0:
                return i
        return order[-1]


# ------------------------------------------------------------------------------------------ arithmetic

class NumpyLayers:
    """The slice's layers with numpy, through llama_ref's forward pass. Caches are numpy arrays."""
    name = "numpy " + np.__version__

    def __init__(self, model):
        self.model = model

    def forward(self, hidden, position, cis, mask, cache, first, end):
        return self.model.forward_layers(hidden, position, cis, mask, cache, first, end)

    def logits(self, last_row):
        return self.model.logits(last_row[None, :])[0].astype(np.float32)

    def to_numpy(self, array):
        return np.asarray(array, dtype=np.float32)

    def from_numpy(self, array):
        return np.ascontiguousarray(array, dtype=np.float32)

    def empty(self):
        return np.zeros((self.model.kv_heads, 0, self.model.head_dim), np.float32)

    def cat(self, old, new):
        return np.concatenate([old, new], axis=1)


class TorchLayers:
    """The slice's layers with PyTorch (CPU, float32), the same computation as llama_ref's. Caches are torch
    tensors [kv_heads, positions, head_dim]."""

    def __init__(self, model, torch):
        self.torch = torch
        self.model = model
        self.name = "torch " + torch.__version__
        self.w = {}
        for name, value in model.w.items():
            # a writable copy (weights read from the file are read-only views), shared with the numpy model
            self.w[name] = torch.from_numpy(np.array(value, dtype=np.float32))
            model.w[name] = self.w[name].numpy()
        self.eps = float(model.eps)

    def _rms_norm(self, x, weight):
        scale = self.torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + self.eps)
        return weight * (x * scale)

    def _rope(self, x, cos, sin):
        half = x.shape[-1] // 2
        re, im = x[..., :half], x[..., half:]
        return self.torch.cat([re * cos - im * sin, re * sin + im * cos], dim=-1)

    def forward(self, hidden, position, cis, mask, cache, first, end):
        torch, m = self.torch, self.model
        with torch.inference_mode():
            h = torch.from_numpy(np.array(hidden, dtype=np.float32))  # a copy: received memory may be read-only
            t = h.shape[0]
            cos = torch.from_numpy(np.ascontiguousarray(cis.real, dtype=np.float32))[:, None, :]
            sin = torch.from_numpy(np.ascontiguousarray(cis.imag, dtype=np.float32))[:, None, :]
            additive = torch.from_numpy(mask)
            group = m.heads // m.kv_heads
            scale = 1.0 / math.sqrt(m.head_dim)
            for layer in range(first, end):
                p = "model.layers.%d." % layer
                w = self.w
                x = self._rms_norm(h, w[p + "input_layernorm.weight"])
                q = (x @ w[p + "self_attn.q_proj.weight"].T).view(t, m.heads, m.head_dim)
                k = (x @ w[p + "self_attn.k_proj.weight"].T).view(t, m.kv_heads, m.head_dim)
                v = (x @ w[p + "self_attn.v_proj.weight"].T).view(t, m.kv_heads, m.head_dim)
                q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
                old_k, old_v = cache.get(layer, (self.empty(), self.empty()))
                keys = torch.cat([old_k[:, :position], k.transpose(0, 1)], dim=1)
                values = torch.cat([old_v[:, :position], v.transpose(0, 1)], dim=1)
                cache[layer] = (keys, values)
                keys = keys.repeat_interleave(group, dim=0)  # [heads, len, head_dim]
                values = values.repeat_interleave(group, dim=0)
                scores = torch.einsum("thd,hsd->hts", q, keys) * scale + additive
                scores = torch.softmax(scores, dim=-1)
                attended = torch.einsum("hts,hsd->thd", scores, values).reshape(t, m.heads * m.head_dim)
                h = h + attended @ w[p + "self_attn.o_proj.weight"].T
                x = self._rms_norm(h, w[p + "post_attention_layernorm.weight"])
                gate = x @ w[p + "mlp.gate_proj.weight"].T
                up = x @ w[p + "mlp.up_proj.weight"].T
                h = h + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
            return h.numpy()

    def logits(self, last_row):
        torch = self.torch
        with torch.inference_mode():
            x = self._rms_norm(torch.from_numpy(np.ascontiguousarray(last_row)), self.w["model.norm.weight"])
            return (self.w["lm_head.weight"] @ x).numpy()

    def to_numpy(self, array):
        return array.numpy()

    def from_numpy(self, array):
        return self.torch.from_numpy(np.array(array, dtype=np.float32))

    def empty(self):
        return self.torch.zeros((self.model.kv_heads, 0, self.model.head_dim), dtype=self.torch.float32)

    def cat(self, old, new):
        return self.torch.cat([old, new], dim=1)


def load_slice(checkpoint, stage, stages, backend="auto"):
    """(model, layers object, first, end, last) for stage ``stage`` of ``stages`` processes of the checkpoint."""
    with open(os.path.join(checkpoint, "config.json")) as f:
        layers = json.load(f)["num_hidden_layers"]
    if not 2 <= stages <= layers:
        raise ValueError("a model of %d layers splits into 2 to %d stages, not %d" % (layers, layers, stages))
    if not 1 <= stage < stages:
        raise ValueError("stage %d is not in 1..%d (stage 0 is the head)" % (stage, stages - 1))
    first, end = stage * layers // stages, (stage + 1) * layers // stages
    last = stage == stages - 1

    def keep(name):
        if name.startswith("model.layers."):
            return first <= int(name.split(".")[2]) < end
        return last and name in ("model.norm.weight", "lm_head.weight", "model.embed_tokens.weight")

    model = llama_ref.Model(checkpoint, keep)
    if last and "model.embed_tokens.weight" in model.w and "lm_head.weight" in model.w \
            and model.w["lm_head.weight"] is not model.w["model.embed_tokens.weight"]:
        del model.w["model.embed_tokens.weight"]  # loaded only in case the head is tied to it
    if backend in ("auto", "torch"):
        try:
            import torch
            return model, TorchLayers(model, torch), first, end, last
        except ImportError:
            if backend == "torch":
                raise
    return model, NumpyLayers(model), first, end, last


# ------------------------------------------------------------------------------------------ serving

class _Session:
    def __init__(self):
        self.lock = threading.Lock()
        self.cache = {}  # layer -> (keys, values), each [kv_heads, positions, head_dim] of the backend
        self.length = 0


class _Parts:
    """The parts of a step received so far on one connection."""

    def __init__(self, position):
        self.position = position
        self.cis_tensor = None
        self.cis = None
        self.mask_tensor = None
        self.mask = None
        self.mask_shape = None


class StageServer:
    """Serves one slice of the model to any number of sessions; ``start()`` binds and serves in the
    background, ``close()`` stops."""

    def __init__(self, checkpoint, stage, stages, host="127.0.0.1", port=0, serializer="json", backend="auto"):
        self.model, self.layers, self.first, self.end, self.last = load_slice(checkpoint, stage, stages, backend)
        self.stage, self.stages = stage, stages
        self.range = "%d:%d" % (self.first, self.end)
        self.serializer = serializer
        self.sessions = {}
        self._sessions_lock = threading.Lock()
        self.server = create_server(host, port, tensors="numpy")
        self.host, self.port = self.server.host, self.server.port

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def start(self):
        self.server.serve(self._serve)
        return self

    def close(self):
        self.server.close()

    def cached_positions(self, session):
        s = self.sessions.get(session)
        return -1 if s is None else s.length

    def banner(self):
        return "python stage %d/%d (layers %s%s, %s) listening on %s" % (
            self.stage, self.stages, self.range, ", final norm + head" if self.last else "", self.layers.name,
            self.address)

    def _serve(self, upstream):
        pending, downstream = {}, {}
        try:
            while True:
                try:
                    request = upstream.receive_data()
                except ConnectionClosedError:
                    return
                try:
                    reply = self._handle(request, pending, downstream)
                except StageError as e:
                    _log.info("stage %s refused %s from %s: %s %s", self.range, request.type, upstream.peer, e.code,
                              e.detail)
                    upstream.send_data(Message(MessageType.error, meta={"code": e.code, "detail": e.detail}))
                    return
                except Exception as e:  # a bug here, not bad input: say so, as Java's HANDLER_FAILED
                    _log.exception("stage %s failed on %r", self.range, request)
                    upstream.send_data(Message(MessageType.error, meta={
                        "code": "HANDLER_FAILED", "detail": "%s: %s" % (type(e).__name__, e)}))
                    return
                if reply is not None:
                    reply.reply_to = request.id
                    upstream.send_data(reply)
        finally:
            for connection in downstream.values():
                connection.close()

    def _handle(self, m, pending, downstream):
        if m.type == MessageType.KV_index:
            self._on_kv_index(m, pending)
        elif m.type == MessageType.CIS:
            self._on_cis(m, pending)
        elif m.type == MessageType.mask:
            self._on_mask(m, pending)
        elif m.type == MessageType.hidden_state:
            return self._on_hidden_state(m, pending, downstream)
        elif m.type == MessageType.KV_cache:
            return self._on_kv_cache(m)
        elif m.type == MIGRATE:
            return self._on_migrate(m)
        elif m.type == END_SESSION:
            return self._on_end_session(m, downstream)
        else:
            raise StageError(UNEXPECTED_TYPE, "a pipeline stage takes KV_index, CIS, mask, hidden_state, KV_cache, "
                             "migrate and end_session, not %s" % m.type)
        return None

    # ------------------------------------------------------------ a step's parts

    @staticmethod
    def _session(m):
        session = m.meta.get("session", "")
        if not 1 <= len(session) <= 256:
            raise StageError(BAD_META, "%s needs a 'session' of 1 to 256 characters in its metadata" % m.type)
        return session

    @staticmethod
    def _single(m):
        """(value, dtype, shape) of the message's one tensor, 'data'."""
        if len(m.tensors) != 1 or "data" not in m.tensors:
            raise StageError(MISSING_PART, "%s carries one tensor named 'data', this one has [%s]"
                             % (m.type, ", ".join(m.tensors)))
        return dtypes.normalize(m.tensors["data"])

    def _on_kv_index(self, m, pending):
        session = self._session(m)
        value, dtype, shape = self._single(m)
        if dtype not in ("I64", "I32"):
            raise StageError(BAD_DTYPE, "KV_index is an I64 (or I32) scalar, got %s" % dtype)
        if len(shape) > 1 or int(np.prod(shape)) != 1:
            raise StageError(BAD_SHAPE, "KV_index is a scalar (shape [] or [1]), got %s" % shape_text(shape))
        position = int(np.asarray(value).reshape(-1)[0])
        s = self.sessions.get(session)
        if position < 0:
            raise StageError(BAD_SHAPE, "KV_index %d is negative" % position)
        if position > 0 and s is None:
            raise StageError(UNKNOWN_SESSION, "session '%s' is not on this stage (layers %s); a session starts with "
                             "KV_index 0 or a KV_cache" % (session, self.range))
        cached = 0 if s is None else s.length
        if position > cached:
            raise StageError(POSITION_BEYOND_CACHE, "KV_index %d is beyond the %d positions cached for session '%s'"
                             % (position, cached, session))
        pending[session] = _Parts(position)

    def _opened(self, m, session, pending):
        parts = pending.get(session)
        if parts is None:
            if session not in self.sessions:
                raise StageError(UNKNOWN_SESSION, "%s for session '%s', which is not on this stage (layers %s); a step "
                                 "starts with KV_index" % (m.type, session, self.range))
            raise StageError(MISSING_PART, "%s for session '%s' before its KV_index; a step is KV_index, CIS, mask, "
                             "hidden_state" % (m.type, session))
        return parts

    def _on_cis(self, m, pending):
        session = self._session(m)
        value, dtype, shape = self._single(m)
        parts = self._opened(m, session, pending)
        if dtype != "C64":
            raise StageError(BAD_DTYPE, "CIS is C64 (complex64 freqs_cis), got %s" % dtype)
        half = self.model.head_dim // 2
        if len(shape) != 2 or shape[1] != half or shape[0] < 1:
            raise StageError(BAD_SHAPE, "CIS is [tokens, head_dim/2 = %d], got %s" % (half, shape_text(shape)))
        if parts.position + shape[0] > self.model.max_positions:
            raise StageError(POSITION_BEYOND_CACHE, "CIS rows for positions %d..%d are beyond the cache's capacity of %d"
                             % (parts.position, parts.position + shape[0] - 1, self.model.max_positions))
        parts.cis_tensor = value
        parts.cis = np.asarray(value)

    def _on_mask(self, m, pending):
        session = self._session(m)
        value, dtype, shape = self._single(m)
        parts = self._opened(m, session, pending)
        if dtype not in ("BOOL", "F32", "F16", "BF16"):
            raise StageError(BAD_DTYPE, "mask is BOOL or an additive F32, F16 or BF16 mask, got %s" % dtype)
        if not 2 <= len(shape) <= 4 or any(d != 1 for d in shape[:-2]):
            raise StageError(BAD_SHAPE, "mask shape %s is not [rows, columns], [1, rows, columns] or "
                             "[1, 1, rows, columns]" % shape_text(shape))
        rows, columns = int(shape[-2]), int(shape[-1])
        if columns != parts.position + rows:
            raise StageError(BAD_SHAPE, "mask %s must have KV_index + tokens = %d + %d columns"
                             % (shape_text(shape), parts.position, rows))
        if columns > self.model.max_positions:
            raise StageError(POSITION_BEYOND_CACHE, "mask %s reaches position %d, beyond the cache's capacity of %d"
                             % (shape_text(shape), columns - 1, self.model.max_positions))
        if dtype == "BOOL":
            additive = np.where(np.asarray(value).reshape(rows, columns), np.float32(0), np.float32(-np.inf))
        else:
            additive = as_float32(value, dtype).reshape(rows, columns).copy()
            nan = np.isnan(additive)
            if nan.any():
                raise StageError(BAD_MASK, "mask value %d is NaN" % int(np.flatnonzero(nan)[0]))
            additive[additive <= _LOWEST[dtype]] = -np.inf
        hidden_rows = np.flatnonzero(np.all(additive == -np.inf, axis=1))
        if hidden_rows.size:
            raise StageError(BAD_MASK, "mask row %d hides every key" % int(hidden_rows[0]))
        parts.mask_tensor = value
        parts.mask = additive.astype(np.float32)
        parts.mask_shape = (rows, columns)

    # ------------------------------------------------------------ the step

    def _int_meta(self, m, key):
        if key not in m.meta:
            raise StageError(BAD_META, "%s needs '%s' in its metadata" % (m.type, key))
        text = m.meta[key]
        try:
            value = int(text)
        except ValueError:
            raise StageError(BAD_META, "'%s' must be an integer, got '%s'" % (key, text)) from None
        if not -(1 << 31) <= value < (1 << 31):
            raise StageError(BAD_META, "'%s' must be an integer, got '%s'" % (key, text))
        return value

    def _on_hidden_state(self, m, pending, downstream):
        session = self._session(m)
        value, dtype, shape = self._single(m)
        parts = self._opened(m, session, pending)
        if dtype not in ("F32", "BF16", "F16"):
            raise StageError(BAD_DTYPE, "hidden_state is F32, BF16 or F16, got %s" % dtype)
        hidden_size = self.model.hidden
        if len(shape) != 3 or shape[0] != 1 or shape[1] < 1 or shape[2] != hidden_size:
            raise StageError(BAD_SHAPE, "hidden_state is [1, tokens, hidden_size = %d], got %s"
                             % (hidden_size, shape_text(shape)))
        tokens = int(shape[1])
        if parts.cis is None or parts.mask is None:
            raise StageError(MISSING_PART, "hidden_state for session '%s' arrived without its %s; a step is KV_index, "
                             "CIS, mask, hidden_state" % (session, "CIS" if parts.cis is None else "mask"))
        if parts.cis.shape[0] != tokens or parts.mask_shape[0] != tokens:
            raise StageError(BAD_SHAPE, "hidden_state has %d tokens, CIS %d rows and mask %d rows; they must agree"
                             % (tokens, parts.cis.shape[0], parts.mask_shape[0]))
        position = parts.position
        if position + tokens > self.model.max_positions:
            raise StageError(POSITION_BEYOND_CACHE, "positions %d..%d are beyond the cache's capacity of %d"
                             % (position, position + tokens - 1, self.model.max_positions))
        stage = self._int_meta(m, "stage")
        split = m.meta.get("split", "").split(",")
        if stage < 1 or stage >= len(split):
            raise StageError(BAD_META, "hidden_state's stage %d is not an index into its split [%s] (the head is 0)"
                             % (stage, ", ".join(split)))
        if split[stage] != self.range:
            raise StageError(WRONG_LAYERS, "stage %d of split %s should run layers %s, this server runs %s"
                             % (stage, ",".join(split), split[stage], self.range))
        route = m.meta.get("route", "")
        last = stage == len(split) - 1
        if last != self.last or last != (route == ""):
            raise StageError(BAD_META, "stage %d of %d with route '%s' does not fit this server, which %s the last"
                             % (stage, len(split) - 1, route, "is" if self.last else "is not"))
        return_logits, sampling = False, None
        if last:
            answer = m.meta.get("return", "token")
            if answer not in ("token", "logits"):
                raise StageError(BAD_META, "return is 'token' or 'logits', not '%s'" % answer)
            return_logits = answer == "logits"
            try:
                sampling = Sampling(m.meta.get("sampling", "greedy"))
            except ValueError as e:
                raise StageError(BAD_META, str(e)) from None
        hops = route.split(",", 1)
        if not last:
            parse_address(hops[0])  # refuse a route that does not parse before the cache changes
        with self._sessions_lock:
            s = self.sessions.get(session)
            if position > 0 and s is None:
                raise StageError(UNKNOWN_SESSION, "session '%s' ended while its step was arriving" % session)
            pending.pop(session, None)
            if s is None or position == 0:
                s = _Session()
                self.sessions[session] = s
        hidden = as_float32(value, dtype).reshape(tokens, hidden_size)
        with s.lock:
            if position > s.length:
                raise StageError(POSITION_BEYOND_CACHE, "KV_index %d is beyond the %d positions cached for session '%s'"
                                 % (position, s.length, session))
            start = time.perf_counter_ns()
            out = self.layers.forward(np.ascontiguousarray(hidden), position, parts.cis, parts.mask, s.cache,
                                      self.first, self.end)
            s.length = position + tokens
            if last:
                logits = np.ascontiguousarray(self.layers.logits(out[-1]), dtype=np.float32)
                token = sampling.sample(logits, position + tokens)
                compute = time.perf_counter_ns() - start
                meta = {"token": str(token), "session": session, "stage%d.compute_ns" % stage: str(compute),
                        "stage%d.downstream_ns" % stage: "0"}
                if return_logits:
                    return Message(LOGITS, logits.reshape(1, -1), meta=meta)
                return Message(TOKEN, np.array(token, dtype=np.int64), meta=meta)
            compute = time.perf_counter_ns() - start
            sent = time.perf_counter_ns()
            next_stage = self._downstream(downstream, hops[0])
            step = [
                Message(MessageType.KV_index, np.array(position, dtype=np.int64), meta={"session": session}),
                Message(MessageType.CIS, parts.cis_tensor, meta={"session": session}),
                Message(MessageType.mask, parts.mask_tensor, meta={"session": session}),
            ]
            meta = dict(m.meta)
            meta["stage"] = str(stage + 1)
            meta["route"] = hops[1] if len(hops) > 1 else ""
            step.append(Message(MessageType.hidden_state, wire_tensor(dtype, out.reshape(shape)), meta=meta))
            try:
                for part in step:
                    next_stage.send_data(part)
                answer = next_stage.receive_data()
            except RemoteError as e:
                self._close_downstream(downstream, hops[0])
                raise StageError(e.code, "stage %d at %s: %s" % (stage + 1, hops[0], e)) from None
            except (OSError, NetutilsError) as e:
                self._close_downstream(downstream, hops[0])
                raise StageError(DOWNSTREAM_FAILED, "stage %d at %s failed: %s" % (stage + 1, hops[0], e)) from None
            waited = time.perf_counter_ns() - sent
            if answer.type not in (LOGITS, TOKEN):
                raise StageError(DOWNSTREAM_FAILED, "stage %d at %s answered %s instead of logits or token"
                                 % (stage + 1, hops[0], answer.type))
            meta = dict(answer.meta)
            meta["stage%d.compute_ns" % stage] = str(compute)
            meta["stage%d.downstream_ns" % stage] = str(waited)
            meta["stage%d.bytes" % stage] = self._describe_bytes(step, answer)
            return Message(answer.type, answer.tensors, meta=meta)

    def _describe_bytes(self, step, answer):
        """``type=bytes,...`` of the frames of one step on the hop to the next stage, the answer last."""
        sizes = ["%s=%d" % (part.type, frames.encode(part, self.serializer).length) for part in step]
        sizes.append("answer=%d" % frames.encode(answer, self.serializer).length)
        return ",".join(sizes)

    def _downstream(self, downstream, host_port):
        existing = downstream.get(host_port)
        if existing is not None and existing.is_open:
            return existing
        host, port = parse_address(host_port)
        try:
            fresh = NetworkConnection(host, port, serializer=self.serializer, tensors="numpy").connect()
        except OSError as e:
            raise StageError(DOWNSTREAM_FAILED, "cannot reach the next stage at %s: %s" % (host_port, e)) from None
        downstream[host_port] = fresh
        return fresh

    @staticmethod
    def _close_downstream(downstream, host_port):
        connection = downstream.pop(host_port, None)
        if connection is not None:
            connection.close()

    # ------------------------------------------------------------ caches

    def _on_kv_cache(self, m):
        session = self._session(m)
        if "layers" not in m.meta:
            raise StageError(BAD_META, "KV_cache needs 'layers' (first:end) in its metadata")
        layers = m.meta["layers"]
        if layers != self.range:
            raise StageError(WRONG_LAYERS, "KV_cache holds layers %s, this server runs %s" % (layers, self.range))
        start = self._int_meta(m, "start") if "start" in m.meta else 0
        expected = {}
        for layer in range(self.first, self.end):
            for kv in ("k", "v"):
                name = "layer%d.%s" % (layer, kv)
                if name not in m.tensors:
                    raise StageError(MISSING_PART, "KV_cache for layers %s has no tensor '%s'; it has [%s]"
                                     % (layers, name, ", ".join(m.tensors)))
                expected[name] = m.tensors[name]
        for name in m.tensors:
            if name not in expected:
                raise StageError(MISSING_PART, "KV_cache tensor '%s' is not a k or v of layers %s" % (name, layers))
        count = -1
        kv_heads, head_dim = self.model.kv_heads, self.model.head_dim
        arrays = {}
        for name, tensor in expected.items():
            value, dtype, shape = dtypes.normalize(tensor)
            if dtype not in ("F32", "BF16", "F16"):
                raise StageError(BAD_DTYPE, "KV_cache tensor '%s' is %s; caches are F32 (exact), BF16 or F16"
                                 % (name, dtype))
            if len(shape) != 4 or shape[0] != 1 or shape[1] != kv_heads or shape[3] != head_dim \
                    or (count >= 0 and shape[2] != count):
                raise StageError(BAD_SHAPE, "KV_cache tensor '%s' is %s; each is [1, num_key_value_heads = %d, positions"
                                 "%s, head_dim = %d]" % (name, shape_text(shape), kv_heads,
                                                         " = %d" % count if count >= 0 else "", head_dim))
            count = int(shape[2])
            arrays[name] = as_float32(value, dtype).reshape(kv_heads, count, head_dim)
        if start < 0:
            raise StageError(BAD_META, "KV_cache start %d is negative" % start)
        with self._sessions_lock:
            existing = self.sessions.get(session)
        if start > 0 and existing is None:
            raise StageError(UNKNOWN_SESSION, "KV_cache from position %d for session '%s', which is not on this stage; "
                             "the first KV_cache of a session has start 0" % (start, session))
        held = 0 if existing is None else existing.length
        if start > held:
            raise StageError(POSITION_BEYOND_CACHE, "KV_cache starts at position %d, beyond the %d positions cached for "
                             "session '%s'" % (start, held, session))
        if start + count > self.model.max_positions:
            raise StageError(POSITION_BEYOND_CACHE, "KV_cache ends at position %d, beyond the cache's capacity of %d"
                             % (start + count, self.model.max_positions))
        s = _Session() if start == 0 else existing
        with s.lock:
            for layer in range(self.first, self.end):
                old_k, old_v = s.cache.get(layer, (self.layers.empty(), self.layers.empty()))
                s.cache[layer] = (self.layers.cat(old_k[:, :start], self.layers.from_numpy(arrays["layer%d.k" % layer])),
                                  self.layers.cat(old_v[:, :start], self.layers.from_numpy(arrays["layer%d.v" % layer])))
            s.length = start + count
            if start == 0:
                with self._sessions_lock:
                    self.sessions[session] = s
            return Message(MessageType.KV_cache, meta={"session": session, "positions": str(s.length)})

    def _on_migrate(self, m):
        session = self._session(m)
        if "target" not in m.meta:
            raise StageError(BAD_META, "migrate needs 'target' (host:port) in its metadata")
        target = m.meta["target"]
        host, port = parse_address(target)
        s = self.sessions.get(session)
        if s is None:
            raise StageError(UNKNOWN_SESSION, "cannot migrate session '%s': it is not on this stage" % session)
        row_bytes = 2 * (self.end - self.first) * self.model.kv_heads * self.model.head_dim * 4
        if "chunk_positions" in m.meta:
            chunk = self._int_meta(m, "chunk_positions")
        else:
            chunk = max(1, CHUNK_BYTES // max(1, row_bytes))
        if chunk < 1:
            raise StageError(BAD_META, "chunk_positions must be positive, got %d" % chunk)
        with s.lock:
            begin = time.perf_counter_ns()
            total, messages, length = 0, 0, s.length
            try:
                with NetworkConnection(host, port, serializer=self.serializer, tensors="numpy") as to:
                    start = 0
                    while True:
                        end = min(length, start + chunk)
                        tensors = {}
                        for layer in range(self.first, self.end):
                            keys, values = s.cache[layer]
                            tensors["layer%d.k" % layer] = np.ascontiguousarray(
                                self.layers.to_numpy(keys[:, start:end]))[None]
                            tensors["layer%d.v" % layer] = np.ascontiguousarray(
                                self.layers.to_numpy(values[:, start:end]))[None]
                        message = Message(MessageType.KV_cache, tensors, meta={
                            "session": session, "layers": self.range, "start": str(start)})
                        total += frames.encode(message, self.serializer).length
                        messages += 1
                        ack = to.request(message)
                        if ack.type != MessageType.KV_cache or ack.meta.get("positions") != str(end):
                            raise StageError(DOWNSTREAM_FAILED, "migration target %s answered %r to a KV_cache up to "
                                             "position %d" % (target, ack, end))
                        if end == length:
                            break
                        start = end
            except RemoteError as e:
                raise StageError(e.code, "migration target %s refused the cache: %s" % (target, e)) from None
            except (OSError, NetutilsError) as e:
                raise StageError(DOWNSTREAM_FAILED, "migration target %s failed: %s" % (target, e)) from None
            with self._sessions_lock:
                self.sessions.pop(session, None)
            return Message(MIGRATE, meta={"session": session, "target": target, "positions": str(length),
                                          "bytes": str(total), "messages": str(messages),
                                          "nanos": str(time.perf_counter_ns() - begin)})

    def _on_end_session(self, m, downstream):
        session = self._session(m)
        with self._sessions_lock:
            held = self.sessions.pop(session, None) is not None
        route = m.meta.get("route", "")
        ended = 1 if held else 0
        if route:
            hops = route.split(",", 1)
            next_stage = self._downstream(downstream, hops[0])
            try:
                answer = next_stage.request(Message(END_SESSION, meta={
                    "session": session, "route": hops[1] if len(hops) > 1 else ""}))
                ended += int(answer.meta.get("ended", "0"))
            except (OSError, NetutilsError, ValueError) as e:
                self._close_downstream(downstream, hops[0])
                raise StageError(DOWNSTREAM_FAILED, "ending session '%s' at %s: %s" % (session, hops[0], e)) from None
        return Message(END_SESSION, meta={"session": session, "ended": str(ended)})


def parse_address(host_port):
    """(host, port) of ``host:port``; BAD_META naming it otherwise."""
    host, colon, port = host_port.rpartition(":")
    try:
        if not colon or not host:
            raise ValueError()
        number = int(port)
        if not 1 <= number <= 65535:
            raise ValueError()
    except ValueError:
        raise StageError(BAD_META, "'%s' is not host:port" % host_port) from None
    return host, number


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="directory with config.json and model.safetensors")
    parser.add_argument("--stage", required=True, help="I/N: this server's place among N processes (0 is the head)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--serializer", default="json", choices=("json", "msgpack"),
                        help="envelope of the frames this server sends to the next stage and migration targets")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "numpy"))
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch intra-op threads (1, like the Java stage's single-threaded arithmetic)")
    args = parser.parse_args(argv)
    try:
        stage, stages = (int(x) for x in args.stage.split("/"))
    except ValueError:
        parser.error("--stage is I/N, got %r" % args.stage)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = StageServer(args.checkpoint, stage, stages, args.host, args.port, args.serializer, args.backend)
    except (ValueError, OSError, KeyError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    if isinstance(server.layers, TorchLayers):
        server.layers.torch.set_num_threads(args.threads)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(server.banner(), flush=True)
    stop.wait()
    server.close()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Not sys.exit: connection threads may still be inside PyTorch, whose thread pool, torn down by the
    # interpreter's exit under them, can abort the process ("terminate called without an active exception").
    os._exit(code)
