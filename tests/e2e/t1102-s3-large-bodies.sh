#!/usr/bin/env bash
test_description='dotmesh'\''s S3 paths: a 10 MB upload streams in and reads back byte for byte, a chunked upload without a length works, and a body declared over the limit is refused before it is read'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-s3paths.sh"

# What this proves: PUT bodies are taken as they arrive (curl -T of
# 10 MB, and of a pipe, which curl sends chunked with no length) and read
# back identical, with HEAD giving the length; a Content-Length over the
# most a PUT takes (8 GiB) is answered 413 too_large at once, and the
# dot gets no commit.

unset DM_API_KEY

test_expect_success 'setup: dmd A, dot shop, 10 MB of random bytes' '
	servers_init A &&
	dmA init shop &&
	head -c 10485760 /dev/urandom >big
'

test_expect_success 'a 10 MB PUT reads back identical' '
	s3 admin PUT admin:shop/data/big.bin -T big && status_is 200 &&
	dmA log --dot shop --json | grep -q "\"upload.bytes\": *\"10485760\"" &&
	s3 admin GET admin:shop/snapshot/latest/data/big.bin >got && status_is 200 &&
	cmp big got &&
	s3_head admin admin:shop/snapshot/latest/data/big.bin && status_is 200 &&
	tr -d "\r" <headers | grep -i "^content-length: 10485760$"
'

test_expect_success 'a chunked PUT (no Content-Length) works' '
	head -c 300000 big | s3 admin PUT admin:shop/piped.bin -T - && status_is 200 &&
	s3 admin GET admin:shop/snapshot/latest/piped.bin >got && status_is 200 &&
	head -c 300000 big | cmp - got
'

test_expect_success 'a body declared over the limit is refused with 413 and commits nothing' '
	log_ids dmA log --dot shop >ids1 &&
	echo small >small &&
	s3 admin PUT admin:shop/huge.bin -H "Content-Length: 9000000000" --data-binary @small &&
	status_is 413 && grep too_large body &&
	log_ids dmA log --dot shop >ids2 && test_cmp ids1 ids2 &&
	test -z "$(ls "$HOME/A/uploads")"
'

test_done
