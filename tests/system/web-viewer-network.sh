#!/usr/bin/env bash
# The web viewer (Debian's headless Chromium) on networks that are not a perfect loopback. Two network
# namespaces of this test's own, joined by a veth pair: the customer's (10.231.0.1: `peerdesk share`, the
# signaling servers, coturn) and the technician's (10.231.0.2: the browser, tests/web/netns-viewer.mjs).
#
# 1. A corporate network that blocks UDP: every UDP packet leaving the technician's namespace is dropped. The
#    signaling server hands out TURN over UDP (3478) and TURN over TLS on 443 (coturn, fresh self-signed
#    certificate); the page uses relay-only ICE. It must reach the relay over TLS and show the screen.
# 2. A 10 s cut of all UDP in the technician's namespace (signaling, on TCP, stays): the host restarts ICE, the
#    page answers the new offer on its connection. The page must keep its session, say "reconnecting" and
#    "reconnected", and show frames again soon after the link returns (issue target: 2 s; bound here 5 s).
# 3. The signaling server killed and restarted on the same address mid-session: frames go on meanwhile, the page
#    pairs with the host again with the host's resumption token, and a second 10 s cut then recovers through the
#    restarted server.
#
# Frames shown after the cut must be fresh (glass-to-glass <= 1 s): not a replay of what the cut held up.
#
# Before the web viewer answered ICE restarts (checked with examples/web-viewer/viewer.js of e42070c: parts 2 and
# 3 fail), it ignored every offer after the first, and the session ended ("the connection failed") during the
# cut; it never reconnected to a restarted signaling server. With that fixed but the host of e42070c, Chromium
# asked for the whole cut's packets when the link returned and got them: it replayed the cut's 10 s of video in
# about 2 s (frames up to 9.9 s old), then stalled 3 s on a packet no longer kept. The host now resends no packet
# first sent more than a second (or three round trips) ago and sends a keyframe when a lost path comes back.
#
#   tests/system/web-viewer-network.sh [PEERDESK_BIN_DIR]     # default: target/ci; needs root (ip netns, iptables)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$(realpath "${1:-$repo/target/ci}")"
# shellcheck source=netns-session.sh
. "$here/netns-session.sh" web-net "web viewer on real networks"
# shellcheck source=../../scripts/coturn.sh
. "$repo/scripts/coturn.sh"
CUT=10
MAX_RECOVERY_MS=5000
# A restart of the signaling server must not stall the picture (issue target: no gap over 250 ms).
MAX_GAP_AROUND_RESTART_MS=1000
# A frame shown this late after its capture is stale: a replay of what the cut held up, not the screen now.
MAX_FRESH_MS=1000
MIN_FRAMES_THROUGH_RELAY=30

for tool in turnserver certutil; do
    command -v "$tool" >/dev/null 2>&1 || { check "web viewer on real networks" fail "$tool missing (scripts/setup.sh installs it)"; finish; }
done
if [ ! -d "$repo/tests/web/node_modules/playwright-core" ]; then
    (cd "$repo/tests/web" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >/dev/null)
fi
tech="$netns-tech"
ip netns add "$tech"
trap 'for pid in $(ip netns pids "$tech" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      stop_coturn "$work"; ip netns del "$tech" 2>/dev/null || true; cleanup' EXIT
ip link add "pdc$$" type veth peer name "pdt$$"
ip link set "pdc$$" netns "$netns"
ip link set "pdt$$" netns "$tech"
ip -n "$netns" addr add 10.231.0.1/24 dev "pdc$$"
ip -n "$netns" link set "pdc$$" up
ip -n "$tech" addr add 10.231.0.2/24 dev "pdt$$"
ip -n "$tech" link set "pdt$$" up
ip -n "$tech" link set lo up
ip -n "$tech" route add default via 10.231.0.1
# The browser runs with a home of its own whose NSS database trusts the relay's test certificate (Chromium
# checks a TURN server's certificate as it checks a web site's).
in_tech() { ip netns exec "$tech" env HOME="$work/home" "$@"; }

# A signaling server on 10.231.0.1:PORT serving the web viewer; extra arguments follow.
serve() {
    local port="$1"; shift
    in_ns "$bin/peerdesk-signaling-server" --listen "10.231.0.1:$port" --static-dir "$repo/examples/web-viewer" "$@" \
        >>"$work/server-$port.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        ip netns exec "$netns" ss -ltn | grep -q "10.231.0.1:$port " && return 0
        sleep 0.1
    done
    check "a signaling server starts" fail "$(tail -3 "$work/server-$port.log" | tr '\n' ' ')"
    finish
}

# A `peerdesk share` host of the synthetic screen on the server at PORT; sets $code.
share() {
    local port="$1" name="$2"
    : >"$work/host-$name.log"
    in_ns "$bin/peerdesk" share --server "ws://10.231.0.1:$port/ws" --synthetic --size 960x540 --auto-accept view \
        > >(stamp_lines >"$work/host-$name.log") 2>"$work/host-$name.err" &
    pids+=($!)
    wait_for "$work/host-$name.log" ' code: [0-9]+' 20 "the host gets a code"
    code="$(sed -nE 's/^[0-9.]+ code: ([0-9]+).*/\1/p' "$work/host-$name.log" | head -n 1)"
}

# The page's JSON line: a field by a jq-like path (node, no jq on a fresh machine).
field() { node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").pop() || "{}"); const v = process.argv[2].split(".").reduce((o, k) => (o == null ? o : o[k]), r); console.log(typeof v === "object" ? JSON.stringify(v) : String(v));' "$1" "$2"; }
# The first fresh frame (glass-to-glass under MAX_FRESH_MS) at or after epoch ms $2 in $1's result, minus $2
# (ms); empty when none.
first_frame_after() { node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").pop()); const t = Number(process.argv[2]); const i = r.frames.findIndex((x, i) => x >= t && r.latency[i] <= Number(process.argv[3])); if (i >= 0) console.log(r.frames[i] - t);' "$1" "$2" "$MAX_FRESH_MS"; }
# The highest glass-to-glass latency of the frames presented from epoch ms $2 to $3 in $1's result (ms).
stalest_frame() { node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").pop()); const [a, b] = [Number(process.argv[2]), Number(process.argv[3])]; console.log(Math.max(0, ...r.latency.filter((_, i) => r.frames[i] >= a && r.frames[i] <= b)));' "$1" "$2" "$3"; }
# The longest gap between frames from epoch ms $2 to $3 in $1's result (ms).
longest_gap() { node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").pop()); const [a, b] = [Number(process.argv[2]), Number(process.argv[3])]; const f = r.frames.filter((x) => x >= a && x <= b); let g = 0; for (let i = 1; i < f.length; i++) g = Math.max(g, f[i] - f[i - 1]); console.log(f.length < 2 ? 99999 : g);' "$1" "$2" "$3"; }
now_ms() { date +%s%3N; }

# --- 1. UDP blocked: TURN over TLS on 443 -------------------------------------------------------------------
COTURN_IP=10.231.0.1 COTURN_TLS_PORT=443 start_coturn "$netns" "$work" 3478 \
    || { check "coturn starts" fail "$(tail -3 "$work/coturn.log" | tr '\n' ' ')"; finish; }
mkdir -p "$work/home/.pki/nssdb"
certutil -N -d "sql:$work/home/.pki/nssdb" --empty-password
certutil -A -d "sql:$work/home/.pki/nssdb" -n peerdesk-test-turn -t "C,," -i "$work/turn-cert.pem"
serve 8081 --turn-url "turn:10.231.0.1:3478?transport=udp" --turn-url "turns:10.231.0.1:443?transport=tcp" \
    --turn-secret-file "$work/turn-secret"
share 8081 relay
in_tech iptables -A OUTPUT -p udp -j DROP
in_tech node "$repo/tests/web/netns-viewer.mjs" --url http://10.231.0.1:8081 --code "$code" --seconds 4 --relay \
    >"$work/relay.json" 2>"$work/relay.err" || true
dropped="$(in_tech iptables -L OUTPUT -v -n -x | awk '/DROP/ {print $1; exit}')"
in_tech iptables -F OUTPUT
frames="$(field "$work/relay.json" frames.length || true)"
pair="$(field "$work/relay.json" pair || true)"
[ "${dropped:-0}" -gt 0 ] && check "the technician's UDP is blocked" pass "$dropped UDP packets dropped" \
    || check "the technician's UDP is blocked" fail "nothing dropped: the browser never tried UDP"
if [ "$(field "$work/relay.json" pair.relay_protocol || true)" = tls ] && [ "${frames:-0}" -ge "$MIN_FRAMES_THROUGH_RELAY" ]; then
    check "the web viewer reaches the relay over TLS on 443 without UDP" pass "$frames frames, pair $pair, join $(field "$work/relay.json" join_ms) ms"
else
    check "the web viewer reaches the relay over TLS on 443 without UDP" fail "frames ${frames:-none}, pair ${pair:-none}: $(tail -3 "$work/relay.err" | tr '\n' ' ')"
fi

# --- 2. a 10 s UDP cut; 3. a signaling restart, then another cut --------------------------------------------
serve 8080
share 8080 cut
: >"$work/cut.err"
in_tech node "$repo/tests/web/netns-viewer.mjs" --url http://10.231.0.1:8080 --code "$code" --seconds $((2 * CUT + 26)) \
    >"$work/cut.json" 2>"$work/cut.err" &
page=$!
wait_for "$work/cut.err" 'first frame after' 60 "the web viewer shows frames"
cut_udp() {
    sleep 3
    in_tech iptables -A INPUT -p udp -j DROP
    in_tech iptables -A OUTPUT -p udp -j DROP
    sleep "$CUT"
    in_tech iptables -F INPUT
    in_tech iptables -F OUTPUT
}
cut_udp
cut_end="$(now_ms)"
sleep 6
restart_at="$(now_ms)"
# SIGKILL: the server forgets every session. (The background job is a subshell around `ip netns exec`.)
pkill -9 -f -- "peerdesk-signaling-server --listen 10.231.0.1:8080 " || true
sleep 1
serve 8080
sleep 5
restarted="$(now_ms)"
cut_udp
second_cut_end="$(now_ms)"
wait "$page" || true

events="$(field "$work/cut.json" events || true)"
phase="$(field "$work/cut.json" phase || true)"
if [ "$phase" = connected ] && grep -q reconnecting <<<"$events" && grep -q reconnected <<<"$events"; then
    check "the web viewer keeps its session through a ${CUT} s UDP cut" pass "events $events"
else
    check "the web viewer keeps its session through a ${CUT} s UDP cut" fail "phase $phase ($(field "$work/cut.json" ended)), events $events"
fi
recovery="$(first_frame_after "$work/cut.json" "$cut_end" 2>/dev/null || true)"
if [ -n "$recovery" ] && [ "$recovery" -le "$MAX_RECOVERY_MS" ]; then
    check "the web viewer's picture is back after the cut" pass "$recovery ms after the link returned"
else
    check "the web viewer's picture is back after the cut" fail "${recovery:-no fresh frame} ms after the link returned (bound $MAX_RECOVERY_MS)"
fi
stalest="$(stalest_frame "$work/cut.json" "$cut_end" "$restart_at" || echo 99999)"
if [ "$stalest" -le "$MAX_FRESH_MS" ]; then
    check "no stale frames after the cut" pass "highest glass-to-glass latency after it: $stalest ms"
else
    check "no stale frames after the cut" fail "a frame $stalest ms old was shown after the cut (bound $MAX_FRESH_MS)"
fi
gap="$(longest_gap "$work/cut.json" "$((restart_at - 1000))" "$((restarted + 2000))" || echo 99999)"
resumes="$(field "$work/cut.json" resumes || true)"
if [ "${resumes:-0}" -ge 1 ] && [ "$gap" -le "$MAX_GAP_AROUND_RESTART_MS" ]; then
    check "the web viewer pairs again after a signaling restart, frames going on" pass "resumed $resumes, longest gap $gap ms"
else
    check "the web viewer pairs again after a signaling restart, frames going on" fail "resumed ${resumes:-0}, longest gap $gap ms"
fi
recovery="$(first_frame_after "$work/cut.json" "$second_cut_end" 2>/dev/null || true)"
if [ -n "$recovery" ] && [ "$recovery" -le "$MAX_RECOVERY_MS" ]; then
    check "an ICE restart through the restarted server" pass "$recovery ms after the second cut"
else
    check "an ICE restart through the restarted server" fail "${recovery:-no frame} ms after the second cut (bound $MAX_RECOVERY_MS)"
fi
finish
