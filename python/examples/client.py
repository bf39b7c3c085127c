"""Example client (the original network_utils client.py): connects to the server, sends one message of each
type, and prints the responses.

usage: python3 client.py [port]     (start server.py first; PYTHONPATH=python from the repository root)
"""

import sys

import torch

from netutils import Message, MessageType, NetworkConnection  # was: from network_utils import ...

host = "127.0.0.1"
port = 12345


def generate_messages():
    hidden_state = torch.randn(1, 16, 4096).to(torch.bfloat16)
    angles = torch.outer(torch.arange(16.0), 1.0 / 10000 ** (torch.arange(64.0) / 64))
    freqs_cis = torch.polar(torch.ones_like(angles), angles)  # complex64, as in LLaMA
    kv_cache = {}
    for layer in range(2):
        kv_cache["layer%d.k" % layer] = torch.randn(1, 8, 16, 128).to(torch.bfloat16)
        kv_cache["layer%d.v" % layer] = torch.randn(1, 8, 16, 128).to(torch.bfloat16)
    mask = torch.tril(torch.ones(16, 16, dtype=torch.bool)).reshape(1, 1, 16, 16)
    return [
        Message(MessageType.hidden_state, hidden_state),
        Message(MessageType.CIS, freqs_cis),
        Message(MessageType.KV_index, torch.tensor(16)),
        Message(MessageType.KV_cache, kv_cache),
        Message(MessageType.mask, mask),
    ]


if __name__ == "__main__":
    if len(sys.argv) > 1:
        port = int(sys.argv[1])
    connection = NetworkConnection(host, port)
    connection.connect()
    for message in generate_messages():
        connection.send_data(message)
        response = connection.receive_data()
        print("sent %-45s got %r" % (repr(message)[8:-1], response))
    connection.close()
