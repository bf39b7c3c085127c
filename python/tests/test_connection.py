"""Connections and servers: the original names, timeouts, many tensors and large messages, checksums."""

import threading
import time

import numpy
import pytest

from helpers import serving
from netutils import (ChecksumUnavailableError, ConnectionClosedError, FrameTooLargeError, Message, MessageType,
                      RemoteError,
                      NetworkConnection, accept_connection, checksum, create_server, of_requests)

ECHO = of_requests(lambda request: request)


def test_original_flow_with_create_server_and_accept_connection():
    server = create_server("127.0.0.1", 0)
    answers = []

    def handle_client():
        connection = accept_connection(server)
        message = connection.receive_data()
        connection.send_data(Message(MessageType.KV_index, numpy.array(int(message.data) + 1), reply_to=message.id))
        connection.close()
    thread = threading.Thread(target=handle_client)
    thread.start()
    connection = NetworkConnection("127.0.0.1", server.port)
    connection.connect()
    connection.send_data(Message(MessageType.KV_index, numpy.array(41), id="q"))
    answers.append(connection.receive_data())
    connection.close()
    thread.join(10)
    server.close()
    assert int(answers[0].data) == 42 and answers[0].reply_to == "q"


def test_receive_with_a_timeout_returns_none_and_the_connection_stays_usable():
    with serving(ECHO) as server, NetworkConnection("127.0.0.1", server.port) as connection:
        start = time.monotonic()
        assert connection.receive_data(timeout=0.2) is None
        assert 0.15 < time.monotonic() - start < 3
        assert connection.is_open
        assert int(connection.request(Message(MessageType.KV_index, 7)).data) == 7


def test_idle_timeout_closes_the_connection():
    with serving(ECHO) as server, NetworkConnection("127.0.0.1", server.port, idle_timeout=0.2) as connection:
        with pytest.raises(ConnectionClosedError, match="idle timeout"):
            connection.receive_data()
        assert not connection.is_open
        with pytest.raises(ConnectionClosedError, match="is closed"):
            connection.send_data(Message(MessageType.mask))


def test_unconnected_and_unreachable_say_so():
    with pytest.raises(ConnectionClosedError, match="call connect"):
        NetworkConnection("127.0.0.1", 1).send_data(Message(MessageType.mask))
    with pytest.raises(ConnectionRefusedError, match="cannot connect to a netutils peer at 127.0.0.1:1"):
        NetworkConnection("127.0.0.1", 1).connect()


def test_more_tensors_than_one_sendmsg_takes_and_a_large_message_arrive_whole():
    rng = numpy.random.default_rng(1)
    many = {"t%d" % i: numpy.full(40 + i % 7, i, dtype=numpy.int16) for i in range(1500)}  # > IOV_MAX iovecs
    large = {"k": rng.random((64, 1024, 128), dtype=numpy.float32), "v": rng.integers(0, 255, 3_000_001, numpy.uint8)}
    with serving(ECHO) as server, NetworkConnection("127.0.0.1", server.port, checksum=True) as connection:
        for tensors in (many, large):
            message = Message(MessageType.KV_cache, tensors, id="big")
            reply = connection.request(message)
            assert Message(reply.type, reply.tensors, id=reply.id) == message


def test_several_clients_are_served_at_once():
    def slow_echo(request):
        time.sleep(0.3)
        return request
    results = []
    with serving(of_requests(slow_echo)) as server:
        def client(i):
            with NetworkConnection("127.0.0.1", server.port) as connection:
                results.append(int(connection.request(Message(MessageType.KV_index, i)).data))
        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        start = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        elapsed = time.monotonic() - start
    assert sorted(results) == list(range(8))
    assert elapsed < 2.0  # 8 x 0.3 s one after another would be 2.4 s


def test_one_thread_receives_while_another_sends():
    with serving(ECHO) as server, NetworkConnection("127.0.0.1", server.port) as connection:
        received = []
        reader = threading.Thread(target=lambda: received.extend(
            int(connection.receive_data().data) for _ in range(200)))
        reader.start()
        for i in range(200):
            connection.send_data(Message(MessageType.KV_index, i))
        reader.join(20)
    assert received == list(range(200))


def test_a_message_over_the_frame_maximum_is_refused_before_sending():
    # 4 GiB of zeros as a broadcast view: no memory is committed, and encoding must not touch the data
    huge = numpy.broadcast_to(numpy.zeros(1, dtype=numpy.uint8), (0xFFFFFFFF,))
    with pytest.raises(FrameTooLargeError, match="bytes over the 4,294,967,295-byte maximum") as caught:
        Message(MessageType.KV_cache, huge).to_raw_message()
    assert 0 < caught.value.excess_bytes < 256


def test_large_checksummed_frames_without_the_crc32c_module_are_refused_clearly(monkeypatch):
    small = Message(MessageType.hidden_state, numpy.arange(1000, dtype=numpy.float32))
    large = Message(MessageType.hidden_state, numpy.zeros(2 << 20, dtype=numpy.float32))  # 8 MiB
    fast = small.to_raw_message(checksum=True)
    monkeypatch.setattr(checksum, "_crc32c", None)
    assert small.to_raw_message(checksum=True) == fast  # the pure-Python fallback agrees for small bodies
    with pytest.raises(ChecksumUnavailableError, match="apt-get install python3-crc32c"):
        large.to_raw_message(checksum=True)
    monkeypatch.undo()
    raw = large.to_raw_message(checksum=True)
    monkeypatch.setattr(checksum, "_crc32c", None)
    with pytest.raises(ChecksumUnavailableError, match="verifying a received frame needs a CRC32C over"):
        Message.from_raw_message(raw)


def test_crc32c_matches_the_reference_value():
    assert checksum.update(0, b"123456789") == 0xE3069283  # the CRC-32C check value
    assert checksum.update(checksum.update(0, b"1234"), b"56789") == 0xE3069283


def test_receiving_into_a_caller_buffer_places_tensors_in_it():
    buffer = numpy.zeros(1 << 20, dtype=numpy.uint8)
    message = Message(MessageType.KV_cache, {"k": numpy.arange(1000, dtype=numpy.float32),
                                             "v": numpy.arange(10, dtype=numpy.int8)})
    with serving(ECHO) as server, NetworkConnection("127.0.0.1", server.port, tensors="numpy") as connection:
        connection.send_data(message)
        reply = connection.receive_data(buffer=buffer)
        assert Message(reply.type, reply.tensors) == message
        assert numpy.shares_memory(reply.tensors["k"], buffer) and numpy.shares_memory(reply.tensors["v"], buffer)
        assert buffer[4032:4032 + 10].view(numpy.int8).tolist() == list(range(10))  # after 4000 bytes, at 64-byte alignment
        connection.send_data(message)
        with pytest.raises(ValueError, match="receive buffer of 100 bytes has no room for tensor 'k'"):
            connection.receive_data(buffer=bytearray(100))
        assert not connection.is_open  # the frame was left half read


def test_keepalive_pings_are_answered_and_never_delivered():
    with serving(ECHO) as server, NetworkConnection("127.0.0.1", server.port) as connection:
        connection.send_data(Message(MessageType("_ping"), id="p1"))
        pong = connection._read_one(5.0, None)  # the raw next frame: the transport's own answer
        assert pong.type == "_pong" and pong.reply_to == "p1"
    # And a peer's ping is answered inside receive_data, which returns the next real message.
    server = create_server("127.0.0.1", 0)

    def pinging_peer():
        peer = accept_connection(server)
        peer.send_data(Message(MessageType("_ping"), id="k"))
        peer.send_data(Message(MessageType.mask, numpy.array(1)))
        assert peer._read_one(5.0, None).type == "_pong"
        peer.close()
    thread = threading.Thread(target=pinging_peer)
    thread.start()
    with NetworkConnection("127.0.0.1", server.port) as connection:
        assert connection.receive_data().type == MessageType.mask
    thread.join(10)
    server.close()


def test_request_returns_its_own_reply_and_keeps_other_messages_for_receive():
    server = create_server("127.0.0.1", 0)

    def peer_with_a_notice():
        peer = accept_connection(server)
        first = peer.receive_data()
        peer.send_data(Message(MessageType.KV_index, numpy.array(int(first.data) + 1), reply_to=first.id))
        second = peer.receive_data()
        peer.send_data(Message(MessageType("notice"), numpy.array(0)))  # answers nothing
        peer.send_data(Message(MessageType.KV_index, numpy.array(int(second.data) + 1), reply_to=second.id))
        peer.close()
    thread = threading.Thread(target=peer_with_a_notice)
    thread.start()
    with NetworkConnection("127.0.0.1", server.port) as connection:
        assert int(connection.request(Message(MessageType.KV_index, numpy.array(1)), timeout=5).data) == 2
        # The peer has set reply_to, so the notice in between is not taken for the answer.
        assert int(connection.request(Message(MessageType.KV_index, numpy.array(10)), timeout=5).data) == 11
        assert connection.receive_data().type == "notice"
    thread.join(10)
    server.close()


def test_a_handler_failure_answers_the_request_and_the_connection_goes_on():
    def picky(request):
        if int(request.data) < 0:
            raise ValueError("negative position %d" % int(request.data))
        return request
    with serving(of_requests(picky)) as server, NetworkConnection("127.0.0.1", server.port) as connection:
        with pytest.raises(RemoteError, match="negative position -3"):
            connection.request(Message(MessageType.KV_index, numpy.array(-3)), timeout=5)
        assert int(connection.request(Message(MessageType.KV_index, numpy.array(3)), timeout=5).data) == 3


def test_close_waits_for_the_handlers_of_its_connections():
    # A handler still running (inside torch, say) when the interpreter exits can abort the process, so close()
    # returns only once the threads serving its connections have.
    ended = threading.Event()

    def handler(connection):
        try:
            while True:
                connection.receive_data()
        except ConnectionClosedError:
            time.sleep(0.3)  # still busy a while after its connection closed
            ended.set()

    server = create_server("127.0.0.1", 0).serve(handler)
    with NetworkConnection("127.0.0.1", server.port) as client:
        client.send_data(Message(MessageType.KV_index, numpy.array(3)))
        deadline = time.monotonic() + 10
        while server.connection_count == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.close()
        assert ended.is_set(), "close() returned while a handler was still running"


def _out_of_order_server(connection):
    """Answers each request (value + 1) on a thread of its own after a random pause: answers overtake each other."""
    import random

    def answer(request):
        time.sleep(random.random() * 0.01)
        connection.send_data(Message(MessageType.KV_index, numpy.array(int(request.data) + 1), reply_to=request.id))
    for request in connection:
        threading.Thread(target=answer, args=(request,), daemon=True).start()


def test_request_from_many_threads_gives_each_call_its_own_answer():
    # request() used to leave an answer read by another calling thread in the inbox, where only receive_data
    # looks: both callers then waited until their timeouts (114 of 160 calls in a new user's trial).
    with serving(_out_of_order_server) as server, NetworkConnection("127.0.0.1", server.port) as client:
        wrong = []

        def caller(base):
            for i in range(25):
                value = base * 1000 + i
                reply = client.request(Message(MessageType.KV_index, numpy.array(value)), timeout=10)
                if int(reply.data) != value + 1:
                    wrong.append((value, int(reply.data)))
        threads = [threading.Thread(target=caller, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)
        assert wrong == []
        assert client.late_replies == 0
        assert client.receive_data(timeout=0.05) is None  # nothing was left over


def test_a_receiving_thread_hands_a_call_its_answer():
    with serving(_out_of_order_server) as server, NetworkConnection("127.0.0.1", server.port) as client:
        received = []
        receiver = threading.Thread(target=lambda: received.append(client.receive_data(timeout=3)))
        receiver.start()
        time.sleep(0.1)  # the receiver is reading when the answer comes
        assert int(client.request(Message(MessageType.KV_index, numpy.array(41)), timeout=5).data) == 42
        client.send_data(Message(MessageType.KV_index, numpy.array(7), id="not-a-call"))  # its answer is the receiver's
        receiver.join(5)
        assert received and received[0].reply_to == "not-a-call"


def _in_order_without_reply_to(connection):
    """The original module's way: answers in order and never sets reply_to; "slow" requests take 0.6 s."""
    for request in connection:
        if request.type == "slow":
            time.sleep(0.6)
        connection.send_data(Message(MessageType.KV_index, numpy.array(int(request.data) + 1)))


def test_a_late_answer_from_an_in_order_peer_is_dropped_not_given_to_the_next_call():
    from netutils import NetworkTimeout
    with serving(_in_order_without_reply_to) as server, NetworkConnection("127.0.0.1", server.port) as client:
        with pytest.raises(NetworkTimeout, match="no answer to slow"):
            client.request(Message("slow", numpy.array(100)), timeout=0.1)
        for i in range(5):
            assert int(client.request(Message(MessageType.KV_index, numpy.array(i)), timeout=5).data) == i + 1
        assert client.late_replies == 1
        assert client.receive_data(timeout=0.05) is None


def test_an_in_order_peers_answer_to_a_plain_send_goes_to_receive_not_to_the_next_call():
    # The original module answers every message in order, also those sent with send_data(): that answer used to
    # complete the next call (a request of 4 returned the answer to the 3 sent before it, silently).
    def times_ten(connection):
        for request in connection:
            connection.send_data(Message(MessageType.KV_index, numpy.array(int(request.data) * 10)))
    with serving(times_ten) as server, NetworkConnection("127.0.0.1", server.port) as client:
        client.send_data(Message(MessageType.KV_index, numpy.array(3)))
        assert int(client.request(Message(MessageType.KV_index, numpy.array(4)), timeout=5).data) == 40
        assert int(client.receive_data(timeout=5).data) == 30
        for value in (1, 2):
            client.send_data(Message(MessageType.KV_index, numpy.array(value)))
        answers = []
        caller = threading.Thread(target=lambda: answers.append(
            int(client.request(Message(MessageType.KV_index, numpy.array(5)), timeout=5).data)))
        caller.start()
        caller.join(5)
        client.send_data(Message(MessageType.KV_index, numpy.array(6)))
        answers.append(int(client.request(Message(MessageType.KV_index, numpy.array(7)), timeout=5).data))
        assert answers == [50, 70]
        assert [int(client.receive_data(timeout=5).data) for _ in range(3)] == [10, 20, 60]
        assert client.late_replies == 0


def test_request_leaves_the_callers_message_as_it_was():
    # request() used to write its call id into the caller's message: a message shared by several threads then
    # failed with "a call with id ... is already outstanding" (700 of 800 calls in a new user's trial).
    with serving(_out_of_order_server) as server, NetworkConnection("127.0.0.1", server.port) as client:
        shared = Message(MessageType.KV_index, numpy.array(41))
        failures, answers = [], []

        def caller():
            try:
                for _ in range(20):
                    answers.append(int(client.request(shared, timeout=10).data))
            except Exception as e:  # noqa: BLE001 - the test reports whatever a caller met
                failures.append(e)
        threads = [threading.Thread(target=caller) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == []
        assert answers == [42] * 160
        assert shared.id is None


def test_a_sender_cut_off_by_the_receivers_frame_limit_learns_the_receivers_reason():
    # The receiver refuses the frame at its header, says why, and closes while the body is still being written:
    # the sender used to see only a bare ConnectionResetError.
    from netutils import RemoteError
    with serving(ECHO, max_frame_bytes=1 << 20) as server, NetworkConnection("127.0.0.1", server.port) as client:
        with pytest.raises(RemoteError, match="FRAME_TOO_LARGE") as refused:
            client.request(Message(MessageType.KV_cache, numpy.zeros(64 << 20, numpy.uint8)), timeout=30)
        assert "1048576" in str(refused.value) or "1,048,576" in str(refused.value)
        assert not client.is_open


def test_a_sender_whose_peer_sent_garbage_then_reset_is_told_so_and_does_not_hang():
    # Looking for the peer's last word after the reset read the garbage, and telling the peer about it tried to
    # take the send locks this thread held: the sender hung for good, and every other thread with it.
    import socket
    import struct
    listener = socket.create_server(("127.0.0.1", 0))

    def peer():
        sock, _ = listener.accept()
        sock.sendall(b"GARBAGE-NOT-A-FRAME-AT-ALL....")
        sock.recv(4096)  # the client is writing now
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset
    threading.Thread(target=peer, daemon=True).start()
    with listener, NetworkConnection("127.0.0.1", listener.getsockname()[1]) as client:
        time.sleep(0.2)  # the garbage has arrived
        outcome = []

        def send():
            try:
                client.send_data(Message(MessageType.KV_cache, numpy.zeros(64 << 20, numpy.uint8)))
            except Exception as e:  # noqa: BLE001 - the test looks at what the sender met
                outcome.append(e)
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        sender.join(20)
        assert not sender.is_alive(), "send_data hung"
        assert len(outcome) == 1 and isinstance(outcome[0], ConnectionClosedError), outcome


def test_a_call_refused_before_sending_gives_back_its_place_even_when_another_caller_got_in():
    # The refused call's place was given back only after the order lock was released: a call sent meanwhile by
    # another thread came after the never-sent one, whose phantom place then took that call's answer (and every
    # later call got the answer of the call before it).
    def times_ten(connection):
        for request in connection:
            connection.send_data(Message(MessageType.KV_index, numpy.array(int(request.data) * 10)))

    class SlowToRelease:
        """The order lock, releasing late for thread A: B gets in between A's failure and A's clean-up."""
        def __init__(self):
            self.lock = threading.Lock()

        def __enter__(self):
            self.lock.acquire()

        def __exit__(self, kind, value, traceback):
            self.lock.release()
            if kind is not None and threading.current_thread().name == "A":
                time.sleep(0.3)
            return False

    with serving(times_ten) as server, NetworkConnection("127.0.0.1", server.port) as client:
        client._order_lock = SlowToRelease()
        send_frame = client._send_frame

        def refuse_for_a(message):
            if threading.current_thread().name == "A":
                raise ValueError("refused before any byte was sent")
            return send_frame(message)
        client._send_frame = refuse_for_a
        results = {}

        def a():
            with pytest.raises(ValueError):
                client.request(Message(MessageType.KV_index, numpy.array(1)), timeout=5)

        def b():
            time.sleep(0.1)
            results["B"] = int(client.request(Message(MessageType.KV_index, numpy.array(4)), timeout=5).data)
        threads = [threading.Thread(target=a, name="A"), threading.Thread(target=b, name="B")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert results == {"B": 40}
        assert [int(client.request(Message(MessageType.KV_index, numpy.array(v)), timeout=5).data)
                for v in (5, 6)] == [50, 60]
        assert client.late_replies == 0


def test_a_handler_failure_whose_text_holds_half_a_character_is_still_answered():
    # A text cut inside a character (half a surrogate pair) has no UTF-8 form: the error was never sent, and the
    # caller waited for its whole deadline. It is sent with U+FFFD in place of the half.
    def failing(request):
        raise RuntimeError("bad hi \ud83d")
    with serving(of_requests(failing)) as server, NetworkConnection("127.0.0.1", server.port) as client:
        with pytest.raises(RemoteError, match="HANDLER_FAILED") as failed:
            client.request(Message(MessageType.KV_index, numpy.array(1)), timeout=10)
        assert failed.value.detail == "bad hi \ufffd"
        assert client.is_open


def test_request_has_a_default_deadline():
    from netutils import NetworkTimeout
    silent = of_requests(lambda request: None)  # never answers
    with serving(silent) as server, NetworkConnection("127.0.0.1", server.port, request_timeout=0.3) as client:
        start = time.monotonic()
        with pytest.raises(NetworkTimeout, match="within 0.3 s"):
            client.request(Message(MessageType.mask))
        assert time.monotonic() - start < 3
    assert NetworkConnection("127.0.0.1", 1).request_timeout == 120.0


def test_large_frames_go_out_in_bounded_calls_and_arrive_whole(monkeypatch):
    # tensors that straddle the 4 MiB call boundary in every way, and a small one between them
    rng = numpy.random.default_rng(5)
    tensors = {"a": rng.integers(0, 255, (3 << 20) + 7, dtype=numpy.uint8),
               "b": rng.integers(0, 255, 1, dtype=numpy.uint8),
               "c": rng.integers(0, 255, (9 << 20) + 64, dtype=numpy.uint8)}
    message = Message(MessageType.KV_cache, tensors)
    calls = []
    with serving(of_requests(lambda request: request), tensors="numpy") as server, \
            NetworkConnection("127.0.0.1", server.port, tensors="numpy") as connection:
        real = connection._sock

        class Counting:
            def __getattr__(self, name):
                return getattr(real, name)

            def sendmsg(self, buffers):
                calls.append(sum(len(memoryview(b).cast("B")) for b in buffers))
                return real.sendmsg(buffers)

            def send(self, data):
                calls.append(len(memoryview(data).cast("B")))
                return real.send(data)

        monkeypatch.setattr(connection, "_sock", Counting())
        reply = connection.request(message)
    assert Message(reply.type, reply.tensors) == Message(message.type, message.tensors)
    assert max(calls) <= 4 << 20 and sum(calls) >= (12 << 20) + 71

