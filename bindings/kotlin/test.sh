#!/usr/bin/env bash
# Builds libpeerdesk_ffi and the signaling server, generates the Kotlin bindings from the library (uniffi library
# mode) and runs `mvn test` (JUnit 5 against a real signaling server process). Needs Java 17+ and Maven; Maven
# fetches its dependencies from Maven Central the first time.
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"
cargo build --profile ci -p peerdesk-ffi -p peerdesk-signaling-server
rm -rf target/generated-sources/uniffi
"$root/target/ci/uniffi-bindgen" generate --no-format --library "$root/target/ci/libpeerdesk_ffi.so" \
    --language kotlin --out-dir target/generated-sources/uniffi
rm -rf target/surefire-reports
mvn -B -q -Dpeerdesk.lib.dir="$root/target/ci" test "$@"
# The jar a user takes: it must carry the native library where JNA finds it.
mvn -B -q -Dpeerdesk.lib.dir="$root/target/ci" -DskipTests package
contents="$(python3 -c "import sys, zipfile; print(*zipfile.ZipFile(sys.argv[1]).namelist(), sep=chr(10))" target/peerdesk-*.jar)"
grep -qx "linux-x86-64/libpeerdesk_ffi.so" <<<"$contents" \
    || { echo "target/peerdesk-*.jar lacks linux-x86-64/libpeerdesk_ffi.so" >&2; exit 1; }
