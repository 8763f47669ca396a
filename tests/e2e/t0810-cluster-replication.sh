#!/usr/bin/env bash
test_description='three dmd nodes on a three-member etcd: joining, every commit on every node, requests forwarded to the master, deletes everywhere, a node that crashed catching up'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-etcd.sh"
. "$TEST_DIRECTORY/lib-cluster.sh"

# node $1 lists no dot shop
lacks_dot() {
	! "dm$1" list -H | grep "shop" >/dev/null
}

test_expect_success 'setup: three etcd members and three nodes' '
	etcd_cluster_start "$HOME/etcd" 3 &&
	nodes_init N1 N2 N3
'

test_expect_success 'cluster status lists the three nodes, all up, on every node' '
	for n in N1 N2 N3; do
		"dm$n" cluster status -H >st.$n &&
		test $(wc -l <st.$n) = 3 &&
		test $(grep -c "	up	" st.$n) = 3 || return 1
	done &&
	test "$(cut -f2 st.N1 | sort)" = "$(cut -f2 st.N3 | sort)"
'

test_expect_success 'a commit on node 1 is in dm log on nodes 2 and 3' '
	dmN1 mount --create shop n1 &&
	echo hello >n1/greeting &&
	mkdir n1/dir && seq 1 10000 >n1/dir/numbers &&
	dmN1 commit -m "first" &&
	c1=$(log_of N1 | head -1) &&
	wait_until 30 has_commit N2 "$c1" &&
	wait_until 30 has_commit N3 "$c1" &&
	dmN2 mount shop n2 &&
	test "$(cat n2/greeting)" = hello &&
	test_cmp n1/dir/numbers n2/dir/numbers
'

test_expect_success 'a commit asked of node 2 is made by the master, node 1, and reaches node 3' '
	echo again >n1/greeting &&
	dmN2 commit --dot shop -m "second, through node 2" &&
	c2=$(log_of N1 | head -1) &&
	test "$c2" != "$c1" &&
	wait_until 30 has_commit N3 "$c2" &&
	wait_until 30 has_commit N2 "$c2" &&
	test "$(cat n2/greeting)" = again
'

test_expect_success 'a branch made on node 3 is mastered there and reaches node 1' '
	dmN3 checkout --dot shop -b side &&
	dmN3 mount shop@side n3side &&
	echo side >n3side/greeting &&
	dmN3 commit --dot shop -m "on side" &&
	s1=$(dmN3 log --dot shop --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"commits\"][0][\"id\"])") &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN1 dm branch --dot shop -H | grep -q side" &&
	dmN1 checkout --dot shop side &&
	# the branch may arrive before its last commit: wait for that
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN1 dm log --dot shop | grep -q \"on side\"" &&
	dmN1 checkout --dot shop master &&
	dmN3 checkout --dot shop master
'

test_expect_success 'a branch another node made and masters cannot be made again before it arrives' '
	id=$(dmN1 dot show shop --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"id\"])") &&
	n2=$(node_id N2) &&
	etcdctl --endpoints "$ETCD_ENDPOINTS" put "/dm/masters/$id/not-here-yet" "$n2" >/dev/null &&
	test_must_fail dmN1 checkout --dot shop -b not-here-yet 2>err &&
	one_error "branch .not-here-yet. exists: node $n2 made it, and this node has no copy of it yet" &&
	etcdctl --endpoints "$ETCD_ENDPOINTS" del "/dm/masters/$id/not-here-yet" >/dev/null
'

test_expect_success 'a node killed and restarted catches up' '
	node_kill N2 &&
	echo while-down >n1/greeting &&
	dmN1 commit -m "while node 2 was down" &&
	c3=$(log_of N1 | head -1) &&
	node_start N2 &&
	wait_until 30 has_commit N2 "$c3" &&
	test "$(cat n2/greeting)" = while-down
'

test_expect_success 'with one etcd member killed the cluster keeps working' '
	etcd_member_kill 0 &&
	echo one-member-down >n1/greeting &&
	dmN1 commit -m "one etcd member down" &&
	c4=$(log_of N1 | head -1) &&
	wait_until 30 has_commit N3 "$c4" &&
	dmN2 cluster status -H >st &&
	test $(grep -c "	up	" st) = 3 &&
	etcd_member_restart 0
'

test_expect_success 'a push from another cluster to node 2 lands on the master, node 1, and reaches node 3' '
	port_A=$(test_free_port) &&
	dmA() { DM_CONFIG=$HOME/confA dm "$@"; } &&
	dmA cluster init --no-plugin --data-dir "$HOME/A" --port $port_A >/dev/null &&
	test_atexit "dmd stop --data-dir $HOME/A >/dev/null 2>&1" &&
	DM_API_KEY=$(cat "$HOME/N1/admin-api-key") dmA remote add n2 "admin@127.0.0.1:$(node_port N2)" --ca-file "$HOME/N2/ca.pem" >/dev/null &&
	dmA clone n2 shop >/dev/null &&
	dmA mount shop a &&
	echo pushed >a/greeting &&
	dmA commit --dot shop -m "from another cluster" >/dev/null &&
	p=$(dmA log --dot shop --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"commits\"][0][\"id\"])") &&
	dmA push n2 shop >out &&
	has_commit N1 "$p" &&
	test "$(cat n1/greeting)" = pushed &&
	wait_until 30 has_commit N3 "$p" &&
	wait_until 30 has_commit N2 "$p"
'

test_expect_success 'a delete on node 3 of the dot node 1 made removes it everywhere' '
	old=$(dmN1 dot show shop --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"id\"])") &&
	dmN3 dot delete -f shop &&
	wait_until 30 lacks_dot N1 &&
	wait_until 30 lacks_dot N2 &&
	lacks_dot N3 &&
	test ! -e "$HOME/N1/dots/$old" &&
	wait_until 30 test ! -e "$HOME/N2/dots/$old"
'

test_expect_success 'the name is free at once, and the new dot has none of the old data' '
	dmN2 init shop &&
	new=$(dmN2 dot show shop --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"id\"])") &&
	test "$new" != "$old" &&
	dmN2 mount shop n2new &&
	test ! -e n2new/greeting &&
	test -z "$(log_of N2)" &&
	echo fresh >n2new/greeting &&
	dmN2 commit --dot shop -m "fresh" &&
	f1=$(log_of N2 | head -1) &&
	wait_until 30 has_commit N1 "$f1" &&
	test "$(log_of N1 | wc -l)" = 1
'

test_expect_success 'a node that was down during a delete drops its copy when it comes back' '
	dmN1 mount --create gone n1gone &&
	echo bye >n1gone/f &&
	dmN1 commit --dot gone -m "soon gone" &&
	g=$(dmN1 dot show gone --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"id\"])") &&
	wait_until 30 test -e "$HOME/N3/dots/$g" &&
	node_kill N3 &&
	dmN2 dot delete -f gone &&
	wait_until 30 test ! -e "$HOME/N1/dots/$g" &&
	test -e "$HOME/N3/dots/$g" &&
	node_start N3 &&
	wait_until 30 test ! -e "$HOME/N3/dots/$g" &&
	! dmN3 list -H | grep gone >/dev/null
'

test_expect_success 'with the master killed, set-master moves the branch; replicated commits are there' '
	node_kill N2 &&
	n3=$(node_id N3) &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN1 dm cluster status -H | grep -q \"	down	\"" &&
	test_must_fail dmN3 commit --dot shop -m "to a dead master" 2>err &&
	grep "is down.*dm dot set-master shop master" err &&
	dmN3 dot set-master shop master "$n3" >out &&
	grep "mastered by node $n3" out &&
	has_commit N3 "$f1" &&
	dmN3 mount shop n3new &&
	test "$(cat n3new/greeting)" = fresh &&
	echo after >n3new/greeting &&
	dmN3 commit --dot shop -m "on the new master" &&
	a1=$(log_of N3 | head -1) &&
	wait_until 30 has_commit N1 "$a1"
'

test_expect_success 'set-master refuses what it cannot do, saying why' '
	test_must_fail dmN1 dot set-master shop master nonode 2>err &&
	grep "no node .nonode." err &&
	test_must_fail dmN1 dot set-master shop nobranch "$n3" 2>err &&
	grep "has no branch .nobranch." err &&
	test_must_fail dmN1 dot set-master ghost master "$n3" 2>err &&
	grep "no such dot .ghost." err &&
	down=$(dmN1 cluster status --json | python3 -c "import json,sys; print([n[\"id\"] for n in json.load(sys.stdin)[\"nodes\"] if not n[\"alive\"]][0])") &&
	test_must_fail dmN1 dot set-master shop master "$down" 2>err &&
	grep "node $down is down" err
'

test_done
