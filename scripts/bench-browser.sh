#!/usr/bin/env bash
# The browser latency benchmark: glass-to-glass from an X11 screen under Xvfb to the web viewer in Chromium,
# peerdesk against Chromium's own screen share of the same display (benches/browser/latency.mjs). Builds the
# release binaries first; extra arguments go to the benchmark (e.g. `--seconds 20 --rounds 3`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release -p peerdesk-cli -p peerdesk-signaling-server -p peerdesk-benches --bins
if [ ! -d tests/web/node_modules/playwright-core ]; then
    (cd tests/web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --no-save)
fi
PEERDESK_BIN="$PWD/target/release" exec node benches/browser/latency.mjs "$@"
