#!/usr/bin/env bash
test_description='dotmesh'\''s S3 paths: DELETE removes a file or a whole directory and commits; a key that is not there is 404 and commits nothing'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-s3paths.sh"

# What this proves: dotmesh's ReadFileAtSnapshotThenDelete and
# DeleteDirectory scenarios: after a DELETE the key is gone at the new
# commit (Snapshot header) and still there at the one before; "dir/"
# removes the directory with what it holds; a DELETE of a missing key is
# 404 and makes no commit. And PUTs that arrive together are served one
# job at a time by the dot: each is a commit of its own.

unset DM_API_KEY

test_expect_success 'setup: dmd A, dot shop with a file and a directory' '
	servers_init A &&
	dmA init shop &&
	echo hello >f &&
	s3 admin PUT admin:shop/file.txt -T f && status_is 200 &&
	s3 admin PUT admin:shop/dir/a.txt -T f && status_is 200 &&
	s3 admin PUT admin:shop/dir/deeper/b.txt -T f && status_is 200 &&
	snapshot_header >before
'

test_expect_success 'DELETE of a file commits its removal' '
	s3 admin DELETE admin:shop/file.txt && status_is 200 &&
	snapshot_header >after && test -s after &&
	log_ids dmA log --dot shop >ids && test "$(head -1 ids)" = "$(cat after)" &&
	dmA log --dot shop --json | grep -q "\"delete.file\": *\"file.txt\"" &&
	s3 admin GET "admin:shop/snapshot/$(cat after)/file.txt" && status_is 404 &&
	s3 admin GET "admin:shop/snapshot/$(cat before)/file.txt" >got && status_is 200 &&
	test_cmp f got
'

test_expect_success 'DELETE of dir/ removes the directory and all it holds' '
	s3 admin DELETE admin:shop/dir/ && status_is 200 &&
	snapshot_header >gone &&
	s3 admin GET "admin:shop/snapshot/$(cat gone)/dir/a.txt" && status_is 404 &&
	s3 admin GET "admin:shop/snapshot/$(cat gone)/dir/deeper/b.txt" && status_is 404 &&
	s3 admin GET "admin:shop/snapshot/$(cat gone)" >list && status_is 200 &&
	grep "<TotalResults>0</TotalResults>" list &&
	dmA mount shop wc && ! test -e wc/__default__/dir
'

test_expect_success 'DELETE of a key that is not there is 404 and commits nothing' '
	log_ids dmA log --dot shop >ids1 &&
	s3 admin DELETE admin:shop/nonexistent.txt && status_is 404 &&
	grep "no key" body &&
	s3 admin DELETE admin:shop/nodir/x.txt && status_is 404 &&
	log_ids dmA log --dot shop >ids2 && test_cmp ids1 ids2
'

# put_in_dir N: PUT of key par/N with its own status and headers files
put_in_dir() {
	mkdir -p "p$1" && (cd "p$1" && echo "$1" >f &&
		s3 admin PUT "admin:shop/par/$1.txt" -T f >/dev/null && status_is 200)
}

test_expect_success 'PUTs at once are each their own commit, and all land' '
	log_ids dmA log --dot shop >ids1 &&
	for i in 1 2 3 4; do put_in_dir $i & done; wait &&
	for i in 1 2 3 4; do (cd "p$i" && status_is 200) || return 1; done &&
	for i in 1 2 3 4; do (cd "p$i" && snapshot_header) || return 1; done | sort -u >snaps &&
	test "$(wc -l <snaps)" = 4 &&
	log_ids dmA log --dot shop >ids2 && test "$(($(wc -l <ids2) - $(wc -l <ids1)))" = 4 &&
	for i in 1 2 3 4; do
		s3 admin GET "admin:shop/snapshot/latest/par/$i.txt" >got && echo $i >want &&
		test_cmp want got || return 1
	done
'

test_done
