#!/usr/bin/env bash
# Regenerates the Swift sources, C header and module map from libpeerdesk_ffi (uniffi library mode).
set -euo pipefail
cd "$(dirname "$0")"
target_dir="${1:-.}"
root="$(cd ../.. && pwd)"
profile="${PEERDESK_PROFILE:-ci}"
cargo build --profile "$profile" -p peerdesk-ffi
out="$(mktemp -d)"
"$root/target/$profile/uniffi-bindgen" generate --no-format --library "$root/target/$profile/libpeerdesk_ffi.so" \
    --language swift --out-dir "$out"
mkdir -p "$target_dir/Sources/Peerdesk" "$target_dir/Sources/PeerdeskFFI/include"
cp "$out/Peerdesk.swift" "$target_dir/Sources/Peerdesk/Peerdesk.swift"
cp "$out/PeerdeskFFI.h" "$target_dir/Sources/PeerdeskFFI/include/PeerdeskFFI.h"
# A system-library module for SwiftPM: the generated header, linked against libpeerdesk_ffi.
cat > "$target_dir/Sources/PeerdeskFFI/include/module.modulemap" <<'MAP'
module PeerdeskFFI {
    header "PeerdeskFFI.h"
    link "peerdesk_ffi"
    export *
}
MAP
rm -rf "$out"
