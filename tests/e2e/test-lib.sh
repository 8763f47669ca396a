# shellcheck shell=bash
# test-lib.sh - what every e2e script sources; git's t/test-lib.sh, made small.
#
# A script tests/e2e/tNNNN-name.sh looks like:
#
#	#!/usr/bin/env bash
#	test_description='what this script proves'
#	. "$(dirname "$0")/test-lib.sh"
#
#	test_expect_success 'dm init makes a dot' '
#		dm init shop &&
#		dm list >actual &&
#		grep shop actual
#	'
#	test_done
#
# Always true here: a script runs in its own fresh trash directory (tests/e2e/
# trash-<script>/, or under $DM_TRASH_ROOT), which is also $HOME, and each test
# body starts there, with stdin from /dev/null and its output captured. stdout
# is TAP: `ok N - desc`, `not ok N - desc` followed by the body and its output
# as `#` lines, `1..N` from test_done, which exits non-zero when a test failed.
# The trash directory is removed when all passed and kept otherwise.
#
# Options (or the same in the environment, for prove): -v/--verbose
# (DM_TEST_VERBOSE=1) shows every test's output; -d/--debug (DM_TEST_DEBUG=1)
# keeps the trash directory; -i/--immediate stops at the first failure;
# -x traces the test bodies.
#
# Helpers: test_must_fail, test_cmp, test_when_finished, test_atexit,
# test_free_port, test_have_root, test_set_prereq/test_have_prereq (a test
# may name prerequisites first: test_expect_success ROOT,PYTHON 'desc' 'body'),
# test_skip_all.
#
# The programs: $DM_BUILD_DIR (default <repo>/build, relative to the repo)
# src/cli, src/server and tests/helpers come first in PATH.

TEST_DIRECTORY=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DM_SOURCE_DIR=$(cd "$TEST_DIRECTORY/../.." && pwd)
DM_BUILD_DIR=${DM_BUILD_DIR:-$DM_SOURCE_DIR/build}
case $DM_BUILD_DIR in
/*) ;;
*) DM_BUILD_DIR=$DM_SOURCE_DIR/$DM_BUILD_DIR ;;
esac
export TEST_DIRECTORY DM_SOURCE_DIR DM_BUILD_DIR
PATH=$DM_BUILD_DIR/src/cli:$DM_BUILD_DIR/src/server:$DM_BUILD_DIR/tests/helpers:$PATH
export PATH

test_verbose=${DM_TEST_VERBOSE:-0}
test_debug=${DM_TEST_DEBUG:-0}
test_immediate=0
test_trace=0
while [ $# -gt 0 ]; do
	case $1 in
	-v | --verbose) test_verbose=1 ;;
	-d | --debug) test_debug=1 ;;
	-i | --immediate) test_immediate=1 ;;
	-x) test_trace=1 ;;
	*)
		echo "error: unknown test option '$1'" >&2
		exit 1
		;;
	esac
	shift
done

# A predictable environment: no user config, no locale surprises.
export LC_ALL=C LANG=C TZ=UTC
unset CDPATH DM_CONFIG DM_TEST_VERBOSE DM_TEST_DEBUG
# A test's dmd serves no Docker volume plugin unless the test gives it a
# --plugin-socket of its own: /run/docker/plugins/dm.sock is not a test's.
export DM_PLUGIN_SOCKET=none

TEST_NAME=$(basename "$0" .sh)
test_trash_suffix=
if [ "$(basename "$DM_BUILD_DIR")" != build ]; then
	# Two build directories of one tree may run the same script at once.
	test_trash_suffix=.$(basename "$DM_BUILD_DIR")
fi
TRASH_DIRECTORY=${DM_TRASH_ROOT:-$TEST_DIRECTORY}/trash-$TEST_NAME$test_trash_suffix
export TRASH_DIRECTORY

test_count=0
test_failures=0
test_done_called_=0
test_atexit_cleanup_=:
test_prereqs_=
test_output_=$(mktemp "${TMPDIR:-/tmp}/dm-test-output.XXXXXX") || exit 1

# Runs (once) what test_atexit registered, before the trash may go.
test_run_atexit_() {
	local cleanup=$test_atexit_cleanup_

	test_atexit_cleanup_=:
	eval "$cleanup" >/dev/null 2>&1
}

test_exit_trap_() {
	local code=$?

	test_run_atexit_
	rm -f "$test_output_"
	if [ "$test_done_called_" = 0 ]; then
		echo "# $TEST_NAME exited before test_done (status $code); bug in the script?"
		echo "trash directory kept: $TRASH_DIRECTORY" >&2
		[ "$code" = 0 ] && exit 1
	fi
	exit "$code"
}
trap test_exit_trap_ EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$TRASH_DIRECTORY"
if ! mkdir -p "$TRASH_DIRECTORY" || ! cd "$TRASH_DIRECTORY"; then
	echo "Bail out! cannot make trash directory '$TRASH_DIRECTORY'"
	exit 1
fi
HOME=$TRASH_DIRECTORY
export HOME

if [ "$test_verbose" = 1 ] && [ -n "${test_description:-}" ]; then
	echo "# $TEST_NAME: $test_description"
fi

# Prints stdin as TAP comment lines.
test_comment_() {
	sed -e 's/^/#	/'
}

test_set_prereq() {
	test_prereqs_="$test_prereqs_ $1 "
}

# True when every prerequisite of the comma-separated list holds; some are
# known without test_set_prereq. Sets test_missing_prereq_.
test_have_prereq() {
	local p list

	IFS=, read -r -a list <<<"$1"
	for p in "${list[@]}"; do
		case " $test_prereqs_ " in
		*" $p "*) continue ;;
		esac
		case $p in
		ROOT) test_have_root && continue ;;
		PYTHON) command -v python3 >/dev/null 2>&1 && continue ;;
		esac
		test_missing_prereq_=$p
		return 1
	done
	return 0
}

test_have_root() {
	[ "$(id -u)" = 0 ]
}

# A test body runs in a function of its own, so that `return 1` in it (out
# of a loop, say) fails the test instead of leaving test_expect_success.
test_eval_() {
	eval "$1"
}

# test_expect_success [PREREQS] 'description' 'shell commands'
test_expect_success() {
	local test_prereq_='' test_desc_ test_body_ test_rc_

	if [ $# = 3 ]; then
		test_prereq_=$1
		shift
	fi
	if [ $# != 2 ]; then
		echo "Bail out! bug in $TEST_NAME: test_expect_success needs 2 or 3 arguments"
		exit 1
	fi
	test_desc_=$1 test_body_=$2
	test_count=$((test_count + 1))
	if [ -n "$test_prereq_" ] && ! test_have_prereq "$test_prereq_"; then
		# (a prerequisite is how a script picks the cases of its setup, as
		# t0730's DIR_ENGINE under t0700; a missing program or privilege
		# is test_skip_all's, which fails under CI)
		echo "ok $test_count # skip $test_desc_ (missing $test_missing_prereq_)"
		return 0
	fi

	cd "$TRASH_DIRECTORY" || exit 1
	test_cleanup_=:
	test_cleanup_failed_=0
	{
		if [ "$test_trace" = 1 ]; then
			set -x
		fi
		test_eval_ "$test_body_"
		test_rc_=$?
		eval "$test_cleanup_"
		set +x
	} >"$test_output_" 2>&1 </dev/null
	if [ "$test_rc_" = 0 ] && [ "$test_cleanup_failed_" = 1 ]; then
		echo "test_when_finished: a cleanup command failed" >>"$test_output_"
		test_rc_=1
	fi
	test_cleanup_=:
	cd "$TRASH_DIRECTORY" || exit 1

	if [ "$test_rc_" = 0 ]; then
		echo "ok $test_count - $test_desc_"
		if [ "$test_verbose" = 1 ]; then
			test_comment_ <"$test_output_"
		fi
		return 0
	fi
	test_failures=$((test_failures + 1))
	echo "not ok $test_count - $test_desc_"
	{
		echo "exit status $test_rc_ of:"
		printf '%s\n' "$test_body_"
		echo "output:"
		cat "$test_output_"
	} | test_comment_
	if [ "$test_immediate" = 1 ]; then
		test_done
	fi
	return 0
}

# test_wait_gone PID [SECONDS]: waits (default 10 s) for the process to end.
test_wait_gone() {
	local i
	for i in $(seq $((${2:-10} * 10))); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "process $1 is still running" >&2
	return 1
}

# wait_for DESC CMD...: polls CMD every 0.2 s for up to 20 s; says what it
# waited for when it gives up.
wait_for() {
	local desc=$1
	shift
	for _ in $(seq 100); do
		"$@" && return 0
		sleep 0.2
	done
	echo "timed out waiting for $desc" >&2
	return 1
}

# test_kill_hard PIDFILE: SIGKILL of the process PIDFILE names, a crash, and
# a wait (up to 30 s) until it is gone: its locks are free only then.
test_kill_hard() {
	local pid
	pid=$(cat "$1") && kill -9 "$pid" && test_wait_gone "$pid" 30
}

# one_error PATTERN: the file err holds exactly one line, a dm error
# ("dm: ...") matching PATTERN.
one_error() {
	test "$(wc -l <err)" = 1 && grep "^dm: .*$1" err
}

# Runs after the current test's body, pass or fail; a failing cleanup fails
# the test. For state the next test must not see (a running server...).
test_when_finished() {
	test_cleanup_="{ $*
	} || test_cleanup_failed_=1; $test_cleanup_"
}

# Runs when the script ends, however it ends (stop a daemon...).
test_atexit() {
	test_atexit_cleanup_="{ $*
	} ; $test_atexit_cleanup_"
}

# test_must_fail CMD...: CMD must fail in a controlled way: exit 1..125, not
# success, not "not found" (127), not a crash or kill by a signal (> 128).
test_must_fail() {
	local code

	"$@"
	code=$?
	if [ "$code" = 0 ]; then
		echo "test_must_fail: command succeeded: $*" >&2
		return 1
	elif [ "$code" -gt 128 ] && [ "$code" -le 192 ]; then
		echo "test_must_fail: died of signal $((code - 128)): $*" >&2
		return 1
	elif [ "$code" = 127 ] || [ "$code" = 126 ]; then
		echo "test_must_fail: cannot run: $*" >&2
		return 1
	fi
	return 0
}

# test_status STATUS CMD...: CMD exits with exactly STATUS; its stderr is in
# the file err (and shown when the status is another).
test_status() {
	local want=$1 code=0
	shift
	"$@" 2>err || code=$?
	if [ "$code" != "$want" ]; then
		echo "expected exit status $want, got $code from: $*" >&2
		cat err >&2
		return 1
	fi
}

# test_cmp EXPECTED ACTUAL: the files are equal; the diff shows otherwise.
test_cmp() {
	diff -u "$@"
}

# Prints a TCP port on 127.0.0.1 that nothing listens on right now.
test_free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# The engine the scenarios run on. DM_TEST_ENGINE=btrfs makes every
# `dm cluster init` of a script add --engine btrfs --pool-size
# $DM_TEST_POOL_SIZE (default 2G): a loop-mounted pool in the data directory,
# which needs root, btrfs and loop devices (t0700 runs the shared scenarios
# this way), except for data directories named in DM_TEST_DIR_ENGINE_FOR
# (basenames, space-separated: servers that stay on the dir engine, for
# transfers between engines). Unset or "dir": the default engine.
if [ "${DM_TEST_ENGINE:-dir}" = btrfs ]; then
	dm() {
		local a prev='' dir=''

		if [ "${1-}" != cluster ] || [ "${2-}" != init ]; then
			command dm "$@"
			return
		fi
		for a in "$@"; do
			[ "$prev" = --data-dir ] && dir=$a
			case $a in --data-dir=*) dir=${a#--data-dir=} ;; esac
			prev=$a
		done
		case " ${DM_TEST_DIR_ENGINE_FOR-} " in
		*" $(basename "${dir:-data}") "*)
			command dm "$@"
			return
			;;
		esac
		shift 2
		command dm cluster init --engine btrfs --pool-size "${DM_TEST_POOL_SIZE:-2G}" "$@"
	}
fi

# Skips the whole script: test_skip_all 'needs root'
# test_skip_all WHY: the script cannot run here. Under CI (CI set) that
# is a failure, not a skip: CI's machines have everything the tests need,
# and a test that cannot set up what it needs must not pass silently.
test_skip_all() {
	if [ -n "${CI:-}" ]; then
		echo "1..1"
		echo "not ok 1 - cannot set up what this test needs: $*"
		test_done_called_=1
		test_run_atexit_
		exit 1
	fi
	echo "1..0 # SKIP $*"
	test_done_called_=1
	test_run_atexit_
	cd "$TEST_DIRECTORY" && rm -rf "$TRASH_DIRECTORY"
	exit 0
}

test_done() {
	test_done_called_=1
	test_run_atexit_
	echo "1..$test_count"
	if [ "$test_failures" = 0 ]; then
		if [ "$test_debug" = 1 ]; then
			echo "trash directory kept (--debug): $TRASH_DIRECTORY" >&2
		else
			cd "$TEST_DIRECTORY" && rm -rf "$TRASH_DIRECTORY"
		fi
		exit 0
	fi
	echo "# failed $test_failures among $test_count test(s)"
	echo "$TEST_NAME: trash directory kept: $TRASH_DIRECTORY" >&2
	exit 1
}
