#!/usr/bin/env bash
# A whole `peerdesk demo` session (signaling server, host, viewer, WebRTC over loopback, 1080p30 synthetic
# desktop) inside a network namespace of this test's own whose only link is capped at 1 Mbit/s by `tc tbf` with a
# 200 ms queue, every packet both ways: the bench's cap-1m scenario (scripts/bench-network.sh).
#
# The issue's target: within 5 s the session settles, p95 ≤ 200 ms and no freeze > 500 ms. Here, looser (median
# of three sessions, from 5 s into the moving phase on): p95 ≤ 400 ms, longest gap ≤ 1,000 ms, and at most 6
# keyframes. Before the receiver asked once per keyframe on its way and the host's keyframes waited for the rate
# budget (and the picture halved its size below 518 kbit/s), the first full-size keyframe overflowed the link's
# queue and keyframes followed every 300 ms into the same queue: 7-9 keyframes in 10 s and p95 1.3-3 s
# (checked: the old core, built with this demo, fails the keyframe and settled checks; see the issue note).
#
# Then the same at 500 kbit/s (the bench's cap-500k), whose target is "the session stays usable: >= 10 fps, p95
# <= 400 ms". Here (median of three 20 s sessions, from 5 s into the moving phase on): a first frame within the
# demo's 10 s, >= 10 fps, p95 <= 200 ms and longest gap <= 1,000 ms.
# Before the congestion window and the retransmission budget (commit b95980e), no first frame arrived in 10 s:
# retransmissions were 4.6 times the media and the link carried mostly copies (checked with the binary of
# 071b95b, the commit before it, in this scenario). Before changed pictures waited for the sender's backlog
# (send/backlog.rs), the settled p95 was 0.7-1.05 s in most runs. Before the estimate was held under the link's
# queue (transport/queue_delay.rs) and the link's queue counted as backlog, GCC's estimate ran to 1.6 times the
# link, the link's queue to 400 ms, and the settled p95 was 258-565 ms (checked: the binary of ffc3d4f fails the
# p95 check here; see the issue note); after, 10-30 ms.
#
#   tests/system/narrow-link.sh [PEERDESK_BINARY]     # default: target/ci/peerdesk; needs root (ip netns, tc)
#
# Prints one line per check and, with $JUNIT_FILE set, writes them as JUnit XML. Exit status 1 when one failed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
peerdesk="$(realpath "${1:-$repo/target/ci/peerdesk}")"
# shellcheck source=../../scripts/junit.sh
. "$repo/scripts/junit.sh"
junit_begin "${JUNIT_FILE:-/dev/null}" narrow-link
failed=0
check() { junit_case "$1" "$2" "${3:-}"; if [ "$2" = fail ]; then failed=1; fi; }
finish() { junit_end; exit "$failed"; }

MAX_SETTLED_P95_MS=400
MAX_SETTLED_GAP_MS=1000
MAX_KEYFRAMES=6

if [ "$(id -u)" -ne 0 ]; then check "narrow link" skip "needs root (ip netns, tc)"; finish; fi
if ! command -v tc >/dev/null 2>&1; then check "narrow link" fail "tc missing (scripts/setup.sh installs iproute2)"; finish; fi
netns="peerdesk-narrow-$$"
ip netns add "$netns"
work="$(mktemp -d)"
log="$work/demo.log"
trap 'ip netns del "$netns" 2>/dev/null || true; rm -rf "$work"' EXIT
ip -n "$netns" link set lo up
ip netns exec "$netns" tc qdisc add dev lo root tbf rate 1mbit burst 16kb latency 200ms

declare -a p95s=() gaps=() keyframess=()
for run in 1 2 3; do
    if ! ip netns exec "$netns" env -u DISPLAY "$peerdesk" demo --synthetic --seconds 15 --still-seconds 2 \
            --output "$work/last-frame.png" >"$log" 2>&1; then
        cat "$log" >&2
        check "demo session $run on a 1 Mbit/s link" fail "peerdesk demo failed: $(grep -m1 -i 'error' "$log" || tail -1 "$log")"
        finish
    fi
    sed -n '/join →/,/loss repair/p' "$log"
    settled="$(grep -m1 -E '^  after [0-9]+ s' "$log" || true)"
    p95s+=("$(sed -nE 's/.* p95 ([0-9]+) ms.*/\1/p' <<<"$settled" | head -n 1 | grep . || echo 99999)")
    gaps+=("$(sed -nE 's/.*\(longest ([0-9]+) ms\).*/\1/p' <<<"$settled" | head -n 1 | grep . || echo 99999)")
    keyframess+=("$(grep -m1 'loss repair' "$log" | grep -oE '[0-9]+ keyframes' | grep -oE '[0-9]+' || echo 99999)")
done
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
sent="$(ip netns exec "$netns" tc -s qdisc show dev lo | awk '/Sent/ {print $2; exit}')"
p95="$(median "${p95s[@]}")"; gap="$(median "${gaps[@]}")"; keyframes="$(median "${keyframess[@]}")"
all="(runs: p95 after 5 s ${p95s[*]} ms; longest gap after 5 s ${gaps[*]} ms; ${keyframess[*]} keyframes)"

[ "${sent:-0}" -gt 0 ] && check "the session went through the capped link" pass "$sent bytes through tbf" \
    || check "the session went through the capped link" fail "tbf sent ${sent:-0} bytes: the test measured nothing"
[ "$p95" -le "$MAX_SETTLED_P95_MS" ] && check "glass-to-glass p95 after 5 s at 1 Mbit/s" pass "median $p95 ms $all" \
    || check "glass-to-glass p95 after 5 s at 1 Mbit/s" fail "median $p95 ms > $MAX_SETTLED_P95_MS $all"
[ "$gap" -le "$MAX_SETTLED_GAP_MS" ] && check "no long freeze after 5 s at 1 Mbit/s" pass "median longest gap $gap ms" \
    || check "no long freeze after 5 s at 1 Mbit/s" fail "median longest gap $gap ms > $MAX_SETTLED_GAP_MS $all"
[ "$keyframes" -le "$MAX_KEYFRAMES" ] && check "no keyframe storm at 1 Mbit/s" pass "median $keyframes keyframes" \
    || check "no keyframe storm at 1 Mbit/s" fail "median $keyframes keyframes > $MAX_KEYFRAMES $all"

# 500 kbit/s: a session that never shows a first frame counts as 0 fps and 99,999 ms, so the medians still say
# what happened.
MIN_NARROWEST_FPS=10
MAX_NARROWEST_P95_MS=200
MAX_NARROWEST_GAP_MS=1000
ip netns exec "$netns" tc qdisc replace dev lo root tbf rate 500kbit burst 16kb latency 200ms
declare -a fpss=() p95s=() gaps=() joined=()
for run in 1 2 3; do
    if ip netns exec "$netns" env -u DISPLAY "$peerdesk" demo --synthetic --seconds 20 --still-seconds 2 \
            --output "$work/last-frame.png" >"$log" 2>&1; then
        joined+=(yes)
    else
        joined+=(no)
        echo "session $run at 500 kbit/s: $(grep -m1 -i 'error' "$log" || tail -1 "$log")"
    fi
    sed -n '/join →/,/loss repair/p' "$log"
    settled="$(grep -m1 -E '^  after [0-9]+ s' "$log" || true)"
    fpss+=("$(sed -nE 's/.* ([0-9.]+) fps.*/\1/p' <<<"$settled" | head -n 1 | grep . || echo 0)")
    p95s+=("$(sed -nE 's/.* p95 ([0-9]+) ms.*/\1/p' <<<"$settled" | head -n 1 | grep . || echo 99999)")
    gaps+=("$(sed -nE 's/.*\(longest ([0-9]+) ms\).*/\1/p' <<<"$settled" | head -n 1 | grep . || echo 99999)")
done
fps="$(median "${fpss[@]}")"; p95="$(median "${p95s[@]}")"; gap="$(median "${gaps[@]}")"
all="(runs: first frame ${joined[*]}; after 5 s ${fpss[*]} fps, p95 ${p95s[*]} ms, longest gap ${gaps[*]} ms)"
[ "$(printf '%s\n' "${joined[@]}" | grep -c yes)" -ge 2 ] \
    && check "first frame within 10 s at 500 kbit/s" pass "$all" \
    || check "first frame within 10 s at 500 kbit/s" fail "$all"
awk -v f="$fps" -v m="$MIN_NARROWEST_FPS" 'BEGIN { exit !(f >= m) }' \
    && check "frame rate after 5 s at 500 kbit/s" pass "median $fps fps" \
    || check "frame rate after 5 s at 500 kbit/s" fail "median $fps fps < $MIN_NARROWEST_FPS $all"
[ "$p95" -le "$MAX_NARROWEST_P95_MS" ] && check "glass-to-glass p95 after 5 s at 500 kbit/s" pass "median $p95 ms" \
    || check "glass-to-glass p95 after 5 s at 500 kbit/s" fail "median $p95 ms > $MAX_NARROWEST_P95_MS $all"
[ "$gap" -le "$MAX_NARROWEST_GAP_MS" ] && check "no long freeze after 5 s at 500 kbit/s" pass "median longest gap $gap ms" \
    || check "no long freeze after 5 s at 500 kbit/s" fail "median longest gap $gap ms > $MAX_NARROWEST_GAP_MS $all"
finish
