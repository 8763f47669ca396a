#!/usr/bin/env bash
test_description='dm gc: a deleted dot is freed, --dry-run predicts and changes nothing, commits and pushes racing collections lose nothing'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"

# What this proves, against real dmds (t0700 runs it again on btrfs):
#   - `dm gc` after `dm dot delete` shrinks the store by at least 90% of
#     the deleted dot's unique bytes (dir engine; on btrfs the bytes were
#     in the dot's snapshots, which the delete removed with the objects
#     kept in them);
#   - `dm gc --dry-run` predicts within 5% what `dm gc` then frees on disk,
#     and leaves every file of the store as it was;
#   - commits on A and pushes from B into A (by an admin, whose objects
#     are leased, and by a user, whose transfer session pins them), running
#     while `dm gc` runs again and again, lose nothing: A's store verifies afterwards (dmd
#     stopped) and every commit of every dot still checks out (a clone of
#     each dot to C reads all of their objects);
#   - dmd killed (SIGKILL) at several points of a collection leaves a
#     store that verifies, and every dot still clones whole;
#   - dm df says what the store's packs take, and what the last
#     collection found reclaimable;
#   - only admins may collect.

command -v dm-store-tool >/dev/null || test_skip_all "dm-store-tool is not built in $DM_BUILD_DIR"
engine=${DM_TEST_ENGINE:-dir}
# On btrfs the store keeps objects in the dots' snapshots, which are not
# mounted while dmd is stopped: the store tool verifies on the dir engine
# only (the clones to C read every object on both).
[ "$engine" = dir ] && test_set_prereq DIR_ENGINE

# gc_field JSON FIELD: one number of a `dm gc --json` answer.
gc_field() {
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# store_files: every file of A's store with its size, for comparing.
store_files() {
	(cd "$HOME/A/store" && find . -type f -printf '%p %s\n' | sort)
}

store_bytes() {
	du -sb "$HOME/A/store" | cut -f1
}

test_expect_success 'setup: servers A, B and C; on A a dot to keep and a dot of 8 MiB to delete' '
	servers_init A B C &&
	dmA init keep && dmA mount keep keepA &&
	head -c 1000000 /dev/urandom >keepA/one && dmA commit --dot keep -m one >/dev/null &&
	dmA init big && dmA mount big bigA &&
	head -c 8388608 /dev/urandom >bigA/blob && dmA commit --dot big -m first >/dev/null &&
	head -c 100000 /dev/urandom >>bigA/blob && dmA commit --dot big -m second >/dev/null
'

test_expect_success 'dm gc --help says what it does' '
	dm gc --help >out &&
	grep -- "--dry-run" out && grep "online" out
'

test_expect_success 'nothing is garbage yet: dm gc --dry-run would free nothing' '
	dmA gc --dry-run --json >dry.json &&
	test "$(gc_field dry.json freed_objects)" = 0 &&
	test "$(gc_field dry.json freed_disk_bytes)" = 0 &&
	dmA gc --dry-run >out &&
	grep "^would free 0 of [0-9]* objects" out
'

test_expect_success 'after dm dot delete, --dry-run predicts and changes nothing' '
	dmA dot delete -f big &&
	store_files >before &&
	dmA gc --dry-run --json >dry.json &&
	store_files >after &&
	test_cmp before after &&
	test "$(gc_field dry.json dry_run)" = True &&
	if [ "$engine" = dir ]; then
		test "$(gc_field dry.json freed_objects)" -gt 0
	fi
'

test_expect_success 'dm gc frees the deleted dot: what --dry-run said, 90% of its bytes on the dir engine' '
	size_before=$(store_bytes) &&
	dmA gc --json >gc.json &&
	size_after=$(store_bytes) &&
	predicted=$(gc_field dry.json freed_disk_bytes) &&
	freed=$(gc_field gc.json freed_disk_bytes) &&
	test "$(gc_field gc.json freed_objects)" = "$(gc_field dry.json freed_objects)" &&
	test $((freed * 100)) -ge $((predicted * 95)) &&
	test $((freed * 100)) -le $((predicted * 105)) &&
	if [ "$engine" = dir ]; then
		test $((size_before - size_after)) -ge $((8488608 * 9 / 10))
	fi &&
	dmA gc --json >again.json &&
	test "$(gc_field again.json freed_objects)" = 0 &&
	grep "garbage collection: [0-9]* of [0-9]* objects freed" "$HOME/A/dmd.log"
'

test_expect_success 'dm df summarises the space: the store is its packs, reclaimable as the last run found' '
	dmA df >out &&
	grep "^store: .* in [0-9]* packs" out &&
	grep "^working copies: .* (1 dot, as last measured)$" out &&
	grep "^reclaimable: .*(by the last dm gc, " out &&
	grep "^file system: .* free of .*in reserve" out &&
	dmA df --json >df.json &&
	packs=$(find "$HOME/A/store/packs" -type f -printf "%s\n" | awk "{ s += \$1 } END { print s }") &&
	python3 - "$packs" <<-\EOF &&
	import json, sys
	d = json.load(open("df.json"))
	assert d["store"]["bytes"] == int(sys.argv[1]), (d, sys.argv[1])
	assert d["filesystem"]["free"] > 0 and d["filesystem"]["reserve"] >= 16 << 20, d
	EOF
	dmA gc --dry-run >/dev/null &&
	dmA df >out && grep "^reclaimable: .*(by the last dm gc --dry-run, " out
'

test_expect_success 'the kept dot is whole: it clones to C and matches' '
	dmC clone a keep >/dev/null 2>&1 &&
	dmC mount keep keepC &&
	diff -r keepA keepC
'

test_expect_success 'setup: a dot on B to push into A while A collects' '
	dmB init pushed && dmB mount pushed pushedB &&
	head -c 2000000 /dev/urandom >pushedB/base && dmB commit --dot pushed -m base >/dev/null
'

test_expect_success 'commits on A and pushes from B racing dm gc lose nothing' '
	dmA init busy && dmA mount busy busyA &&
	(
		for i in 1 2 3 4 5 6 7 8; do
			head -c 300000 /dev/urandom >"busyA/f$i" &&
			cp keepA/one "busyA/copy$i" &&
			dmA commit --dot busy -m "c$i" >/dev/null || exit 1
		done
	) >commits.out 2>&1 &
	commits=$! &&
	(
		for i in 1 2 3 4; do
			head -c 500000 /dev/urandom >"pushedB/p$i" &&
			dmB commit --dot pushed -m "p$i" >/dev/null &&
			dmB push a pushed >/dev/null 2>&1 || exit 1
		done
	) >pushes.out 2>&1 &
	pushes=$! &&
	n=0 &&
	while kill -0 $commits 2>/dev/null || kill -0 $pushes 2>/dev/null; do
		dmA gc --json >race.json 2>race.err ||
			grep "running already" race.err || { cat race.err; exit 1; }
		n=$((n + 1))
	done &&
	wait $commits && wait $pushes &&
	echo "$n collections ran" &&
	test $n -ge 2 &&
	dmA gc >/dev/null
'

test_expect_success 'a user'\''s push (a transfer session, whose objects are pinned) racing dm gc loses nothing' '
	dmA user add carol >carol.key 2>/dev/null &&
	user_remote B carol carol A carol.key &&
	dmB init upload && dmB mount upload uploadB &&
	(
		for i in 1 2 3 4; do
			head -c 700000 /dev/urandom >"uploadB/u$i" &&
			cp keepA/one "uploadB/same$i" &&
			dmB commit --dot upload -m "u$i" >/dev/null &&
			dmB push carol upload --remote-name carol/upload >/dev/null 2>&1 || exit 1
		done
	) >upload.out 2>&1 &
	uploads=$! &&
	while kill -0 $uploads 2>/dev/null; do
		dmA gc >/dev/null 2>race.err || grep "running already" race.err || { cat race.err; exit 1; }
	done &&
	wait $uploads &&
	log_ids dmA log --dot carol/upload >ids && test $(wc -l <ids) = 4 &&
	dmC clone a carol/upload >/dev/null 2>&1 && dmC mount carol/upload uploadC &&
	diff -r uploadB uploadC
'

test_expect_success 'after the race: every commit is on A, and each dot clones whole to C' '
	log_ids dmA log --dot busy >ids && test $(wc -l <ids) = 8 &&
	log_ids dmA log --dot pushed >ids && test $(wc -l <ids) = 5 &&
	log_ids dmB log --dot pushed >expect && test_cmp expect ids &&
	dmC clone a busy >/dev/null 2>&1 && dmC mount busy busyC &&
	diff -r busyA busyC &&
	dmC clone a pushed >/dev/null 2>&1 && dmC mount pushed pushedC &&
	diff -r pushedB pushedC
'

test_expect_success DIR_ENGINE 'after the race: every object of A verifies, dmd stopped' '
	server_stop A &&
	dm-store-tool --store "$HOME/A/store" verify >verify.out 2>&1 ||
		{ cat verify.out; false; } &&
	server_start A
'

# One round: garbage of 24 MiB (a dot deleted), `dm gc` killed by SIGKILL
# after $1 ms, dmd started again; the store verifies and the kept dots
# still clone whole to C.
kill_round() {
	dmA init "junk$1" && dmA mount "junk$1" "junk$1" &&
	head -c 25165824 /dev/urandom >"junk$1/blob" &&
	dmA commit --dot "junk$1" -m junk >/dev/null &&
	dmA dot delete -f "junk$1" &&
	{ dmA gc >/dev/null 2>&1 & } &&
	sleep "0.$(printf %03d "$1")" &&
	test_kill_hard "$HOME/A/dmd.pid" &&
	wait &&
	dm-store-tool --store "$HOME/A/store" verify >verify.out 2>&1 ||
		{ cat verify.out; return 1; }
	server_start A &&
	dmC dot delete -f keep >/dev/null && dmC dot delete -f busy >/dev/null &&
	dmC clone a keep >/dev/null 2>&1 && dmC clone a busy >/dev/null 2>&1 &&
	diff -r keepA keepC && diff -r busyA busyC
}

test_expect_success DIR_ENGINE 'SIGKILL of dmd at several points of a collection loses nothing' '
	done_before=$(grep -c "garbage collection: " "$HOME/A/dmd.log") &&
	for ms in 5 40 120 250; do
		kill_round $ms || { echo "round of $ms ms failed"; return 1; }
	done &&
	done_after=$(grep -c "garbage collection: " "$HOME/A/dmd.log") &&
	echo "$((4 - done_after + done_before)) of 4 collections were killed before they ended" &&
	dmA gc --json >after.json &&
	test "$(gc_field after.json freed_objects)" -ge 0 &&
	server_stop A &&
	dm-store-tool --store "$HOME/A/store" verify >verify.out 2>&1 ||
		{ cat verify.out; false; } &&
	server_start A
'

test_expect_success 'a user who is not an admin may not collect' '
	dmA user add alice >alice.key 2>/dev/null &&
	user_remote A alice alice A alice.key &&
	test_status 10 dmA gc --remote alice &&
	grep "^dm: .*admin" err
'

test_done
