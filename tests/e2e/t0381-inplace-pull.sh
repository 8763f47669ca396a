#!/usr/bin/env bash
test_description='dm pull writes the changed chunks into the receiving working copy in place (same inodes): a large sparse file ends byte for byte and hole for hole as the sender has it and as a fresh checkout makes it'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-sparse.sh"

# wc_of SERVER BRANCH: the working copy of BRANCH of dot sp on SERVER.
wc_of() {
	echo "$HOME/$1/dots/$(dot_id "dm$1" dot show sp)/$2/wc"
}

test_expect_success 'setup: on A a dot holding a 64 MiB sparse file and a small one; B clones it' '
	servers_init A B &&
	dmA init sp &&
	dmA mount sp spA &&
	sparse_write spA/big.img 64M 0:1M:1 16M:2M:2 40M:1M:3 &&
	printf "first version\n" >spA/notes.txt &&
	touch -d @1000000000 spA/notes.txt &&
	dmA commit -m one >/dev/null &&
	dmB clone a sp >/dev/null 2>&1 &&
	stat -c %i "$(wc_of B master)/big.img" "$(wc_of B master)/notes.txt" >inodes-before
'

test_expect_success 'A changes a chunk inside a region, turns a region into a hole, writes into a hole, and commits' '
	sparse_patch spA/big.img 17M:64K:5 30M:128K:6 &&
	fallocate -p -o $((40 * 1024 * 1024)) -l $((1024 * 1024)) spA/big.img &&
	printf "other version\n" >spA/notes.txt &&
	chmod 600 spA/notes.txt &&
	touch -d @1100000000 spA/notes.txt &&
	dmA commit -m two >/dev/null
'

test_expect_success 'the pull changes the files in place on B: their inodes stay' '
	dmB pull a sp >/dev/null 2>&1 &&
	log_ids dmA log --dot sp >expect && log_ids dmB log --dot sp >actual &&
	test_cmp expect actual &&
	stat -c %i "$(wc_of B master)/big.img" "$(wc_of B master)/notes.txt" >inodes-after &&
	test_cmp inodes-before inodes-after
'

test_expect_success 'B holds what A holds, byte for byte and hole for hole, with the modes and mtimes' '
	file_state "$(wc_of A master)" >expect &&
	file_state "$(wc_of B master)" >actual &&
	test_cmp expect actual &&
	test "$(data_map "$(wc_of B master)/big.img")" = "0-1048576 16777216-18874368 31457280-31588352" &&
	dmB checkout -b fresh --dot sp >/dev/null &&
	file_state "$(wc_of B fresh)" >fresh &&
	test_cmp expect fresh
'

test_done
