"""The original module's example flow: examples/server.py (a process per client) and examples/client.py, run as
programs; two clients at once."""

import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")  # the examples are PyTorch programs; CI installs python3-torch

PYTHON_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(PYTHON_ROOT, "examples")
ENV = dict(os.environ, PYTHONPATH=PYTHON_ROOT, PYTHONDONTWRITEBYTECODE="1")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_example_server_answers_two_example_clients_at_once():
    port = free_port()
    server = subprocess.Popen([sys.executable, os.path.join(EXAMPLES, "server.py"), str(port)], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "server listening on 127.0.0.1:%d" % port in server.stdout.readline()
        clients = [subprocess.Popen([sys.executable, os.path.join(EXAMPLES, "client.py"), str(port)], env=ENV,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        for client in clients:
            output, _ = client.communicate(timeout=120)
            assert client.returncode == 0, output
            lines = output.splitlines()
            assert len(lines) == 5, output
            assert "got Message[hidden_state reply_to=" not in output  # the client sets no ids
            assert "got Message[hidden_state data=BF16[1, 16, 4096] meta={'op': 'rmsnorm*0.5'}]" in lines[0]
            assert "unit_circle_max_error" in lines[1]
            assert "got Message[KV_index data=I64[] meta={'ack': 'position stored'}]" in lines[2]
            assert "meta={'stored_tensors': '4', 'bytes': '131072'}" in lines[3]
            assert "meta={'visible': '136', 'causal': 'true'}" in lines[4]
    finally:
        server.terminate()
        server.wait(10)


def test_example_client_says_plainly_when_no_server_answers():
    port = free_port()
    start = time.monotonic()
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, "client.py"), str(port)], env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "cannot connect to a netutils peer at 127.0.0.1:%d" % port in out.stderr
    assert time.monotonic() - start < 60
