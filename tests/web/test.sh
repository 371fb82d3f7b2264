#!/usr/bin/env bash
# Interop tests with Debian's headless Chromium (playwright-core driving /usr/bin/chromium; no browser download):
# the web viewer against `peerdesk share` hosts through the signaling server process. Needs the workspace's
# binaries (cargo build --profile ci --workspace --bins), Node.js, and scripts/setup.sh's chromium, Xvfb, xdotool.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/playwright-core ]; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --no-save
fi
node --test --test-concurrency=1 "$@"
