#!/usr/bin/env bash
test_description='a SIGKILL of dmd in the middle of an in-place receive or reset leaves a file half old, the head where it was and the branch marked as needing a reset (commit and pull refused, saying so); dm reset --hard HEAD then restores it exactly'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-sparse.sh"

# wc_of SERVER BRANCH: the working copy of BRANCH of dot sp on SERVER (its
# id read once: dm dot show refuses a branch that needs a reset).
wc_of() {
	echo "$HOME/$1/dots/$(cat "$HOME/id")/$2/wc"
}

# stalled SERVER CMD...: restarts SERVER so that its in-place writes stall
# after their first change (DM_TEST_STALL_IN_PLACE), runs CMD in the
# background until they do, and kills the server there (SIGKILL); the
# server then starts again normally.
stalled() {
	local n=$1
	shift
	server_stop "$n" &&
	touch "$HOME/stall-$n" &&
	DM_TEST_STALL_IN_PLACE=$HOME/stall-$n server_start "$n" &&
	{ "$@" >"cmd-$n.out" 2>&1 & } &&
	wait_for "the in-place write to stall" test -e "$HOME/stall-$n.reached" &&
	test -e "$(wc_of "$n" master)/../unfinished" &&
	test_kill_hard "$HOME/$n/dmd.pid" &&
	rm -f "$HOME/stall-$n" "$HOME/stall-$n.reached" &&
	wait &&
	server_start "$n"
}

# Checks that the working copy of master on SERVER equals a fresh checkout
# of its head (a new branch NAME made from it, then left again).
same_as_fresh() {
	"dm$1" checkout -b "$2" --dot sp >/dev/null &&
	"dm$1" checkout master --dot sp >/dev/null &&
	file_state "$(wc_of "$1" "$2")" >expect &&
	file_state "$(wc_of "$1" master)" >actual &&
	test_cmp expect actual
}

test_expect_success 'setup: on A a dot holding a 64 MiB sparse file; B clones it; A changes two chunks far apart and commits' '
	servers_init A B &&
	dmA init sp &&
	dmA mount sp spA &&
	sparse_write spA/big.img 64M 0:1M:1 16M:2M:2 40M:1M:3 &&
	dmA commit -m one >/dev/null &&
	dot_id dmA dot show sp >id &&
	log_ids dmA log >one &&
	sha256sum <spA/big.img >sum-one &&
	dmB clone a sp >/dev/null 2>&1 &&
	sparse_patch spA/big.img 17M:64K:5 40M:64K:6 &&
	dmA commit -m two >/dev/null &&
	log_ids dmA log >two &&
	sha256sum <spA/big.img >sum-two
'

test_expect_success 'SIGKILL of the receiver in the middle of an in-place pull leaves a file half old and the head where it was' '
	stalled B dmB pull a sp &&
	log_ids dmB log --dot sp >actual &&
	test_cmp one actual &&
	sha256sum <"$(wc_of B master)/big.img" >sum &&
	! cmp -s sum sum-one && ! cmp -s sum sum-two
'

test_expect_success 'the branch is marked as needing a reset: dot show, commit and pull say so and change nothing' '
	test_status 11 dmB dot show sp &&
	grep "needs a reset" err && grep "dm reset --hard HEAD" err &&
	test_status 11 dmB commit --dot sp -m nope &&
	grep "needs a reset" err &&
	test_must_fail dmB pull a sp >out 2>err &&
	grep "needs a reset" err &&
	log_ids dmB log --dot sp >actual &&
	test_cmp one actual
'

test_expect_success 'dm reset --hard HEAD restores it exactly; the pull then completes' '
	dmB reset --hard HEAD --dot sp >/dev/null &&
	! test -e "$(wc_of B master)/../unfinished" &&
	sha256sum <"$(wc_of B master)/big.img" >sum &&
	test_cmp sum-one sum &&
	same_as_fresh B fresh &&
	dmB pull a sp >/dev/null 2>&1 &&
	sha256sum <"$(wc_of B master)/big.img" >sum &&
	test_cmp sum-two sum
'

test_expect_success 'SIGKILL of dmd in the middle of an in-place reset: the same' '
	stalled A dmA reset --hard "$(cat one)" &&
	log_ids dmA log >actual &&
	test_cmp two actual &&
	sha256sum <spA/big.img >sum &&
	! cmp -s sum sum-one && ! cmp -s sum sum-two &&
	test_status 11 dmA commit -m nope &&
	grep "needs a reset" err &&
	dmA reset --hard HEAD >/dev/null &&
	sha256sum <spA/big.img >sum &&
	test_cmp sum-two sum &&
	same_as_fresh A fresh
'

test_done
