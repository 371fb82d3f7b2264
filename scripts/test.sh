#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, the Rust unit, integration and doc tests (X11 capture under
# a private Xvfb included). Installs what it needs first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# Tests that need Xvfb fail instead of skipping when it is missing.
export PEERDESK_REQUIRE_XVFB=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --profile ci --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --profile ci --workspace
