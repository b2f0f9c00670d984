#!/usr/bin/env bash
# deb.sh - the Debian package (make deb): build/deb/payguard_<version>_<arch>.deb
# with dpkg-deb alone (no debhelper), from the programs make built in bin/:
#
#   /usr/lib/payguard/     payguard and every program it starts (ingest validate
#                          triage approve execute audit console): the master
#                          finds them beside itself; /usr/bin/payguard links there
#   /lib/systemd/system/   payguard.target and payguard-<stage>@.service (dist/systemd/)
#   /etc/payguard/payguard.cfg   the configuration (dist/payguard.cfg; a conffile)
#   /usr/share/payguard/console/www/   the console's page
#   /usr/share/payguard/console/uplot/ uPlot's script, style and licence, the
#                          Pipeline page's charts (console/vendor: npm ci by
#                          scripts/install-deps.sh, run here when missing)
#   /usr/share/doc/payguard/README.md
#
# and the maintainer scripts of dist/deb/ (the payguard user, its data
# directory, the units enabled; stop, disable, purge). The sandbox and the
# test tools are not in it. Depends (dist/deb/control) must name the Debian
# package of every library a program links (objdump -p's NEEDED): checked
# here, and the build fails naming what is missing. PG_DEB_VERSION sets the
# version (default 0.1.0+git<date>.<commit>). Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/.."
PROGS="payguard ingest validate triage approve execute audit console"
OUT=build/deb
ROOT=$OUT/root

for p in $PROGS; do
    [ -x "bin/$p" ] || { echo "deb: bin/$p is missing: run make first" >&2; exit 1; }
done
UPLOT=console/vendor/node_modules/uplot
[ -f "$UPLOT/dist/uPlot.iife.min.js" ] || sh scripts/install-deps.sh >&2
for f in dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE; do
    [ -f "$UPLOT/$f" ] || { echo "deb: $UPLOT/$f is missing: sh scripts/install-deps.sh" >&2; exit 1; }
done
if [ -z "${PG_DEB_VERSION:-}" ] && git rev-parse --git-dir >/dev/null 2>&1; then
    PG_DEB_VERSION=0.1.0+git$(git log -1 --format=%cd --date=format:%Y%m%d).$(git rev-parse --short HEAD)
fi
VERSION=${PG_DEB_VERSION:-0.1.0}
ARCH=$(dpkg --print-architecture)

rm -rf "$OUT"
install -d -m 0755 "$ROOT/DEBIAN" "$ROOT/usr/lib/payguard" "$ROOT/usr/bin" "$ROOT/lib/systemd/system" \
    "$ROOT/etc/payguard" "$ROOT/usr/share/payguard/console/www" "$ROOT/usr/share/payguard/console/uplot" \
    "$ROOT/usr/share/doc/payguard"
for p in $PROGS; do
    install -m 0755 "bin/$p" "$ROOT/usr/lib/payguard/$p"
    strip --strip-debug "$ROOT/usr/lib/payguard/$p"
done
ln -s ../lib/payguard/payguard "$ROOT/usr/bin/payguard"
install -m 0644 dist/systemd/payguard.target dist/systemd/payguard-*@.service "$ROOT/lib/systemd/system/"
install -m 0644 dist/payguard.cfg "$ROOT/etc/payguard/payguard.cfg"
install -m 0644 console/www/* "$ROOT/usr/share/payguard/console/www/"
install -m 0644 "$UPLOT/dist/uPlot.iife.min.js" "$UPLOT/dist/uPlot.min.css" "$UPLOT/LICENSE" "$ROOT/usr/share/payguard/console/uplot/"
install -m 0644 README.md "$ROOT/usr/share/doc/payguard/README.md"
install -m 0644 dist/deb/conffiles "$ROOT/DEBIAN/conffiles"
install -m 0755 dist/deb/postinst dist/deb/prerm dist/deb/postrm "$ROOT/DEBIAN/"

# every library the programs link, by the Debian package that ships it
depends=$(sed -n 's/^Depends: //p' dist/deb/control | tr -d ' ' | tr ',' '\n')
cache=$(ldconfig -p)
missing=""
for lib in $(for p in $PROGS; do objdump -p "bin/$p" | awk '$1 == "NEEDED" {print $2}'; done | sort -u); do
    path=$(awk -v l="$lib" '$1 == l && !p {p = $NF} END {print p}' <<<"$cache")
    pkg=$({ dpkg -S "$path" || dpkg -S "/usr$path" || dpkg -S "${path#/usr}" || true; } 2>/dev/null | awk -F: 'NR == 1 {print $1}')
    if [ -z "$pkg" ]; then
        missing="$missing $lib (no Debian package ships ${path:-it})"
    elif ! grep -qx "$pkg" <<<"$depends"; then
        missing="$missing $lib ($pkg)"
    fi
done
if [ -n "$missing" ]; then
    echo "deb: the programs link libraries dist/deb/control's Depends does not name:$missing" >&2
    exit 1
fi

size=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$size/" dist/deb/control >"$ROOT/DEBIAN/control"
deb=$OUT/payguard_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$deb" >/dev/null
echo "$deb"
