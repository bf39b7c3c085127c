"""Decodes the frames Java wrote into DIR and checks every type, dtype, shape and value.

usage: python3 check_frames.py DIR     (exit 0 when all match; prints the mismatches otherwise)
"""

import os
import sys

import numpy

from interop_values import expected_messages
from netutils_frame import decode_frame


def main(directory):
    checked, problems = 0, []
    for serializer in ("json", "msgpack"):
        for stem, msg_type, tensors in expected_messages():
            path = os.path.join(directory, "%s_%s.frame" % (serializer, stem))
            with open(path, "rb") as f:
                message = decode_frame(f.read())
            if message["serializer"] != serializer:
                problems.append("%s: serializer %s" % (path, message["serializer"]))
            if message["type"] != msg_type or message["id"] != stem:
                problems.append("%s: type/id %s/%s" % (path, message["type"], message["id"]))
            if list(message["tensors"]) != list(tensors):
                problems.append("%s: tensor names %s" % (path, list(message["tensors"])))
                continue
            for name, (dtype, expected) in tensors.items():
                got_dtype, got = message["tensors"][name]
                if got_dtype != dtype or got.shape != expected.shape or got.dtype != expected.dtype \
                        or not numpy.array_equal(got, expected):
                    problems.append("%s: tensor %s differs: %s %s %r" % (path, name, got_dtype, got.shape, got[:3]))
            checked += 1
    for problem in problems:
        print(problem)
    print("python checked %d frames written by Java, %d problems" % (checked, len(problems)))
    return 0 if not problems and checked > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
