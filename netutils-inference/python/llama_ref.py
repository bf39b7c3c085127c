#!/usr/bin/env python3
"""A numpy reference of netutils-inference's LLaMA-style model, written from the checkpoint format alone.

It reads the same directory (a Hugging Face config.json and a model.safetensors with LLaMA key names, F32,
BF16 or F16) and computes in float32 what the Java model computes: token embedding, per layer RMSNorm,
grouped-query causal attention with rotary embedding taken from a complex64 freqs_cis table (pairs
x[i], x[i + head_dim/2], Hugging Face's rotate_half layout), RMSNorm, SwiGLU MLP, residuals; final RMSNorm
and output head. numpy sums in another order than Java, so logits agree within a tolerance, not bit for bit.

The layer function takes a start position, the step's CIS rows, an additive mask and a KV cache, like a
pipeline stage does, so a Python stage can be built on it (see docs/INFERENCE.md for the messages).

usage: llama_ref.py --checkpoint DIR --tokens 1,2,3 [--out logits.f32]
  prints the shape and the argmax per position; --out writes the [positions, vocab] float32 logits,
  little-endian, row-major.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def read_safetensors(path, keep=None):
    """{name: float32 array} of every F32/BF16/F16 tensor in a safetensors file (only the names for which
    ``keep(name)`` is true, when given: a pipeline stage loads its own layers only)."""
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    out = {}
    for name, entry in header.items():
        if name == "__metadata__" or (keep is not None and not keep(name)):
            continue
        begin, end = entry["data_offsets"]
        raw = data[base + begin:base + end]
        shape = tuple(entry["shape"])
        dtype = entry["dtype"]
        if dtype == "F32":
            array = np.frombuffer(raw, dtype="<f4")
        elif dtype == "BF16":
            # bfloat16 is the top half of a float32.
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif dtype == "F16":
            array = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name!r} is {dtype}; the model reads F32, BF16 and F16")
        out[name] = array.reshape(shape)
    return out


class Model:
    def __init__(self, directory, keep=None):
        with open(os.path.join(directory, "config.json")) as f:
            c = json.load(f)
        self.hidden = c["hidden_size"]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads", self.heads)
        self.head_dim = c.get("head_dim", self.hidden // self.heads)
        self.vocab = c["vocab_size"]
        self.eps = np.float32(c.get("rms_norm_eps", 1e-6))
        self.theta = c.get("rope_theta", 10000.0)
        self.max_positions = c.get("max_position_embeddings", 2048)
        self.w = read_safetensors(os.path.join(directory, "model.safetensors"), keep)
        if "lm_head.weight" not in self.w and c.get("tie_word_embeddings") and "model.embed_tokens.weight" in self.w:
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]

    def freqs_cis(self, start, count):
        """complex64 [count, head_dim/2]: cis(p * theta^(-2i/head_dim)) for p in start..start+count-1."""
        i = np.arange(self.head_dim // 2, dtype=np.float64)
        freqs = (1.0 / self.theta ** (2.0 * i / self.head_dim)).astype(np.float32)
        angles = np.outer(np.arange(start, start + count, dtype=np.float32), freqs)
        return (np.cos(angles) + 1j * np.sin(angles)).astype(np.complex64)

    def rms_norm(self, x, weight):
        scale = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps)
        return weight * (x * scale.astype(np.float32))

    def rope(self, x, cis):
        """x [tokens, heads, head_dim] rotated by cis [tokens, head_dim/2], pairs (i, i + head_dim/2)."""
        half = self.head_dim // 2
        z = (x[..., :half] + 1j * x[..., half:]) * cis[:, None, :]
        return np.concatenate([z.real, z.imag], axis=-1).astype(np.float32)

    def forward_layers(self, h, position, cis, mask, cache, first, end):
        """Layers [first, end) over h [tokens, hidden] at `position`; cache: {layer: (k, v)} [kv_heads, len, head_dim]."""
        t = h.shape[0]
        group = self.heads // self.kv_heads
        for layer in range(first, end):
            p = f"model.layers.{layer}."
            x = self.rms_norm(h, self.w[p + "input_layernorm.weight"])
            q = (x @ self.w[p + "self_attn.q_proj.weight"].T).reshape(t, self.heads, self.head_dim)
            k = (x @ self.w[p + "self_attn.k_proj.weight"].T).reshape(t, self.kv_heads, self.head_dim)
            v = (x @ self.w[p + "self_attn.v_proj.weight"].T).reshape(t, self.kv_heads, self.head_dim)
            q, k = self.rope(q, cis), self.rope(k, cis)
            old_k, old_v = cache.get(layer, (np.zeros((self.kv_heads, 0, self.head_dim), np.float32),) * 2)
            keys = np.concatenate([old_k[:, :position], k.transpose(1, 0, 2)], axis=1)
            values = np.concatenate([old_v[:, :position], v.transpose(1, 0, 2)], axis=1)
            cache[layer] = (keys, values)
            keys = np.repeat(keys, group, axis=0)       # [heads, len, head_dim]
            values = np.repeat(values, group, axis=0)
            scores = np.einsum("thd,hsd->hts", q, keys) / np.float32(np.sqrt(self.head_dim)) + mask
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores = (scores / scores.sum(axis=-1, keepdims=True)).astype(np.float32)
            attended = np.einsum("hts,hsd->thd", scores, values).reshape(t, self.heads * self.head_dim)
            h = h + attended @ self.w[p + "self_attn.o_proj.weight"].T
            x = self.rms_norm(h, self.w[p + "post_attention_layernorm.weight"])
            gate = x @ self.w[p + "mlp.gate_proj.weight"].T
            up = x @ self.w[p + "mlp.up_proj.weight"].T
            h = h + ((gate / (1.0 + np.exp(-gate))) * up).astype(np.float32) @ self.w[p + "mlp.down_proj.weight"].T
        return h.astype(np.float32)

    def logits(self, h):
        return self.rms_norm(h, self.w["model.norm.weight"]) @ self.w["lm_head.weight"].T

    def forward(self, tokens):
        """Logits [len(tokens), vocab] of the whole sequence in one causal pass, no cache reuse."""
        n = len(tokens)
        h = self.w["model.embed_tokens.weight"][np.asarray(tokens)]
        mask = np.triu(np.full((n, n), -np.inf, dtype=np.float32), k=1)
        h = self.forward_layers(h, 0, self.freqs_cis(0, n), mask, {}, 0, self.layers)
        return self.logits(h).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--tokens", required=True, help="comma-separated token ids")
    parser.add_argument("--out", help="write the [positions, vocab] float32 logits here")
    args = parser.parse_args()
    model = Model(args.checkpoint)
    tokens = [int(t) for t in args.tokens.split(",")]
    logits = model.forward(tokens)
    if args.out:
        logits.astype("<f4").tofile(args.out)
    print("logits", list(logits.shape))
    print("argmax", ",".join(str(int(i)) for i in logits.argmax(axis=-1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
