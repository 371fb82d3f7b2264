#!/usr/bin/env bash
# The fresh-machine test: does scripts/setup.sh set up a clean Debian 12 machine, and is a second run a no-op?
#
#   tests/system/fresh-machine.sh [SETUP_SCRIPT]      # default: scripts/setup.sh; needs root
#
# 1. A clean Debian 12 root from debootstrap (minbase + python3, as on a machine with "only Rust, Python, Java and
#    Node": Rust, Java and Node are not what setup.sh installs, so they are left out), with apt sources in the
#    deb822 layout only (/etc/apt/sources.list.d/debian.sources, no /etc/apt/sources.list) pointing at this
#    machine's own Debian mirror. The bootstrapped root is cached as a tarball under /var/cache/peerdesk (first
#    run ~2 min), but every check unpacks a new copy of it, so each run starts from the clean root.
# 2. None of the packages setup.sh installs is present before it runs.
# 3. setup.sh runs in the root (chroot) and exits 0; everything it promises is there afterwards.
# 4. A second run exits 0, installs nothing and leaves dpkg's database and apt's lists as they were.
#
# Prints one line per check (pass/fail) and, with $JUNIT_FILE set, writes them as JUnit XML. Exit status 1 when a
# check failed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
setup="$(realpath "${1:-$repo/scripts/setup.sh}")"
# shellcheck source=../../scripts/junit.sh
. "$repo/scripts/junit.sh"
junit_begin "${JUNIT_FILE:-/dev/null}" fresh-machine
failed=0
check() { # NAME STATUS [MESSAGE]
    junit_case "$1" "$2" "${3:-}"
    if [ "$2" = fail ]; then failed=1; fi
}
finish() { junit_end; exit "$failed"; }

if [ "$(id -u)" -ne 0 ]; then
    check "fresh Debian 12 root" skip "needs root (debootstrap, chroot)"
    finish
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "[fresh-machine] installing debootstrap" >&2
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

mirror="$("$repo/scripts/setup.sh" --print-debian-mirror)"
mirror="${PEERDESK_DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}"
cache_dir=/var/cache/peerdesk
cache="$cache_dir/debian12-minbase-python3.tar"
if [ ! -s "$cache" ]; then
    echo "[fresh-machine] bootstrapping a Debian 12 root from $mirror (cached in $cache)" >&2
    mkdir -p "$cache_dir"; chmod 700 "$cache_dir"
    build="$(mktemp -d /tmp/peerdesk-debootstrap.XXXXXX)"
    if ! debootstrap --variant=minbase --include=python3 bookworm "$build/root" "$mirror" >"$build.log" 2>&1; then
        tail -20 "$build.log" >&2
        check "debootstrap a Debian 12 root" fail "debootstrap failed; see above"
        rm -rf "$build" "$build.log"
        finish
    fi
    rm -f "$build/root/var/cache/apt/archives/"*.deb
    tar -C "$build/root" -cf "$cache.partial" .
    mv "$cache.partial" "$cache"
    rm -rf "$build" "$build.log"
fi

root="$(mktemp -d /tmp/peerdesk-fresh-root.XXXXXX)"
mounted=()
cleanup() {
    local m
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
    rm -rf --one-file-system "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$cache"

# deb822 sources only, this machine's mirror; apt settings of this machine's kind (e.g. Check-Valid-Until for a
# snapshot mirror) come along, as a fresh machine of this kind has them.
rm -f "$root/etc/apt/sources.list"
mkdir -p "$root/etc/apt/sources.list.d"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
grep -h '^[[:space:]]*Acquire::' /etc/apt/apt.conf.d/* >"$root/etc/apt/apt.conf.d/50peerdesk-host" 2>/dev/null || true
cp /etc/resolv.conf "$root/etc/resolv.conf"
for fs in proc sys dev dev/pts; do
    mkdir -p "$root/$fs"
    case "$fs" in
        proc) mount -t proc proc "$root/proc" ;;
        sys) mount -t sysfs sys "$root/sys" ;;
        *) mount --bind "/$fs" "$root/$fs" ;;
    esac
    mounted+=("$root/$fs")
done
mkdir -p "$root/opt/peerdesk/scripts"
cp "$setup" "$root/opt/peerdesk/scripts/setup.sh"
chmod 755 "$root/opt/peerdesk/scripts/setup.sh"

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 "$@"; }

# The packages setup.sh installs (its PACKAGES list, venv and libdav1d) must all be missing at the start.
promised=(nasm cmake pkg-config clang xvfb x11-utils x11-xserver-utils ffmpeg maven binutils chromium xdotool
          iproute2 iptables coturn libnss3-tools libdav1d-dev python3.11-venv)
present="$(for p in "${promised[@]}"; do in_root dpkg-query -W -f '${db:Status-Abbrev}${Package}\n' "$p" 2>/dev/null \
           | awk '/^ii/ {print substr($0, 4)}'; done)"
if [ -z "$present" ]; then
    check "clean root has none of setup.sh's packages" pass
else
    check "clean root has none of setup.sh's packages" fail "already present: $(echo $present)"
fi

snapshot() { # what a run may change: dpkg's database and apt's package lists
    in_root sh -c 'sha256sum /var/lib/dpkg/status; ls -l --time-style=+%s.%N /var/lib/apt/lists/ 2>/dev/null'
}

started=$SECONDS
if in_root /opt/peerdesk/scripts/setup.sh >"$root.first.log" 2>&1; then
    check "setup.sh on a fresh Debian 12 (deb822 sources) exits 0" pass "$((SECONDS - started)) s"
else
    status=$?
    tail -25 "$root.first.log" >&2
    check "setup.sh on a fresh Debian 12 (deb822 sources) exits 0" fail \
        "exit status $status after $((SECONDS - started)) s; last line: $(tail -1 "$root.first.log")"
fi

missing=()
for tool in nasm cmake pkg-config clang Xvfb xdpyinfo xrandr ffmpeg mvn nm chromium xdotool ip iptables turnserver certutil; do
    in_root sh -c "command -v $tool" >/dev/null 2>&1 || missing+=("$tool")
done
in_root sh -c 'ls /usr/lib/llvm-*/lib/libclang.so*' >/dev/null 2>&1 || missing+=("libclang")
in_root python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=("python3 venv")
dav1d="$(in_root pkg-config --modversion dav1d 2>/dev/null || true)"
if [ -z "$dav1d" ] || ! dpkg --compare-versions "$dav1d" ge 1.3; then missing+=("libdav1d >= 1.3 (found '${dav1d}')"); fi
if [ "${#missing[@]}" -eq 0 ]; then
    check "everything setup.sh promises is installed (libdav1d $dav1d)" pass
else
    check "everything setup.sh promises is installed" fail "missing: ${missing[*]}"
fi
if [ -e "$root/etc/apt/sources.list" ] || ! diff -q <(cat "$root/etc/apt/sources.list.d/"*) \
        <(cat "$root/etc/apt/sources.list.d/debian.sources") >/dev/null; then
    check "the system's apt sources are left alone" fail "setup.sh added or changed apt sources"
else
    check "the system's apt sources are left alone" pass
fi

before="$(snapshot)"
started=$SECONDS
if in_root /opt/peerdesk/scripts/setup.sh >"$root.second.log" 2>&1; then
    after="$(snapshot)"
    if [ "$before" != "$after" ]; then
        check "a second setup.sh run changes nothing" fail "dpkg's database or apt's lists changed: $(diff <(echo "$before") <(echo "$after") | head -5 | tr '\n' ' ')"
    elif grep -q 'installing\|apt-get update' "$root.second.log"; then
        check "a second setup.sh run changes nothing" fail "it ran: $(grep 'installing\|apt-get update' "$root.second.log" | head -2 | tr '\n' ' ')"
    else
        check "a second setup.sh run changes nothing" pass "$((SECONDS - started)) s"
    fi
else
    tail -10 "$root.second.log" >&2
    check "a second setup.sh run changes nothing" fail "second run exited non-zero"
fi
rm -f "$root.first.log" "$root.second.log"
finish
