#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (everything peerdesk reads from the network: signaling JSON through the
# server's hub, control messages through the host's permission gate, the viewer's RTP → AV1 receive path, and
# dav1d behind the decoder) on their corpora in fuzz/corpus/, with AddressSanitizer.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     # default: 20 s each, every target
#
# Needs a nightly toolchain (rustup) and cargo-fuzz (installed here from crates.io when missing). New inputs
# that reach new code are kept in the corpus; a crash leaves its input in fuzz/artifacts/TARGET/ and fails the
# run: turn it into a regression test. With $JUNIT_FILE set, writes one JUnit test case per target.
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
# shellcheck source=junit.sh
. scripts/junit.sh
seconds="${1:-20}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(signaling_json control_message rtp_av1 av1_decode)
junit_begin "${JUNIT_FILE:-/dev/null}" fuzz
trap junit_end EXIT
failed=0

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    for t in "${targets[@]}"; do junit_case "fuzz $t" skip "no nightly toolchain (rustup toolchain install nightly)"; done
    exit 0
fi
if ! command -v cargo-fuzz >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo-fuzz" ]; then
    echo "[fuzz] installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked -q || { junit_case "install cargo-fuzz" fail "cargo install cargo-fuzz failed"; exit 1; }
fi
export PATH="$HOME/.cargo/bin:$PATH"
cd fuzz
if ! cargo +nightly fuzz build -O >/dev/null 2>"$root/target/fuzz-build.log"; then
    tail -30 "$root/target/fuzz-build.log" >&2
    for t in "${targets[@]}"; do junit_case "fuzz $t" fail "the fuzz targets did not build"; done
    exit 1
fi
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log="$root/target/fuzz-$t.log"
    if cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
        runs="$(awk '/stat::number_of_executed_units/ {print $NF}' "$log" | tail -1)"
        junit_case "fuzz $t" pass "${runs:-?} executions in ${seconds} s, no crash"
    else
        grep -E "ERROR|panicked|SUMMARY" "$log" | head -5 >&2
        junit_case "fuzz $t" fail "crash; input saved in fuzz/artifacts/$t/ (log: $log)"
        failed=1
    fi
done
exit "$failed"
