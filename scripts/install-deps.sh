#!/bin/sh
# install-deps.sh - install the Debian packages payguard builds and tests with.
#
# Called by `make` before building; does nothing when everything is present,
# so it is cheap to run every time. Needs root (or sudo) only when something
# is missing. Never downloads anything but Debian packages.
#
#   sh scripts/install-deps.sh          what building and testing need
#   sh scripts/install-deps.sh bench    that, and what `make bench` measures
#                                       against (nginx, fio) and reads with (jq)
set -eu

PKGS="build-essential pkg-config libzmq3-dev libczmq-dev libmsgpack-dev libssl-dev \
libcurl4-openssl-dev libcriterion-dev libmicrohttpd-dev libjansson-dev \
libsqlite3-dev curl clang libclang-rt-14-dev"
BENCH_PKGS="nginx-light fio jq"

case "${1:-}" in
"") ;;
bench) PKGS="$PKGS $BENCH_PKGS" ;;
*)
    echo "usage: install-deps.sh [bench]" >&2
    exit 2
    ;;
esac

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-deps: need root to install:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
