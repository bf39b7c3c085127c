#!/usr/bin/env bash
# Runs the Python package's pytest suite (python/tests) against this checkout, with the first python3 that has
# numpy, msgpack and pytest: Debian's /usr/bin/python3 first, then python3 on the PATH. `./mvnw verify` runs
# this (netutils-examples, test phase); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
for candidate in /usr/bin/python3 python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import numpy, msgpack, pytest' >/dev/null 2>&1; then
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
    echo "pytest: $("$candidate" --version) from $(command -v "$candidate")"
    exec "$candidate" -m pytest -q -p no:cacheprovider -rs tests "$@"
  fi
done
missing="no python3 with numpy, msgpack and pytest (apt-get install python3-numpy python3-msgpack python3-pytest)"
if [ -n "${CI:-}" ]; then
  echo "pytest: $missing: CI must run the Python tests" >&2
  exit 1
fi
echo "pytest: $missing; the Python tests are skipped outside CI" >&2
