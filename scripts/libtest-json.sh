#!/usr/bin/env bash
# Runs a libtest harness with its JSON report allowed: `--format json` is unstable on a stable toolchain, and
# RUSTC_BOOTSTRAP=1 allows it at run time. Used only to run tests — as cargo's runner for test binaries and as
# RUSTDOC for doctests — never for compiling, so nothing is rebuilt because of it (cargo rebuilds everything when
# RUSTC_BOOTSTRAP changes between builds). scripts/test.sh:
#   RUSTDOC=scripts/libtest-json.sh cargo test --config "target.'cfg(all())'.runner='scripts/libtest-json.sh'" \
#       -- -Z unstable-options --format json
# As RUSTDOC (no program named first) it runs the toolchain's rustdoc.
case "${1:-}" in
    -* | "") set -- "$(rustup which rustdoc 2>/dev/null || command -v rustdoc)" "$@" ;;
esac
RUSTC_BOOTSTRAP=1 exec "$@"
