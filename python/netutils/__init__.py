"""netutils for Python: the original ``network_utils`` module's names, speaking the netutils wire format
(docs/PROTOCOL.md) with numpy arrays and PyTorch tensors, to Java or Python peers.

    from netutils import NetworkConnection, Message, MessageType
    with NetworkConnection("127.0.0.1", 5000) as connection:
        connection.send_data(Message(MessageType.hidden_state, torch.randn(1, 16, 4096, dtype=torch.bfloat16)))
        reply = connection.receive_data()
"""

from .connection import NetworkConnection, Server, accept_connection, create_server, of_requests
from .dtypes import RawTensor
from .errors import (ConnectionClosedError, FrameTooLargeError, Kind, NetutilsError, NetworkTimeout, ProtocolError,
                     RemoteError, printable)
from . import checksum
from .checksum import ChecksumUnavailableError
from .frames import MAX_BODY_LENGTH
from .message import Message, MessageType

__version__ = "0.1.0"

__all__ = [
    "NetworkConnection", "Server", "create_server", "accept_connection", "of_requests",
    "Message", "MessageType", "RawTensor",
    "NetutilsError", "ProtocolError", "Kind", "RemoteError", "ConnectionClosedError", "FrameTooLargeError",
    "NetworkTimeout", "ChecksumUnavailableError", "MAX_BODY_LENGTH", "printable",
]
