#!/usr/bin/env bash
test_description='deleting history: reset --hard keeps dropped commits until they expire (also across a restart), dm gc --expire now frees them, dm branch -d and -D and their refusals'
. "$(dirname "$0")/test-lib.sh"

# What this proves, against a real dmd: the commits `dm reset --hard`
# drops stay reachable by id through `dm gc` until their retention ends
# (default 14 days, remembered across a restart); `dm gc --expire now`
# forgets them and frees their data (the store shrinks by at least 90% of
# their unique bytes on the dir engine); `dm branch -d` deletes only a
# branch whose commits another branch has, never the current one nor an
# unknown one; `-D` deletes one with commits of its own, which the next
# `dm gc --expire now` frees. On btrfs the snapshot that held a forgotten
# commit goes with it (t0700 runs this script there).

port=$(test_free_port)
data=$HOME/data
export DM_CONFIG=$HOME/dmconf/config
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1"
engine=${DM_TEST_ENGINE:-dir}

store_bytes() {
	du -sb "$data/store" | cut -f1
}

head_id() {
	dm log --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["commits"][0]["id"])'
}

test_expect_success 'setup: a dot with two commits, the second adds 2 MB' '
	dm cluster init --data-dir data --port "$port" >/dev/null &&
	dm init h && dm mount h wc &&
	head -c 1000000 /dev/urandom >wc/a && dm commit -m one >/dev/null &&
	one=$(head_id) && echo "$one" >one.id &&
	head -c 2000000 /dev/urandom >wc/b && cp wc/b b.saved && dm commit -m two >/dev/null &&
	two=$(head_id) && echo "$two" >two.id
'

test_expect_success 'reset --hard drops a commit; dm gc keeps it reachable by id' '
	dm reset --hard "$(cat one.id)" >/dev/null &&
	test ! -e wc/b &&
	dm gc >out &&
	! grep "^forgot" out &&
	dm reset --hard "$(cat two.id)" >/dev/null &&
	cmp wc/b b.saved &&
	dm reset --hard "$(cat one.id)" >/dev/null
'

test_expect_success 'what a reset dropped is remembered across a restart' '
	dmd stop --data-dir "$data" >/dev/null &&
	dm cluster start --data-dir "$data" --port "$port" >/dev/null &&
	dm gc >out &&
	! grep "^forgot" out &&
	dm reset --hard "$(cat two.id)" >/dev/null && cmp wc/b b.saved &&
	dm reset --hard "$(cat one.id)" >/dev/null
'

test_expect_success 'dm gc --expire with a long duration keeps it too; a bad duration is refused' '
	dm gc --expire 1d >out && ! grep "^forgot" out &&
	test_status 2 dm gc --expire soon &&
	grep "^dm: invalid --expire .soon." err
'

# btrfs: the read-only snapshot that holds a commit's data
snapshot_of() {
	ls -d "$data"/pool/dots/*/.snapshots/"$1" 2>/dev/null
}

test_expect_success 'dm gc --expire now forgets the dropped commit and frees its data' '
	if [ "$engine" = btrfs ]; then test -n "$(snapshot_of "$(cat two.id)")"; fi &&
	before=$(store_bytes) &&
	dm gc --expire now >out &&
	grep "^forgot 1 commits that no branch reaches$" out &&
	after=$(store_bytes) &&
	if [ "$engine" = dir ]; then test $((before - after)) -ge 1800000; fi &&
	if [ "$engine" = btrfs ]; then test -z "$(snapshot_of "$(cat two.id)")"; fi &&
	test_must_fail dm reset --hard "$(cat two.id)" 2>err &&
	grep "^dm: " err &&
	dm log --json >log.json && grep -c "\"id\"" log.json >n && test "$(cat n)" = 1
'

test_expect_success 'dm branch -d refuses a branch whose commits no other branch has' '
	dm checkout -b feature >/dev/null &&
	head -c 1000000 /dev/urandom >wc/f && dm commit -m feat >/dev/null &&
	dm checkout master >/dev/null &&
	test_status 11 dm branch -d feature &&
	grep "^dm: branch .feature. has commits that no other branch has; .dm branch -D feature. deletes it with them$" err &&
	dm branch >out && grep "feature" out
'

test_expect_success 'dm branch -d refuses the current branch and an unknown one' '
	test_status 11 dm branch -d master &&
	grep "^dm: cannot delete branch .master.: it is the current branch" err &&
	test_status 3 dm branch -d nosuch &&
	grep "^dm: no branch .nosuch." err &&
	test_status 2 dm branch -d &&
	test_status 2 dm branch -d "bad name"
'

test_expect_success 'dm branch -d deletes a branch whose commits master has' '
	dm checkout -b merged >/dev/null && dm checkout master >/dev/null &&
	dm branch -d merged >out &&
	grep "^Deleted branch merged$" out &&
	dm branch >out && ! grep merged out
'

test_expect_success 'dm branch -D deletes it with its commits; dm gc --expire now frees them' '
	dm branch -D feature >out &&
	grep "^Deleted branch feature$" out &&
	dm branch >out && ! grep feature out &&
	test_must_fail dm checkout feature &&
	before=$(store_bytes) &&
	dm gc --expire now >out &&
	grep "^forgot 1 commits" out &&
	after=$(store_bytes) &&
	if [ "$engine" = dir ]; then test $((before - after)) -ge 900000; fi &&
	dm log >/dev/null && cmp wc/a wc/a
'

test_expect_success 'the dot is whole afterwards (dmd stopped, the store verifies)' '
	dmd stop --data-dir "$data" >/dev/null &&
	if [ "$engine" = dir ]; then
		dm-store-tool --store "$data/store" verify >verify.out 2>&1 || { cat verify.out; false; }
	fi &&
	dm cluster start --data-dir "$data" --port "$port" >/dev/null &&
	dm log >out && grep one out
'

test_done
