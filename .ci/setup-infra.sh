#!/usr/bin/env bash
# Install the system tools the tests need, idempotently and quietly:
#   prometheus  - promtool (config/rules checks, rule unit tests) and the real server
#   docker.io, debootstrap - the dockerd + local base image for the compose tests
# Packages already present are skipped, so a warm machine pays nothing. Safe to re-run.
# Usage: .ci/setup-infra.sh [PACKAGE...]   (default: all of the above)
set -euo pipefail

want=("$@")
if [ ${#want[@]} -eq 0 ]; then
    want=(prometheus docker.io debootstrap iptables)
fi

missing=()
for pkg in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-infra: need root to install: ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "setup-infra: installing ${missing[*]}" >&2
apt-get update -qq >/dev/null
# Debian's prometheus package tries to start its service from postinst; there is no
# init system here, so make policy-rc.d refuse service starts for the install.
policy=/usr/sbin/policy-rc.d
restore_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    restore_policy=1
fi
trap 'if [ "$restore_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-infra: done" >&2
