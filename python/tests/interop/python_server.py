"""A Python netutils server for the Java interop test: echoes every message (same type, tensors and id as
reply_to, meta "serializer" = the request's envelope format), except a BF16 hidden_state, which must arrive as
a torch.bfloat16 tensor and comes back doubled (exact in bfloat16), computed in torch.

usage: PYTHONPATH=python python3 python_server.py [--port 0]    prints "listening on PORT", serves until killed
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from netutils import Message, create_server  # noqa: E402


def handle(connection):
    for request in connection:
        data = request.tensors.get("data")
        meta = {"serializer": connection.last_serializer, "writer": "python"}
        if request.type == "hidden_state" and type(data).__module__.startswith("torch"):
            import torch
            if data.dtype != torch.bfloat16:
                raise TypeError("expected a torch.bfloat16 hidden state, got %s" % data.dtype)
            meta["received"] = str(data.dtype)
            reply = Message(request.type, data * 2, meta=meta, reply_to=request.id)
        else:
            reply = Message(request.type, request.tensors, meta=meta, reply_to=request.id)
        connection.send_data(reply)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = create_server("127.0.0.1", args.port)
    print("listening on %d" % server.port, flush=True)
    server.serve_forever(handle)


if __name__ == "__main__":
    main()
