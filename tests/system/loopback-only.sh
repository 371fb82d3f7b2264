#!/usr/bin/env bash
# A whole session on a machine with no default route and no interface but `lo`: `peerdesk demo` (signaling server,
# host, viewer, loopback WebRTC) inside a network namespace of this test's own that has only `lo` up.
# Before the fix, webrtc-rs's mDNS socket failed there with ENODEV ("No such device") and no session started.
#
#   tests/system/loopback-only.sh [PEERDESK_BINARY]     # default: target/ci/peerdesk; needs root (ip netns)
#
# Prints one line per check and, with $JUNIT_FILE set, writes them as JUnit XML. Exit status 1 when one failed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
peerdesk="$(realpath "${1:-$repo/target/ci/peerdesk}")"
# shellcheck source=../../scripts/junit.sh
. "$repo/scripts/junit.sh"
junit_begin "${JUNIT_FILE:-/dev/null}" loopback-only
failed=0
check() { junit_case "$1" "$2" "${3:-}"; if [ "$2" = fail ]; then failed=1; fi; }
finish() { junit_end; exit "$failed"; }
name="demo session in a namespace with only lo (no default route)"

if [ "$(id -u)" -ne 0 ]; then check "$name" skip "needs root (ip netns)"; finish; fi
netns="peerdesk-lo-$$"
ip netns add "$netns"
log="$(mktemp)"
trap 'ip netns del "$netns" 2>/dev/null || true; rm -f "$log"' EXIT
ip -n "$netns" link set lo up

links="$(ip -n "$netns" -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')"
routes="$(ip -n "$netns" route show default)"
if [ "$links" != "lo " ] || [ -n "$routes" ]; then
    check "$name" fail "the namespace is not loopback-only: links '$links', default route '$routes'"
    finish
fi

# No DISPLAY: the host shares the synthetic desktop, whose frame stamps give glass-to-glass latency.
if ip netns exec "$netns" env -u DISPLAY "$peerdesk" demo --seconds 3 --still-seconds 1 >"$log" 2>&1; then
    latency="$(grep -m1 'glass-to-glass' "$log" | sed 's/^ *//')"
    frames="$(grep -m1 -oE 'p50 [0-9]+ ms' "$log" || true)"
    if [ -n "$frames" ]; then
        check "$name" pass "$latency"
    else
        cat "$log" >&2
        check "$name" fail "the demo exited 0 but measured no frames"
    fi
else
    cat "$log" >&2
    check "$name" fail "peerdesk demo failed: $(grep -m1 -i 'error' "$log" || tail -1 "$log")"
fi
finish
