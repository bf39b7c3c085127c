"""The Python side of netutils.bench.PythonBench (netutils-bench), which runs it: Python as sender, receiver
and round-trip client against Java, timed here and printed as one line for the Java side to read.

  send --port P --count N [--mib 256]     N messages of one F32 KV_cache tensor to a Java sink, each answered by
                                          a small ack; prints "send_mibps <MiB/s>"
  serve                                   a sink server: receives each message into one reused buffer and
                                          acks it; prints "listening on <port>", serves until killed
  rtt --port P --warmup W --count N       8 KiB hidden_state round trips to a Java echo server; prints
                                          "rtt_us p50 <us> p99 <us>"

usage: PYTHONPATH=python python3 python/benchmarks/java_peer.py MODE ...
"""

import argparse
import sys
import time

import numpy

from netutils import ConnectionClosedError, Message, MessageType, NetworkConnection, create_server

MIB = 1 << 20


def send(args):
    data = numpy.arange(args.mib * MIB // 4, dtype=numpy.float32)
    message = Message(MessageType.KV_cache, data)
    with NetworkConnection("127.0.0.1", args.port, tensors="numpy") as connection:
        # warm-up: the connection's buffers, the page cache, and the Java sink, whose handler for this new
        # connection first faults in its 256 MiB (over a second on a slow VM, which one warm-up did not cover)
        for _ in range(3):
            connection.request(message)
        start = time.perf_counter()
        for _ in range(args.count):
            ack = connection.request(message)
            if int(ack.data) != data.nbytes:
                raise SystemExit("the Java sink acknowledged %s bytes, not %d" % (ack.data, data.nbytes))
        seconds = time.perf_counter() - start
    print("send_mibps %.1f" % (args.count * data.nbytes / MIB / seconds), flush=True)


def serve(args):
    buffer = numpy.empty(args.mib * MIB + 4096, dtype=numpy.uint8)
    buffer.fill(0)  # fault the pages in once, as a receiver that reuses its memory has

    def handle(connection):
        while True:
            try:
                message = connection.receive_data(buffer=buffer)
            except ConnectionClosedError:
                return
            size = sum(t.nbytes for t in message.tensors.values())
            connection.send_data(Message(MessageType.KV_index, numpy.array(size, dtype=numpy.int64)))

    server = create_server("127.0.0.1", 0, tensors="numpy", max_connections=1)
    print("listening on %d" % server.port, flush=True)
    server.serve_forever(handle)


def rtt(args):
    hidden = numpy.random.default_rng(1).random((1, 2048), dtype=numpy.float32)  # 8 KiB
    message = Message(MessageType.hidden_state, hidden)
    with NetworkConnection("127.0.0.1", args.port, tensors="numpy") as connection:
        for _ in range(args.warmup):
            connection.request(message)
        times = numpy.empty(args.count)
        clock = time.perf_counter_ns
        for i in range(args.count):
            start = clock()
            connection.request(message)
            times[i] = clock() - start
    p50, p99 = numpy.percentile(times, [50, 99]) / 1000
    print("rtt_us p50 %.1f p99 %.1f" % (p50, p99), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["send", "serve", "rtt"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    {"send": send, "serve": serve, "rtt": rtt}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
