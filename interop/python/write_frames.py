"""Writes frames for Java to decode into DIR: every message type and dtype, JSON and MessagePack envelopes,
every other frame with a CRC32C trailer.

usage: python3 write_frames.py DIR
"""

import os
import sys

from interop_values import expected_messages
from netutils_frame import encode_frame


def main(directory):
    written = 0
    for serializer in ("json", "msgpack"):
        for stem, msg_type, tensors in expected_messages():
            frame = encode_frame(msg_type, tensors, meta={"writer": "python"}, id=stem, serializer=serializer,
                                 checksum=written % 2 == 1)
            with open(os.path.join(directory, "%s_%s.frame" % (serializer, stem)), "wb") as f:
                f.write(frame)
            written += 1
    print("python wrote %d frames" % written)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
