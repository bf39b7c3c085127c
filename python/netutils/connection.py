"""TCP connections and servers: the original module's ``NetworkConnection``, ``create_server`` and
``accept_connection``, with the timeouts, limits and error frames of Java's TcpClient / TcpServer.

Sockets are blocking with kernel-side timeouts per direction (SO_RCVTIMEO, SO_SNDTIMEO): a timeout means "no
progress for this long" (as in Java), one thread may receive while another sends, each with its own timeout,
and no call waits in poll() first.
"""

import collections
import copy
import errno
import itertools
import logging
import math
import struct
import socket
import threading
import time

from . import dtypes, envelope, frames
from .errors import ConnectionClosedError, Kind, NetutilsError, NetworkTimeout, ProtocolError, RemoteError
from .message import Message, MessageType, mend_unicode

# Keepalive control messages (docs/PROTOCOL.md): a _ping is answered with a _pong by the transport itself.
_PING = MessageType("_ping")
_PONG = MessageType("_pong")

_log = logging.getLogger("netutils")

#: iovec entries per sendmsg call: Linux refuses more than IOV_MAX (1024)
_IOV_MAX = 1024
#: frames up to this size are joined into one buffer and sent with one call; larger ones go out with
#: sendmsg straight from tensor memory
_JOIN_LIMIT = 64 * 1024
#: bytes per sendmsg call at most
_WRITE_CALL = 4 * 1024 * 1024
#: the receive buffer: a small frame arrives with one recv; larger tensors are read straight into their arrays
_RECV_BUFFER = 256 * 1024


#: how many ids of calls that stopped waiting are remembered, so that their late answers are dropped
_MAX_EXPIRED = 4096


class _Call:
    """One request waiting for its answer; written under the connection's _state."""

    __slots__ = ("id", "done", "reply", "error", "plain_sends_before")

    def __init__(self, call_id):
        self.id = call_id
        # send_data() messages sent between the previous call in _send_order and this one whose answers an in-order
        # peer still owes (under _state)
        self.plain_sends_before = 0
        self.done = False
        self.reply = None
        self.error = None

    def answer(self, message):
        self.reply, self.done = message, True

    def fail(self, error):
        self.error, self.done = error, True

    def result(self):
        if self.error is not None:
            raise self.error
        return self.reply


def _remote_error(message):
    return RemoteError(message.meta.get("code", "UNKNOWN"), message.meta.get("detail", "(no detail)"))


def _copied(message):
    """A message whose tensors no longer live in a receive_data caller's buffer (a call must not get memory that
    the caller will reuse)."""
    def copy(value):
        if hasattr(value, "clone"):  # torch
            return value.clone()
        if isinstance(value, dtypes.RawTensor):
            return dtypes.RawTensor(value.dtype, value.bits.copy())
        return value.copy()  # numpy
    tensors = {name: copy(value) for name, value in message.tensors.items()}
    return Message(message.type, tensors, meta=dict(message.meta), id=message.id, reply_to=message.reply_to)


class _Stalled(Exception):
    """Internal: a socket call made no progress within its timeout."""


def _set_timeout(sock, option, seconds):
    """A kernel-side timeout for one direction (SO_RCVTIMEO / SO_SNDTIMEO); None waits forever, 0 one microsecond."""
    if seconds is None:
        whole, micros = 0, 0
    else:
        micros_total = max(1, math.ceil(seconds * 1_000_000))  # 0 would mean forever
        whole, micros = divmod(micros_total, 1_000_000)
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("@ll", whole, micros))


class _SocketSource:
    """The receive side: a frame source over a blocking socket, buffered for small frames only.

    Large pieces (a tensor, or a checksum slice) are read straight into their destination with one
    ``recv_into(..., MSG_WAITALL)``, the way Java's readFully reads: one system call per piece however it
    arrives, not one per segment. A call that gets nothing for ``read_timeout`` fails with EAGAIN
    (SO_RCVTIMEO), which is the "no progress" timeout.
    """

    def __init__(self, sock, read_timeout, min_transfer_rate=0):
        self.sock = sock
        self.read_timeout = read_timeout
        self.buffer = bytearray(_RECV_BUFFER)
        self.view = memoryview(self.buffer)
        self.start = 0
        self.end = 0
        # The minimum rate of a whole frame, from its first byte (as Java's watchdog): a peer trickling a byte now
        # and then never trips the read timeout, but is cut once its frame is older than the grace period (the
        # read timeout, or 10 s without one) and has arrived slower than this on average.
        self.min_transfer_rate = min_transfer_rate
        self.rate_grace = read_timeout if read_timeout is not None else 10.0
        self.frame_started = None
        self.frame_bytes = 0

    def _recv_into(self, view, flags=0):
        try:
            return self.sock.recv_into(view, 0, flags)
        except BlockingIOError:  # EAGAIN: SO_RCVTIMEO passed without a byte
            raise _Stalled() from None

    def wait(self, timeout):
        """Waits until a frame's first byte is here. True when it is, False if ``timeout`` passed, None at a
        clean end of stream."""
        if self.end > self.start:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        shortened = tried = False
        try:
            while True:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 and tried:
                        return False
                    # The socket already gives up after read_timeout and the loop then looks at the deadline:
                    # only a shorter wait needs a timeout of its own (two system calls saved on every call with
                    # the default timeouts). A spent timeout still looks once (1 us): a frame may be waiting.
                    if self.read_timeout is None or remaining < self.read_timeout:
                        _set_timeout(self.sock, socket.SO_RCVTIMEO, max(remaining, 0))
                        shortened = True
                tried = True
                try:
                    count = self._recv_into(self.view)
                    break
                except _Stalled:
                    pass  # the deadline, or read_timeout between frames (fine: wait on)
        finally:
            if shortened:
                _set_timeout(self.sock, socket.SO_RCVTIMEO, self.read_timeout)
        if count == 0:
            return None
        self.start, self.end = 0, count
        return True

    def begin_frame(self):
        """The next frame's first byte is here: from now on its bytes count against the minimum rate."""
        self.frame_started = time.monotonic()
        self.frame_bytes = self.end - self.start

    def end_frame(self):
        self.frame_started = None

    def read_into(self, destination):
        wanted = len(destination)
        got = min(self.end - self.start, wanted)
        if got:
            destination[:got] = self.view[self.start:self.start + got]
            self.start += got
        while got < wanted:
            remaining = wanted - got
            if remaining >= len(self.buffer) // 2:
                # a large piece: straight into the destination, no copy through the buffer
                count = self._recv(destination[got:], socket.MSG_WAITALL)
                if count == 0:
                    return got
                got += count
            else:
                count = self._recv(self.view)
                if count == 0:
                    return got
                take = min(count, remaining)
                destination[got:got + take] = self.view[:take]
                self.start, self.end = take, count
                got += take
        return got

    def _recv(self, view, flags=0):
        try:
            count = self._recv_into(view, flags)
        except _Stalled:
            raise NetworkTimeout("read timed out: no progress for %s s" % _seconds(self.read_timeout)) from None
        if self.frame_started is not None and self.min_transfer_rate:
            self.frame_bytes += count
            age = time.monotonic() - self.frame_started
            if age > self.rate_grace and self.frame_bytes < self.min_transfer_rate * age:
                raise NetworkTimeout("frame arrived too slowly: {:,} bytes in {:.1f} s ({:,.0f} bytes/s), under the "
                                     "minimum of {:,} bytes/s".format(self.frame_bytes, age, self.frame_bytes / age,
                                                                     self.min_transfer_rate))
        return count

    def start_frame(self, header):
        # wait() has put the first byte in the buffer
        got = self.read_into(header)
        if got < len(header):
            raise frames.truncated("the frame header", got, len(header))
        return True


def _seconds(value):
    return ("%g" % value) if value is not None else "none"


def _check_timeout(name, value):
    if value is not None and (not isinstance(value, (int, float)) or value <= 0):
        raise ValueError("%s must be a positive number of seconds or None, got %r" % (name, value))
    return value


class NetworkConnection:
    """A connection to a netutils peer (Java or Python): the original module's ``NetworkConnection``.

    ``NetworkConnection(host, port)`` then ``connect()`` (or use it in a ``with`` block, which connects);
    ``send_data(message)``, ``receive_data()``, ``request(message)``, ``close()``.

    Options (keyword arguments, defaults as Java's TcpOptions):
      serializer: envelope format of sent frames, ``"json"`` (default for clients) or ``"msgpack"``; ``None``
        answers in the serializer of the last frame received (what accepted connections do).
      checksum: append a CRC32C to every sent frame (received ones are always checked when flagged).
      connect_timeout (10 s), read_timeout (30 s: how long a frame that has begun may stall), write_timeout
        (30 s: how long a send may make no progress), idle_timeout (None: how long ``receive_data()`` waits
        for a frame to begin before closing; 5 min on a server's connections); seconds, or None for no limit.
      request_timeout (2 min): how long ``request()`` waits for its answer when not given a timeout; None waits
        forever.
      min_transfer_rate (64 KiB/s): the slowest average, in bytes per second, a frame may arrive at once it is
        older than the read timeout (a peer trickling a byte now and then cannot hold the connection); 0: none.
      max_frame_bytes (1 GiB, at most 4,294,967,295), max_envelope_bytes (16 MiB): larger frames are refused
        from their header.
      tensors: what received tensors are. ``"torch"``: torch tensors (sharing the received memory; F8 as
        RawTensor on PyTorch before 2.1). ``"numpy"``: numpy arrays, and RawTensor (bit patterns) for BF16 and
        F8, which numpy lacks. ``"auto"`` (default): ``"torch"`` if the program has imported torch when the
        connection is made, else numpy arrays with BF16 as torch.bfloat16 when PyTorch is importable (else
        RawTensor).
    """

    def __init__(self, host="127.0.0.1", port=5000, *, serializer="json", checksum=False, connect_timeout=10.0,
                 read_timeout=30.0, write_timeout=30.0, idle_timeout=None, request_timeout=120.0,
                 min_transfer_rate=64 * 1024,
                 max_frame_bytes=frames.DEFAULT_MAX_FRAME_BYTES, max_envelope_bytes=frames.DEFAULT_MAX_ENVELOPE_BYTES,
                 tensors="auto"):
        self.host = host
        self.port = port
        if serializer is not None:
            envelope.serializer_id(serializer)
        self.serializer = serializer
        self.checksum = bool(checksum)
        self.connect_timeout = _check_timeout("connect_timeout", connect_timeout)
        self.read_timeout = _check_timeout("read_timeout", read_timeout)
        self.write_timeout = _check_timeout("write_timeout", write_timeout)
        self.idle_timeout = _check_timeout("idle_timeout", idle_timeout)
        self.request_timeout = _check_timeout("request_timeout", request_timeout)
        if not isinstance(min_transfer_rate, int) or isinstance(min_transfer_rate, bool) or min_transfer_rate < 0:
            raise ValueError("min_transfer_rate must be a non-negative number of bytes per second (0: no minimum), "
                             "got %r" % (min_transfer_rate,))
        self.min_transfer_rate = min_transfer_rate
        if not 0 <= max_frame_bytes <= frames.MAX_BODY_LENGTH:
            raise ValueError("max_frame_bytes must be 0..%d, got %d" % (frames.MAX_BODY_LENGTH, max_frame_bytes))
        if max_envelope_bytes < 0:
            raise ValueError("max_envelope_bytes must not be negative")
        self.max_frame_bytes = max_frame_bytes
        self.max_envelope_bytes = max_envelope_bytes
        self.tensors = dtypes.check_tensors_choice(tensors)
        self._tensors = dtypes.resolve_tensors_choice(self.tensors)
        self.peer = None
        self._sock = None
        self._source = None
        self._send_lock = threading.Lock()
        self._receive_lock = threading.Lock()
        # Calls and whoever reads. One thread at a time reads (the reader); it hands each message to the call it
        # answers, or to receive_data through the inbox, and wakes the others; guarded by _state.
        self._state = threading.Condition()
        self._reader_busy = False
        self._calls = {}  # id -> _Call still waiting
        self._send_order = collections.deque()  # calls in the order sent, while the peer answers in order
        # send_data() messages after the newest call in _send_order (all, when none) whose answers an in-order peer
        # still owes: it answers them before any later call (as Java's AbstractConnection)
        self._plain_sends_after_last_call = 0
        self._expired = collections.OrderedDict()  # ids of calls that stopped waiting: their answers are dropped
        self._late_replies = 0
        self._fatal = None  # the error that ended the connection, for every waiter
        self._order_lock = threading.Lock()  # sending and recording the order are one step for in-order peers
        self._inbox = collections.deque()  # messages that answer no call, for receive_data
        self._next_call = itertools.count(1)
        # Until the peer sets reply_to once, it is taken to answer in order (the original module never sets it).
        self._peer_correlates = False
        self._closed = False
        self._last_serializer = None
        # For a full server choosing whom to evict: when the last frame ended, and whether a frame's body is being
        # read (a frame whose header has not all arrived is not work in progress).
        self._last_frame_end = time.monotonic()
        self._reading_body = False

    # ------------------------------------------------------------ life cycle

    def connect(self):
        """Connects to ``host:port``; OSError naming the address when nothing answers. Returns self."""
        if self._sock is not None:
            raise RuntimeError("already connected to %s" % self.peer)
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as e:
            text = "cannot connect to a netutils peer at %s:%s: %s" % (self.host, self.port, e.strerror or e)
            # OSError(errno, text) is the errno's own subclass again (ConnectionRefusedError, ...)
            raise (OSError(e.errno, text) if e.errno else TimeoutError(text)) from e
        self._attach(sock)
        return self

    def _attach(self, sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        # blocking, with the kernel's per-direction timeouts: no poll() before each call, and one thread may
        # receive while another sends, each with its own timeout
        sock.settimeout(None)
        _set_timeout(sock, socket.SO_RCVTIMEO, self.read_timeout)
        _set_timeout(sock, socket.SO_SNDTIMEO, self.write_timeout)
        self._sock = sock
        try:
            address = sock.getpeername()
            self.peer = "%s:%s" % (address[0], address[1])
            self._peer_host = address[0]
        except OSError:
            self.peer = "%s:%s" % (self.host, self.port)
            self._peer_host = self.host
        self._source = _SocketSource(sock, self.read_timeout, self.min_transfer_rate)
        self._last_frame_end = time.monotonic()

    def close(self):
        """Closes the connection; idempotent."""
        if self._closed:
            return
        self._closed = True
        sock = self._sock
        if sock is not None:
            if self._receive_lock.locked() or self._send_lock.locked():
                # another thread is blocked in a call on this socket, which a close alone does not wake. Only then:
                # a shutdown would also end the connection for a child process that inherited the socket
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            try:
                sock.close()
            except OSError:
                pass

    @property
    def is_open(self):
        return self._sock is not None and not self._closed

    def __enter__(self):
        if self._sock is None:
            self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "NetworkConnection[%s%s]" % (self.peer or "%s:%s" % (self.host, self.port),
                                            "" if self.is_open else ", closed")

    def _ensure_open(self):
        if self._sock is None:
            raise ConnectionClosedError("not connected: call connect() first (or use the connection in a with block)")
        if self._closed:
            raise ConnectionClosedError("connection to %s is closed" % self.peer)

    # ------------------------------------------------------------ sending

    def send_data(self, message):
        """Sends one message as one frame, tensor bytes straight from the tensors' memory.

        A message too large for a frame raises FrameTooLargeError before anything is sent; a peer that takes
        nothing for ``write_timeout`` raises NetworkTimeout and closes the connection.
        """
        if self._peer_correlates:
            self._send_frame(message)
        else:
            # A peer that answers in order (the original module) answers this message too, before any call made
            # after it: that answer is for receive_data, not for the next call.
            self._send_in_order(message, None)

    send = send_data

    def _send_in_order(self, message, call):
        """Sends to a peer that answers in order, taking the message's place in that order first: ``call``'s place
        in _send_order, or, for a plain send (None), one more answer owed before the next call. The place is taken
        before the write (a reader may find the answer at once), one sender at a time, so places follow the order
        of writing; a message refused before anything went (too large, say) gives its place back before another
        sender takes one (as Java's AbstractConnection.sendInOrder)."""
        with self._order_lock:
            with self._state:
                if call is None:
                    self._plain_sends_after_last_call += 1
                else:
                    call.plain_sends_before = self._plain_sends_after_last_call
                    self._plain_sends_after_last_call = 0
                    self._send_order.append(call)
            try:
                self._send_frame(message)
            except BaseException:
                with self._state:
                    if call is None:
                        self._plain_sends_after_last_call = max(0, self._plain_sends_after_last_call - 1)
                    elif self._send_order and self._send_order[-1] is call:
                        self._send_order.pop()
                        self._plain_sends_after_last_call += call.plain_sends_before
                raise

    def _send_frame(self, message):
        """Writes ``message`` as one frame (send_data without counting what an in-order peer owes)."""
        serializer = self.serializer
        if serializer is None:
            serializer = envelope.NAMES.get(self._last_serializer, "json")
        frame = frames.encode(message, serializer, self.checksum)  # refuses bad input before any I/O
        with self._send_lock:
            self._ensure_open()
            try:
                self._write(frame)
            except BaseException as e:
                cut_off = isinstance(e, (ConnectionResetError, BrokenPipeError))
                last_word = self._peers_last_word() if cut_off else None
                if last_word is not None:
                    with self._state:  # every waiter learns the peer's reason, not just this sender
                        if self._fatal is None:
                            self._fatal = last_word
                        self._state.notify_all()
                self.close()
                if isinstance(e, _Stalled):
                    raise NetworkTimeout("write timed out: no progress for %s s (sending %s, peer %s)"
                                         % (_seconds(self.write_timeout), message.type, self.peer)) from None
                if last_word is not None:
                    raise last_word from e
                if cut_off:
                    raise ConnectionClosedError("peer %s closed the connection while %s was being sent (%s)"
                                                % (self.peer, message.type, e)) from e
                raise

    def _peers_last_word(self):
        """After a write the peer cut off: the RemoteError of the ``error`` message it sent before it closed, or
        None. A receiver refuses a frame over its limit at the header and closes while the body is still being
        written: its reason is already here, ahead of the reset (the kernel keeps what arrived before it). Messages
        read on the way go where they belong. Never waits; leaves it to the reader when another thread reads."""
        with self._state:
            if self._reader_busy:
                return None
            self._reader_busy = True
        try:
            for _ in range(8):
                # without telling the peer about a bad frame: this thread holds the send locks (and the peer is gone)
                message = self._read_one(0, None, tell_peer=False)
                if message is None:
                    return None
                if message.type == MessageType.error and message.reply_to is None:
                    return _remote_error(message)
                if message.type not in (_PING, _PONG):
                    with self._state:
                        self._route(message, False)
        except (NetutilsError, OSError):
            return None
        finally:
            with self._state:
                self._reader_busy = False
                self._state.notify_all()
        return None

    def _write(self, frame):
        buffers = frame.buffers()
        if frame.length <= _JOIN_LIMIT:
            buffers = [b"".join(buffers)]  # one small copy beats one system call per piece
        else:
            buffers = [memoryview(b).cast("B") if not isinstance(b, memoryview) else b for b in buffers]
        sock = self._sock
        index = 0
        while index < len(buffers):
            # calls of at most _WRITE_CALL bytes: one sendmsg of a whole large tensor moves it slower (as Java's
            # client, which writes 4 MiB calls)
            batch, room = [], _WRITE_CALL
            for buffer in buffers[index:index + _IOV_MAX]:
                batch.append(buffer if len(buffer) <= room else buffer[:room])
                room -= len(batch[-1])
                if not room:
                    break
            try:
                # a blocking sendmsg queues everything it is given unless SO_SNDTIMEO passes without progress
                sent = sock.sendmsg(batch) if len(batch) > 1 else sock.send(batch[0])
            except BlockingIOError:  # EAGAIN: nothing went out for write_timeout
                raise _Stalled() from None
            # drop the buffers sent whole; keep the rest of a partly sent one
            while sent:
                first = buffers[index]
                if sent >= len(first):
                    sent -= len(first)
                    index += 1
                else:
                    buffers[index] = memoryview(first)[sent:]
                    sent = 0

    # ------------------------------------------------------------ receiving

    def receive_data(self, timeout=None, buffer=None):
        """The next message from the peer.

        ``buffer``: a writable bytes-like object (a bytearray, a numpy uint8 array) to receive the tensors into,
        one after the other at 64-byte boundaries, instead of fresh memory: the returned tensors are views of it,
        valid until the buffer is reused. For large messages received again and again this avoids the kernel
        faulting in and zeroing fresh pages for every message, which costs more than the copy itself.

        With ``timeout`` (seconds), returns None if no frame began within it (the connection stays usable);
        without, waits for ``idle_timeout`` (forever by default). Raises ConnectionClosedError when the peer
        closed between messages, ProtocolError for a malformed frame (the peer is sent an ``error`` message and
        the connection closes), RemoteError when the peer sent an ``error`` message (one that answers a request
        leaves the connection open; one that answers nothing is the peer's last word, and the connection
        closes), NetworkTimeout when a frame stalls for ``read_timeout``. Keepalive pings (``_ping``) are
        answered here and never returned.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._state:
                while True:
                    if self._inbox:
                        return self._raise_if_error(self._inbox.popleft())
                    if self._fatal is not None:
                        raise self._fatal
                    if not self._reader_busy:
                        self._reader_busy = True
                        break
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return None
                    self._state.wait(remaining)
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._read_and_route(remaining, buffer) is None and deadline is not None \
                    and time.monotonic() >= deadline:
                with self._state:
                    if self._inbox:
                        return self._raise_if_error(self._inbox.popleft())
                return None

    def _raise_if_error(self, message):
        if message.type == MessageType.error:
            if message.reply_to is None:
                self.close()
            raise _remote_error(message)
        return message

    def _read_and_route(self, timeout, buffer):
        """As the reader (``_reader_busy`` taken): reads one message and hands it to whoever it belongs to; gives
        the reader's place back and wakes every waiter. Returns the message, or None if none began in time."""
        try:
            message = self._read_one(timeout, buffer)
        except BaseException as e:
            with self._state:
                self._reader_busy = False
                if not self.is_open and self._fatal is None and isinstance(e, (NetutilsError, OSError)):
                    # The connection is gone: every call waiting on it learns why. A new exception, so that the
                    # failed read's frames (and a tensor it was filling) are not kept alive by this connection.
                    self._fatal = ConnectionClosedError(str(e) if isinstance(e, ConnectionClosedError) else
                                                        "connection to %s failed while receiving: %s" % (self.peer, e))
                self._state.notify_all()
            raise
        try:
            if message is not None and message.type == _PING:
                self._send_frame(Message(_PONG, reply_to=message.id))
        finally:
            with self._state:
                self._reader_busy = False
                if message is not None and message.type not in (_PING, _PONG):
                    self._route(message, buffer is not None)
                self._state.notify_all()
        return message

    def _owes_a_call(self):
        """Under _state, for a peer that answers in order and a message without reply_to: whether that message
        answers the oldest call sent. False when no call waits, or when the peer still owes answers to send_data()
        messages sent before that call: the message is one of those (counted off here), for receive_data."""
        oldest = self._send_order[0] if self._send_order else None
        if oldest is not None and oldest.plain_sends_before > 0:
            oldest.plain_sends_before -= 1
            return False
        if oldest is None:
            self._plain_sends_after_last_call = max(0, self._plain_sends_after_last_call - 1)
            return False
        return True

    def _route(self, message, in_callers_buffer):
        """Under _state: gives a message to the call it answers, drops a late answer, or queues it for
        receive_data (as Java's AbstractConnection.route)."""
        reply_to = message.reply_to
        is_error = message.type == MessageType.error
        if reply_to is None and not is_error and not self._peer_correlates and self._owes_a_call():
            # An in-order peer's next message answers the oldest call sent, even one that stopped waiting.
            oldest = self._send_order.popleft()
            if self._calls.get(oldest.id) is oldest:
                del self._calls[oldest.id]
                oldest.answer(_copied(message) if in_callers_buffer else message)
            else:
                self._expired.pop(oldest.id, None)
                self._late_replies += 1
            return
        if reply_to is not None and not self._peer_correlates:
            self._peer_correlates = True
            self._send_order.clear()
            self._plain_sends_after_last_call = 0
        if reply_to is not None:
            call = self._calls.pop(reply_to, None)
            if call is not None:
                if is_error:
                    call.fail(_remote_error(message))
                else:
                    call.answer(_copied(message) if in_callers_buffer else message)
                return
            if self._expired.pop(reply_to, None) is not None:
                self._late_replies += 1
                return
        if is_error and reply_to is None and self._calls:
            # the peer's last word before it closes: every waiting call learns it (and receive_data too)
            self._fatal = _remote_error(message)
            self.close()
        self._inbox.append(message)

    def _expire(self, call):
        """Under _state: a call stops waiting; an answer that comes later is dropped and counted."""
        if self._calls.get(call.id) is call:
            del self._calls[call.id]
            self._expired[call.id] = True
            while len(self._expired) > _MAX_EXPIRED:
                self._expired.popitem(last=False)

    @property
    def late_replies(self):
        """How many answers came after their call had stopped waiting, and were dropped (Java's lateReplies())."""
        with self._state:
            return self._late_replies

    def _read_one(self, timeout, buffer, tell_peer=True):
        """Reads one frame; None if none began within ``timeout`` (given) ."""
        with self._receive_lock:
            self._ensure_open()
            idle = timeout if timeout is not None else self.idle_timeout
            try:
                state = self._source.wait(idle)
            except OSError as e:
                self._fail_receiving(e)
            if state is False:
                if timeout is not None:
                    return None
                self.close()
                raise ConnectionClosedError("closed %s: no message for %s s (idle timeout)" % (self.peer, _seconds(idle)))
            if state is None:
                self.close()
                raise ConnectionClosedError("peer %s closed the connection" % self.peer)
            self._source.begin_frame()
            try:
                decoded = frames.read_frame(self._source, self.max_frame_bytes, self.max_envelope_bytes,
                                            self._tensors, buffer, self._header_read)
            except ProtocolError as e:
                if e.kind != Kind.TRUNCATED and tell_peer:
                    self._tell_peer(e)
                self.close()
                raise
            except OSError as e:
                self._fail_receiving(e)
            except BaseException:
                self.close()
                raise
            finally:
                self._source.end_frame()
                self._reading_body = False
                self._last_frame_end = time.monotonic()
            self._last_serializer = decoded.serializer_id
            return decoded.message

    def _header_read(self):
        self._reading_body = True

    def _idle_seconds(self):
        """How long since the last frame ended, or 0 while a frame's body is being read (what an evicting server
        asks, as Java's TcpConnection.idleNanos)."""
        return 0.0 if self._reading_body else time.monotonic() - self._last_frame_end

    receive = receive_data

    @property
    def last_serializer(self):
        """The envelope format ("json" or "msgpack") of the last frame received, None before any."""
        return envelope.NAMES.get(self._last_serializer)

    def _fail_receiving(self, error):
        """Closes after a failed read; a close from this side is reported as such, not as the OS error."""
        closed_here = self._closed
        self.close()
        try:
            if closed_here:
                raise ConnectionClosedError("connection to %s was closed while receiving" % self.peer) from error
            if isinstance(error, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
                # as Java says it: who went away, and what the system said (a ConnectionError either way)
                raise ConnectionClosedError("peer %s closed the connection (receiving: %s)"
                                            % (self.peer, error)) from error
            raise error
        finally:
            # The raised error's traceback holds this frame: without this, the frame's reference to the error
            # is a cycle that keeps every frame of the failed read alive, with the tensor it was filling
            # (hundreds of MiB for a peer reset in mid-message), until the cycle collector happens to run.
            error = None

    def _tell_peer(self, problem):
        """Best effort: the peer learns why it is being disconnected."""
        try:
            # not counted as a message an in-order peer answers: the connection closes after it
            self._send_frame(Message(MessageType.error, meta={"code": problem.kind.value,
                                                              "detail": mend_unicode(problem.args[0])}))
        except (OSError, ValueError, RuntimeError):
            pass  # the peer may be gone; the local exception says what happened

    def request(self, message, timeout=None):
        """A call, as Java's ``Connection.request``: gives ``message`` an id when it has none, sends it, and
        returns the message whose ``reply_to`` is that id. Messages that arrive meanwhile and answer something
        else wait for ``receive_data``. Until the peer has set ``reply_to`` once, a message without it answers the
        call (such a peer, like the original module, answers in order), as in Java. Safe from several threads at
        once: one of the waiting threads reads at a time and hands each answer to its own call. Raises
        NetworkTimeout when no answer came within ``timeout`` seconds (``request_timeout``, 2 min, when not given;
        an answer that comes later is dropped and counted in ``late_replies``), and RemoteError when the peer
        answered with an ``error`` message."""
        if message.id is None:
            # a copy with the id: the caller's message stays as it was (as in Java), so that one message can be
            # sent by several threads at once
            message = copy.copy(message)
            message.id = "py-%x-%d" % (id(self), next(self._next_call))
        if timeout is None:
            timeout = self.request_timeout
        call = _Call(message.id)
        with self._state:
            if message.id in self._calls:
                raise ValueError("a call with id %r is already outstanding on %s" % (message.id, self.peer))
            if self._fatal is not None:
                raise self._fatal
            self._calls[message.id] = call
        try:
            if self._peer_correlates:
                self._send_frame(message)
            else:
                self._send_in_order(message, call)  # an in-order peer answers in the order the calls were sent
        except BaseException:
            with self._state:
                self._calls.pop(message.id, None)
            raise
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._state:
                while True:
                    if call.done:
                        return call.result()
                    if self._fatal is not None:
                        self._calls.pop(call.id, None)
                        raise self._fatal
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        self._expire(call)
                        raise NetworkTimeout("no answer to %s %s within %s s"
                                             % (message.type, message.id, _seconds(timeout)))
                    if not self._reader_busy:
                        self._reader_busy = True
                        break
                    self._state.wait(remaining)
            try:
                self._read_and_route(remaining, None)
            except BaseException:
                with self._state:
                    self._calls.pop(call.id, None)
                    if call.done:  # answered just before the connection failed
                        return call.result()
                raise

    def __iter__(self):
        """Messages until the peer closes the connection."""
        while True:
            try:
                yield self.receive_data()
            except ConnectionClosedError:
                return


def of_requests(handler):
    """A connection handler that answers each message with ``handler(message)`` until the peer closes, as
    Java's ``ConnectionHandler.ofRequests``: the answer's ``reply_to`` is set to the request's id when the
    handler leaves it unset; ``None`` sends nothing; if the handler raises, the peer is sent an ``error``
    message with code ``HANDLER_FAILED`` answering the request, and the connection closes only when the
    request had no id (the peer could not tell which message failed)."""
    def handle(connection):
        for request in connection:
            try:
                reply = handler(request)
            except Exception as e:
                connection.send_data(Message(MessageType.error, reply_to=request.id, meta={
                    "code": "HANDLER_FAILED", "detail": mend_unicode(str(e)) or type(e).__name__}))
                if request.id is None:
                    raise  # the peer cannot tell which message failed: end the connection
                continue
            if reply is not None:
                if reply.reply_to is None and request.id is not None:
                    reply.reply_to = request.id
                connection.send_data(reply)
    handle.__name__ = getattr(handler, "__name__", "of_requests")
    return handle


#: How long ``Server.close()`` waits for the threads serving its connections, in seconds (the Java server's
#: ``shutdownGrace`` default).
CLOSE_GRACE = 5.0


#: A full server evicts a connection only if it has been idle at least this long (Java's TcpServer: 1 s).
EVICTABLE_IDLE = 1.0


class Server:
    """A listening socket: the original ``create_server`` result. ``accept_connection()`` takes one client;
    ``serve(handler)`` serves every client on its own thread (``handler(connection)``, connection closed when
    it returns), ``max_connections`` at once (1024), at most ``max_connections_per_address`` (256) from one
    address. When full, the connection idle the longest, at least a second, makes room for a newcomer (it is
    told ``SERVER_BUSY`` and closed); without one, and beyond the per-address limit, the newcomer is told
    ``SERVER_BUSY``. As Java's TcpServer.

    Accepted connections answer in the serializer of the request (``serializer=None``) unless given one, and are
    closed after 5 minutes without a message (``idle_timeout=300``); the other keyword options are those of
    NetworkConnection.
    """

    def __init__(self, host="127.0.0.1", port=0, *, backlog=128, max_connections=1024, max_connections_per_address=256,
                 **options):
        options.setdefault("serializer", None)
        options.setdefault("idle_timeout", 300.0)
        NetworkConnection(host, port, **options)  # checks the options now, not at the first client
        self._options = options
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if max_connections_per_address < 1:
            raise ValueError("max_connections_per_address must be at least 1")
        self.max_connections = max_connections
        self.max_connections_per_address = max_connections_per_address
        self._sock = socket.create_server((host, port), backlog=backlog, reuse_port=False)
        self.host, self.port = self._sock.getsockname()[:2]
        self._lock = threading.Lock()
        self._connections = set()
        self._threads = set()  # the threads serving or refusing a connection; guarded by _lock
        self._closed = threading.Event()
        self._thread = None

    def __repr__(self):
        return "Server[%s:%d%s]" % (self.host, self.port, ", closed" if self._closed.is_set() else "")

    def accept_connection(self):
        """Waits for the next client and returns its NetworkConnection."""
        while True:
            try:
                sock, _ = self._sock.accept()
            except OSError as e:
                if self._closed.is_set():
                    raise ConnectionClosedError("server on %s:%d is closed" % (self.host, self.port)) from None
                if e.errno in (errno.ECONNABORTED, errno.EINTR):
                    continue
                raise
            return self._wrap(sock)

    accept = accept_connection

    def _wrap(self, sock):
        connection = NetworkConnection(self.host, self.port, **self._options)
        connection._attach(sock)
        return connection

    def serve(self, handler):
        """Serves every client with ``handler(connection)`` on its own thread, in the background; returns self.
        A plain message handler (message -> answer) goes through :func:`of_requests` first."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("this server is already serving")
            self._thread = threading.Thread(target=self._accept_loop, args=(handler,), daemon=True,
                                            name="netutils-accept-%d" % self.port)
            self._thread.start()
        return self

    def serve_forever(self, handler):
        """``serve(handler)`` and wait until the server is closed (or KeyboardInterrupt)."""
        self.serve(handler)
        try:
            self._closed.wait()
        finally:
            self.close()

    def _accept_loop(self, handler):
        while not self._closed.is_set():
            try:
                connection = self.accept_connection()
            except ConnectionClosedError:
                return
            except OSError as e:  # e.g. out of file descriptors: pause rather than spin
                _log.warning("accept on %s:%d failed: %s", self.host, self.port, e)
                time.sleep(0.1)
                continue
            refusal, evicted = None, None
            with self._lock:
                host = connection._peer_host
                if sum(1 for c in self._connections if c._peer_host == host) >= self.max_connections_per_address:
                    refusal = "server on %s:%d already serves %d connections from %s; try again later" % (
                        self.host, self.port, self.max_connections_per_address, host)
                elif len(self._connections) >= self.max_connections:
                    evicted = self._idlest()
                    if evicted is None:
                        refusal = "server on %s:%d already serves %d connections; try again later" % (
                            self.host, self.port, self.max_connections)
                    else:
                        self._connections.discard(evicted)  # its slot goes to the newcomer
                if refusal is None:
                    self._connections.add(connection)
            if evicted is not None:
                why = "evicted: idle for %.1f s while the server on %s:%d is full" % (
                    evicted._idle_seconds(), self.host, self.port)
                _log.debug("closing %s: %s", evicted.peer, why)
                self._start(self._refuse, (evicted, why), "netutils-evict-%s" % evicted.peer)
            if refusal is not None:
                self._start(self._refuse, (connection, refusal), "netutils-refuse-%s" % connection.peer)
                continue
            self._start(self._run, (handler, connection), "netutils-%s" % connection.peer)

    def _idlest(self):
        """The connection idle the longest, if one has been idle at least EVICTABLE_IDLE; under _lock."""
        idlest, longest = None, EVICTABLE_IDLE
        for candidate in self._connections:
            idle = candidate._idle_seconds()
            if idle >= longest and candidate.is_open:
                idlest, longest = candidate, idle
        return idlest

    def _start(self, target, args, name):
        thread = threading.Thread(target=target, args=args, daemon=True, name=name)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _refuse(self, connection, why):
        try:
            connection.send_data(Message(MessageType.error, meta={"code": "SERVER_BUSY", "detail": why}))
        except (OSError, ValueError, RuntimeError):  # NetworkTimeout is an OSError (TimeoutError)
            pass  # turned away either way
        finally:
            connection.close()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _run(self, handler, connection):
        try:
            handler(connection)
        except (ConnectionClosedError, ProtocolError, RemoteError, NetworkTimeout, ConnectionError) as e:
            # the peer's doing: one line, no stack trace
            _log.info("connection %s ended: %s", connection.peer, e)
        except Exception:
            _log.exception("handler failed on connection %s", connection.peer)
        finally:
            connection.close()
            with self._lock:
                self._connections.discard(connection)
                self._threads.discard(threading.current_thread())

    @property
    def connection_count(self):
        with self._lock:
            return len(self._connections)

    def close(self):
        """Stops accepting, closes every connection being served, and waits for their handlers to return (at most
        ``CLOSE_GRACE`` seconds in all), so that nothing of the server still runs when ``close()`` returns. A
        handler thread still inside a native library when the interpreter exits can abort the process: the
        README's torch example did, about once in 40 runs on a busy machine, with "terminate called without an
        active exception"."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept()
        except OSError:
            pass
        self._sock.close()
        deadline = time.monotonic() + CLOSE_GRACE
        # The accept loop first: once it has ended, no connection or thread is added behind our back.
        self._join(self._thread, deadline)
        with self._lock:
            connections = list(self._connections)
            threads = list(self._threads)
        for connection in connections:
            connection.close()
        for thread in threads:
            self._join(thread, deadline)

    @staticmethod
    def _join(thread, deadline):
        if thread is not None and thread is not threading.current_thread():  # a handler may close its own server
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def create_server(host="127.0.0.1", port=5000, **options):
    """A listening Server on ``host:port`` (port 0 picks a free one; see ``server.port``)."""
    return Server(host, port, **options)


def accept_connection(server):
    """The next client of ``server`` as a NetworkConnection (the original module's function form)."""
    return server.accept_connection()
