#!/usr/bin/env bash
# Builds PeerdeskFFI.xcframework for Apple apps: libpeerdesk_ffi as a static library for iOS devices, the iOS
# simulator and macOS, with the generated header and a module map, then prints how to use it:
#   PEERDESK_XCFRAMEWORK=$PWD/PeerdeskFFI.xcframework swift build
# Needs macOS with Xcode and the Rust targets aarch64-apple-ios, aarch64-apple-ios-sim, aarch64-apple-darwin.
#
# `xcframework.sh --check` (any OS; run by test.sh) assembles the framework's Headers folder exactly as the build
# does and checks it: the module map names the header and the module `PeerdeskFFI`, every C function the Swift
# sources call is declared, and Package.swift switches to the binary target when PEERDESK_XCFRAMEWORK is set.
set -euo pipefail
cd "$(dirname "$0")"
out="${XCFRAMEWORK_OUT:-$PWD/PeerdeskFFI.xcframework}"
targets=(aarch64-apple-ios aarch64-apple-ios-sim aarch64-apple-darwin)

headers_into() {
    mkdir -p "$1"
    cp Sources/PeerdeskFFI/include/PeerdeskFFI.h "$1/"
    # A framework's module map has no `link` line: the static library in the same slice is linked by Xcode.
    printf 'module PeerdeskFFI {\n    header "PeerdeskFFI.h"\n    export *\n}\n' > "$1/module.modulemap"
}

if [ "${1:-}" = "--check" ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    headers_into "$work/Headers"
    grep -q '^module PeerdeskFFI {' "$work/Headers/module.modulemap"
    grep -q 'header "PeerdeskFFI.h"' "$work/Headers/module.modulemap"
    called="$(grep -ohE '\b(uniffi|ffi)_peerdesk_ffi_[A-Za-z0-9_]+\(' Sources/Peerdesk/*.swift | tr -d '(' | sort -u)"
    declared="$(grep -ohE '\b(uniffi|ffi)_peerdesk_ffi_[A-Za-z0-9_]+\(' "$work/Headers/PeerdeskFFI.h" | tr -d '(' | sort -u)"
    missing="$(comm -23 <(echo "$called") <(echo "$declared"))"
    [ -z "$missing" ] || { echo "called by Swift but not declared in the header: $missing" >&2; exit 1; }
    grep -q '.binaryTarget(name: "PeerdeskFFI", path: xcframework)' Package.swift
    grep -q 'environment\["PEERDESK_XCFRAMEWORK"\]' Package.swift
    echo "xcframework recipe: headers, module map and Package.swift binary target are consistent ($(echo "$called" | wc -l) functions)"
    exit 0
fi

[ "$(uname)" = Darwin ] || { echo "xcframework.sh builds on macOS with Xcode; use --check elsewhere" >&2; exit 1; }
root="$(cd ../.. && pwd)"
args=()
for target in "${targets[@]}"; do
    cargo build --release -p peerdesk-ffi --target "$target" --manifest-path "$root/Cargo.toml"
    headers_into "$root/target/$target/release/headers"
    args+=(-library "$root/target/$target/release/libpeerdesk_ffi.a" -headers "$root/target/$target/release/headers")
done
rm -rf "$out"
xcodebuild -create-xcframework "${args[@]}" -output "$out"
echo "built $out; use it with: PEERDESK_XCFRAMEWORK=$out swift build"
