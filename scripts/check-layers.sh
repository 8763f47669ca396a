#!/usr/bin/env bash
# check-layers.sh [ROOT] - includes point one way (docs/internals/layout.md).
#
# Every .c and .h file under src/ belongs to a layer: its folder (src/store,
# src/sync, ...), or for dmd its subsystem (src/server/dots, .../transfers,
# .../cluster, .../api) or the process itself (the files directly in
# src/server). A file may include a project header ("dir/file.h") only from
# its own layer or from one its layer is allowed to see below; the table
# below is the whole rule, and layout.md draws it. An include that runs the
# wrong way (the store reaching into the server, the dots into the API, the
# CLI into anything but the client, s3 and util) is printed as
#     FILE:LINE: layer 'FROM' may not include 'HEADER' (layer 'TO')
# and the script exits 1. Only the process files may know the whole server:
# `struct dm_server` anywhere else is refused the same way (a subsystem
# gets its narrow env instead). ROOT defaults to this repository.
set -euo pipefail

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

# layer: the layers it may include (its own is always allowed)
declare -A allowed=(
	[util]=""
	[s3]="util"
	[metrics]="util"
	[store]="util metrics"
	[sync]="util metrics store"
	[kv]="util metrics"
	[actor]="util metrics"
	[engine]="util metrics store"
	[client]="util"
	[remote]="util metrics store sync client"
	[server/dots]="util metrics store sync kv actor engine"
	[server/space]="util metrics store sync kv actor engine"
	[server/transfers]="util metrics store sync remote client kv actor engine server/dots"
	[server/cluster]="util metrics store sync remote client kv actor engine server/dots server/transfers"
	[server/api]="util metrics store sync remote client kv actor engine server/dots server/transfers server/cluster server/space"
	[server]="util metrics store sync remote client kv actor engine server/dots server/transfers server/cluster server/api server/space"
	[cli]="util client s3"
)

# The layer of a path relative to src/ ("server/api/http.c" -> server/api).
layer_of() {
	local p=$1 top=${1%%/*}

	if [ "$top" = server ]; then
		case $p in
		server/*/*) p=${p#server/}; echo "server/${p%%/*}" ;;
		*) echo server ;;
		esac
	else
		echo "$top"
	fi
}

bad=0
while IFS= read -r f; do
	rel=${f#src/}
	from=$(layer_of "$rel")
	if [ -z "${allowed[$from]+set}" ]; then
		echo "$f:1: is in no layer of check-layers.sh; add its folder to the table" >&2
		bad=1
		continue
	fi
	if [ "$from" != server ]; then
		while IFS=: read -r line _; do
			echo "$f:$line: layer '$from' may not use struct dm_server (only the process files do; use the layer's env)" >&2
			bad=1
		done < <(grep -nE 'struct[[:space:]]+dm_server([^_a-zA-Z0-9]|$)' "$f" || true)
	fi
	while IFS=: read -r line header; do
		[ -n "$header" ] || continue
		to=$(layer_of "$header")
		[ "$to" = "$from" ] && continue
		ok=0
		for l in ${allowed[$from]}; do
			[ "$l" = "$to" ] && ok=1
		done
		if [ $ok = 0 ]; then
			echo "$f:$line: layer '$from' may not include '$header' (layer '$to')" >&2
			bad=1
		fi
	done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]+/[^"]+"' "$f" |
		sed -E 's/^([0-9]+):[^"]*"([^"]+)".*/\1:\2/')
done < <(find src -name '*.[ch]' -type f | sort)
exit $bad
