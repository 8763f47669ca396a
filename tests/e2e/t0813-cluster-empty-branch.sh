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

test_done
