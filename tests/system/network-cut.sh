#!/usr/bin/env bash
# A session that survives a network cut longer than ICE's failure timeout: signaling server, `peerdesk share`
# and `peerdesk view` run in a network namespace of this test's own; after the first frames, every UDP packet is
# dropped for CUT seconds (default 35; ICE declares the path failed after 25), while the signaling connection
# (TCP) stays. The host restarts ICE over signaling until a path works again; the session must go on, with the
# viewer told "reconnecting" and "reconnected", frames arriving again soon after the cut ends, and the same
# session (no new join).
#
# Before ICE restarts (checked with that commit's binaries: 4 of the 5 checks fail), the viewer ended the session
# when ICE failed ~30 s into the cut, and no frame came after it.
#
#   tests/system/network-cut.sh [PEERDESK_BIN_DIR]     # default: target/ci; needs root (ip netns, iptables)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$(realpath "${1:-$repo/target/ci}")"
# shellcheck source=netns-session.sh
. "$here/netns-session.sh" network-cut "network cut"
CUT="${PEERDESK_TEST_CUT_SECONDS:-35}"
MAX_RECOVERY_S=10

in_ns "$bin/peerdesk-signaling-server" --listen 127.0.0.1:0 >"$work/server.log" 2>&1 &
pids+=($!)
wait_for "$work/server.log" '^listening on ' 20 "the signaling server starts"
addr="$(sed -n 's/^listening on //p' "$work/server.log" | head -n 1)"
server="ws://$addr/ws"

mkfifo "$work/host-in"
in_ns "$bin/peerdesk" share --server "$server" --synthetic --size 640x360 --auto-accept view --loopback \
    <"$work/host-in" > >(stamp_lines >"$work/host.log") 2>"$work/host.err" &
pids+=($!)
exec 3>"$work/host-in" # keeps the host's stdin open
wait_for "$work/host.log" ' code: [0-9]+' 20 "the host gets a code"
code="$(sed -nE 's/^[0-9.]+ code: ([0-9]+).*/\1/p' "$work/host.log" | head -n 1)"

in_ns "$bin/peerdesk" view --server "$server" --code "$code" --loopback --print-stamps --seconds $((CUT + 30)) \
    > >(stamp_lines >"$work/view.log") 2>"$work/view.err" &
viewer=$!
pids+=("$viewer")
wait_for "$work/view.log" ' stamp [0-9]+' 30 "the viewer receives frames"
sleep 2

ip netns exec "$netns" iptables -A INPUT -p udp -j DROP
cut_start="$(date +%s.%N)"
sleep "$CUT"
dropped="$(ip netns exec "$netns" iptables -L INPUT -v -n -x | awk '/DROP/ {print $1; exit}')"
ip netns exec "$netns" iptables -D INPUT -p udp -j DROP
cut_end="$(date +%s.%N)"
sleep $((MAX_RECOVERY_S + 2))

[ "${dropped:-0}" -gt 0 ] && check "the cut dropped packets" pass "$dropped UDP packets in $CUT s" \
    || check "the cut dropped packets" fail "nothing dropped: the test measured nothing"
if grep -q 'reconnecting' "$work/view.log"; then
    check "the viewer is told the connection was lost" pass
else
    check "the viewer is told the connection was lost" fail "$(tail -3 "$work/view.log" | tr '\n' ' ')"
fi
check_after_cut "$cut_end" "the session survives a ${CUT} s cut" "frames again within ${MAX_RECOVERY_S} s of the link's return"
if grep -q 'reconnected' "$work/view.log" && grep -q 'reconnected' "$work/host.log"; then
    check "both sides report the connection back" pass
else
    check "both sides report the connection back" fail "viewer: $(grep -c reconnected "$work/view.log" || true), host: $(grep -c reconnected "$work/host.log" || true)"
fi
echo "cut from $cut_start to $cut_end" >&2
finish
