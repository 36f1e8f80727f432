#!/usr/bin/env bash
# WebSocket protocol conformance: Autobahn|Testsuite cases 1-10 (kosoku, from PyPI, in a
# virtualenv under target/) against `sockpit serve`'s echo endpoint.
#   scripts/conformance.sh path/to/sockpit [--update]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/conformance-venv
if ! "$venv/bin/python" -c "import kosoku" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kosoku==0.1.0
fi
exec "$venv/bin/python" tests/conformance/run.py "$@"
