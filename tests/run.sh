#!/usr/bin/env bash
# run.sh - run dm's tests in one `prove` invocation, so there is one summary.
#
# usage: tests/run.sh [--unit] [--asan] [--e2e] [--build DIR] [--asan-build DIR]
#                     [-j N] [-v] [FILE...]
#
#   --unit   the cmocka unit tests of the normal build   (DIR/tests/unit/test_*)
#   --asan   the same tests from the ASan+UBSan build     (build-asan/tests/unit/test_*)
#   --e2e    the shell scenarios                          (tests/e2e/t[0-9]*.sh)
#   none of the three: all of them. FILEs instead: exactly those files.
#   --build DIR       normal build directory (default $DM_BUILD_DIR or build)
#   --asan-build DIR  sanitizer build directory (default $DM_ASAN_BUILD_DIR or build-asan)
#   -j N              parallel jobs (default $DM_TEST_JOBS or the number of CPUs)
#   -v                prove's verbose output (every TAP line)
#
# It only runs tests; `make test` builds first. Every file goes through
# tests/tap-exec.sh, which knows how to run a binary or a script. The last
# line is "N passed, N failed", counting test files as prove judged them (from
# its state file); the exit status is non-zero when any file failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)

build=${DM_BUILD_DIR:-build}
asan_build=${DM_ASAN_BUILD_DIR:-build-asan}
jobs=${DM_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
want_unit=0 want_asan=0 want_e2e=0
prove_args=()
files=()

usage() {
	sed -n '3,14s/^# \{0,1\}//p' "$0"
	exit 2
}

# A FILE argument names a file from the caller's directory; prove runs from
# the root, so make it relative to the root (or absolute, outside the tree).
file_from_root() {
	local abs

	if [ ! -e "$1" ]; then
		echo "run.sh: no such test file '$1'" >&2
		exit 2
	fi
	abs=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
	echo "${abs#"$root"/}"
}

while [ $# -gt 0 ]; do
	case $1 in
	--unit) want_unit=1 ;;
	--asan) want_asan=1 ;;
	--e2e) want_e2e=1 ;;
	--build) build=${2:?--build needs a directory}; shift ;;
	--build=*) build=${1#*=} ;;
	--asan-build) asan_build=${2:?--asan-build needs a directory}; shift ;;
	--asan-build=*) asan_build=${1#*=} ;;
	-j) jobs=${2:?-j needs a number}; shift ;;
	-j*) jobs=${1#-j} ;;
	-v | --verbose) prove_args+=(-v); export DM_TEST_VERBOSE=1 ;;
	-h | --help) usage ;;
	-*) echo "run.sh: unknown option '$1'" >&2; usage ;;
	*) files+=("$(file_from_root "$1")") ;;
	esac
	shift
done
cd "$root"
named=${#files[@]}
if [ $want_unit$want_asan$want_e2e = 000 ] && [ "$named" -eq 0 ]; then
	want_unit=1 want_asan=1 want_e2e=1
fi

# The unit test programs of a build directory: those meson declares as tests
# (so a stale binary of a deleted test does not run), else whatever is there.
unit_tests() {
	local dir=$1 json=$1/meson-info/intro-tests.json

	if [ ! -f "$dir/build.ninja" ]; then
		echo "run.sh: '$dir' is not a build directory; run 'make' (or 'make test') first" >&2
		return 1
	fi
	if [ -f "$json" ]; then
		python3 - "$json" "$root" <<'EOF'
import json, os, sys
root = sys.argv[2] + "/"
for t in json.load(open(sys.argv[1])):
    exe = t["cmd"][0]
    if os.path.basename(os.path.dirname(exe)) == "unit" and os.access(exe, os.X_OK):
        print(exe[len(root):] if exe.startswith(root) else exe)
EOF
	else
		local f
		for f in "$dir"/tests/unit/test_*; do
			if [ -f "$f" ] && [ -x "$f" ]; then
				echo "$f"
			fi
		done
	fi
}

add_unit_tests() {
	local list

	list=$(unit_tests "$1")
	if [ -n "$list" ]; then
		mapfile -t -O ${#files[@]} files < <(sort <<<"$list")
	fi
}
if [ $want_unit = 1 ]; then
	add_unit_tests "$build"
fi
if [ $want_asan = 1 ]; then
	add_unit_tests "$asan_build"
fi
if [ $want_e2e = 1 ]; then
	for f in tests/e2e/t[0-9]*.sh; do
		if [ -f "$f" ]; then
			files+=("$f")
		fi
	done
fi
if [ ${#files[@]} -eq 0 ]; then
	echo "run.sh: no test files found" >&2
	echo "0 passed, 0 failed"
	exit 1
fi

# The e2e scripts find the programs here (see tests/e2e/test-lib.sh).
case $build in
/*) export DM_BUILD_DIR=$build ;;
*) export DM_BUILD_DIR=$root/$build ;;
esac
# ...and the sanitizer build's, when this run uses it or names files (the
# fuzz smoke, t0002, runs its targets from there): `make e2e` builds only
# the normal build, whose targets it then uses.
if { [ $want_asan = 1 ] || [ "$named" -gt 0 ]; } && [ -f "$asan_build/build.ninja" ]; then
	case $asan_build in
	/*) export DM_ASAN_BUILD_DIR=$asan_build ;;
	*) export DM_ASAN_BUILD_DIR=$root/$asan_build ;;
	esac
fi

state=$(mktemp "${TMPDIR:-/tmp}/dm-prove-state.XXXXXX")
trap 'rm -f "$state"' EXIT
rc=0
prove --exec tests/tap-exec.sh --statefile="$state" --state=save -j "$jobs" \
	"${prove_args[@]}" "${files[@]}" || rc=$?

# prove's state file has one "last_result: N" per file: 0 passed, else failed.
read -r passed failed < <(awk '
	$1 == "last_result:" { if ($2 == 0) p++; else f++ }
	END { print p + 0, f + 0 }' "$state")
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	# prove itself failed before judging a file: count every file as failed.
	passed=0 failed=${#files[@]}
fi
echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ] || [ "$rc" -ne 0 ]; then
	exit 1
fi
