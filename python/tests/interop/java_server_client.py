"""A Python client of the Java example server (ModelStageHandler): sends each of the five message types as
numpy arrays and torch tensors and checks the answers.

usage: PYTHONPATH=python python3 java_server_client.py [--host 127.0.0.1] [--port 5000] [--serializer json|msgpack]
       [--checksum]
Exit 0 when every answer is right.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy  # noqa: E402

from netutils import Message, MessageType, NetworkConnection  # noqa: E402


def rmsnorm_half(x):
    x = x.astype(numpy.float64)
    return 0.5 * x / numpy.sqrt((x * x).mean(axis=-1, keepdims=True) + 1e-6)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--serializer", default="json", choices=["json", "msgpack"])
    parser.add_argument("--checksum", action="store_true")
    args = parser.parse_args()
    rng = numpy.random.default_rng(5)
    hidden = rng.standard_normal((1, 4, 64)).astype("<f4")
    angles = numpy.outer(numpy.arange(4), 1.0 / 10000 ** (numpy.arange(32) / 32))
    cis = numpy.exp(1j * angles).astype("<c8")
    mask = numpy.tril(numpy.ones((4, 4), dtype=bool)).reshape(1, 1, 4, 4)
    cache = {"layer0.k": rng.standard_normal((1, 2, 4, 8)).astype("<f2"),
             "layer0.v": rng.standard_normal((1, 2, 4, 8)).astype("<f2")}
    requests = [
        (MessageType.hidden_state, hidden),
        (MessageType.CIS, cis),
        (MessageType.KV_index, numpy.array(4, dtype="<i8")),
        (MessageType.KV_cache, cache),
        (MessageType.mask, mask),
    ]
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        # the Java server answers a BF16 hidden state in BF16: torch bfloat16 both ways
        requests.append((MessageType.hidden_state, torch.from_numpy(hidden).to(torch.bfloat16)))
    failures = []
    with NetworkConnection(args.host, args.port, serializer=args.serializer, checksum=args.checksum) as connection:
        for number, (msg_type, data) in enumerate(requests):
            request_id = "py-%d" % number
            start = time.perf_counter()
            reply = connection.request(Message(msg_type, data, id=request_id))
            millis = (time.perf_counter() - start) * 1000
            if torch is not None and isinstance(reply.data if reply.tensors else None, torch.Tensor) \
                    and reply.data.dtype != torch.bfloat16:
                reply.tensors = {name: t.numpy() for name, t in reply.tensors.items()}  # numpy checks below
            ok = reply.reply_to == request_id and reply.type == msg_type \
                and connection.last_serializer == args.serializer
            if msg_type == "hidden_state" and torch is not None and isinstance(data, torch.Tensor):
                expected = torch.from_numpy(rmsnorm_half(data.float().numpy()).astype("<f4"))
                ok = ok and reply.data.dtype == torch.bfloat16 \
                    and torch.allclose(reply.data.float(), expected, rtol=1e-2, atol=1e-2)
            elif msg_type == "hidden_state":
                ok = ok and reply.data.dtype == numpy.float32 \
                    and numpy.allclose(reply.data, rmsnorm_half(hidden), rtol=1e-4, atol=1e-5)
            elif msg_type == "CIS":
                ok = ok and float(reply.meta["unit_circle_max_error"]) < 1e-5
            elif msg_type == "KV_index":
                ok = ok and int(reply.data) == 4
            elif msg_type == "KV_cache":
                ok = ok and reply.meta["stored_tensors"] == "2" and reply.meta["bytes"] == "256"
            elif msg_type == "mask":
                ok = ok and reply.meta["visible"] == "10" and reply.meta["causal"] == "true"
            print("%-13s %-6s %7.2f ms  %r" % (msg_type, "ok" if ok else "WRONG", millis, reply))
            if not ok:
                failures.append(msg_type)
    print("python client: %d of %d answers correct" % (len(requests) - len(failures), len(requests)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
