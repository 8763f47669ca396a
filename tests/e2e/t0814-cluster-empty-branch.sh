#!/usr/bin/env bash
test_description='a branch made on a dot with no commit yet, and committed to afterwards, reaches every node with its head'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-etcd.sh"
. "$TEST_DIRECTORY/lib-cluster.sh"

# node $1's head of branch $3 of dot $2 ("" when it has none)
head_on() {
	DM_CONFIG=$HOME/conf$1 dm dot show "$2" --json | python3 -c '
import json, sys
for b in json.load(sys.stdin)["branches"]:
    if b["name"] == sys.argv[1]:
        print(b["head"])' "$3"
}

same_head() {
	test "$(head_on N2 "$1" "$2")" = "$3"
}

test_expect_success 'setup: etcd and two nodes' '
	etcd_cluster_start "$HOME/etcd" 1 &&
	nodes_init N1 N2
'

test_expect_success 'an empty branch, then a commit on it, reaches the other node' '
	dmN1 init e &&
	dmN1 checkout --dot e -b side &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN2 dm branch --dot e -H | grep -q side" &&
	dmN1 mount e@side wc &&
	echo one >wc/f &&
	dmN1 commit --dot e -m "on side" &&
	h=$(head_on N1 e side) &&
	test -n "$h" &&
	wait_until 30 same_head e side "$h" || {
		head_on N2 e side; grep -i "replicate" "$HOME/N2/dmd.log" | tail -5; false
	}
'

test_expect_success 'an empty copy of a branch follows its master when the master reset it' '
	dmN1 init r &&
	dmN1 checkout --dot r -b side &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN2 dm branch --dot r -H | grep -q side" &&
	node_kill N2 &&
	dmN1 mount r@side wcr &&
	echo one >wcr/f && dmN1 commit --dot r -m one &&
	c1=$(head_on N1 r side) &&
	echo two >wcr/f && dmN1 commit --dot r -m two &&
	c2=$(head_on N1 r side) &&
	dmN1 checkout --dot r -b other &&
	dmN1 checkout --dot r side &&
	dmN1 reset --dot r --hard "$c1" &&
	test "$(head_on N1 r side)" = "$c1" &&
	node_start N2 &&
	wait_until 30 same_head r other "$c2" &&
	wait_until 30 same_head r side "$c1" || {
		head_on N2 r side; grep -i "replicate" "$HOME/N2/dmd.log" | tail -5; false
	}
'

test_expect_success 'an empty copy of a branch takes its head when the commits came by another branch' '
	dmN1 init p &&
	dmN1 checkout --dot p -b side &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN2 dm branch --dot p -H | grep -q side" &&
	node_kill N2 &&
	dmN1 mount p@side wcp &&
	echo one >wcp/f && dmN1 commit --dot p -m one &&
	c1=$(head_on N1 p side) &&
	for b in o1 o2 o3 o4 o5 o6; do dmN1 checkout --dot p -b $b || return 1; done &&
	node_start N2 &&
	wait_until 30 same_head p o6 "$c1" &&
	wait_until 30 same_head p side "$c1" || {
		head_on N2 p side; grep -i "replicate" "$HOME/N2/dmd.log" | tail -12; false
	}
'

test_done
