#!/usr/bin/env bash
test_description='dotmesh'\''s S3 paths: basic auth as the API (a wrong key is 401), reads need role read and changes role write in the dot, and a user with no role is told nothing about it'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-s3paths.sh"

# What this proves: the S3 paths authenticate and authorise as the API
# does: no credentials or a wrong key is 401; bob, with no role in
# admin/shop, gets for every method exactly what a dot that does not
# exist gets (404 not_found, no commit made); carol (role read) may list
# and read but a PUT or DELETE is 403 naming the role; dave (role write)
# may put, and the commit is his.

unset DM_API_KEY

test_expect_success 'setup: dmd A, dot shop with a file, users bob, carol (read), dave (write)' '
	servers_init A &&
	dmA init shop &&
	echo hello >f &&
	s3 admin PUT admin:shop/f.txt -T f && status_is 200 &&
	for u in bob carol dave; do dmA user add $u >$u.key || return 1; done &&
	dmA dot add-collaborator shop carol --role read &&
	dmA dot add-collaborator shop dave --role write
'

test_expect_success 'no credentials, or a wrong key, is 401' '
	curl -sS --cacert "$HOME/A/ca.pem" -o body -w "%{http_code}" \
		"https://127.0.0.1:$(server_port A)/s3/admin:shop" >status &&
	status_is 401 &&
	curl -sS --cacert "$HOME/A/ca.pem" -u admin:wrongkey -o body -w "%{http_code}" \
		"https://127.0.0.1:$(server_port A)/s3/admin:shop" >status &&
	status_is 401 &&
	curl -sS --cacert "$HOME/A/ca.pem" -u admin:wrongkey -T f -o body -w "%{http_code}" \
		"https://127.0.0.1:$(server_port A)/s3/admin:shop/g.txt" >status &&
	status_is 401
'

# same_as_missing USER METHOD PATH_AFTER_DOT [CURL_ARGS]: the answer for
# admin:shop is the one for admin:nosuch, with the name swapped.
same_as_missing() {
	local user=$1 method=$2 rest=$3
	shift 3
	s3 "$user" "$method" "admin:shop$rest" "$@" >/dev/null && cp status st1 &&
	sed "s/shop/X/g" body >b1 &&
	s3 "$user" "$method" "admin:nosuch$rest" "$@" >/dev/null && cp status st2 &&
	sed "s/nosuch/X/g" body >b2 &&
	test_cmp st1 st2 && test_cmp b1 b2 && test "$(cat st1)" = 404
}

test_expect_success 'bob, with no role, is answered as for a dot that does not exist' '
	log_ids dmA log --dot shop >ids1 &&
	same_as_missing bob GET "" &&
	same_as_missing bob GET /snapshot/latest/f.txt &&
	same_as_missing bob PUT /f.txt -T f &&
	same_as_missing bob DELETE /f.txt &&
	log_ids dmA log --dot shop >ids2 && test_cmp ids1 ids2
'

test_expect_success 'carol (read) lists and reads, and may not put or delete' '
	s3 carol GET admin:shop >list && status_is 200 && grep "<Key>f.txt</Key>" list &&
	s3 carol GET admin:shop/snapshot/latest/f.txt >got && status_is 200 && test_cmp f got &&
	s3 carol PUT admin:shop/g.txt -T f && status_is 403 && grep "carol" body &&
	s3 carol DELETE admin:shop/f.txt && status_is 403
'

test_expect_success 'dave (write) puts, and the commit is his' '
	s3 dave PUT admin:shop/g.txt -T f && status_is 200 &&
	dmA log --dot shop --json >log.json &&
	python3 -c "import json
c = json.load(open(\"log.json\"))[\"commits\"][0]
assert c[\"author\"] == \"dave\", c"
'

test_done
