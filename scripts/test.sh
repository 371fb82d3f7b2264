#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, the Rust unit, integration, doc and end-to-end tests (a
# signaling server process, real WebRTC on loopback, X11 capture and XTest input under a private Xvfb).
# Installs what it needs first (scripts/setup.sh). Ends with one summary line: "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# Tests that need Xvfb fail instead of skipping when it is missing.
export PEERDESK_REQUIRE_XVFB=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --profile ci --workspace --all-targets -- -D warnings
echo "== cargo build (binaries the end-to-end tests start as processes)"
cargo build --profile ci --workspace --bins
echo "== cargo test"
status=0
cargo test --profile ci --workspace 2>&1 | tee "$log" || status=$?

read -r passed failed < <(awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
rust_passed=$passed
rust_failed=$failed

echo "== Python bindings (pytest)"
py_status=0
bindings/python/test.sh 2>&1 | tee "$log" || py_status=$?
read -r py_passed py_failed < <(awk '/ passed| failed/ { for (i = 1; i < NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
if [ "$py_status" -ne 0 ] && [ "$py_failed" -eq 0 ]; then py_failed=1; fi

echo "== Kotlin bindings (mvn test)"
kt_status=0
bindings/kotlin/test.sh || kt_status=$?
read -r kt_passed kt_failed < <(cat bindings/kotlin/target/surefire-reports/TEST-*.xml 2>/dev/null | awk '
    /<testsuite / { for (i = 1; i <= NF; i++) { if ($i ~ /^tests=/) { gsub(/[^0-9]/, "", $i); t += $i }
                                                 if ($i ~ /^(failures|errors)=/) { gsub(/[^0-9]/, "", $i); f += $i }
                                                 if ($i ~ /^skipped=/) { gsub(/[^0-9]/, "", $i); s += $i } } }
    END { print t - f - s, f + 0 }')
echo "Kotlin: ${kt_passed} passed, ${kt_failed} failed"
if [ "$kt_status" -ne 0 ] && [ "$kt_failed" -eq 0 ]; then kt_failed=1; fi

echo "== Browser interop (headless Chromium)"
web_status=0
tests/web/test.sh 2>&1 | tee "$log" || web_status=$?
read -r web_passed web_failed < <(awk '/^# pass / { p += $3 } /^# fail / { f += $3 } END { print p + 0, f + 0 }' "$log")
if [ "$web_status" -ne 0 ] && [ "$web_failed" -eq 0 ]; then web_failed=1; fi

echo "== Swift bindings"
sw_status=0
bindings/swift/test.sh || sw_status=$?

passed=$((rust_passed + py_passed + kt_passed + web_passed))
failed=$((rust_failed + py_failed + kt_failed + web_failed))
echo "tests: ${passed} passed, ${failed} failed"
if [ "$status" -ne 0 ]; then exit "$status"; fi
if [ "$py_status" -ne 0 ]; then exit "$py_status"; fi
if [ "$kt_status" -ne 0 ]; then exit "$kt_status"; fi
if [ "$web_status" -ne 0 ]; then exit "$web_status"; fi
if [ "$sw_status" -ne 0 ]; then exit "$sw_status"; fi
if [ "${passed}" -eq 0 ]; then echo "no test ran" >&2; exit 1; fi
