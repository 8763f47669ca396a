#!/usr/bin/env bash
# setup-build.sh DIR [-Dname=value...] - make DIR a meson build directory of
# this tree with exactly these options.
#
# A new DIR is set up with them; an existing one is reconfigured only for the
# options whose value differs (so an unchanged tree does not regenerate); a
# half-made one (setup interrupted) is set up again. Used by the Makefile so
# that `make test` always builds with -Dwerror=true, whatever DIR had before.
set -euo pipefail

if [ $# -lt 1 ]; then
	echo "usage: $0 DIR [-Dname=value...]" >&2
	exit 2
fi
dir=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
meson=${MESON:-meson}

if [ ! -f "$dir/meson-private/coredata.dat" ] || [ ! -f "$dir/build.ninja" ]; then
	if [ -d "$dir/meson-private" ]; then
		rm -rf "$dir" # an interrupted setup: start over
	fi
	exec "$meson" setup "$dir" "$root" "$@"
fi

# Options whose current value differs from the wanted one.
changed=$(python3 - "$dir/meson-info/intro-buildoptions.json" "$@" <<'EOF'
import json, sys

def text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    return str(v)

try:
    with open(sys.argv[1]) as f:
        have = {o["name"]: text(o["value"]) for o in json.load(f)}
except (OSError, ValueError):
    have = {}
for arg in sys.argv[2:]:
    if not arg.startswith("-D") or "=" not in arg:
        print(arg)  # not an option we can compare: pass it on
        continue
    name, value = arg[2:].split("=", 1)
    if have.get(name) != value:
        print(arg)
EOF
)
if [ -n "$changed" ]; then
	mapfile -t args <<<"$changed"
	"$meson" configure "$dir" "${args[@]}"
fi
