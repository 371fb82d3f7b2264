#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, the Rust unit, integration, doc and end-to-end tests (a
# signaling server process, real WebRTC on loopback, X11 capture and XTest input under a private Xvfb), the
# Python, Kotlin and Swift bindings, browser interop in headless Chromium, and the system tests (setup.sh on a
# fresh Debian 12 root, a session in a network namespace with only loopback, sessions with 5 % media loss), and a
# short fuzzing run.
# Installs what it needs first (scripts/setup.sh). Every suite runs even when an earlier one failed; each writes
# a machine-readable report to target/test-results (libtest JSON, JUnit XML) and the last line counts them all:
# "tests: N passed, N failed, N skipped". A suite that fails without reporting a failed test (a compile error)
# counts as one failed test. Exit status 0 only when nothing failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

scripts/setup.sh || { echo "scripts/setup.sh failed: nothing was tested" >&2; exit 1; }

# Tests that need Xvfb fail instead of skipping when it is missing.
export PEERDESK_REQUIRE_XVFB=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
results="$root/target/test-results"
rm -rf "$results"
mkdir -p "$results"
# shellcheck source=junit.sh
. scripts/junit.sh
statuses=()

echo "== cargo fmt --check, cargo clippy"
junit_begin "$results/lint.xml" lint
lint_status=0
if cargo fmt --all --check; then junit_case "cargo fmt --check" pass; else
    junit_case "cargo fmt --check" fail "run cargo fmt --all"; lint_status=1; fi
if cargo clippy --profile ci --workspace --all-targets -- -D warnings; then junit_case "cargo clippy -D warnings" pass
else junit_case "cargo clippy -D warnings" fail "see clippy's messages above"; lint_status=1; fi
# The public API as an app sees it (without the `unstable` feature): every link resolves, nothing is left
# undocumented, and no placeholder stands in for a description.
if RUSTDOCFLAGS="-D warnings" cargo doc --quiet -p peerdesk --no-deps; then junit_case "cargo doc -D warnings (public API)" pass
else junit_case "cargo doc -D warnings (public API)" fail "see rustdoc's messages above"; lint_status=1; fi
placeholders="$(grep -rnE '^\s*/// (Who|Why|Details|Which|The text|For people|Horizontal|Vertical|The file)\.$' core/src ffi/src || true)"
if [ -z "$placeholders" ]; then junit_case "no placeholder doc lines" pass
else junit_case "no placeholder doc lines" fail "write what the item is: $placeholders"; lint_status=1; fi
junit_end
statuses+=("lint=$lint_status")

echo "== cargo build (binaries the end-to-end tests start as processes)"
build_status=0
cargo build --profile ci --workspace --bins || build_status=$?
statuses+=("build=$build_status")

echo "== cargo test (libtest JSON in target/test-results/rust.jsonl)"
# libtest's JSON report is unstable on a stable toolchain: scripts/libtest-json.sh allows it for running the test
# binaries (cargo's runner) and the doctests (RUSTDOC) only, so the build is the same as above. Test output is
# captured into the report; the summary prints each failure with its output.
rust_status=0
RUSTDOC="$root/scripts/libtest-json.sh" cargo test --profile ci --workspace \
    --config "target.'cfg(all())'.runner='$root/scripts/libtest-json.sh'" \
    -- -Z unstable-options --format json --report-time >"$results/rust.jsonl" || rust_status=$?
statuses+=("rust=$rust_status")

echo "== Python bindings (pytest)"
py_status=0
bindings/python/test.sh --junitxml="$results/python.xml" || py_status=$?
statuses+=("python=$py_status")

echo "== Kotlin bindings (mvn test)"
kt_status=0
bindings/kotlin/test.sh || kt_status=$?
for report in bindings/kotlin/target/surefire-reports/TEST-*.xml; do
    [ -f "$report" ] && cp "$report" "$results/kotlin-$(basename "$report")"
done
statuses+=("kotlin=$kt_status")

echo "== Browser interop (headless Chromium)"
web_status=0
tests/web/test.sh --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=junit --test-reporter-destination="$results/web.xml" || web_status=$?
statuses+=("web=$web_status")

echo "== Swift bindings"
sw_status=0
JUNIT_FILE="$results/swift.xml" bindings/swift/test.sh || sw_status=$?
statuses+=("swift=$sw_status")

echo "== System tests (fresh machine, loopback-only network)"
sys_status=0
RESULTS_DIR="$results" tests/system/test.sh || sys_status=$?
statuses+=("system=$sys_status")

echo "== Fuzzing (cargo-fuzz, 15 s a target on the committed corpora)"
fuzz_status=0
JUNIT_FILE="$results/fuzz.xml" scripts/fuzz.sh 15 || fuzz_status=$?
statuses+=("fuzz=$fuzz_status")

echo "== Summary (from target/test-results)"
python3 scripts/test-summary.py "$results" "${statuses[@]}"
