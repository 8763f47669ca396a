#!/usr/bin/env bash
# check-source.sh [ROOT] - the source rules a compiler cannot check for us.
#
#  1. every .c file under src/ and tests/ (but tests/e2e) opens with a `/*`
#     comment that says what it is for;
#  2. its last #include is "util/banned.h", so nothing after it can bring a
#     banned function back;
#  3. no function that util/banned.h bans is called anywhere in src/ (a
#     `name(` outside banned.h itself; the list is read from banned.h, so the
#     two cannot drift). Catches uses the macros miss, e.g. in a file that
#     forgot rule 2, or through a function pointer `(strcpy)(...)`.
#
# Prints one line per violation as FILE:LINE: message and exits 1 when there
# is any. ROOT defaults to this repository.
set -euo pipefail

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
bad=0

complain() {
	echo "$1" >&2
	bad=1
}

mapfile -t cfiles < <(find src tests -name '*.c' -not -path 'tests/e2e/*' -type f 2>/dev/null | sort)

for f in "${cfiles[@]}"; do
	first=$(head -n 1 "$f")
	case $first in
	/\**) ;;
	*) complain "$f:1: does not open with a /* comment saying what it is for" ;;
	esac

	includes=$(grep -nE '^[[:space:]]*#[[:space:]]*include' "$f" || true)
	last=$(tail -n 1 <<<"$includes")
	case $last in
	*'"util/banned.h"'*) ;;
	*)
		if grep -q '"util/banned.h"' <<<"$includes"; then
			complain "$f:${last%%:*}: last #include is not \"util/banned.h\": ${last#*:}"
		else
			complain "$f:1: does not #include \"util/banned.h\" (last)"
		fi
		;;
	esac
done

banned_h=src/util/banned.h
if [ -f "$banned_h" ]; then
	names=$(sed -nE 's/^#define[[:space:]]+([a-z_0-9]+)\(.*BANNED\(.*/\1/p' "$banned_h" | sort -u)
	if [ -z "$names" ]; then
		complain "$banned_h: no BANNED(...) definitions found"
	else
		pattern="(^|[^A-Za-z0-9_])($(paste -sd'|' <<<"$names"))[[:space:]]*\\)?[[:space:]]*\\("
		while IFS=: read -r file line text; do
			complain "$file:$line: calls a function banned in $banned_h: $text"
		done < <(find src -name '*.[ch]' -type f -not -path "$banned_h" -print0 | sort -z |
			xargs -0 -r grep -nHE "$pattern" || true)
	fi
else
	complain "$banned_h: missing"
fi

exit $bad
