"""Writes frames and JSON texts for Java to decode into DIR with the netutils package: every message type and
dtype, JSON and MessagePack envelopes, every other frame with a CRC32C trailer.

usage: PYTHONPATH=python python3 write_frames.py DIR
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from netutils import Message  # noqa: E402
from values import expected_messages  # noqa: E402


def main(directory):
    written = 0
    for serializer in ("json", "msgpack"):
        for stem, msg_type, tensors in expected_messages():
            message = Message(msg_type, tensors, meta={"writer": "python"}, id=stem)
            with open(os.path.join(directory, "%s_%s.frame" % (serializer, stem)), "wb") as f:
                f.write(message.to_raw_message(serializer, checksum=written % 2 == 1))
            written += 1
    for stem, msg_type, tensors in expected_messages():
        with open(os.path.join(directory, "%s.json" % stem), "w", encoding="utf-8") as f:
            f.write(Message(msg_type, tensors, meta={"writer": "python"}, id=stem, reply_to="r-" + stem).to_json())
    print("python wrote %d frames and their JSON texts" % written)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
