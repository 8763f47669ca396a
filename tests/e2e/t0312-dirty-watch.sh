#!/usr/bin/env bash
test_description='dm list and dm dot show: DIRTY follows every change of the working copy at once, and a working copy that did not change is not measured again'
. "$(dirname "$0")/test-lib.sh"

data="$TRASH_DIRECTORY/data"
port=$(test_free_port)
export DM_CONFIG="$TRASH_DIRECTORY/config"

test_atexit 'dm cluster stop --data-dir "$data" >/dev/null 2>&1'

# DIRTY of the only dot, in bytes, as dm list -H prints it (column 7, as dotmesh)
dirty() { dm list -H | cut -f7; }
# how many times dmd measured a working copy (its debug log)
measures() { grep -c " debug measured dot " "$data/dmd.log" || true; }

test_expect_success 'setup: dmd logging at debug, a dot with two files committed' '
	dm cluster init --data-dir "$data" --port "$port" >/dev/null &&
	dmd stop --data-dir "$data" >/dev/null &&
	dmd start --data-dir "$data" --log-level debug >/dev/null &&
	dm mount --create shop mnt &&
	mkdir mnt/d &&
	printf "%0100d" 0 >mnt/a &&
	printf "%050d" 0 >mnt/d/b &&
	dm commit -m first >/dev/null &&
	test "$(dirty)" = 0
'

test_expect_success 'a working copy that did not change is not measured again' '
	dm list >/dev/null &&
	before=$(measures) &&
	for i in 1 2 3 4 5 6 7 8 9 10; do
		test "$(dirty)" = 0 || return 1
	done &&
	dm dot show shop >/dev/null &&
	after=$(measures) &&
	test "$after" -le $((before + 1))
'

test_expect_success 'one change, one measure, however often it is asked' '
	before=$(measures) &&
	printf 12345 >>mnt/a &&
	test "$(dirty)" = 105 &&
	test "$(dirty)" = 105 &&
	test "$(dirty)" = 105 &&
	after=$(measures) &&
	test "$after" -le $((before + 2))
'

test_expect_success 'a commit: 0 at once' '
	dm commit -m second >/dev/null &&
	test "$(dirty)" = 0
'

test_expect_success 'directories made just now, and files written into them later' '
	mkdir -p mnt/n/a/b &&
	printf 1234567 >mnt/n/a/b/x &&
	test "$(dirty)" = 7 &&
	printf 12 >>mnt/n/a/b/x &&
	test "$(dirty)" = 9 &&
	printf 1 >mnt/n/a/y &&
	test "$(dirty)" = 10
'

test_expect_success 'a directory moved in from outside, and written into' '
	mkdir -p outside/in &&
	printf abc >outside/in/z &&
	mv outside mnt/moved &&
	test "$(dirty)" = 13 &&
	printf d >>mnt/moved/in/z &&
	test "$(dirty)" = 14 &&
	mv mnt/moved mnt/n/a/b/again &&
	test "$(dirty)" = 14 &&
	printf e >>mnt/n/a/b/again/in/z &&
	test "$(dirty)" = 15
'

test_expect_success 'a mode, a removal, a rename' '
	chmod 600 mnt/a &&
	test "$(dirty)" = $((15 + 105)) &&
	rm mnt/d/b &&
	test "$(dirty)" = $((15 + 105 + 50)) &&
	mv mnt/n mnt/d/n &&
	test "$(dirty)" = $((15 + 105 + 50))
'

test_expect_success 'dm dot show says the same' '
	dm dot show shop >out &&
	grep "^dirty: *170 B$" out
'

test_expect_success 'a reset: 0 at once; then a file rewritten in place, same size' '
	dm reset --hard HEAD >/dev/null &&
	test "$(dirty)" = 0 &&
	printf XXXXX | dd of=mnt/a bs=1 seek=10 conv=notrunc 2>/dev/null &&
	test "$(dirty)" = 105 &&
	dm reset --hard HEAD >/dev/null &&
	test "$(dirty)" = 0
'

test_expect_success 'a second branch: each measured against its own head' '
	dm checkout -b other >/dev/null &&
	test "$(dirty)" = 0 &&
	printf 123 >mnt/new &&
	test "$(dirty)" = 3 &&
	dm checkout master >/dev/null 2>&1 || {
		dm commit -m on-other >/dev/null && dm checkout master >/dev/null
	} &&
	test "$(dirty)" = 0 &&
	printf 12 >mnt/m &&
	test "$(dirty)" = 2
'

test_expect_success 'the measure is watched (inotify) on this machine' '
	grep " debug measured dot .*(watched)$" "$data/dmd.log" &&
	! grep " debug measured dot .*(not watched)$" "$data/dmd.log"
'

test_done
