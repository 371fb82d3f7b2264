#!/usr/bin/env bash
# A session that survives a signaling-server restart and, after it, a network cut that needs an ICE restart:
# signaling server, `peerdesk share` and `peerdesk view` run in a network namespace of this test's own. After the
# first frames the server is killed (SIGKILL: it forgets every session) and started again on the same address.
# Video goes on meanwhile (it is peer to peer); both sides reconnect and present the session's resumption token,
# so the server pairs them again. Then every UDP packet is dropped for CUT seconds (default 30; ICE declares the
# path failed after 25): the host's ICE restart must reach the viewer through the new pairing, and frames must
# come back soon after the cut.
#
# Before resumption (checked with the binaries of the commit before it), the host's restart offers went to the
# viewer's old peer id, which the restarted server did not know; the viewer ended the session when ICE failed.
#
#   tests/system/signaling-restart.sh [PEERDESK_BIN_DIR]     # default: target/ci; needs root
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$(realpath "${1:-$repo/target/ci}")"
# shellcheck source=netns-session.sh
. "$here/netns-session.sh" signaling-restart "signaling restart"
CUT="${PEERDESK_TEST_CUT_SECONDS:-30}"
MAX_GAP_MS=500
MAX_RECOVERY_S=10

start_server() { # ADDRESS LOG
    in_ns "$bin/peerdesk-signaling-server" --listen "$1" >"$2" 2>&1 &
    pids+=($!)
    wait_for "$2" '^listening on ' 20 "the signaling server starts"
}
start_server 127.0.0.1:0 "$work/server.log"
addr="$(sed -n 's/^listening on //p' "$work/server.log" | head -n 1)"
server="ws://$addr/ws"

mkfifo "$work/host-in"
in_ns "$bin/peerdesk" share --server "$server" --synthetic --size 640x360 --auto-accept view --loopback \
    <"$work/host-in" > >(stamp_lines >"$work/host.log") 2>"$work/host.err" &
pids+=($!)
exec 3>"$work/host-in" # keeps the host's stdin open
wait_for "$work/host.log" ' code: [0-9]+' 20 "the host gets a code"
code="$(sed -nE 's/^[0-9.]+ code: ([0-9]+).*/\1/p' "$work/host.log" | head -n 1)"

in_ns "$bin/peerdesk" view --server "$server" --code "$code" --loopback --print-stamps --seconds $((CUT + 60)) \
    > >(stamp_lines >"$work/view.log") 2>"$work/view.err" &
pids+=($!)
wait_for "$work/view.log" ' stamp [0-9]+' 30 "the viewer receives frames"
sleep 2

# The server process itself (the background job is a subshell around `ip netns exec`).
for pid in $(ip netns pids "$netns"); do
    if [ "$(basename "$(readlink "/proc/$pid/exe")")" = peerdesk-signaling-server ]; then kill -9 "$pid"; fi
done
killed="$(date +%s.%N)"
sleep 1
start_server "$addr" "$work/server2.log"
wait_for "$work/host.log" 'signaling server reachable again' 30 "the host reconnects to the restarted server"
# Both sides present their token (the viewer retries after 1, 2, 4 s): give the pairing time.
sleep 8

gap="$(awk -v from="$killed" '/ stamp [0-9]+/ { if (prev && $1 >= from - 1 && prev <= from + 9) { g = ($1 - prev) * 1000; if (g > max) max = g } prev = $1 } END { printf "%.0f", max }' "$work/view.log")"
if [ "${gap:-99999}" -le "$MAX_GAP_MS" ]; then
    check "video goes on while the server restarts" pass "longest frame gap ${gap} ms"
else
    check "video goes on while the server restarts" fail "longest frame gap ${gap} ms"
fi

ip netns exec "$netns" iptables -A INPUT -p udp -j DROP
sleep "$CUT"
ip netns exec "$netns" iptables -D INPUT -p udp -j DROP
cut_end="$(date +%s.%N)"
sleep $((MAX_RECOVERY_S + 2))

check_after_cut "$cut_end" "the session survives a cut after the restart" "an ICE restart through the resumed pairing brings frames back"
finish
