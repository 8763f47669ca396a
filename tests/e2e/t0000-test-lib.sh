#!/usr/bin/env bash
test_description='test-lib itself: results, test_must_fail, test_cmp, cleanup, trash'
. "$(dirname "$0")/test-lib.sh"

# run_sub_test NAME: writes the script read from stdin, after the lines that
# load test-lib, to NAME/NAME.sh and runs it with NAME/ as its trash root,
# outside CI unless SUB_CI is set (CI=$SUB_CI).
# Its TAP goes to NAME/out, its stderr to NAME/err, its status to NAME/status.
run_sub_test() {
	mkdir -p "$1" &&
	{
		echo '#!/usr/bin/env bash'
		echo "test_description='sub test $1'"
		echo ". '$TEST_DIRECTORY/test-lib.sh'"
		cat
	} >"$1/$1.sh" &&
	(
		cd "$1" &&
		CI=${SUB_CI:-} DM_TRASH_ROOT=$PWD bash "./$1.sh" >out 2>err
		echo $? >status
	)
}

# check_sub NAME STATUS: the sub test exited with STATUS and its TAP output,
# without the `#` comment lines, is what stdin says.
check_sub() {
	echo "$2" >"$1/expect-status" &&
	test_cmp "$1/expect-status" "$1/status" &&
	cat >"$1/expect" &&
	grep -v '^#' "$1/out" >"$1/actual" &&
	test_cmp "$1/expect" "$1/actual"
}

test_path_absent() {
	if [ -e "$1" ]; then
		echo "'$1' exists" >&2
		return 1
	fi
}

test_expect_success 'passing tests are ok, the plan comes last, the trash goes' '
	run_sub_test pass <<-\EOF &&
	test_expect_success "first" "true"
	test_expect_success "second" "echo hello && test -d \"\$TRASH_DIRECTORY\""
	test_done
	EOF
	check_sub pass 0 <<-\EOF &&
	ok 1 - first
	ok 2 - second
	1..2
	EOF
	test_path_absent "pass/trash-pass$test_trash_suffix"
'

test_expect_success 'a failing test is not ok, fails the script and keeps the trash' '
	run_sub_test fail <<-\EOF &&
	test_expect_success "passes" "true"
	test_expect_success "fails" "echo visible-output && false"
	test_done
	EOF
	check_sub fail 1 <<-\EOF &&
	ok 1 - passes
	not ok 2 - fails
	1..2
	EOF
	grep "^#.*visible-output" fail/out &&
	grep "^#.*echo visible-output && false" fail/out &&
	grep "trash directory kept" fail/err &&
	test -d "fail/trash-fail$test_trash_suffix"
'

test_expect_success 'test_must_fail accepts a command that fails' '
	test_must_fail false &&
	test_must_fail sh -c "exit 3"
'

test_expect_success 'test_must_fail rejects success, a crash and a missing command' '
	run_sub_test must_fail <<-\EOF &&
	test_expect_success "success" "test_must_fail true"
	test_expect_success "crash" "test_must_fail sh -c \"kill -SEGV \\\$\\\$\""
	test_expect_success "abort" "test_must_fail sh -c \"kill -ABRT \\\$\\\$\""
	test_expect_success "not found" "test_must_fail no-such-command-dm"
	test_done
	EOF
	check_sub must_fail 1 <<-\EOF &&
	not ok 1 - success
	not ok 2 - crash
	not ok 3 - abort
	not ok 4 - not found
	1..4
	EOF
	grep "command succeeded" must_fail/out &&
	grep "died of signal 11" must_fail/out &&
	grep "died of signal 6" must_fail/out &&
	grep "cannot run" must_fail/out
'

test_expect_success 'test_cmp passes on equal files and fails on different ones' '
	printf "a\nb\n" >one &&
	printf "a\nb\n" >same &&
	printf "a\nc\n" >other &&
	test_cmp one same &&
	test_must_fail test_cmp one other >diff &&
	grep "^-b" diff &&
	grep "^+c" diff &&
	run_sub_test cmp <<-\EOF &&
	test_expect_success "differ" "echo x >a && echo y >b && test_cmp a b"
	test_done
	EOF
	check_sub cmp 1 <<-\EOF
	not ok 1 - differ
	1..1
	EOF
'

test_expect_success 'a missing prerequisite skips the test, test_set_prereq sets one' '
	run_sub_test prereq <<-\EOF &&
	test_set_prereq HAVEIT
	test_expect_success NOSUCH "skipped" "false"
	test_expect_success HAVEIT "runs" "true"
	test_expect_success HAVEIT,NOSUCH "skipped too" "false"
	test_done
	EOF
	check_sub prereq 0 <<-\EOF
	ok 1 # skip skipped (missing NOSUCH)
	ok 2 - runs
	ok 3 # skip skipped too (missing NOSUCH)
	1..3
	EOF
'

test_expect_success 'test_when_finished runs after a failure; a failing cleanup fails' '
	run_sub_test finished <<-\EOF &&
	test_expect_success "body fails" "test_when_finished \"touch \$HOME/cleaned\" && false"
	test_expect_success "cleaned up" "test -f \$HOME/cleaned"
	test_expect_success "cleanup fails" "test_when_finished false && true"
	test_done
	EOF
	check_sub finished 1 <<-\EOF
	not ok 1 - body fails
	ok 2 - cleaned up
	not ok 3 - cleanup fails
	1..3
	EOF
'

test_expect_success 'test_atexit runs once at the end, also after an early exit' '
	run_sub_test atexit <<-\EOF &&
	test_atexit "echo ran >>\"\$DM_TRASH_ROOT/ran\""
	test_expect_success "passes" "true"
	test_done
	EOF
	check_sub atexit 0 <<-\EOF &&
	ok 1 - passes
	1..1
	EOF
	echo ran >expect &&
	test_cmp expect atexit/ran &&
	run_sub_test atexit_early <<-\EOF &&
	test_atexit "echo ran >>\"\$DM_TRASH_ROOT/ran\""
	exit 3
	EOF
	echo 3 >expect-status &&
	test_cmp expect-status atexit_early/status &&
	test_cmp expect atexit_early/ran
'

test_expect_success 'each test starts in the trash directory, which is HOME' '
	run_sub_test cwd <<-\EOF &&
	test_expect_success "wander" "mkdir sub && cd sub && pwd"
	test_expect_success "back home" "test \"\$PWD\" = \"\$TRASH_DIRECTORY\" && test \"\$HOME\" = \"\$PWD\""
	test_done
	EOF
	check_sub cwd 0 <<-\EOF
	ok 1 - wander
	ok 2 - back home
	1..2
	EOF
'

test_expect_success 'a script that exits before test_done fails' '
	run_sub_test early <<-\EOF &&
	test_expect_success "passes" "true"
	exit 0
	EOF
	check_sub early 1 <<-\EOF
	ok 1 - passes
	EOF
'

test_expect_success 'test_skip_all skips the whole script' '
	run_sub_test skipall <<-\EOF &&
	test_skip_all "not today"
	test_expect_success "never" "false"
	test_done
	EOF
	check_sub skipall 0 <<-\EOF
	1..0 # SKIP not today
	EOF
'

test_expect_success 'under CI, test_skip_all fails instead of skipping' '
	SUB_CI=true run_sub_test ciskipall <<-\EOF &&
	test_skip_all "not today"
	test_done
	EOF
	check_sub ciskipall 1 <<-\EOF
	1..1
	not ok 1 - cannot set up what this test needs: not today
	EOF
'

test_expect_success PYTHON 'test_free_port gives a port nothing listens on' '
	port=$(test_free_port) &&
	test "$port" -gt 0 && test "$port" -lt 65536 &&
	python3 -c "import socket; socket.socket().bind((\"127.0.0.1\", $port))"
'

test_expect_success 'the programs of the build directory come first in PATH' '
	case $PATH in
	"$DM_BUILD_DIR/src/cli:$DM_BUILD_DIR/src/server:$DM_BUILD_DIR/tests/helpers:"*) ;;
	*) echo "PATH is $PATH"; false ;;
	esac
'

test_done
