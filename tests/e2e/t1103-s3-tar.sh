#!/usr/bin/env bash
test_description='dotmesh'\''s S3 paths: a PUT with Extract: true unpacks a tar into the key as a directory and commits; a GET of a directory answers it as a tar; tar entries that would escape, links and devices refuse the whole put'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-s3paths.sh"

# What this proves: dotmesh's TestUploadTarAndExtract: the tar's files
# land under the key, with their modes, replacing what the key was; a
# GET of that directory at the commit gives a tar whose files are the
# same bytes; an entry named ../x or /x, a symbolic or hard link or a device is
# refused (400), nothing is committed and nothing is written outside the
# dot.

unset DM_API_KEY

test_expect_success 'setup: dmd A, dot shop, a tar of a small tree' '
	servers_init A &&
	dmA init shop &&
	mkdir -p src/sub/deeper &&
	echo one >src/one.txt &&
	echo two >src/sub/two.txt &&
	head -c 100000 /dev/urandom >src/sub/deeper/blob &&
	chmod 0750 src/sub/two.txt &&
	tar -C src -cf tree.tar .
'

test_expect_success 'PUT with Extract: true unpacks the tar under the key' '
	echo old >old &&
	s3 admin PUT admin:shop/mydata/stale.txt -T old && status_is 200 &&
	s3 admin PUT admin:shop/mydata -H "Extract: true" -T tree.tar && status_is 200 &&
	snapshot_header >extracted &&
	dmA mount shop wc &&
	test_cmp src/one.txt wc/__default__/mydata/one.txt &&
	test_cmp src/sub/two.txt wc/__default__/mydata/sub/two.txt &&
	cmp src/sub/deeper/blob wc/__default__/mydata/sub/deeper/blob &&
	test "$(stat -c %a wc/__default__/mydata/sub/two.txt)" = 750 &&
	! test -e wc/__default__/mydata/stale.txt &&
	s3 admin GET "admin:shop/snapshot/$(cat extracted)/mydata/sub/two.txt" >got &&
	status_is 200 && test_cmp src/sub/two.txt got
'

test_expect_success 'GET of a directory at a commit answers a tar of it' '
	s3 admin GET "admin:shop/snapshot/$(cat extracted)/mydata" >back.tar && status_is 200 &&
	tr -d "\r" <headers | grep -i "^content-type: application/x-tar" &&
	mkdir back && tar -C back -xf back.tar &&
	test_cmp src/one.txt back/mydata/one.txt &&
	cmp src/sub/deeper/blob back/mydata/sub/deeper/blob &&
	s3 admin GET "admin:shop/snapshot/$(cat extracted)/mydata/sub" >sub.tar && status_is 200 &&
	tar -tf sub.tar >names && grep "^sub/deeper/blob$" names
'

for kind in dotdot absolute symlink hardlink device; do
	test_expect_success "a tar with a $kind entry is refused whole" '
		evil_tar evil.tar '$kind' &&
		log_ids dmA log --dot shop >ids1 &&
		s3 admin PUT admin:shop/evil -H "Extract: true" -T evil.tar && status_is 400 &&
		log_ids dmA log --dot shop >ids2 && test_cmp ids1 ids2 &&
		! test -e wc/__default__/evil && ! ls -a wc/__default__ | grep "^\.dm-s3" &&
		! test -e "$HOME/A/escaped.txt" && ! test -e /escaped-absolute.txt &&
		! find "$HOME/A" -name escaped.txt | grep . &&
		! find "$HOME/A" -name "escaped-absolute.txt" | grep .
	'
done

test_done
