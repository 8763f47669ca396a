#!/usr/bin/env bash
test_description='dotmesh'\''s S3 paths in a cluster: a PUT or DELETE on a node that does not master the branch is forwarded to the node that does, which commits it; the Snapshot header comes back'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-etcd.sh"
. "$TEST_DIRECTORY/lib-cluster.sh"
s3_on=N2
. "$TEST_DIRECTORY/lib-s3paths.sh"

# What this proves: dotmesh'\''s multi-node S3 test: N1 masters dave/shop;
# a PUT sent to N2 by dave (checked on N2, then again on N1) is proxied
# with its body to N1, whose commit is the Snapshot header N2 answers, and which
# N2 then receives by replication and reads at that commit; a DELETE the
# same; a user with no role on the dot is told nothing on N2 too.

unset DM_API_KEY

test_expect_success 'setup: etcd, nodes N1 and N2, users dave and bob, dot dave/shop made on N1' '
	etcd_cluster_start "$HOME/etcd" 1 &&
	nodes_init N1 N2 &&
	dmN1 user add dave >dave.key &&
	dmN1 user add bob >bob.key &&
	dmN1 init dave/shop &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN2 dm list | grep -q shop"
'

test_expect_success 'a PUT on N2 is committed by N1, the master' '
	head -c 200000 /dev/urandom >blob &&
	s3 dave PUT dave:shop/dir/blob.bin -T blob && status_is 200 &&
	snapshot_header >put && test -s put &&
	test "$(log_of N1 dave/shop | head -1)" = "$(cat put)" &&
	grep -q "forwarded to the master" "$HOME/N2/dmd.log" &&
	dmN1 log --dot dave/shop --json | grep -q "\"author\": *\"dave\"" &&
	wait_until 30 has_commit N2 "$(cat put)" dave/shop &&
	s3 dave GET "dave:shop/snapshot/$(cat put)/dir/blob.bin" >got && status_is 200 &&
	cmp blob got
'

test_expect_success 'a DELETE on N2 is committed by N1 too' '
	s3 dave DELETE dave:shop/dir/blob.bin && status_is 200 &&
	snapshot_header >del && test "$(log_of N1 dave/shop | head -1)" = "$(cat del)" &&
	s3 dave DELETE dave:shop/dir/nothing && status_is 404
'

test_expect_success 'a user with no role is told nothing on N2' '
	s3 bob PUT dave:shop/x -T blob && status_is 404 && grep "no such dot" body
'

test_done
