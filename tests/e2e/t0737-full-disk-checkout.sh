#!/usr/bin/env bash
test_description='a full disk during reset, receive and commit leaves dm consistent and working once space is freed; a failed sync stops writes, saying why, until dmd restarts'
. "$(dirname "$0")/test-lib.sh"

# What this proves, with a dmd whose data directory is a 400 MiB ext4 file
# system of its own (loop-mounted; needs root), the rest of the disk taken
# by a filler file outside dm:
#   - a reset to a commit whose files do not fit is refused before the
#     working copy changes ("no space", naming the file system and what it
#     needs): the working copy is still exactly the head, clean;
#   - a push into it whose data does not fit in the store fails with "no
#     space"; one whose data fits in the store but not in the working copy
#     fails without moving the branch; both go through once space is freed;
#   - a commit that does not fit fails and leaves the history as it was;
#   - after each, with the filler gone, the same command works, dm fsck is
#     clean and the store verifies;
#   - a sync that fails (injected: DM_TEST_FAIL_SYNC) stops every write of
#     the store with one message that says why and to restart dmd, also
#     once syncs work again; after a restart, commits work and nothing that
#     was committed before is lost.

test_have_root || test_skip_all 'needs root (a loop-mounted file system)'
command -v mkfs.ext4 >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin
command -v mkfs.ext4 >/dev/null 2>&1 || test_skip_all 'needs mkfs.ext4'
command -v dm-store-tool >/dev/null || test_skip_all "dm-store-tool is not built in $DM_BUILD_DIR"
[ "${DM_TEST_ENGINE:-dir}" = dir ] || test_skip_all 'the dir engine only (its own file system)'

port=$(test_free_port)
port2=$(test_free_port)
small=$HOME/small
data=$small/data
export DM_CONFIG=$HOME/dmconf/config
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1; dmd stop --data-dir '$HOME/two' >/dev/null 2>&1; umount -l '$small' 2>/dev/null"

MiB=1048576

# fill_to N: the filler file leaves about N MiB free on the small file system
fill_to() {
	rm -f "$small/filler" &&
	free=$(df -B1 --output=avail "$small" | tail -1) &&
	size=$((free - $1 * MiB)) &&
	if [ "$size" -gt 0 ]; then fallocate -l "$size" "$small/filler"; fi &&
	echo "free now: $(($(df -B1 --output=avail "$small" | tail -1) / MiB)) MiB"
}

unfill() {
	rm -f "$small/filler"
}

head_id() {
	dm log --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["commits"][0]["id"])'
}

test_expect_success 'setup: a 400 MiB file system, dmd on it; c1 holds a (40 MiB), c2 b (40 MiB)' '
	truncate -s 400M small.img &&
	mkfs.ext4 -q -F small.img &&
	mkdir -p "$small" && mount -o loop small.img "$small" &&
	dm cluster init --data-dir "$data" --port "$port" >/dev/null &&
	dm init full && dm mount full wc &&
	head -c $((40 * MiB)) /dev/urandom >wc/a && cp wc/a a.saved &&
	dm commit -m c1 >/dev/null && head_id >c1.id &&
	rm wc/a && head -c $((40 * MiB)) /dev/urandom >wc/b && cp wc/b b.saved &&
	dm commit -m c2 >/dev/null && head_id >c2.id
'

test_expect_success 'a reset that does not fit is refused before the working copy changes' '
	fill_to 40 &&
	test_must_fail dm reset --hard "$(cat c1.id)" 2>err &&
	cat err &&
	test "$(wc -l <err)" = 1 &&
	grep "^dm: .*no space: the working copy needs up to 40.0 MiB more on the file system of .*, which has .* free (.* of it kept in reserve for dm gc); nothing was changed$" err &&
	cmp wc/b b.saved && test ! -e wc/a &&
	test "$(head_id)" = "$(cat c2.id)" &&
	dm diff >out && test ! -s out
'

test_expect_success 'with space freed the same reset works' '
	unfill &&
	dm reset --hard "$(cat c1.id)" >/dev/null &&
	cmp wc/a a.saved && test ! -e wc/b &&
	dm reset --hard "$(cat c2.id)" >/dev/null && cmp wc/b b.saved
'

test_expect_success 'setup: a second server (not on the small disk) with dot r of 30 MiB' '
	DM_CONFIG=$HOME/conf2 dm cluster init --data-dir "$HOME/two" --port "$port2" >/dev/null &&
	DM_CONFIG=$HOME/conf2 dm init r && DM_CONFIG=$HOME/conf2 dm mount r wr &&
	head -c $((30 * MiB)) /dev/urandom >wr/r && cp wr/r r.saved &&
	DM_CONFIG=$HOME/conf2 dm commit --dot r -m r1 >/dev/null &&
	DM_API_KEY=$(cat "$data/admin-api-key") DM_CONFIG=$HOME/conf2 \
		dm remote add small "admin@127.0.0.1:$port" --ca-file "$data/ca.pem" >/dev/null
'

test_expect_success 'a push whose data does not fit in the store fails with "no space"; it works once space is freed' '
	fill_to 30 &&
	test_must_fail env DM_CONFIG=$HOME/conf2 dm push small r 2>err &&
	cat err && grep "^dm: .*no space" err &&
	unfill &&
	DM_CONFIG=$HOME/conf2 dm push small r >out 2>&1 && cat out &&
	dm mount r wrs && cmp wrs/r r.saved
'

test_expect_success 'a push whose data fits in the store but not in the working copy leaves the branch where it was' '
	head -c $((30 * MiB)) /dev/urandom >wr/r2 && cp wr/r2 r2.saved &&
	DM_CONFIG=$HOME/conf2 dm commit --dot r -m r2 >/dev/null &&
	fill_to 62 &&
	test_must_fail env DM_CONFIG=$HOME/conf2 dm push small r 2>err &&
	cat err && grep "^dm: .*no space: the working copy needs up to 30.0 MiB more" err &&
	dm log --dot r >log.txt && ! grep r2 log.txt &&
	test ! -e wrs/r2 && cmp wrs/r r.saved &&
	unfill &&
	DM_CONFIG=$HOME/conf2 dm push small r >out 2>&1 && cat out &&
	dm log --dot r >log.txt && grep r2 log.txt &&
	cmp wrs/r2 r2.saved && cmp wrs/r r.saved
'

test_expect_success 'a commit that does not fit fails and leaves the history; it works once space is freed' '
	dm switch full &&
	head -c $((30 * MiB)) /dev/urandom >wc/c &&
	fill_to 30 &&
	test_must_fail dm commit -m c3 2>err &&
	grep "^dm: .*no space" err &&
	test "$(head_id)" = "$(cat c2.id)" &&
	unfill &&
	dm commit -m c3 >/dev/null &&
	dm log >log.txt && grep c3 log.txt
'

test_expect_success 'after all that, dm fsck is clean and the store verifies' '
	dm fsck >out && grep "^no problems found$" out &&
	dmd stop --data-dir "$data" >/dev/null &&
	dm-store-tool --store "$data/store" verify >verify.out 2>&1 || { cat verify.out; false; }
'

test_expect_success 'a failed sync stops writes, saying why, until dmd restarts' '
	DM_TEST_FAIL_SYNC=$HOME/failsync dm cluster start --data-dir "$data" --port "$port" >/dev/null &&
	echo one >wc/s1 && dm commit -m s1 >/dev/null &&
	touch "$HOME/failsync" &&
	echo two >wc/s2 &&
	test_must_fail dm commit -m s2 2>err &&
	cat err && test "$(wc -l <err)" = 1 &&
	grep "^dm: .*accepts no more writes: syncing pack [0-9]* failed (Input/output error), so what was written since the last sync may be lost; restart dmd" err &&
	rm "$HOME/failsync" &&
	test_must_fail dm commit -m s2 2>err &&
	grep "accepts no more writes" err &&
	grep "accepts no more writes" "$data/dmd.log" &&
	dmd stop --data-dir "$data" >/dev/null &&
	dm cluster start --data-dir "$data" --port "$port" >/dev/null &&
	dm commit -m s2 >/dev/null &&
	dm log >log.txt && grep s1 log.txt && grep s2 log.txt && grep c3 log.txt &&
	dm dot delete -f r && dm gc >/dev/null &&
	dm reset --hard "$(cat c1.id)" >/dev/null && cmp wc/a a.saved &&
	dm fsck >out && grep "^no problems found$" out
'

test_done
