"""A Python client for the Java example server: sends each of the five message types and checks the answers.

usage: python3 client.py [--host 127.0.0.1] [--port 5000] [--serializer json|msgpack]
Exit 0 when every answer is right.
"""

import argparse
import sys
import time

import numpy

from netutils_frame import connect, encode_frame, read_frame


def rmsnorm_half(x):
    x = x.astype(numpy.float64)
    return 0.5 * x / numpy.sqrt((x * x).mean(axis=-1, keepdims=True) + 1e-6)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--serializer", default="json", choices=["json", "msgpack"])
    args = parser.parse_args()
    rng = numpy.random.default_rng(5)
    hidden = rng.standard_normal((1, 4, 64)).astype("<f4")
    angles = numpy.outer(numpy.arange(4), 1.0 / 10000 ** (numpy.arange(32) / 32))
    cis = numpy.exp(1j * angles).astype("<c8")
    mask = numpy.tril(numpy.ones((4, 4), dtype=bool)).reshape(1, 1, 4, 4)
    cache = {"layer0.k": ("F16", rng.standard_normal((1, 2, 4, 8)).astype("<f2")),
             "layer0.v": ("F16", rng.standard_normal((1, 2, 4, 8)).astype("<f2"))}
    requests = [
        ("hidden_state", {"data": ("F32", hidden)}),
        ("CIS", {"data": ("C64", cis)}),
        ("KV_index", {"data": ("I64", numpy.array(4, dtype="<i8"))}),
        ("KV_cache", cache),
        ("mask", {"data": ("BOOL", mask)}),
    ]
    failures = []
    try:
        sock = connect(args.host, args.port)
    except OSError as e:
        print("error: cannot reach a netutils server at %s:%d (%s)" % (args.host, args.port, e), file=sys.stderr)
        return 1
    with sock:
        for number, (msg_type, tensors) in enumerate(requests):
            request_id = "py-%d" % number
            start = time.perf_counter()
            sock.sendall(encode_frame(msg_type, tensors, id=request_id, serializer=args.serializer))
            reply = read_frame(sock)
            millis = (time.perf_counter() - start) * 1000
            ok = reply["reply_to"] == request_id and reply["type"] == msg_type \
                and reply["serializer"] == args.serializer
            if msg_type == "hidden_state":
                dtype, data = reply["tensors"]["data"]
                ok = ok and dtype == "F32" and numpy.allclose(data, rmsnorm_half(hidden), rtol=1e-4, atol=1e-5)
            elif msg_type == "CIS":
                ok = ok and float(reply["meta"]["unit_circle_max_error"]) < 1e-5
            elif msg_type == "KV_index":
                ok = ok and int(reply["tensors"]["data"][1]) == 4
            elif msg_type == "KV_cache":
                ok = ok and reply["meta"]["stored_tensors"] == "2" and reply["meta"]["bytes"] == "256"
            elif msg_type == "mask":
                ok = ok and reply["meta"]["visible"] == "10" and reply["meta"]["causal"] == "true"
            print("%-13s %-6s %7.2f ms  %s" % (msg_type, "ok" if ok else "WRONG", millis, reply["meta"]))
            if not ok:
                failures.append(msg_type)
    print("python client: %d of %d answers correct" % (len(requests) - len(failures), len(requests)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
