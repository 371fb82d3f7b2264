#!/usr/bin/env bash
# A whole `peerdesk demo` session (signaling server, host, viewer, WebRTC over loopback) inside a network
# namespace of this test's own, where 5 % of the media packets (SRTP/SRTCP: UDP payloads whose first two bits are
# RTP version 2, matched with iptables' u32) are dropped at random on arrival. The DTLS handshake, STUN and the
# data channel are left alone: this test is about repairing media loss, not about joining through loss.
#
# Before the receiver had its own NACK logic (webrtc-rs's NACK generator re-requested repaired packets for as
# long as they stayed in its window), this measured a still screen at ~1,600 kbit/s and p95 144-291 ms; with
# NACK repair it was ~1-30 kbit/s and p95 ~50-500 ms (2-core VM); since keep-alives hold libaom's quantiser at
# its ceiling (1-4 KB each before, ~35 bytes now) it is ~0.2 kbit/s. The checks that tell the two apart are the
# recovered packets and the still screen (checked: the old binary fails three checks). The p95 bound catches a
# standing queue: until the pacer started with its headroom (`transport/peer.rs`, `pacer`), GCC held its start
# estimate at 5 % loss, the pacer ran at exactly the encoder's rate, and the first keyframe's backlog stayed
# queued: sessions ran 0.3-2.5 s behind at full frame rate (medians of three: 2245, 881, 660, 526 ms; after:
# 52-57 ms idle, 68-293 ms with both cores busy). fps is only a "the session is alive" bound, since a loaded
# machine halves the frame rate without anything being wrong with loss repair.
#
# Then two more of the network bench's scenarios, three sessions each, judged by medians:
#   10 % media loss (the issue's target: p95 <= 200 ms, >= 27 fps, no freeze > 500 ms; here looser: p95 <= 250 ms,
#     >= 20 fps, longest gap <= 1,000 ms, still screen <= 10 kbit/s);
#   burst loss, all media dropped for 100 ms of every second (p95 <= 400 ms, longest gap <= 1,000 ms, still
#     screen <= 10 kbit/s).
# The receiver before its own NACK logic (the binary of a859453, ea0be70's parent, which answered loss with
# keyframes) fails both (two runs of this script): at 10 % loss four sessions of six ended with "Error parsing OBU
# data" or "frames stopped", the other two had p95 291 and 333 ms and a still screen at 2.2-3.5 Mbit/s; under burst
# loss its still screen ran at 3.1-4.2 Mbit/s (its demo printed no freeze line, so its gaps read as 99,999 ms).
# Measured since: 10 % loss p95 74-113 ms, 30 fps, gaps 147-305 ms, 0.2 kbit/s still; burst p95 96-111 ms, gaps
# 174-197 ms, 0.2 kbit/s still.
#
#   tests/system/lossy-link.sh [PEERDESK_BINARY]     # default: target/ci/peerdesk; needs root (ip netns, iptables)
#
# Prints one line per check and, with $JUNIT_FILE set, writes them as JUnit XML. Exit status 1 when one failed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
peerdesk="$(realpath "${1:-$repo/target/ci/peerdesk}")"
# shellcheck source=../../scripts/junit.sh
. "$repo/scripts/junit.sh"
junit_begin "${JUNIT_FILE:-/dev/null}" lossy-link
failed=0
check() { junit_case "$1" "$2" "${3:-}"; if [ "$2" = fail ]; then failed=1; fi; }
finish() { junit_end; exit "$failed"; }

LOSS="${PEERDESK_TEST_LOSS:-0.05}"
MAX_STILL_KBPS=10
MAX_P95_MS=400
MIN_FPS=10
MAX_KEYFRAME_REQUESTS=8

if [ "$(id -u)" -ne 0 ]; then check "lossy link" skip "needs root (ip netns, iptables)"; finish; fi
if ! command -v iptables >/dev/null 2>&1; then check "lossy link" fail "iptables missing (scripts/setup.sh installs it)"; finish; fi
netns="peerdesk-loss-$$"
ip netns add "$netns"
work="$(mktemp -d)"
log="$work/demo.log"
trap 'ip netns del "$netns" 2>/dev/null || true; rm -rf "$work"' EXIT
ip -n "$netns" link set lo up
# u32: IP header length (IHL×4) to reach the UDP header, +8 to the payload; its first byte's top bits 10 = RTP v2.
ip netns exec "$netns" iptables -A INPUT -p udp -m u32 --u32 "0>>22&0x3C@8>>24&0xC0=0x80" \
    -m statistic --mode random --probability "$LOSS" -j DROP

# Three sessions; each figure is judged by its median, since one session in several can hit a slow path that is
# not about loss repair (see the README's "Real networks"), and a test must not fail on it at random.
declare -a stills p95s fpss requestss recovereds
for run in 1 2 3; do
    if ! ip netns exec "$netns" env -u DISPLAY "$peerdesk" demo --seconds 8 --still-seconds 4 \
            --output "$work/last-frame.png" >"$log" 2>&1; then
        cat "$log" >&2
        check "demo session $run at $LOSS media loss" fail "peerdesk demo failed: $(grep -m1 -i 'error' "$log" || tail -1 "$log")"
        finish
    fi
    sed -n '/join →/,/loss repair/p' "$log"
    p95="$(sed -nE 's/.*glass-to-glass.* p95 ([0-9]+) ms.*/\1/p' "$log" | head -n 1)"
    p95s+=("${p95:-99999}")
    fpss+=("$(grep -m1 'moving screen' "$log" | grep -oE '[0-9.]+ fps' | grep -oE '[0-9.]+' || echo 0)")
    stills+=("$(grep -m1 'still screen' "$log" | grep -oE '[0-9.]+ kbit/s' | grep -oE '[0-9.]+' || echo 99999)")
    requestss+=("$(grep -m1 'loss repair' "$log" | grep -oE '[0-9]+ keyframe requests' | grep -oE '[0-9]+' || echo 99999)")
    recovereds+=("$(grep -m1 'loss repair' "$log" | grep -oE '[0-9]+ recovered' | grep -oE '[0-9]+' || echo 0)")
done
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
dropped="$(ip netns exec "$netns" iptables -L INPUT -v -n -x | awk '/DROP/ {print $1; exit}')"
still="$(median "${stills[@]}")"; p95="$(median "${p95s[@]}")"; fps="$(median "${fpss[@]}")"
requests="$(median "${requestss[@]}")"; recovered="$(median "${recovereds[@]}")"
within() { awk -v v="$1" -v op="$2" -v limit="$3" 'BEGIN { exit !((op == "<=") ? v <= limit : v >= limit) }'; }
all="(runs: ${stills[*]} kbit/s still; p95 ${p95s[*]} ms; ${fpss[*]} fps; ${requestss[*]} keyframe requests)"

[ "${dropped:-0}" -gt 0 ] && check "the namespace dropped media packets" pass "$dropped dropped" \
    || check "the namespace dropped media packets" fail "iptables dropped ${dropped:-0} packets: the test measured nothing"
[ "$recovered" -gt 0 ] && check "lost packets come back by NACK" pass "median $recovered recovered" \
    || check "lost packets come back by NACK" fail "median $recovered recovered"
within "$still" "<=" "$MAX_STILL_KBPS" && check "still screen stays cheap under loss" pass "median $still kbit/s $all" \
    || check "still screen stays cheap under loss" fail "median $still kbit/s > $MAX_STILL_KBPS (retransmission or keyframe storm) $all"
within "$p95" "<=" "$MAX_P95_MS" && check "glass-to-glass p95 under loss" pass "median $p95 ms" \
    || check "glass-to-glass p95 under loss" fail "median $p95 ms > $MAX_P95_MS $all"
within "$fps" ">=" "$MIN_FPS" && check "frame rate under loss" pass "median $fps fps" \
    || check "frame rate under loss" fail "median $fps fps < $MIN_FPS $all"
within "$requests" "<=" "$MAX_KEYFRAME_REQUESTS" && check "keyframe requests under loss" pass "median $requests" \
    || check "keyframe requests under loss" fail "median $requests > $MAX_KEYFRAME_REQUESTS $all"

# Three sessions under the namespace's current impairment; fills p95s, fpss, gaps and stills.
three_sessions() {
    p95s=(); fpss=(); gaps=(); stills=()
    for run in 1 2 3; do
        if ! ip netns exec "$netns" env -u DISPLAY "$peerdesk" demo --seconds 8 --still-seconds 4 \
                --output "$work/last-frame.png" >"$log" 2>&1; then
            echo "session $run ($1): $(grep -m1 -i 'error' "$log" || tail -1 "$log")"
            p95s+=(99999); fpss+=(0); gaps+=(99999); stills+=(99999)
            continue
        fi
        sed -n '/join →/,/loss repair/p' "$log"
        p95s+=("$(sed -nE 's/.*glass-to-glass.* p95 ([0-9]+) ms.*/\1/p' "$log" | head -n 1 | grep . || echo 99999)")
        fpss+=("$(grep -m1 'moving screen' "$log" | grep -oE '[0-9.]+ fps' | grep -oE '[0-9.]+' || echo 0)")
        gaps+=("$(sed -nE 's/^  freezes > [0-9]+ ms .*\(longest ([0-9]+) ms\).*/\1/p' "$log" | head -n 1 | grep . || echo 99999)")
        stills+=("$(grep -m1 'still screen' "$log" | grep -oE '[0-9.]+ kbit/s' | grep -oE '[0-9.]+' || echo 99999)")
    done
}

# Judges a median against its bound: NAME VALUE OP LIMIT UNIT (the runs, $all, are shown when it fails).
judge() {
    if within "$2" "$3" "$4"; then
        check "$1" pass "median $2 $5"
    else
        check "$1" fail "median $2 $5, bound $3 $4 $all"
    fi
}

MAX_HEAVY_P95_MS=250
MAX_BURST_P95_MS=400
MIN_HEAVY_FPS=20
MAX_HEAVY_GAP_MS=1000
ip netns exec "$netns" iptables -F INPUT
ip netns exec "$netns" iptables -A INPUT -p udp -m u32 --u32 "0>>22&0x3C@8>>24&0xC0=0x80" \
    -m statistic --mode random --probability 0.10 -j DROP
three_sessions "10 % loss"
p95="$(median "${p95s[@]}")"; fps="$(median "${fpss[@]}")"; gap="$(median "${gaps[@]}")"; still="$(median "${stills[@]}")"
all="(runs: p95 ${p95s[*]} ms; ${fpss[*]} fps; longest gap ${gaps[*]} ms; still ${stills[*]} kbit/s)"
judge "glass-to-glass p95 at 10 % loss" "$p95" "<=" "$MAX_HEAVY_P95_MS" ms
judge "frame rate at 10 % loss" "$fps" ">=" "$MIN_HEAVY_FPS" fps
judge "longest gap at 10 % loss" "$gap" "<=" "$MAX_HEAVY_GAP_MS" ms
judge "still screen at 10 % loss" "$still" "<=" "$MAX_STILL_KBPS" kbit/s

# Burst loss: every second, all media dropped for 100 ms (as the bench's `burst`).
ip netns exec "$netns" iptables -F INPUT
( while true; do
    sleep 0.9
    ip netns exec "$netns" iptables -I INPUT -p udp -m u32 --u32 "0>>22&0x3C@8>>24&0xC0=0x80" -j DROP
    sleep 0.1
    ip netns exec "$netns" iptables -D INPUT -p udp -m u32 --u32 "0>>22&0x3C@8>>24&0xC0=0x80" -j DROP
done ) &
bursts=$!
trap 'kill "$bursts" 2>/dev/null || true; ip netns del "$netns" 2>/dev/null || true; rm -rf "$work"' EXIT
three_sessions "burst loss"
kill "$bursts" 2>/dev/null || true
p95="$(median "${p95s[@]}")"; gap="$(median "${gaps[@]}")"; still="$(median "${stills[@]}")"
all="(runs: p95 ${p95s[*]} ms; ${fpss[*]} fps; longest gap ${gaps[*]} ms; still ${stills[*]} kbit/s)"
judge "glass-to-glass p95 under burst loss" "$p95" "<=" "$MAX_BURST_P95_MS" ms
judge "longest gap under burst loss" "$gap" "<=" "$MAX_HEAVY_GAP_MS" ms
judge "still screen under burst loss" "$still" "<=" "$MAX_STILL_KBPS" kbit/s
finish
