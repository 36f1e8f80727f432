#!/usr/bin/env bash
# The virtualenv of the Django test fixture (tests/fixtures/django): Django, Channels,
# daphne, DRF and SimpleJWT from PyPI, in target/django-venv. Idempotent: a stamp file
# holds the sha256 of requirements.txt, so a second run does nothing.
#   scripts/django-venv.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/django-venv
req=tests/fixtures/django/requirements.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
rm -f "$stamp"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" >"$stamp"
