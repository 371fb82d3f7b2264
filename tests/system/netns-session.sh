# Shared by the system tests that run a session in a network namespace of their own (sourced, not run):
# JUnit checks, the namespace and its clean-up, and helpers to run and watch processes in it.
#
#   . "$here/netns-session.sh" NAME WHAT     # NAME: the JUnit suite and namespace prefix; WHAT: the skip's name
# Defines: check, finish, netns, work, pids, in_ns, stamp_lines, wait_for. Needs $repo. Exits (skipped) without root.
# PEERDESK_TEST_LOG sets the processes' RUST_LOG (default warn); PEERDESK_TEST_KEEP=DIR keeps their logs there.

# shellcheck source=../../scripts/junit.sh
. "$repo/scripts/junit.sh"
junit_begin "${JUNIT_FILE:-/dev/null}" "$1"
failed=0
check() { junit_case "$1" "$2" "${3:-}"; if [ "$2" = fail ]; then failed=1; fi; }
finish() {
    if [ -n "${PEERDESK_TEST_KEEP:-}" ] && [ -n "${work:-}" ]; then cp -r "$work" "$PEERDESK_TEST_KEEP"; fi
    junit_end
    exit "$failed"
}

if [ "$(id -u)" -ne 0 ]; then check "$2" skip "needs root (ip netns, iptables)"; finish; fi
if ! command -v iptables >/dev/null 2>&1; then check "$2" fail "iptables missing (scripts/setup.sh installs it)"; finish; fi
netns="peerdesk-$1-$$"
ip netns add "$netns"
work="$(mktemp -d)"
pids=()
cleanup() {
    exec 3>&- 2>/dev/null || true
    # Everything started inside the namespace (the `ip netns exec` wrappers' children too), then what is left.
    for pid in $(ip netns pids "$netns" 2>/dev/null) "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in $(ip netns pids "$netns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$netns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip -n "$netns" link set lo up
in_ns() { ip netns exec "$netns" env -u DISPLAY RUST_LOG="${PEERDESK_TEST_LOG:-warn}" "$@"; }
# Every output line with the time it was printed (seconds since the epoch).
stamp_lines() { while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done; }
wait_for() { # FILE PATTERN SECONDS WHAT
    local deadline=$((SECONDS + $3))
    until grep -qE "$2" "$1"; do
        if [ "$SECONDS" -ge "$deadline" ]; then check "$4" fail "not seen within $3 s: $(tail -3 "$1" | tr '\n' ' ')"; finish; fi
        sleep 0.2
    done
}
# After a cut that ended at CUT_END: the viewer ($work/view.log, --print-stamps) kept its session, and its first
# frame came within MAX_RECOVERY_S. check_after_cut CUT_END "survival check name" "recovery check name"
check_after_cut() {
    local ended first_after recovery
    ended="$(awk -v t="$1" '$1 < t && /session ended|received [0-9]+ frames/' "$work/view.log" | head -n 1)"
    if [ -z "$ended" ]; then check "$2" pass; else check "$2" fail "${ended#* }"; fi
    first_after="$(awk -v t="$1" '$1 >= t && / stamp [0-9]+/ {print $1; exit}' "$work/view.log")"
    if [ -z "$first_after" ]; then
        check "$3" fail "no frame after the cut: $(tail -3 "$work/view.log" | tr '\n' ' ')"
        return
    fi
    recovery="$(awk -v a="$first_after" -v b="$1" 'BEGIN { printf "%.1f", a - b }')"
    if awk -v r="$recovery" -v m="$MAX_RECOVERY_S" 'BEGIN { exit !(r <= m) }'; then
        check "$3" pass "${recovery} s after the cut"
    else
        check "$3" fail "${recovery} s"
    fi
}
