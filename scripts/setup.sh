#!/usr/bin/env bash
# Installs, only when missing, every system package that peerdesk's build, demo and tests need.
# Idempotent: a second run changes nothing. Works on Debian 12+ and Ubuntu 22.04+ as root or with sudo.
#
#   scripts/setup.sh          # build + demo + tests
#
# Debian 12 ships libdav1d 1.0, too old for the `dav1d` crate; there we install Debian 13's libdav1d7 and
# libdav1d-dev (1.5), which need only libc6 >= 2.34, through a private apt list that leaves the system's
# sources untouched.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        log "not root and no sudo: install the packages listed in scripts/setup.sh by hand"; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive

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
        log "apt-get update"; $SUDO apt-get update -qq; APT_UPDATED=1
    fi
}

if [ "${#missing[@]}" -gt 0 ]; then
    apt_update_once
    log "installing: ${missing[*]}"
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "system packages present"
fi

# Python's venv module (Debian splits it out), for the Python bindings' tests.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_update_once
    pyver="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    log "installing python${pyver}-venv"
    $SUDO apt-get install -y -qq --no-install-recommends "python${pyver}-venv" >/dev/null \
        || $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi

# libdav1d >= 1.3 (the dav1d crate's floor).
dav1d_ok() {
    local v
    v="$(pkg-config --modversion dav1d 2>/dev/null || true)"
    [ -n "$v" ] && dpkg --compare-versions "$v" ge 1.3
}
if dav1d_ok; then
    log "libdav1d $(pkg-config --modversion dav1d) present"
else
    apt_update_once
    candidate="$(apt-cache policy libdav1d-dev 2>/dev/null | awk '/Candidate:/ {print $2}')"
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && dpkg --compare-versions "$candidate" ge 1.3; then
        log "installing libdav1d-dev $candidate from the distribution"
        $SUDO apt-get install -y -qq --no-install-recommends libdav1d-dev >/dev/null
    else
        log "distribution's libdav1d is too old; fetching Debian 13 (trixie) libdav1d7 + libdav1d-dev"
        # Use the Debian mirror this machine is already configured with.
        mirror="$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list \
                  /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null | head -1 | tr -d ' ')"
        [ -n "$mirror" ] || { log "no Debian mirror found in the apt sources"; exit 1; }
        work="$(mktemp -d)"; chmod 755 "$work"
        mkdir -p "$work/lists/partial" "$work/debs"; chmod -R 777 "$work/debs"
        echo "deb $mirror trixie main" >"$work/trixie.list"
        APT_OPTS=(-o "Dir::Etc::SourceList=$work/trixie.list" -o "Dir::Etc::SourceParts=/dev/null"
                  -o "Dir::State::Lists=$work/lists" -o "APT::Get::List-Cleanup=0")
        $SUDO apt-get "${APT_OPTS[@]}" update -qq
        (cd "$work/debs" && $SUDO apt-get "${APT_OPTS[@]}" download libdav1d7 libdav1d-dev)
        $SUDO dpkg -i "$work"/debs/*.deb >/dev/null
        rm -rf "$work"
    fi
    dav1d_ok || { log "libdav1d >= 1.3 could not be installed"; exit 1; }
    log "libdav1d $(pkg-config --modversion dav1d) installed"
fi

log "done"
