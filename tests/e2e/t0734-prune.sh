#!/usr/bin/env bash
test_description='dm dot prune: restic'"'"'s --keep-* rules per branch, pruned commits keep their record in dm log, dm gc frees their data, reset and diff to a pruned commit are refused, push and clone carry pruned commits as records only'
. "$(dirname "$0")/test-lib.sh"

# What this proves, against a real dmd: `dm dot prune --keep-last N`
# keeps, on every branch, the N newest commits of its first-parent history
# (a commit another branch keeps stays); --dry-run changes nothing; a
# pruned commit stays in `dm log`, marked, with its author, date and
# message; `dm reset --hard` and `dm diff` to it are refused with a
# message that says it was pruned; a push and a clone send pruned commits
# as records only, pruned on the other side too, the kept ones whole;
# `dm gc` then frees the data only pruned commits held (the store shrinks by
# at least 90% of it on the dir engine) while every kept commit checks out
# whole; the store verifies after a restart. On btrfs the snapshots of
# pruned commits are deleted by the prune (t0700 runs this script there).

port=$(test_free_port)
port2=$(test_free_port)
port3=$(test_free_port)
data=$HOME/data
export DM_CONFIG=$HOME/dmconf/config
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1; dmd stop --data-dir '$HOME/data2' >/dev/null 2>&1; dmd stop --data-dir '$HOME/data3' >/dev/null 2>&1"
engine=${DM_TEST_ENGINE:-dir}

store_bytes() {
	du -sb "$data/store" | cut -f1
}

head_id() {
	dm log --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["commits"][0]["id"])'
}

# btrfs: the read-only snapshot that holds a commit's data
snapshot_of() {
	ls -d "$data"/pool/dots/*/.snapshots/"$1" 2>/dev/null
}

# commit N: the file data holds 600 kB of its own
commit_n() {
	head -c 600000 /dev/urandom >wc/data &&
	cp wc/data "saved.$1" &&
	dm commit -m "commit $1" >/dev/null &&
	head_id >"c$1.id"
}

test_expect_success 'setup: master c1..c6 (each 600 kB of its own), branch side from c3 with s1' '
	dm cluster init --data-dir data --port "$port" >/dev/null &&
	dm init p && dm mount p wc &&
	commit_n 1 && commit_n 2 && commit_n 3 &&
	dm checkout -b side >/dev/null && commit_n s1 &&
	dm checkout master >/dev/null &&
	commit_n 4 && commit_n 5 && commit_n 6 &&
	dm log >log.txt && test "$(grep -c "^commit " log.txt)" = 6
'

test_expect_success 'refusals: no rule, a bad count, a bad duration, an unknown dot' '
	test_status 2 dm dot prune &&
	grep "^dm: say what to keep" err &&
	test_status 2 dm dot prune --keep-last 0 &&
	grep "^dm: invalid --keep-last .0." err &&
	test_status 2 dm dot prune --keep-daily x &&
	test_status 2 dm dot prune --keep-within soon &&
	test_status 3 dm dot prune nosuch --keep-last 1
'

test_expect_success 'a dry run lists what would go and changes nothing' '
	dm dot prune --keep-last 2 --dry-run >out &&
	cat out &&
	grep "^would prune 3 commits$" out &&
	grep "^branch master: 2 kept, 3 to prune$" out &&
	grep "^branch side: 2 kept, 2 to prune$" out &&
	grep "keep .*$(cat c6.id).*(last)  commit 6" out &&
	grep "prune .*$(cat c4.id)" out &&
	! grep "prune .*$(cat c3.id)" out &&
	dm log >log.txt && ! grep pruned log.txt &&
	dm reset --hard "$(cat c4.id)" >/dev/null && cmp wc/data saved.4 &&
	dm reset --hard "$(cat c6.id)" >/dev/null
'

test_expect_success 'dm dot prune --keep-last 2 prunes c1, c2 and c4 (side keeps c3)' '
	if [ "$engine" = btrfs ]; then test -n "$(snapshot_of "$(cat c4.id)")"; fi &&
	dm dot prune --keep-last 2 >out &&
	cat out &&
	grep "^pruned 3 commits; the next .dm gc. frees their data$" out &&
	if [ "$engine" = btrfs ]; then
		test -z "$(snapshot_of "$(cat c4.id)")" &&
		test -z "$(snapshot_of "$(cat c1.id)")" &&
		test -n "$(snapshot_of "$(cat c3.id)")"
	fi
'

test_expect_success 'dm log keeps the record of pruned commits, marked' '
	dm log >log.txt &&
	test "$(grep -c "^commit " log.txt)" = 6 &&
	grep "^commit $(cat c4.id) (pruned)$" log.txt &&
	grep "^commit $(cat c2.id) (pruned)$" log.txt &&
	grep "^commit $(cat c1.id) (pruned)$" log.txt &&
	grep "^commit $(cat c3.id)$" log.txt &&
	grep "^commit $(cat c5.id)$" log.txt &&
	grep -A4 "^commit $(cat c4.id)" log.txt | grep "commit 4" &&
	dm log --json | python3 -c "
import json, sys
cs = json.load(sys.stdin)[\"commits\"]
assert [c.get(\"pruned\", False) for c in cs] == [False, False, True, False, True, True], cs
assert all(c[\"author\"] and c[\"time_ns\"] for c in cs)
"
'

test_expect_success 'reset and diff to a pruned commit are refused, saying so' '
	test_status 3 dm reset --hard "$(cat c4.id)" &&
	grep "^dm: commit $(cat c4.id) was pruned (dm dot prune): its record stays in dm log, its data is gone$" err &&
	test_status 3 dm reset --hard HEAD~2 &&
	grep "was pruned" err &&
	test_status 3 dm diff "$(cat c1.id)" &&
	grep "was pruned" err &&
	test_status 3 dm diff "$(cat c2.id)" HEAD &&
	grep "was pruned" err &&
	cmp wc/data saved.6 &&
	dm log >log.txt && grep "^commit $(cat c6.id)$" log.txt
'

test_expect_success 'dm gc frees the data only pruned commits held; kept ones check out whole' '
	before=$(store_bytes) &&
	dm gc >out && cat out &&
	after=$(store_bytes) &&
	echo "store: $before -> $after" &&
	if [ "$engine" = dir ]; then test $((before - after)) -ge 1620000; fi &&
	dm reset --hard "$(cat c3.id)" >/dev/null && cmp wc/data saved.3 &&
	dm reset --hard "$(cat c5.id)" >/dev/null && cmp wc/data saved.5 &&
	dm checkout side >/dev/null && cmp wc/data saved.s1 &&
	dm reset --hard HEAD^ >/dev/null && cmp wc/data saved.3 &&
	dm reset --hard "$(cat cs1.id)" >/dev/null &&
	dm checkout master >/dev/null &&
	dm reset --hard "$(cat c6.id)" >/dev/null && cmp wc/data saved.6
'

test_expect_success 'pruning again with the same rules prunes nothing more; --keep-within keeps the recent' '
	dm dot prune --keep-last 2 >out &&
	grep "^pruned 0 commits" out &&
	dm dot prune --keep-within 1h >out &&
	grep "^pruned 0 commits" out &&
	dm dot prune --keep-daily 1 --dry-run --json >out.json &&
	python3 -c "
import json, sys
r = json.load(open(\"out.json\"))
assert r[\"dry_run\"] is True and r[\"pruned_before\"] == 3, r
"
'

test_expect_success 'a push sends pruned commits as records only: pruned there too, kept ones whole' '
	DM_CONFIG=$HOME/conf2 dm cluster init --data-dir "$HOME/data2" --port "$port2" \
		>init2.out 2>&1 &&
	DM_API_KEY=$(cat "$HOME/data2/admin-api-key") \
		dm remote add two "admin@127.0.0.1:$port2" --ca-file "$HOME/data2/ca.pem" >/dev/null &&
	dm push two p master >out 2>&1 && cat out &&
	DM_CONFIG=$HOME/conf2 dm log --dot p >log2.txt &&
	test "$(grep -c "^commit " log2.txt)" = 6 &&
	grep "^commit $(cat c4.id) (pruned)$" log2.txt &&
	grep "^commit $(cat c1.id) (pruned)$" log2.txt &&
	grep "^commit $(cat c3.id)$" log2.txt &&
	DM_CONFIG=$HOME/conf2 dm mount p wc2 &&
	cmp wc2/data saved.6 &&
	test_status 3 env DM_CONFIG=$HOME/conf2 dm reset --dot p --hard "$(cat c4.id)" &&
	grep "was pruned" err &&
	DM_CONFIG=$HOME/conf2 dm reset --dot p --hard "$(cat c3.id)" >/dev/null &&
	cmp wc2/data saved.3 &&
	DM_CONFIG=$HOME/conf2 dm reset --dot p --hard "$(cat c6.id)" >/dev/null &&
	DM_CONFIG=$HOME/conf2 dm fsck >out && grep "^no problems found$" out
'

test_expect_success 'a clone of a dot with pruned commits takes them as records only' '
	DM_CONFIG=$HOME/conf3 dm cluster init --data-dir "$HOME/data3" --port "$port3" \
		>init3.out 2>&1 &&
	DM_API_KEY=$(cat "$data/admin-api-key") DM_CONFIG=$HOME/conf3 \
		dm remote add one "admin@127.0.0.1:$port" --ca-file "$data/ca.pem" >/dev/null &&
	DM_CONFIG=$HOME/conf3 dm clone one p >out 2>&1 && cat out &&
	DM_CONFIG=$HOME/conf3 dm log --dot p >log3.txt &&
	grep "^commit $(cat c2.id) (pruned)$" log3.txt &&
	grep "^commit $(cat c5.id)$" log3.txt &&
	DM_CONFIG=$HOME/conf3 dm mount p wc3 && cmp wc3/data saved.6 &&
	DM_CONFIG=$HOME/conf3 dm reset --dot p --hard "$(cat c5.id)" >/dev/null &&
	cmp wc3/data saved.5 &&
	DM_CONFIG=$HOME/conf3 dm fsck >out && grep "^no problems found$" out
'

test_expect_success 'after a restart the store verifies and pruned commits stay pruned' '
	dmd stop --data-dir "$data" >/dev/null &&
	if [ "$engine" = dir ]; then
		dm-store-tool --store "$data/store" verify >verify.out 2>&1 || { cat verify.out; false; }
	fi &&
	dm cluster start --data-dir "$data" --port "$port" >/dev/null &&
	dm log >log.txt && grep "^commit $(cat c4.id) (pruned)$" log.txt &&
	test_status 3 dm reset --hard "$(cat c4.id)"
'

test_done
