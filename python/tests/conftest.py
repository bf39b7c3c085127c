"""Puts the package (python/) and the tests' helpers on sys.path, so the suite runs from a checkout without
installing anything: PYTHONPATH=python python3 -m pytest python/tests"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for path in (os.path.dirname(HERE), HERE):
    if path not in sys.path:
        sys.path.insert(0, path)
