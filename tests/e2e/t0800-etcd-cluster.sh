#!/usr/bin/env bash
test_description='lib-etcd.sh: a 3-member etcd cluster on private ports; a write through one member is read through another, and with one member killed the cluster still writes'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-etcd.sh"

# What this proves: the e2e library that later scenarios run dm's etcd
# backend on starts a real cluster whose members replicate to each other,
# kills a member as a crash would, and brings it back on its data.

ctl() {
	etcdctl --command-timeout=10s --endpoints="$1" "${@:2}"
}

test_expect_success 'three members start, each on its own ports, and know each other' '
	etcd_cluster_start "$HOME/etcd" 3 &&
	echo "$ETCD_ENDPOINTS" | tr , "\n" >endpoints &&
	test "$(sort -u endpoints | wc -l)" = 3 &&
	ctl "$ETCD_ENDPOINTS" member list >members &&
	test "$(wc -l <members)" = 3 &&
	grep -c started members >started &&
	echo 3 >expect &&
	test_cmp expect started
'

test_expect_success 'a write through one member is read through another' '
	ctl "$(etcd_member_endpoint 0)" put /t/a one &&
	ctl "$(etcd_member_endpoint 2)" get --print-value-only /t/a >actual &&
	echo one >expect &&
	test_cmp expect actual
'

test_expect_success 'with one member killed, the others still write and read' '
	etcd_member_kill 0 &&
	test_must_fail ctl "$(etcd_member_endpoint 0)" --command-timeout=2s get /t/a &&
	etcd_cluster_wait &&
	ctl "$(etcd_member_endpoint 1)" put /t/b two &&
	ctl "$(etcd_member_endpoint 2)" get --print-value-only /t/b >actual &&
	echo two >expect &&
	test_cmp expect actual
'

test_expect_success 'the killed member comes back on its data and catches up' '
	etcd_member_restart 0 &&
	ctl "$(etcd_member_endpoint 0)" get --print-value-only /t/b >actual &&
	echo two >expect &&
	test_cmp expect actual
'

test_expect_success 'etcd_cluster_stop stops every member' '
	etcd_cluster_pids >pids &&
	test "$(wc -l <pids)" = 3 &&
	etcd_cluster_stop &&
	while read -r pid; do
		test_must_fail kill -0 "$pid" 2>/dev/null || return 1
	done <pids
'

test_done
