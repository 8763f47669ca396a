#!/usr/bin/env bash
# scripts/start.sh BUILD_DIR - start dm from a build tree: the first time,
# `dm cluster init` (a data directory, the admin's API key, the `local`
# remote in ~/.dm/config); afterwards `dm cluster start` on the same data
# directory. Does nothing when dm already answers.
#
# Environment: DM_DATA_DIR (default /var/lib/dm as root, ~/.dm/data
# otherwise), DM_PORT (default 32607).
set -euo pipefail

build=${1:-build}
dm="$build/src/cli/dm"
if [ "$(id -u)" = 0 ]; then
	data=${DM_DATA_DIR:-/var/lib/dm}
else
	data=${DM_DATA_DIR:-$HOME/.dm/data}
fi
port=${DM_PORT:-32607}

if [ ! -x "$dm" ]; then
	echo "start: $dm is missing; run 'make' first" >&2
	exit 1
fi
if [ -f "$data/config.json" ]; then
	if "$dm" version >/dev/null 2>&1; then
		echo "dm is already running (data directory $data)"
	else
		"$dm" cluster start --data-dir "$data"
	fi
else
	"$dm" cluster init --data-dir "$data" --port "$port"
fi
cat <<MSG

Put dm on your PATH with 'sudo make install' (or: export PATH="$PWD/$build/src/cli:\$PATH"),
then try: dm init shop && dm list
MSG
