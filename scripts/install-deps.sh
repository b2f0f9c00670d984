#!/bin/sh
# install-deps.sh - install the Debian packages payguard builds and tests with.
#
# Called by `make` before building; does nothing when everything is present,
# so it is cheap to run every time. Needs root (or sudo) only when something
# is missing. Downloads Debian packages, and from npm only: uPlot, the
# console's Pipeline charts, at the exact version console/vendor/package-lock.json
# pins (npm ci, into console/vendor/node_modules: console/chart_dir); for the
# browser tests playwright-core as tests/browser/package-lock.json pins it
# (into tests/browser/node_modules).
#
#   sh scripts/install-deps.sh          what building and running need (Node.js
#                                       and npm too when none is on PATH: for
#                                       npm ci of the console's uPlot)
#   sh scripts/install-deps.sh test     that, and the console's browser tests:
#                                       Debian's chromium, Node.js and npm (when
#                                       no node/npm is on PATH), playwright-core;
#                                       prometheus, for promtool, which
#                                       checks every /metrics page;
#                                       clang-format, for make tidy; and jq,
#                                       which reads JSON log lines
#   sh scripts/install-deps.sh bench    that, and what `make bench` measures
#                                       against (nginx, fio) and reads with (jq)
set -eu

PKGS="build-essential pkg-config libzmq3-dev libczmq-dev libmsgpack-dev libssl-dev \
libcurl4-openssl-dev libcriterion-dev libmicrohttpd-dev libjansson-dev \
libsqlite3-dev libzstd-dev curl clang libclang-rt-14-dev"
BENCH_PKGS="nginx-light fio jq"
BROWSER_PKGS="chromium"
TEST_PKGS="prometheus clang-format jq" # promtool (Debian ships it in the server package); make tidy; e2e JSON logs

browser=no
# a Node.js of the machine's own is fine; else Debian's (npm ci of uPlot, playwright-core)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
case "${1:-}" in
"") ;;
test)
    browser=yes
    PKGS="$PKGS $BROWSER_PKGS $TEST_PKGS"
    ;;
bench) PKGS="$PKGS $BENCH_PKGS" ;;
*)
    echo "usage: install-deps.sh [test|bench]" >&2
    exit 2
    ;;
esac

# npm_browser - playwright-core for tests/browser, as its lock file pins it
npm_browser() {
    [ "$browser" = yes ] || return 0
    dir=$(cd "$(dirname "$0")/../tests/browser" && pwd)
    [ -f "$dir/node_modules/playwright-core/package.json" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ] && return 0
    echo "install-deps: npm ci in tests/browser (playwright-core)" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

# npm_vendor - uPlot for the console's Pipeline charts, as console/vendor's lock file pins it
npm_vendor() {
    dir=$(cd "$(dirname "$0")/../console/vendor" && pwd)
    [ -f "$dir/node_modules/uplot/dist/uPlot.iife.min.js" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ] && return 0
    echo "install-deps: npm ci in console/vendor (uPlot)" >&2
    # without it the console runs all the same, its Pipeline page without charts
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) ||
        echo "install-deps: npm ci in console/vendor failed: the console's Pipeline page will have no charts" >&2
}

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    npm_vendor
    npm_browser
    exit 0
fi

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
npm_vendor
npm_browser
