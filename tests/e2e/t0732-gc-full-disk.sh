#!/usr/bin/env bash
test_description='a full disk loses nothing: a commit that does not fit on a small loop-mounted file system fails with "no space", the store stays consistent, and dm works again once space is freed'
. "$(dirname "$0")/test-lib.sh"

# What this proves, with a dmd whose data directory is a 192 MiB ext4 file
# system of its own (loop-mounted; needs root): a commit that would leave
# less than the store's reserve (16 MiB here) fails with one "no space"
# line naming the store and the reserve; the commit before it is whole;
# the store verifies (dmd stopped); after a file is deleted from the
# working copy and dm gc runs, commits work again; and dm gc itself runs
# on the full disk.

test_have_root || test_skip_all 'needs root (a loop-mounted file system)'
command -v mkfs.ext4 >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin
command -v mkfs.ext4 >/dev/null 2>&1 || test_skip_all 'needs mkfs.ext4'
command -v dm-store-tool >/dev/null || test_skip_all "dm-store-tool is not built in $DM_BUILD_DIR"
[ "${DM_TEST_ENGINE:-dir}" = dir ] || test_skip_all 'the dir engine only (its own file system)'

port=$(test_free_port)
small=$HOME/small
data=$small/data
export DM_CONFIG=$HOME/dmconf/config
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1; umount -l '$small' 2>/dev/null"

test_expect_success 'setup: a 192 MiB file system, dmd on it, a commit of 48 MiB' '
	truncate -s 192M small.img &&
	mkfs.ext4 -q -F small.img &&
	mkdir -p "$small" && mount -o loop small.img "$small" &&
	dm cluster init --data-dir "$data" --port "$port" >/dev/null &&
	dm init full && dm mount full wc &&
	head -c 50331648 /dev/urandom >wc/first && cp wc/first first.saved &&
	dm commit -m first >/dev/null
'

test_expect_success 'a commit that does not fit fails with "no space", naming the reserve' '
	head -c 50331648 /dev/urandom >wc/second &&
	test_must_fail dm commit -m second 2>err &&
	test "$(wc -l <err)" = 1 &&
	grep "^dm: .*no space" err &&
	grep "in reserve\|free" err &&
	dm log >out && grep first out && ! grep second out
'

test_expect_success 'dm gc runs on the full disk' '
	dm gc >out && grep "^freed" out
'

test_expect_success 'the store is consistent: it verifies, the first commit checks out whole' '
	dmd stop --data-dir "$data" >/dev/null &&
	dm-store-tool --store "$data/store" verify >verify.out 2>&1 || { cat verify.out; false; } &&
	dm cluster start --data-dir "$data" --port "$port" >/dev/null &&
	rm wc/second &&
	dm reset --hard HEAD >/dev/null &&
	cmp wc/first first.saved
'

test_expect_success 'once space is freed, commits work again' '
	head -c 10000000 /dev/urandom >wc/third &&
	dm commit -m third >/dev/null &&
	dm log >out && grep third out &&
	dm gc >/dev/null &&
	dmd stop --data-dir "$data" >/dev/null &&
	dm-store-tool --store "$data/store" verify >verify.out 2>&1 || { cat verify.out; false; } &&
	dm cluster start --data-dir "$data" --port "$port" >/dev/null
'

test_done
