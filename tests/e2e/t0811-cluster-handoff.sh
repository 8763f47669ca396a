#!/usr/bin/env bash
test_description='handoff: a container on node 2 mounts a branch node 1 masters, and starts on node 1 latest data, uncommitted included'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-containers.sh"
. "$TEST_DIRECTORY/lib-etcd.sh"
. "$TEST_DIRECTORY/lib-cluster.sh"

# node 2 serves the volume plugin podman knows; nodes 1 and 3 none
node_opts_N2="--plugin-socket $DM_PLUGIN_SOCK --docker-socket $DM_API_SOCK"

# the node that masters branch master of shop, as node $1 sees it
master_of_shop() {
	"dm$1" dot show shop --json | python3 -c 'import json, sys
for n in json.load(sys.stdin)["nodes"]:
    for b in n["branches"]:
        if b["name"] == "master" and b["master"]:
            print(n["node"])'
}

test_expect_success 'setup: three etcd members, three nodes, a dot node 1 masters' '
	etcd_cluster_start "$HOME/etcd" 3 &&
	nodes_init N1 N2 N3 &&
	dmN1 mount --create shop n1 &&
	mkdir n1/__default__ &&
	echo "from node 1" >n1/__default__/greeting &&
	dmN1 commit -m base &&
	base=$(dmN1 log --dot shop --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"commits\"][0][\"id\"])") &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN2 dm log --dot shop | grep -q $base" &&
	test "$(master_of_shop N2)" = "$(node_id N1)"
'

test_expect_success 'a container on node 2 reads what node 1 wrote, committed or not' '
	echo "not committed yet" >>n1/__default__/greeting &&
	pm volume create --driver dm shop &&
	pm run --rm --network none -v shop:/data localhost/busybox cat /data/greeting >out &&
	printf "from node 1\nnot committed yet\n" >expect &&
	test_cmp expect out
'

test_expect_success 'node 1 committed it on the way, and node 2 masters the branch now' '
	dmN1 log --dot shop >log &&
	grep "handoff to node $(node_id N2)" log &&
	test "$(master_of_shop N1)" = "$(node_id N2)" &&
	test "$(master_of_shop N3)" = "$(node_id N2)"
'

test_expect_success 'what the container writes on node 2 is committed there and reaches node 1' '
	pm run --rm --network none -v shop:/data localhost/busybox sh -c "echo written on node 2 >/data/new" &&
	dmN2 commit --dot shop -m "from the container" &&
	c=$(dmN2 log --dot shop --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"commits\"][0][\"id\"])") &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN1 dm log --dot shop | grep -q $c" &&
	test "$(cat n1/__default__/new)" = "written on node 2"
'

test_expect_success 'a commit asked of node 1 goes to node 2 now' '
	dmN1 commit --dot shop -m "asked of node 1" &&
	dmN2 log --dot shop >log &&
	grep "asked of node 1" log
'

test_expect_success 'a delete asked of node 1 is refused while a container on node 2 uses the dot' '
	pm run -d --name holder --network none -v shop:/data localhost/busybox sleep 600 &&
	wait_until 20 sh -c "DM_CONFIG=$HOME/confN2 dm list | grep -q holder" &&
	test_must_fail dmN1 dot delete -f shop 2>err &&
	one_error "cannot delete dot .shop.: the dot is in use by 1 container on node $(node_id N2); stop it first" &&
	dmN3 list -H | cut -f1 | grep -x shop >/dev/null &&
	pm rm -f -t 0 holder &&
	wait_until 20 dmN1 dot delete -f shop &&
	wait_until 30 sh -c "! DM_CONFIG=$HOME/confN2 dm list -H | cut -f1 | grep -x shop >/dev/null"
'

test_done
