"""Puts the package (python/) and the tests' helpers on sys.path, so the suite runs from a checkout without
installing anything: PYTHONPATH=python python3 -m pytest python/tests"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for path in (os.path.dirname(HERE), HERE):
    if path not in sys.path:
        sys.path.insert(0, path)


def pytest_configure(config):
    """CI installs PyTorch and crc32c: there, tests that need them must run, not skip."""
    import importlib.util
    if os.environ.get("CI"):
        missing = [name for name in ("torch", "crc32c") if importlib.util.find_spec(name) is None]
        if missing:
            raise RuntimeError("CI must run the Python tests with %s installed (apt-get install %s)"
                               % (", ".join(missing), " ".join("python3-" + m for m in missing)))
