#!/usr/bin/env bash
# Checks the Swift package and runs its tests where a Swift toolchain exists.
#  1. The committed generated sources, header and module map match what the library generates now.
#  2. The C header compiles as C, and every function it declares is exported by libpeerdesk_ffi.
#  3. `swift test` (XCTest against a real signaling server) — or, without `swift`, a clear SKIPPED line.
# Each check is a JUnit test case in $JUNIT_FILE when set; without a toolchain the XCTest tests are reported as
# skipped, one by one.
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"
# shellcheck source=../../scripts/junit.sh
. "$root/scripts/junit.sh"
junit_begin "${JUNIT_FILE:-/dev/null}" swift
trap 'junit_end' EXIT
lib="$root/target/ci/libpeerdesk_ffi.so"
cargo build --profile ci -p peerdesk-ffi -p peerdesk-signaling-server

fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"; junit_end' EXIT
./generate.sh "$fresh" >/dev/null
if diff -r "$fresh/Sources/PeerdeskFFI" Sources/PeerdeskFFI >/dev/null \
    && diff "$fresh/Sources/Peerdesk/Peerdesk.swift" Sources/Peerdesk/Peerdesk.swift >/dev/null; then
    junit_case "generated sources are up to date" pass
else
    junit_case "generated sources are up to date" fail "stale: run bindings/swift/generate.sh"
    exit 1
fi

header=Sources/PeerdeskFFI/include/PeerdeskFFI.h
# The header uses Clang nullability annotations, as Swift does.
if printf '#include "%s"\nint main(void) { return 0; }\n' "$PWD/$header" | clang -fsyntax-only -std=c11 -Wall -Werror -x c -; then
    junit_case "the C header compiles as C" pass
else
    junit_case "the C header compiles as C" fail "clang -fsyntax-only failed"
    exit 1
fi
declared="$(grep -oE '\b(uniffi|ffi)_peerdesk_ffi_[A-Za-z0-9_]+\(' "$header" | tr -d '(' | sort -u)"
exported="$(nm -D --defined-only "$lib" | awk '{print $3}' | sort -u)"
missing="$(comm -23 <(echo "$declared") <(echo "$exported"))"
count="$(echo "$declared" | wc -l)"
if [ -n "$missing" ]; then
    junit_case "every declared function is exported" fail "declared in $header but not exported: $(echo $missing)"
    exit 1
fi
junit_case "every declared function is exported" pass "$count functions"

if out="$(./xcframework.sh --check 2>&1)"; then
    junit_case "the XCFramework recipe is consistent" pass "$out"
else
    junit_case "the XCFramework recipe is consistent" fail "$out"
    exit 1
fi
example="$(cat Tests/PeerdeskTests/ReadmeExample.swift)"
if python3 - "$example" <<'PY'
import sys
readme = open("../README.md").read()
sys.exit(0 if "```swift\n" + sys.argv[1] + "\n```" in readme else 1)
PY
then
    junit_case "the README example is the compiled ReadmeExample.swift" pass
else
    junit_case "the README example is the compiled ReadmeExample.swift" fail "copy Tests/PeerdeskTests/ReadmeExample.swift into bindings/README.md"
    exit 1
fi

if command -v swift >/dev/null 2>&1; then
    xunit=()
    if [ -n "${JUNIT_FILE:-}" ]; then xunit=(--xunit-output "${JUNIT_FILE%.xml}-xctest.xml"); fi
    PEERDESK_LIB_DIR="$root/target/ci" PEERDESK_SERVER="$root/target/ci/peerdesk-signaling-server" \
        LD_LIBRARY_PATH="$root/target/ci${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        swift test "${xunit[@]}"
else
    for test in $(grep -ho 'func test[A-Za-z0-9_]*' Tests -r | awk '{print $2}'); do
        junit_case "XCTest $test" skip "no Swift toolchain here (swift is not in PATH); runs where Swift 5.9+ is installed"
    done
fi
