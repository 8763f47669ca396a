#!/usr/bin/env bash
test_description='dotmesh'\''s S3 paths: keys that try to leave the dot (.., encoded .., absolute, through a symbolic link in the working copy or in a commit) are refused and write nothing outside'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-s3paths.sh"

# What this proves: the key rule refuses "..", "." and absolute keys
# however they are spelled in the URL (curl --path-as-is keeps them,
# %2e%2e is decoded first); a symbolic link inside the working copy is
# never followed by a PUT or DELETE (the kernel refuses it: openat2
# RESOLVE_NO_SYMLINKS), nor by a read at a commit; and nothing appears in
# the directory the links point to.

unset DM_API_KEY

test_expect_success 'setup: dmd A, dot shop whose working copy has links out' '
	servers_init A &&
	dmA init shop &&
	mkdir outside && echo secret >outside/secret.txt &&
	dmA mount shop wc &&
	mkdir -p wc/__default__ &&
	ln -s "$PWD/outside" wc/__default__/dirlink &&
	ln -s "$PWD/outside/secret.txt" wc/__default__/filelink &&
	dmA commit --dot shop -m links &&
	echo evil >evil
'

test_expect_success 'keys with .., . or an absolute path are refused' '
	s3 admin PUT admin:shop/../escaped.txt --path-as-is -T evil && status_is 400 &&
	s3 admin PUT admin:shop/a/../../escaped.txt --path-as-is -T evil && status_is 400 &&
	s3 admin PUT admin:shop/%2e%2e/escaped.txt -T evil && status_is 400 &&
	s3 admin PUT admin:shop/./x.txt --path-as-is -T evil && status_is 400 &&
	s3 admin PUT "admin:shop//tmp/escaped.txt" --path-as-is -T evil && status_is 400 &&
	s3 admin GET "admin:shop/snapshot/latest/../../admin-api-key" --path-as-is &&
	status_is 400 &&
	s3 admin DELETE admin:shop/.. --path-as-is && status_is 400 &&
	! find "$HOME" -name escaped.txt | grep .
'

test_expect_success 'a PUT or DELETE through a symbolic link of the working copy is refused' '
	s3 admin PUT admin:shop/dirlink/planted.txt -T evil && status_is 403 &&
	! test -e outside/planted.txt &&
	s3 admin PUT admin:shop/dirlink/sub/planted.txt -T evil && status_is 403 &&
	! test -e outside/sub &&
	s3 admin DELETE admin:shop/dirlink/secret.txt && status_is 403 &&
	test -e outside/secret.txt &&
	s3 admin PUT admin:shop/dirlink -H "Extract: true" -T evil && status_is 400 &&
	test -e outside/secret.txt
'

test_expect_success 'a PUT onto a link replaces the link, never what it points to' '
	s3 admin PUT admin:shop/filelink -T evil && status_is 200 &&
	echo secret >want && test_cmp want outside/secret.txt &&
	! test -L wc/__default__/filelink && test_cmp evil wc/__default__/filelink
'

test_expect_success 'reads at a commit do not follow its links' '
	s3 admin GET "admin:shop/snapshot/latest/dirlink/secret.txt" && status_is 403 &&
	! grep -x secret body &&
	log_ids dmA log --dot shop >ids &&
	s3 admin GET "admin:shop/snapshot/$(tail -1 ids)/filelink" && status_is 403 &&
	! grep -x secret body
'

test_done
