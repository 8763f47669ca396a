#!/usr/bin/env bash
test_description='1,000 commits pushed at once are all visible in dm log on the other side, and clone back in one go'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"

# What this proves: a push of a long new line (1,000 commits, each changing
# a file, none pushed before) moves them all in one transfer, and the
# remote's dm log lists every one, in order; a clone of it elsewhere gets
# the same line and the same files.
#
# DM_TEST_MANY_COMMITS sets the number (default 1000).

unset DM_API_KEY
ncommits=${DM_TEST_MANY_COMMITS:-1000}

test_expect_success 'setup: dmds A, B and C' '
	servers_init A B C
'

test_expect_success "setup: $ncommits commits on A, each changing a file" '
	dmA init many &&
	dmA mount many manyA &&
	mkdir manyA/d &&
	for i in $(seq 1 "$ncommits"); do
		echo "$i" >manyA/counter &&
		echo "line $i" >>manyA/d/log &&
		dmA commit --dot many -m "commit $i" >/dev/null || return 1
	done &&
	log_ids dmA log --dot many >ids.A &&
	test $(wc -l <ids.A) = "$ncommits" &&
	test $(sort -u ids.A | wc -l) = "$ncommits"
'

test_expect_success "one push sends all $ncommits commits" '
	dmA push b many >out &&
	grep "pushed $ncommits commits" out &&
	last_transfer A >t.json &&
	test "$(transfer_field state <t.json)" = done
'

test_expect_success "dm log on B lists all $ncommits, in the same order, with their messages" '
	log_ids dmB log --dot many >ids.B &&
	test $(wc -l <ids.B) = "$ncommits" &&
	test_cmp ids.A ids.B &&
	dmB log --dot many --json | python3 -c "import json, sys
m = [c[\"message\"] for c in json.load(sys.stdin)[\"commits\"]]
n = int(sys.argv[1])
assert m == [\"commit %d\" % i for i in range(n, 0, -1)], m[:3]" "$ncommits" &&
	dmB mount many manyB &&
	diff -r manyA/ manyB/
'

test_expect_success 'a clone from B elsewhere has the same line and files' '
	dmC clone b many >out &&
	log_ids dmC log --dot many >ids.C &&
	test_cmp ids.A ids.C &&
	dmC mount many manyC &&
	diff -r manyA/ manyC/
'

test_expect_success 'then nothing is left to push' '
	dmA push b many >out &&
	grep "everything up to date" out
'

test_done
