#!/usr/bin/env bash
# Interop tests with Debian's headless Chromium (playwright-core driving /usr/bin/chromium; no browser download):
# the web viewer against `peerdesk share` hosts through the signaling server process. Needs the workspace's
# binaries (cargo build --profile ci --workspace --bins), Node.js, and scripts/setup.sh's chromium, Xvfb, xdotool.
set -euo pipefail
cd "$(dirname "$0")"
# package-lock.json is committed: every machine installs exactly the same playwright-core.
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi
# A hung test fails after 4 minutes instead of holding the whole run.
node --test --test-concurrency=1 --test-timeout=240000 "$@"
