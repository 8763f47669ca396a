#!/usr/bin/env bash
test_description='CSI in a three-node cluster: topology by node, a volume published on node 2 is mastered there (handoff), a snapshot made through node 3 is a commit on every node'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-etcd.sh"
. "$TEST_DIRECTORY/lib-cluster.sh"

# what this needs is there, or the test fails saying what is missing
test_expect_success 'needs: root (publishing bind-mounts), python3-grpcio and python3-grpc-tools' '
	test_have_root &&
	/usr/bin/python3 -c "import grpc, grpc_tools.protoc"
'

for n in N1 N2 N3; do
	eval "node_opts_$n=\"--no-plugin --csi-socket $HOME/csi-$n.sock\""
done
# what a failed test left published goes first
csi_umount_all() {
	awk -v home="$HOME/" 'index($5, home) == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
	return 0
}

# csi N COMMAND...: one CSI call through node N's socket
csi() {
	local n=$1
	shift
	/usr/bin/python3 "$TEST_DIRECTORY/csi/csictl.py" "$HOME/csi-$n.sock" "$HOME/work" "$@"
}

# master N VOLUME_ID: the node that masters the volume's branch, as node N
# sees it (dm dot show's nodes)
master() {
	local dot=$2
	"dm$1" dot show "$(cat dotname)" --json | python3 -c 'import json, sys
b = sys.argv[1]
for n in json.load(sys.stdin).get("nodes", []):
    for x in n["branches"]:
        if x["name"] == b and x["master"]:
            print(n["node"])' "${dot#*:}"
}

test_expect_success 'setup: three etcd members, three nodes, each with its CSI socket' '
	etcd_cluster_start "$HOME/etcd" 3 &&
	nodes_init N1 N2 N3 &&
	test_atexit csi_umount_all &&
	test -S csi-N1.sock && test -S csi-N2.sock && test -S csi-N3.sock
'

test_expect_success 'in a cluster: accessibility constraints, and each node its dm.node topology' '
	csi N1 plugin-caps >out &&
	grep -x VOLUME_ACCESSIBILITY_CONSTRAINTS out &&
	for n in N1 N2 N3; do
		echo "dm.node=$(node_id $n)" >expect &&
		csi $n topology >out &&
		test_cmp expect out &&
		csi $n info >out && test "$(cat out)" = "$(node_id $n)" || return 1
	done
'

test_expect_success 'CreateVolume through node 1: a dot node 1 masters, known on every node' '
	vol=$(csi N1 create pvc-cluster) &&
	echo "$vol" >vol &&
	echo admin/pvc-cluster >dotname &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN2 dm list -H | grep -q pvc-cluster" &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN3 dm list -H | grep -q pvc-cluster" &&
	test "$(master N1 "$vol")" = "$(node_id N1)" &&
	test "$(csi N3 volumes)" = "$vol"
'

test_expect_success 'NodePublishVolume on node 2: the branch is handed over, node 2 masters it' '
	csi N2 publish "$(cat vol)" "$HOME/pod2" &&
	echo "written on node 2" >pod2/greeting &&
	test "$(master N2 "$(cat vol)")" = "$(node_id N2)" &&
	wait_until 30 sh -c "test \"\$(DM_CONFIG=$HOME/confN1 dm dot show admin/pvc-cluster --json |
		python3 -c \"import json,sys
for n in json.load(sys.stdin)[\\\"nodes\\\"]:
    for b in n[\\\"branches\\\"]:
        if b[\\\"name\\\"] == \\\"master\\\" and b[\\\"master\\\"]: print(n[\\\"node\\\"])\")\" = $(node_id N2)"
'

test_expect_success 'CreateSnapshot through node 3 is a commit of node 2'"'"'s data, on every node' '
	snap=$(csi N3 snapshot snap-cluster "$(cat vol)") &&
	echo "$snap" >snap &&
	commit=${snap#*:} &&
	for n in N1 N2 N3; do
		wait_until 30 has_commit $n "$commit" pvc-cluster || return 1
	done &&
	test "$(csi N1 snapshots)" = "$snap"
'

test_expect_success 'unpublished and deleted through node 1: gone from every node' '
	csi N2 unpublish "$(cat vol)" "$HOME/pod2" &&
	csi N1 delete-snapshot "$(cat snap)" &&
	csi N1 delete "$(cat vol)" &&
	for n in N1 N2 N3; do
		wait_until 30 sh -c "! DM_CONFIG=$HOME/conf$n dm list -H | grep -q pvc-cluster" || return 1
	done &&
	test -z "$(csi N3 volumes)"
'

test_done
