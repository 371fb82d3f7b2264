#!/usr/bin/env bash
# Checks the Swift package and runs its tests where a Swift toolchain exists.
#  1. The committed generated sources, header and module map match what the library generates now.
#  2. The C header compiles as C, and every function it declares is exported by libpeerdesk_ffi.
#  3. `swift test` (XCTest against a real signaling server) — or, without `swift`, a clear SKIPPED line.
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"
lib="$root/target/ci/libpeerdesk_ffi.so"
cargo build --profile ci -p peerdesk-ffi -p peerdesk-signaling-server

fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
./generate.sh "$fresh" >/dev/null
if diff -r "$fresh/Sources/PeerdeskFFI" Sources/PeerdeskFFI >/dev/null \
    && diff "$fresh/Sources/Peerdesk/Peerdesk.swift" Sources/Peerdesk/Peerdesk.swift >/dev/null; then
    echo "swift: generated sources are up to date"
else
    echo "swift: generated sources are stale; run bindings/swift/generate.sh" >&2
    exit 1
fi

header=Sources/PeerdeskFFI/include/PeerdeskFFI.h
# The header uses Clang nullability annotations, as Swift does.
printf '#include "%s"\nint main(void) { return 0; }\n' "$PWD/$header" | clang -fsyntax-only -std=c11 -Wall -Werror -x c -
declared="$(grep -oE '\b(uniffi|ffi)_peerdesk_ffi_[A-Za-z0-9_]+\(' "$header" | tr -d '(' | sort -u)"
exported="$(nm -D --defined-only "$lib" | awk '{print $3}' | sort -u)"
missing="$(comm -23 <(echo "$declared") <(echo "$exported"))"
count="$(echo "$declared" | wc -l)"
if [ -n "$missing" ]; then
    echo "swift: functions declared in $header but not exported by the library:" >&2
    echo "$missing" >&2
    exit 1
fi
echo "swift: header compiles as C; all $count declared functions are exported by libpeerdesk_ffi"

if command -v swift >/dev/null 2>&1; then
    PEERDESK_LIB_DIR="$root/target/ci" PEERDESK_SERVER="$root/target/ci/peerdesk-signaling-server" \
        LD_LIBRARY_PATH="$root/target/ci${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" swift test
else
    echo "SKIPPED: Swift tests (Tests/PeerdeskTests, 4 tests) — no Swift toolchain on this machine (\`swift\` is not in PATH); they run where Swift 5.9+ is installed: bindings/swift/test.sh"
fi
