"""Decodes the frames and JSON texts Java wrote into DIR with the netutils package and checks every type,
dtype, shape and value; each JSON text must also be written back by Python byte for byte.

usage: PYTHONPATH=python python3 check_frames.py DIR     (exit 0 when all match; prints the mismatches otherwise)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from netutils import Message  # noqa: E402
from values import expected_messages  # noqa: E402

SERIALIZER_IDS = {"json": 1, "msgpack": 2}


def main(directory):
    checked, texts, problems = 0, 0, []
    for serializer in ("json", "msgpack"):
        for stem, msg_type, tensors in expected_messages():
            path = os.path.join(directory, "%s_%s.frame" % (serializer, stem))
            with open(path, "rb") as f:
                raw = f.read()
            if raw[3] != SERIALIZER_IDS[serializer]:
                problems.append("%s: serializer id %d" % (path, raw[3]))
            message = Message.from_raw_message(raw, tensors="numpy")
            expected = Message(msg_type, tensors, id=stem)
            if message != expected:
                problems.append("%s: got %r, expected %r" % (path, message, expected))
            checked += 1
    for stem, msg_type, tensors in expected_messages():
        path = os.path.join(directory, "%s.json" % stem)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        message = Message.from_json(text, tensors="numpy")
        expected = Message(msg_type, tensors, id=stem, meta={"writer": "java"})
        if message != expected:
            problems.append("%s: got %r, expected %r" % (path, message, expected))
        if message.to_json() != text:
            problems.append("%s: Python writes it back as\n%s\nnot\n%s" % (path, message.to_json(), text))
        texts += 1
    for problem in problems:
        print(problem)
    print("python checked %d frames and %d JSON texts written by Java, %d problems" % (checked, texts, len(problems)))
    return 0 if not problems and checked > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
