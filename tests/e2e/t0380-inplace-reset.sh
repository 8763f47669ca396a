#!/usr/bin/env bash
test_description='dm reset changes only what differs inside the existing files, in place (same inodes): large sparse files end byte for byte and hole for hole as a fresh checkout of the commit makes them, with its modes, owners and mtimes'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-sparse.sh"

# The working copy of BRANCH of dot sp on A.
wc_of() {
	echo "$HOME/A/dots/$(dot_id dmA dot show sp)/$1/wc"
}

# inodes DIR: the inode numbers of the three files the commits change.
inodes() {
	stat -c %i "$1/big.img" "$1/notes.txt" "$1/dir/tail.img"
}

# Checks that the working copy of master equals a fresh checkout of its
# head (a new branch NAME made from it, then left again).
same_as_fresh() {
	dmA checkout -b "$1" >/dev/null &&
	dmA checkout master >/dev/null &&
	file_state "$(wc_of "$1")" >expect &&
	file_state "$(wc_of master)" >actual &&
	test_cmp expect actual
}

test_expect_success 'setup: a dot holding a 64 MiB sparse file, a small file with its own mode, owner and mtime, and a file ending in a hole; two commits that change them' '
	servers_init A &&
	dmA init sp &&
	dmA mount sp spA &&
	sparse_write spA/big.img 64M 0:1M:1 16M:2M:2 40M:1M:3 &&
	printf "first version\n" >spA/notes.txt &&
	chmod 640 spA/notes.txt &&
	touch -d @1000000000.123456789 spA/notes.txt &&
	if test_have_root; then chown 1234:5678 spA/notes.txt; fi &&
	mkdir spA/dir &&
	sparse_write spA/dir/tail.img 8388808 0:64K:4 &&
	dmA commit -m one >/dev/null &&
	one=$(log_ids dmA log | head -n 1) &&
	sparse_patch spA/big.img 17M:64K:5 30M:128K:6 &&
	fallocate -p -o $((40 * 1024 * 1024)) -l $((1024 * 1024)) spA/big.img &&
	printf "other version\n" >spA/notes.txt &&
	chmod 600 spA/notes.txt &&
	touch -d @1100000000 spA/notes.txt &&
	if test_have_root; then chown 4321:8765 spA/notes.txt; fi &&
	truncate -s 10M spA/dir/tail.img &&
	sparse_patch spA/dir/tail.img 9M:64K:7 &&
	dmA commit -m two >/dev/null &&
	two=$(log_ids dmA log | head -n 1) &&
	test "$one" != "$two" &&
	echo "$one" >one && echo "$two" >two &&
	test "$(data_map spA/big.img)" = "0-1048576 16777216-18874368 31457280-31588352"
'

test_expect_success 'a reset to the first commit changes the files in place: their inodes stay' '
	inodes "$(wc_of master)" >before &&
	dmA reset --hard "$(cat one)" >/dev/null &&
	inodes "$(wc_of master)" >after &&
	test_cmp before after
'

test_expect_success 'they hold what a fresh checkout of it holds, byte for byte and hole for hole, with its modes, owners and mtimes' '
	same_as_fresh fresh1 &&
	test "$(data_map spA/big.img)" = "0-1048576 16777216-18874368 41943040-42991616" &&
	test "$(data_map spA/dir/tail.img)" = "0-65536" &&
	test "$(stat -c "%s %a %Y" spA/dir/tail.img)" = "8388808 644 $(stat -c %Y "$(wc_of fresh1)/dir/tail.img")" &&
	test "$(stat -c "%a %Y" spA/notes.txt)" = "640 1000000000" &&
	if test_have_root; then test "$(stat -c "%u:%g" spA/notes.txt)" = 1234:5678; fi
'

test_expect_success 'a reset forward to the second commit does the same the other way' '
	dmA reset --hard "$(cat two)" >/dev/null &&
	inodes "$(wc_of master)" >after2 &&
	test_cmp before after2 &&
	same_as_fresh fresh2 &&
	test "$(data_map spA/big.img)" = "0-1048576 16777216-18874368 31457280-31588352" &&
	test "$(stat -c "%s %a %Y" spA/notes.txt)" = "14 600 1100000000" &&
	if test_have_root; then test "$(stat -c "%u:%g" spA/notes.txt)" = 4321:8765; fi
'

test_expect_success 'a reset that changes nothing writes nothing: no inode, mtime or ctime moves' '
	stat -c "%i %Y %Z" "$(wc_of master)/big.img" "$(wc_of master)/notes.txt" >before3 &&
	dmA reset --hard HEAD >/dev/null &&
	stat -c "%i %Y %Z" "$(wc_of master)/big.img" "$(wc_of master)/notes.txt" >after3 &&
	test_cmp before3 after3 &&
	dmA dot show sp >out &&
	! grep -i "needs a reset" out
'

test_done
