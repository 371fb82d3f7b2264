#!/usr/bin/env bash
# The network bench: real processes (signaling server, `peerdesk share` host, viewer) in a network namespace of
# its own per scenario, with the network impaired by the kernel (this kernel has no netem: iptables' `statistic`
# and `u32` matches drop packets, `tc tbf` caps the rate). Two viewers per scenario, in the same run:
#   peerdesk   the Rust viewer (`peerdesk demo --synthetic`: host and viewer in one process)
#   chromium   Debian's headless Chromium running the web viewer (libwebrtc's receiver) against the same host
# Both watch the stamped 1080p30 synthetic desktop; prints one Markdown table (README "Real networks").
#
#   scripts/bench-network.sh [--seconds 10] [--still-seconds 4] [--scenarios "clean loss-5 ..."] [--viewers "peerdesk chromium"]
# Scenarios: clean; loss-1, loss-5, loss-10 (random loss of media packets, SRTP/SRTCP, both ways); burst (all
# media dropped for 100 ms of every second); cap-1m, cap-500k (tbf rate cap on the namespace's only link, every
# packet both ways); cut-3s, cut-10s (all UDP dropped for 3 or 10 s, 4 s into the moving phase, which lasts at
# least 20 s for cut-10s; the longest gap minus the cut is the recovery time); relay (no impairment, but both
# sides use relay-only ICE through a coturn this script starts in the namespace, with credentials the signaling
# server issues: compare with clean); delay and delay-loss-5 (the same relay, behind a userspace forwarder,
# benches/network/udp-delay.py, that holds every datagram 20 ms + 0-10 ms of jitter, order kept, on each pass:
# one way crosses it twice, 40-60 ms, a round trip 80-120 ms; delay-loss-5 also drops 5 % of the relayed media at
# random on its way to the receiver; jitter lets each datagram leave at its own time, so one with less jitter
# overtakes, as netem's jitter does — this kernel has no netem, and a forwarder in front of the relay delays the
# whole media path without touching the peers). Loss is applied to media only:
# the DTLS handshake through loss is webrtc-rs's (1 s fixed retransmission timer; see the README) and would
# measure that instead of peerdesk's repair. Needs root (ip netns).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

seconds=10
still_seconds=4
scenarios="clean relay delay jitter delay-loss-5 loss-1 loss-5 loss-10 burst cap-1m cap-500k cut-3s cut-10s"
viewers="peerdesk chromium"
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --still-seconds) still_seconds="$2"; shift 2 ;;
        --scenarios) scenarios="$2"; shift 2 ;;
        --viewers) viewers="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench-network.sh needs root (ip netns, iptables, tc)" >&2; exit 1; }

scripts/setup.sh
cargo build --profile ci -p peerdesk-cli -p peerdesk-signaling-server --bins
if [ ! -d tests/web/node_modules/playwright-core ]; then
    (cd tests/web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --no-save)
fi
# PEERDESK_BIN (a directory with `peerdesk` and `peerdesk-signaling-server`) measures other binaries, for A/B runs.
export PEERDESK_BIN="${PEERDESK_BIN:-$root/target/ci}"
peerdesk="$PEERDESK_BIN/peerdesk"

work="$(mktemp -d)"
netns=""
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || true
    stop_coturn "$work"
    [ -n "$netns" ] && ip netns del "$netns" 2>/dev/null || true
    if [ -n "${PEERDESK_BENCH_KEEP:-}" ]; then cp -r "$work" "$PEERDESK_BENCH_KEEP"; fi; rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=coturn.sh
. scripts/coturn.sh
RTP='-p udp -m u32 --u32 0>>22&0x3C@8>>24&0xC0=0x80'

in_ns() { ip netns exec "$netns" "$@"; }

# Applies scenario $1 to the fresh namespace; scenarios that act over time start a background job.
impair() {
    case "$1" in
        clean) ;;
        loss-*)
            local p; p="$(awk -v n="${1#loss-}" 'BEGIN { printf "%.3f", n / 100 }')"
            # shellcheck disable=SC2086
            in_ns iptables -A INPUT $RTP -m statistic --mode random --probability "$p" -j DROP ;;
        burst)
            ( while true; do
                sleep 0.9
                # shellcheck disable=SC2086
                in_ns iptables -I INPUT $RTP -j DROP; sleep 0.1
                # shellcheck disable=SC2086
                in_ns iptables -D INPUT $RTP -j DROP
            done ) & ;;
        # A real link's MTU: with loopback's 64 KiB, a TCP segment larger than tbf's 16 KiB bucket can never
        # leave, and the web viewer's page (viewer.js is 19 KiB) never loaded.
        cap-1m) in_ns ip link set lo mtu 1500; in_ns tc qdisc add dev lo root tbf rate 1mbit burst 16kb latency 200ms ;;
        cap-500k) in_ns ip link set lo mtu 1500; in_ns tc qdisc add dev lo root tbf rate 500kbit burst 16kb latency 200ms ;;
        cut-3s|cut-10s) ;; # started by run_viewer once the session is up
        relay) start_relay ;;
        delay) start_relay; start_delay 0 ;;
        delay-loss-5) start_relay; start_delay 0.05 ;;
        jitter) start_relay; start_delay 0 --reorder ;;
        *) echo "unknown scenario $1" >&2; exit 2 ;;
    esac
}

# coturn in the namespace (scripts/coturn.sh); sets relay_args for the viewers.
relay_args=()
start_relay() {
    start_coturn "$netns" "$work"
    local secret="$work/turn-secret"
    relay_args=(--turn-url "turn:127.0.0.1:3478?transport=udp" --turn-secret-file "$secret")
}

# The delaying forwarder on 127.0.0.1:3479 in front of coturn, dropping $1 of the relayed media (further arguments
# go to it); the viewers' TURN URL becomes the forwarder's.
start_delay() {
    local loss="$1"; shift
    in_ns python3 benches/network/udp-delay.py --listen 127.0.0.1:3479 --to 127.0.0.1:3478 \
        --delay-ms 20 --jitter-ms 10 --media-loss "$loss" "$@" >"$work/delay.log" 2>&1 &
    for _ in $(seq 50); do
        in_ns ss -lun | grep -q '127.0.0.1:3479' && break
        sleep 0.1
    done
    relay_args[1]="turn:127.0.0.1:3479?transport=udp"
}

# The cut: $1 s from now (about 4 s after the viewer's first frame), all UDP is dropped for $2 s.
cut_later() {
    ( sleep "$1"; in_ns iptables -I INPUT -p udp -j DROP; sleep "$2"; in_ns iptables -D INPUT -p udp -j DROP ) &
}

# How long a scenario's moving phase lasts: a 10 s cut needs room after it for the picture to come back.
moving_seconds() {
    case "$1" in
        cut-10s) awk -v s="$seconds" 'BEGIN { print (s < 20) ? 20 : s }' ;;
        *) echo "$seconds" ;;
    esac
}

# Prints: join_ms p50 p95 fps kbps still_kbps freezes longest_ms keyframes p95_settled longest_settled_ms (the
# last two from 5 s into the moving phase on; - when unknown).
run_viewer() {
    local scenario="$1" viewer="$2" log="$work/$1-$2.log"
    local moving; moving="$(moving_seconds "$scenario")"
    case "$viewer" in
        peerdesk)
            [ "$scenario" = cut-3s ] && cut_later 5 3
            [ "$scenario" = cut-10s ] && cut_later 5 10
            if ! in_ns env -u DISPLAY "$peerdesk" demo --synthetic --seconds "$moving" --still-seconds "$still_seconds" \
                    --output "$work/last.png" "${relay_args[@]}" >"$log" 2>&1; then
                echo "failed: $(grep -m1 -i error "$log" || tail -1 "$log")"; return
            fi
            awk '
                /join → first frame/ { join = $(NF-1) }
                /glass-to-glass/ { for (i = 1; i <= NF; i++) { if ($i == "p50") p50 = $(i+1); if ($i == "p95") p95 = $(i+1) } }
                /moving screen/ { fps = $3; kbps = $6 }
                /still screen/ { still = $3 }
                /freezes >/ { freezes = $5; longest = $7 }
                /loss repair/ { for (i = 1; i <= NF; i++) if ($i == "keyframes") keyframes = $(i-1) }
                /^  after [0-9]+ s/ { for (i = 1; i <= NF; i++) { if ($i == "p95") p95s = $(i+1); if ($i == "(longest") longests = $(i+1) } }
                END { gsub(/[^0-9.]/, "", p50); gsub(/[^0-9.]/, "", p95); gsub(/[^0-9.]/, "", longest)
                      gsub(/[^0-9.]/, "", p95s); gsub(/[^0-9.]/, "", longests)
                      if (p95s == "") p95s = "-"; if (longests == "") longests = "-"
                      print join, p50, p95, fps, kbps, still, freezes, longest, keyframes, p95s, longests }' "$log" ;;
        chromium)
            [ "$scenario" = cut-3s ] && cut_later 8 3
            [ "$scenario" = cut-10s ] && cut_later 8 10
            if ! in_ns node benches/network/chromium-viewer.mjs --seconds "$moving" --still-seconds "$still_seconds" \
                    "${relay_args[@]}" >"$log" 2>"$log.err"; then
                # The host's log lines (time-stamped) share this stream: name the viewer's own error.
                echo "failed: $(grep -v '^[0-9]\{4\}-' "$log.err" | grep -m1 -i error || tail -1 "$log.err")"; return
            fi
            node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").pop());
                console.log([r.join_ms, r.p50, r.p95, r.fps.toFixed(1), r.kbps.toFixed(0), r.still_kbps.toFixed(1),
                             r.freezes, r.longest_ms, r.keyframes, r.p95_settled ?? "-", r.longest_settled_ms].join(" "))' "$log" ;;
    esac
}

rows=()
for scenario in $scenarios; do
    for viewer in $viewers; do
        netns="peerdesk-bench-$$"
        ip netns add "$netns"
        in_ns ip link set lo up
        relay_args=()
        impair "$scenario"
        result="$(run_viewer "$scenario" "$viewer")"
        jobs -p | xargs -r kill 2>/dev/null || true
        stop_coturn "$work"
        wait 2>/dev/null || true
        ip netns del "$netns"; netns=""
        echo "[bench] $scenario $viewer: $result" >&2
        rows+=("$scenario|$viewer|$result")
    done
done

echo "Network bench: 1080p30 synthetic desktop, ${seconds} s moving + ${still_seconds} s still per run, $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(date -u +%F)"
echo
echo "| scenario | viewer | join → first frame ms | p50 ms | p95 ms | fps | kbit/s moving | kbit/s still | freezes > 250 ms | longest gap ms | keyframes | p95 after 5 s | longest gap after 5 s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for row in "${rows[@]}"; do
    IFS='|' read -r scenario viewer result <<<"$row"
    if [[ "$result" == failed* ]]; then
        echo "| $scenario | $viewer | $result | | | | | | | | | | |"
    else
        # shellcheck disable=SC2086
        set -- $result
        echo "| $scenario | $viewer | $1 | $2 | $3 | $4 | $5 | $6 | $7 | $8 | $9 | ${10} | ${11} |"
    fi
done
