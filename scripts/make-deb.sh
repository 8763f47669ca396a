#!/usr/bin/env bash
# scripts/make-deb.sh [OUT_DIR] - the Debian package of dm (dm_VERSION_ARCH.deb
# in OUT_DIR, default the current directory): a release build of this tree
# with prefix /usr in $DEB_BUILD (default build-deb/), installed into a
# staging directory (binaries, manual pages, bash completion, systemd unit),
# with the package's dependencies found by dpkg-shlibdeps from the
# binaries' libraries, packed by dpkg-deb. `make deb` runs it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-.}" && cd "${1:-.}" && pwd)
build=${DEB_BUILD:-$root/build-deb}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage="$work/stage"

# -O2 as Debian builds its packages (meson's release is -O3)
"$root/scripts/setup-build.sh" "$build" -Dprefix=/usr -Dbuildtype=release -Doptimization=2 -Dtests=disabled \
	-Dwerror=true >/dev/null
ninja -C "$build" >/dev/null
DESTDIR="$stage" meson install -C "$build" --no-rebuild --quiet
gzip -9n "$stage"/usr/share/man/man*/*

version=$(meson introspect "$build" --projectinfo |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
arch=$(dpkg --print-architecture)

# dpkg-shlibdeps wants a source package's control file to read
mkdir -p "$work/src/debian"
printf 'Source: dm\n\nPackage: dm\nArchitecture: any\n' >"$work/src/debian/control"
depends=$(cd "$work/src" && dpkg-shlibdeps -O "$stage/usr/bin/dm" "$stage/usr/bin/dmd" |
	sed -n 's/^shlibs:Depends=//p')

mkdir -p "$stage/DEBIAN"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: dm
Version: $version
Architecture: $arch
Maintainer: dm developers <dm@localhost>
Section: admin
Priority: optional
Installed-Size: $(du -sk "$stage/usr" | cut -f1)
Depends: $depends
Recommends: etcd-server, btrfs-progs
Description: git for data volumes
 dm commits, branches, rolls back, pushes and pulls the directories that
 databases and other programs write into, while containers keep using them
 as ordinary volumes. This package holds dm (the command line), dmd (the
 server), their manual pages, the bash completion and dm.service.
CONTROL

cat >"$stage/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
# Starts dm.service where systemd runs; says how to start dmd where not.
set -e
if [ "$1" = configure ]; then
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload
		systemctl enable dm.service >/dev/null 2>&1
		systemctl restart dm.service
	else
		echo "dm: systemd is not running here; start dmd with:" >&2
		echo "  dmd init --data-dir /var/lib/dm && dmd start --data-dir /var/lib/dm" >&2
	fi
	echo "dm: see /usr/share/doc/dm/install.md to point dm at this server" >&2
fi
SCRIPT
cat >"$stage/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
# Stops dm.service before its files go; the data in /var/lib/dm stays.
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	systemctl stop dm.service || true
	systemctl disable dm.service >/dev/null 2>&1 || true
fi
SCRIPT
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm"
mkdir -p "$stage/usr/share/doc/dm"
cp "$root/docs/install.md" "$stage/usr/share/doc/dm/install.md"

deb="$out/dm_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
