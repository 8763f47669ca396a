#!/usr/bin/env bash
test_description='a deleted dot'"'"'s tombstone stays while any node (one that is down included) still has a copy, and goes once every node has dropped its copy'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-etcd.sh"
. "$TEST_DIRECTORY/lib-cluster.sh"

# What this proves, with three dmd nodes on etcd: deleting a dot writes
# its tombstone (/dm/deleted/ID); while node 3, which was down during the
# delete, still holds its copy, the tombstone stays (passes of the other
# nodes' replicators go by); once node 3 is back and has deleted its copy,
# a replicator removes the tombstone. The nodes run with
# DM_TOMBSTONE_GRACE=0 (no hour of grace after the delete).

export DM_TOMBSTONE_GRACE=0

tombstone() {
	etcdctl --endpoints="$ETCD_ENDPOINTS" get "/dm/deleted/$1" --print-value-only
}

has_tombstone() {
	test -n "$(tombstone "$1")"
}

test_expect_success 'setup: one etcd member and three nodes; dot gone on every node' '
	etcd_cluster_start "$HOME/etcd" 1 &&
	nodes_init N1 N2 N3 &&
	dmN1 mount --create gone n1gone &&
	echo bye >n1gone/f &&
	dmN1 commit --dot gone -m "soon gone" >/dev/null &&
	g=$(dmN1 dot show gone --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"id\"])") &&
	echo "$g" >gone.id &&
	wait_until 30 test -e "$HOME/N2/dots/$g" &&
	wait_until 30 test -e "$HOME/N3/dots/$g"
'

test_expect_success 'with node 3 down, the delete leaves a tombstone that stays' '
	g=$(cat gone.id) &&
	node_kill N3 &&
	dmN2 dot delete -f gone &&
	has_tombstone "$g" &&
	tombstone "$g" | grep "\"deleted\"" &&
	wait_until 30 test ! -e "$HOME/N1/dots/$g" &&
	wait_until 30 test ! -e "$HOME/N2/dots/$g" &&
	sleep 12 &&
	has_tombstone "$g" &&
	test -e "$HOME/N3/dots/$g"
'

test_expect_success 'node 3 back: it drops its copy, and the tombstone goes' '
	g=$(cat gone.id) &&
	node_start N3 &&
	wait_until 30 test ! -e "$HOME/N3/dots/$g" &&
	wait_until 30 sh -c "! etcdctl --endpoints=\"$ETCD_ENDPOINTS\" get /dm/deleted/$g --print-value-only | grep -q ." &&
	grep -h "tombstone is removed" "$HOME"/N*/dmd.log &&
	! dmN1 list -H | grep gone &&
	dmN1 init gone && dmN1 dot show gone >/dev/null
'

test_done
