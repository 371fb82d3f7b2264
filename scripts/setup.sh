#!/usr/bin/env bash
# Installs, only when missing, every system package that peerdesk's build, demo and tests need.
# Idempotent: a second run installs nothing and does not touch apt's lists. Works on Debian 12/13 (deb822
# `/etc/apt/sources.list.d/*.sources` or one-line `sources.list`) and Ubuntu 22.04/24.04, as root or with sudo.
#
#   scripts/setup.sh          # build + demo + tests
#
# libdav1d >= 1.3 is the `dav1d` crate's floor. Debian 12 ships 1.0 and Ubuntu 22.04 0.9: there we install Debian
# 13's libdav1d7 and libdav1d-dev (1.5), which need only libc6 >= 2.34, fetched through a private apt list (the
# system's sources stay untouched) into a directory only root can write, from the machine's own Debian mirror
# (or $PEERDESK_DEBIAN_MIRROR; on Ubuntu, which has none, deb.debian.org).
#
# Every failure prints what failed and why; the exit status is the failing command's.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
trap 'status=$?; log "error: \`$BASH_COMMAND\` failed with exit status $status (scripts/setup.sh line $LINENO)"; exit $status' ERR

# Directory holding apt's configuration; tests point it at fixtures to check the mirror look-up.
APT_ETC="${PEERDESK_APT_ETC:-/etc/apt}"

# Prints the first Debian mirror (a URI whose path ends in /debian) named by the apt sources under $1, in either
# layout: deb822 `URIs:` fields in sources.list.d/*.sources, or one-line `deb` entries in sources.list and
# sources.list.d/*.list. Prints nothing when there is none; absent files and directories are fine.
debian_mirror() {
    local etc="$1" file
    local files=()
    for file in "$etc/sources.list" "$etc"/sources.list.d/*.sources "$etc"/sources.list.d/*.list; do
        [ -f "$file" ] && files+=("$file")
    done
    [ "${#files[@]}" -gt 0 ] || return 0
    awk '
        /^[[:space:]]*#/ { next }
        /^[[:space:]]*URIs:/ { for (i = 2; i <= NF; i++) print $i; next }
        /^[[:space:]]*deb[[:space:]]/ {
            for (i = 2; i <= NF; i++) { if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; continue } print $i; break }
        }
    ' "${files[@]}" | grep -E '^https?://[^[:space:]]+/debian/?$' | head -n 1 | sed 's:/*$::' || true
}

if [ "${1:-}" = "--print-debian-mirror" ]; then
    debian_mirror "$APT_ETC"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        die "not root and no sudo: run as root, or install the packages listed in scripts/setup.sh by hand"
    fi
fi
export DEBIAN_FRONTEND=noninteractive
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian 12+ and Ubuntu 22.04+"

# Debian package name -> a command or file whose presence proves it is installed.
PACKAGES=(
    "nasm:/usr/bin/nasm"
    "cmake:/usr/bin/cmake"
    "pkg-config:/usr/bin/pkg-config"
    "clang:/usr/bin/clang"
    "libclang-dev:/usr/lib/llvm-*/lib/libclang.so*"
    "xvfb:/usr/bin/Xvfb"
    "x11-utils:/usr/bin/xdpyinfo"
    "x11-xserver-utils:/usr/bin/xrandr"
    "ffmpeg:/usr/bin/ffmpeg"
    "maven:/usr/bin/mvn"
    "binutils:/usr/bin/nm"
    "chromium:/usr/bin/chromium"
    "xdotool:/usr/bin/xdotool"
    "iproute2:/usr/sbin/ip"
    "iptables:/usr/sbin/iptables"
    "coturn:/usr/bin/turnserver"
    # certutil: the web viewer's TURN-over-TLS test makes Chromium trust its relay's test certificate.
    "libnss3-tools:/usr/bin/certutil"
)

missing=()
for entry in "${PACKAGES[@]}"; do
    pkg="${entry%%:*}"; probe="${entry#*:}"
    # shellcheck disable=SC2086
    if ! compgen -G $probe >/dev/null; then missing+=("$pkg"); fi
done

APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        $SUDO apt-get update -qq || die "apt-get update failed: check the apt sources and the network"
        APT_UPDATED=1
    fi
}
apt_install() {
    log "installing: $*"
    $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "apt-get install $* failed (see apt's messages above)"
}

if [ "${#missing[@]}" -gt 0 ]; then
    apt_update_once
    apt_install "${missing[@]}"
else
    log "system packages present"
fi

# Python's venv module (Debian splits it out), for the Python bindings' tests.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    command -v python3 >/dev/null 2>&1 || die "python3 not found: install Python 3 first"
    apt_update_once
    pyver="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    if apt-cache show "python${pyver}-venv" >/dev/null 2>&1; then
        apt_install "python${pyver}-venv"
    else
        apt_install python3-venv
    fi
fi

# libdav1d >= 1.3 (the dav1d crate's floor).
dav1d_version() { pkg-config --modversion dav1d 2>/dev/null || true; }
dav1d_ok() {
    local v
    v="$(dav1d_version)"
    [ -n "$v" ] && dpkg --compare-versions "$v" ge 1.3
}
if dav1d_ok; then
    log "libdav1d $(dav1d_version) present"
else
    apt_update_once
    candidate="$(apt-cache policy libdav1d-dev 2>/dev/null | awk '/Candidate:/ {print $2}')"
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && dpkg --compare-versions "$candidate" ge 1.3; then
        log "installing libdav1d-dev $candidate from the distribution"
        apt_install libdav1d-dev
    else
        log "the distribution's libdav1d (${candidate:-none}) is older than 1.3: fetching Debian 13 (trixie) libdav1d7 + libdav1d-dev"
        mirror="${PEERDESK_DEBIAN_MIRROR:-$(debian_mirror "$APT_ETC")}"
        if [ -z "$mirror" ]; then
            [ -r /etc/os-release ] && . /etc/os-release
            if [ "${ID:-}" = "ubuntu" ]; then mirror="http://deb.debian.org/debian"; else
                die "no Debian mirror (a URI ending in /debian) in $APT_ETC/sources.list or $APT_ETC/sources.list.d/; set PEERDESK_DEBIAN_MIRROR"
            fi
        fi
        keyring=/usr/share/keyrings/debian-archive-keyring.gpg
        if [ ! -r "$keyring" ]; then apt_install debian-archive-keyring; fi
        log "mirror: $mirror"
        # Owned by root, mode 700 (mktemp's default): nobody else can add or swap a .deb before dpkg installs it.
        work="$($SUDO mktemp -d /tmp/peerdesk-setup.XXXXXXXX)"
        cleanup_work() { $SUDO rm -rf "$work"; }
        trap cleanup_work EXIT
        $SUDO mkdir -p "$work/lists/partial" "$work/debs"
        echo "deb [signed-by=$keyring] $mirror trixie main" | $SUDO tee "$work/trixie.list" >/dev/null
        APT_OPTS=(-o "Dir::Etc::SourceList=$work/trixie.list" -o "Dir::Etc::SourceParts=/dev/null"
                  -o "Dir::State::Lists=$work/lists" -o "APT::Get::List-Cleanup=0"
                  -o "APT::Sandbox::User=root")
        $SUDO apt-get "${APT_OPTS[@]}" update -qq \
            || die "could not read Debian 13's package list from $mirror"
        # apt-get download checks each .deb against the hashes in the signed Release file.
        (cd "$work/debs" && $SUDO apt-get "${APT_OPTS[@]}" download libdav1d7 libdav1d-dev) \
            || die "could not download libdav1d7 and libdav1d-dev from $mirror trixie"
        debs=("$work"/debs/libdav1d7_*.deb "$work"/debs/libdav1d-dev_*.deb)
        for deb in "${debs[@]}"; do [ -f "$deb" ] || die "expected $deb after the download"; done
        $SUDO dpkg -i "${debs[@]}" >/dev/null || die "dpkg -i ${debs[*]} failed"
    fi
    dav1d_ok || die "libdav1d >= 1.3 is still not visible to pkg-config (found '$(dav1d_version)')"
    log "libdav1d $(dav1d_version) installed"
fi

log "done"
