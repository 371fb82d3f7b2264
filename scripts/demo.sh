#!/usr/bin/env bash
# Runs the main demo (`peerdesk demo`), building it first; extra arguments go to the demo
# (e.g. `scripts/demo.sh --seconds 20 --backend rav1e`). Installs what it needs first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release -p peerdesk-cli
exec target/release/peerdesk demo "$@"
