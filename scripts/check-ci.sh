#!/usr/bin/env bash
# check-ci.sh [ROOT] - CI runs exactly the test command the README gives.
#
# The README's command is the first line of the first ```sh block under
# its "## Run the tests" heading; CI's is the one command line of .ci/run
# (every line but blank ones, comments, `set ...` and `cd ...`). The two
# must be the same text (but for spaces around it), and .ci/run must have that one command only.
#
# Prints what differs on stderr and exits 1; exits 0 when they agree. ROOT
# defaults to this repository.
set -euo pipefail

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
readme=$root/README.md
ci=$root/.ci/run

fail() {
	echo "check-ci: $*" >&2
	exit 1
}

[ -f "$readme" ] || fail "no $readme"
[ -f "$ci" ] || fail "no $ci"

# The first line of the first code block after the heading (up to the next
# heading).
want=$(awk '
	/^## / { in_sec = ($0 == "## Run the tests"); next }
	in_sec && !in_code && /^```/ { in_code = 1; next }
	in_sec && in_code { print; exit }
' "$readme")
[ -n "$want" ] || fail "$readme has no command under '## Run the tests'"

mapfile -t lines < <(grep -vE '^[[:space:]]*(#|$|set[[:space:]]|cd[[:space:]])' "$ci" || true)
[ ${#lines[@]} = 1 ] ||
	fail "$ci has ${#lines[@]} command lines, not one: ${lines[*]:-}"
trim() {
	local s=$1
	s=${s#"${s%%[![:space:]]*}"}
	printf '%s' "${s%"${s##*[![:space:]]}"}"
}
want=$(trim "$want")
got=$(trim "${lines[0]}")
[ "$got" = "$want" ] ||
	fail "$ci runs '$got', the README's test command is '$want'"
