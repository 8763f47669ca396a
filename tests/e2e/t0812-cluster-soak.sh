#!/usr/bin/env bash
test_description='soak: random commits, branches, resets, deletes, pushes and mounts across three nodes, then the invariants: every acknowledged commit on every live node, no dot half-deleted, no request unanswered'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-etcd.sh"
. "$TEST_DIRECTORY/lib-cluster.sh"

# DM_SOAK_OPS random operations (default 120), from seed DM_SOAK_SEED
# (default: the time; a failing run prints it, and the seed replays it).
ops=${DM_SOAK_OPS:-120}
seed=${DM_SOAK_SEED:-$(date +%s)}
RANDOM=$seed
nodes=(N1 N2 N3)
dots=(d1 d2 d3)

# call NODE ARGS...: dm ARGS on node NODE. Every call must end: 120 s is
# far beyond any deadline a call has here.
call() {
	local node=$1 rc=0
	shift
	DM_CONFIG=$HOME/conf$node timeout 120 dm "$@" >call.out 2>call.err || rc=$?
	if [ $rc = 124 ]; then
		echo "UNANSWERED (seed $seed): $node $*" >>unanswered
	fi
	return $rc
}

pick() {
	local -n arr=$1
	echo "${arr[RANDOM % ${#arr[@]}]}"
}

# the node that masters branch $2 of dot $1 (read from node N1's view)
master_node() {
	DM_CONFIG=$HOME/confN1 dm dot show "$1" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
for n in d.get("nodes", []):
    for b in n["branches"]:
        if b["name"] == sys.argv[1] and b["master"]:
            print(n["node"])' "$2"
}

node_named() {
	local n
	for n in "${nodes[@]}"; do
		[ "$(cat "$HOME/id.$n")" = "$1" ] && echo "$n" && return
	done
}

test_expect_success 'setup: etcd, three nodes, a plain server to push to, three dots' '
	etcd_cluster_start "$HOME/etcd" 3 &&
	nodes_init N1 N2 N3 &&
	for n in N1 N2 N3; do node_id $n >"$HOME/id.$n" || return 1; done &&
	port_S=$(test_free_port) &&
	DM_CONFIG=$HOME/confS dm cluster init --no-plugin --data-dir "$HOME/S" --port $port_S >/dev/null &&
	test_atexit "dmd stop --data-dir $HOME/S >/dev/null 2>&1" &&
	for n in N1 N2 N3; do
		DM_API_KEY=$(cat "$HOME/S/admin-api-key") "dm$n" remote add s "admin@127.0.0.1:$port_S" --ca-file "$HOME/S/ca.pem" >/dev/null || return 1
	done &&
	for d in "${dots[@]}"; do
		dmN1 init $d || return 1
	done
'

test_expect_success "run $ops random operations (seed $seed)" '
	: >acked && : >unanswered && : >deleted && : >failed &&
	for i in $(seq 1 $ops); do
		d=$(pick dots) n=$(pick nodes) op=$((RANDOM % 10))
		case $op in
		0|1|2|3)	# write on the master of the current branch, commit from anywhere
			m=$(node_named "$(master_node $d master)")
			[ -n "$m" ] &&
			call $m mount $d "$HOME/wc.$m.$d" &&
			echo "$i $RANDOM" >"$HOME/wc.$m.$d/f$((RANDOM % 5))" &&
			call $n commit --dot $d -m "op $i" &&
			echo "$d master $(cat call.out)" >>acked ;;
		4)	# a branch made on a random node (which masters it), then back
			call $n checkout --dot $d -b "b$i" &&
			call $n checkout --dot $d master ;;
		5)	# reset the master branch one back, asked anywhere: forget its head
			m=$(node_named "$(master_node $d master)")
			[ -n "$m" ] &&
			h=$(call $m log --dot $d --json && python3 -c "import json; c=json.load(open(\"call.out\"))[\"commits\"]; print(c[0][\"id\"] if len(c) > 1 else \"\")")
			if [ -n "$h" ] && call $n reset --dot $d --hard HEAD^; then
				grep -v " $h\$" acked >acked.new; mv acked.new acked
			fi ;;
		6)	# delete, then the name again on another node
			if call $n dot delete -f $d; then
				echo "$d" >>deleted
				grep -v "^$d " acked >acked.new; mv acked.new acked
				# the name is free at once; a node still deleting its
				# copy says so, and a moment later takes it
				m=$(pick nodes)
				wait_until 30 call $m init $d || echo "init $d on $m: $(cat call.err)" >>failed
			fi ;;
		7)	# push to the plain server
			call $n push s $d --remote-name "$d-$i" ;;
		8)	# mount (a symlink to the working copy) on a random node
			call $n mount $d "$HOME/m.$n.$d.$i" ;;
		9)	# read: every node answers a listing
			call $n list ;;
		esac
	done
	test ! -s unanswered && test ! -s failed || { cat unanswered failed; false; }
'

# node $1's branches of dot $2 and their heads, one "BRANCH HEAD" a line
heads_of() {
	DM_CONFIG=$HOME/conf$1 dm dot show $2 --json 2>/dev/null | python3 -c '
import json, sys
for b in sorted(json.load(sys.stdin)["branches"], key=lambda b: b["name"]):
    print(b["name"], b["head"])'
}

all_agree() {
	local d n ref
	for d in "${dots[@]}"; do
		ref=$(heads_of N1 $d)
		[ -n "$ref" ] || return 1
		for n in N2 N3; do
			[ "$(heads_of $n $d)" = "$ref" ] || return 1
		done
	done
}

# node $1's history of dot $2's current branch, ids only
ids_of() {
	DM_CONFIG=$HOME/conf$1 dm log --dot $2 --json 2>/dev/null | python3 -c '
import json, sys
for c in json.load(sys.stdin)["commits"]:
    print(c["id"])'
}

test_expect_success 'every node ends with the same history of every dot' '
	wait_until 60 all_agree || {
		echo "seed $seed"
		for d in "${dots[@]}"; do
			for n in N1 N2 N3; do echo "$n $d: $(heads_of $n $d | tr "\n" " ")"; done
		done
		etcdctl --endpoints "$ETCD_ENDPOINTS" get --prefix /dm/masters/
		for n in N1 N2 N3; do
			echo "$n ($(cat "$HOME/id.$n")):"
			grep -E " (warn|error) " "$HOME/$n/dmd.log" | tail -n 15
		done
		false
	}
'

test_expect_success 'every acknowledged commit that was not reset away is on every node' '
	for d in "${dots[@]}"; do
		for n in N1 N2 N3; do
			call $n checkout --dot $d master || return 1
		done
	done &&
	while read -r d b id; do
		for n in N1 N2 N3; do
			ids_of $n $d | grep -x "$id" >/dev/null || {
				echo "commit $id of $d missing on $n (seed $seed)" >&2
				return 1
			}
		done
	done <acked
'

# every dot deleted from the cluster is gone from etcd and every node
none_half_deleted() {
	local id n
	etcdctl --endpoints "$ETCD_ENDPOINTS" get --prefix /dm/deleted/ --keys-only |
		sed -n "s|^/dm/deleted/||p" >gone || return 1
	while read -r id; do
		[ -n "$id" ] || continue
		if etcdctl --endpoints "$ETCD_ENDPOINTS" get --prefix /dm/ --keys-only |
			grep -e "/dots/$id" -e "/masters/$id/" >left; then
			echo "dot $id half-deleted: $(cat left)" >&2
			return 1
		fi
		for n in N1 N2 N3; do
			if [ -e "$HOME/$n/dots/$id" ]; then
				echo "dot $id left on $n" >&2
				return 1
			fi
		done
	done <gone
}

test_expect_success 'no dot is half-deleted: every id gone from etcd is gone from every node' '
	wait_until 30 none_half_deleted &&
	test -s gone || test ! -s deleted
'

test_expect_success 'the names map to live dots on every node' '
	for d in "${dots[@]}"; do
		for n in N1 N2 N3; do
			DM_CONFIG=$HOME/conf$n dm list -H | cut -f1 | grep -x "$d" >/dev/null || return 1
		done
	done
'

test_done
