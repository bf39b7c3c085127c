"""Example server (the original network_utils server.py): accepts clients, handles each in its own process,
processes every message and answers.

usage: python3 server.py [port]     (PYTHONPATH=python from the repository root)
"""

import multiprocessing
import sys

import torch

from netutils import ConnectionClosedError, Message, MessageType, accept_connection, create_server  # was: network_utils

host = "127.0.0.1"
port = 12345


def process_message(message):
    if message.type == MessageType.hidden_state:
        x = message.data.float()
        normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * 0.5  # a stand-in for the next layers
        return Message(MessageType.hidden_state, normed.to(message.data.dtype), meta={"op": "rmsnorm*0.5"})
    if message.type == MessageType.CIS:
        error = (message.data.abs() - 1).abs().max().item()
        return Message(MessageType.CIS, meta={"unit_circle_max_error": "%.3g" % error})
    if message.type == MessageType.KV_index:
        return Message(MessageType.KV_index, message.data, meta={"ack": "position stored"})
    if message.type == MessageType.KV_cache:
        stored = sum(t.numel() * t.element_size() for t in message.tensors.values())
        return Message(MessageType.KV_cache, meta={"stored_tensors": str(len(message.tensors)), "bytes": str(stored)})
    if message.type == MessageType.mask:
        mask = message.data
        causal = torch.equal(mask, torch.tril(torch.ones_like(mask)))
        return Message(MessageType.mask, meta={"visible": str(int(mask.sum())), "causal": str(causal).lower()})
    return message


def handle_client(connection):
    while True:
        try:
            message = connection.receive_data()
        except ConnectionClosedError:
            break
        response = process_message(message)
        response.reply_to = message.id
        connection.send_data(response)
    connection.close()


def start_server():
    server = create_server(host, port)
    print("server listening on %s:%d" % (host, server.port), flush=True)
    while True:
        connection = accept_connection(server)
        process = multiprocessing.Process(target=handle_client, args=(connection,))
        process.start()
        connection.close()  # the child process serves it; this is the parent's copy


if __name__ == "__main__":
    if len(sys.argv) > 1:
        port = int(sys.argv[1])
    start_server()
