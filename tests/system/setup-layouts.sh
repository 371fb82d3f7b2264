#!/usr/bin/env bash
# scripts/setup.sh finds the Debian mirror in every apt layout it claims, and never fails on an absent file:
# deb822 (`sources.list.d/*.sources`, Debian 12/13 and Ubuntu 24.04), one-line (`sources.list`, `*.list`, with or
# without `[options]`), comments, and no sources at all. Ubuntu's own archives are not Debian mirrors. Fixture
# directories only (PEERDESK_APT_ETC); nothing is fetched. Writes JUnit XML to $JUNIT_FILE when set.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=../../scripts/junit.sh
. "$repo/scripts/junit.sh"
junit_begin "${JUNIT_FILE:-/dev/null}" setup-layouts
failed=0
fixtures="$(mktemp -d)"
trap 'rm -rf "$fixtures"' EXIT

expect() { # NAME EXPECTED_MIRROR  (the fixture is $fixtures/NAME)
    local got status=0
    got="$(PEERDESK_APT_ETC="$fixtures/$1" "$repo/scripts/setup.sh" --print-debian-mirror 2>&1)" || status=$?
    if [ "$status" -eq 0 ] && [ "$got" = "$2" ]; then
        junit_case "mirror look-up: $1" pass "${2:-none}"
    else
        junit_case "mirror look-up: $1" fail "expected '${2}', got '$got' (exit $status)"; failed=1
    fi
}
layout() { mkdir -p "$fixtures/$1/sources.list.d"; cat >"$fixtures/$1/$2"; }

layout debian12-deb822 sources.list.d/debian.sources <<'X'
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
X
expect debian12-deb822 http://deb.debian.org/debian

layout debian13-one-line sources.list <<'X'
# deb http://commented.invalid/debian trixie main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://127.0.0.1:3142/debian/ trixie main
deb http://127.0.0.1:3142/debian-security trixie-security main
X
expect debian13-one-line http://127.0.0.1:3142/debian

layout debian12-list-dir sources.list.d/mirror.list <<'X'
deb-src http://src.invalid/debian bookworm main
deb http://10.0.0.1/debian bookworm main
X
expect debian12-list-dir http://10.0.0.1/debian

layout ubuntu2404-deb822 sources.list.d/ubuntu.sources <<'X'
Types: deb
URIs: http://archive.ubuntu.com/ubuntu/
Suites: noble noble-updates
Components: main universe
X
expect ubuntu2404-deb822 ""

layout ubuntu2204-one-line sources.list <<'X'
deb http://archive.ubuntu.com/ubuntu/ jammy main universe
X
expect ubuntu2204-one-line ""

mkdir -p "$fixtures/no-sources"
expect no-sources ""

junit_end
exit "$failed"
