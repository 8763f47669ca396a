#!/usr/bin/env bash
test_description='dotmesh'\''s S3 paths: curl -T puts a file and commits it (the Snapshot header is the commit), GET lists the latest commit or a given one, GET and HEAD read a key at a commit'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-s3paths.sh"

# What this proves: the scenarios of dotmesh's S3 API tests, with curl as
# its users ran them: a PUT writes the key in master's __default__ subdot
# and commits with dotmesh's metadata, answering the commit in a Snapshot
# header; a PUT to NS:DOT@BRANCH changes only that branch; listings show
# the latest commit of master, or the commit named; reads at a commit
# give that commit's bytes (HEAD its length), a missing key 404.

unset DM_API_KEY

test_expect_success 'setup: dmd A with dot shop' '
	servers_init A &&
	dmA init shop
'

test_expect_success 'PUT writes the key and commits it; Snapshot is the new head' '
	echo helloworld1 >file.txt &&
	s3 admin PUT admin:shop/file.txt -T file.txt &&
	status_is 200 &&
	first=$(snapshot_header) && test -n "$first" &&
	log_ids dmA log --dot shop >ids && test "$(head -1 ids)" = "$first" &&
	dmA log --dot shop --json >log.json &&
	python3 -c "import json, sys
c = json.load(open(\"log.json\"))[\"commits\"][0]
m = c[\"metadata\"]
assert c[\"author\"] == \"admin\", c
assert c[\"message\"] == \"Uploaded file.txt (12 bytes)\", c
assert m[\"type\"] == \"upload\" and m[\"upload.type\"] == \"S3\", m
assert m[\"upload.file\"] == \"file.txt\" and m[\"upload.bytes\"] == \"12\", m" &&
	dmA mount shop shopwc &&
	test_cmp file.txt shopwc/__default__/file.txt &&
	echo "$first" >first
'

test_expect_success 'a second PUT of the same key, and one in a directory' '
	echo helloworld2 >file.txt &&
	s3 admin PUT admin:shop/file.txt -T file.txt && status_is 200 &&
	snapshot_header >second &&
	s3 admin PUT admin:shop/dir/sub/inner.txt -T file.txt && status_is 200 &&
	snapshot_header >third &&
	test "$(cat first)" != "$(cat second)" && test "$(cat second)" != "$(cat third)"
'

test_expect_success 'GET /s3/NS:DOT lists the latest commit of master, as dotmesh did' '
	s3 admin GET admin:shop >list.xml && status_is 200 &&
	python3 -c "import xml.etree.ElementTree as ET
r = ET.parse(\"list.xml\").getroot()
assert r.tag == \"ListBucketResult\", r.tag
assert r.find(\"Name\").text == \"admin-shop\"
keys = [c.find(\"Key\").text for c in r.findall(\"Contents\")]
assert keys == [\"file.txt\", \"dir/sub/inner.txt\"], keys
sizes = [c.find(\"Size\").text for c in r.findall(\"Contents\")]
assert sizes == [\"12\", \"12\"], sizes
assert r.find(\"TotalResults\").text == \"2\"
assert all(c.find(\"Directory\").text == \"false\" for c in r.findall(\"Contents\"))" &&
	s3 admin GET "admin:shop?Format=json&IncludeDirectories=1&NonRecursive=1" >list.json &&
	status_is 200 &&
	python3 -c "import json
r = json.load(open(\"list.json\"))
keys = [(c[\"key\"], c[\"directory\"]) for c in r[\"contents\"]]
assert keys == [(\"dir\", True), (\"file.txt\", False)], keys
assert r[\"total_results\"] == 2 and r[\"name\"] == \"admin-shop\"" &&
	s3 admin GET "admin:shop?MaxKeys=1&Page=1&Format=json" >page.json &&
	python3 -c "import json
r = json.load(open(\"page.json\"))
assert [c[\"key\"] for c in r[\"contents\"]] == [\"dir/sub/inner.txt\"], r
assert r[\"total_results\"] == 2" &&
	s3 admin GET "admin:shop?Prefix=dir&Format=json" >pre.json &&
	python3 -c "import json
r = json.load(open(\"pre.json\"))
assert [c[\"key\"] for c in r[\"contents\"]] == [\"dir/sub/inner.txt\"], r"
'

test_expect_success 'GET /s3/NS:DOT/snapshot/COMMIT lists that commit' '
	s3 admin GET "admin:shop/snapshot/$(cat first)" >l1 && status_is 200 &&
	grep "<Key>file.txt</Key>" l1 && ! grep inner.txt l1 &&
	s3 admin GET "admin:shop/snapshot/latest" >l2 && status_is 200 &&
	grep inner.txt l2
'

test_expect_success 'GET and HEAD .../snapshot/COMMIT/KEY read the key at that commit' '
	s3 admin GET "admin:shop/snapshot/$(cat first)/file.txt" >got1 && status_is 200 &&
	echo helloworld1 >want1 && test_cmp want1 got1 &&
	s3 admin GET "admin:shop/snapshot/$(cat second)/file.txt" >got2 && status_is 200 &&
	echo helloworld2 >want2 && test_cmp want2 got2 &&
	s3 admin GET "admin:shop/snapshot/latest/dir/sub/inner.txt" >got3 && status_is 200 &&
	test_cmp want2 got3 &&
	s3_head admin "admin:shop/snapshot/$(cat second)/file.txt" && status_is 200 &&
	tr -d "\r" <headers | grep -i "^content-length: 12$" &&
	s3 admin GET "admin:shop/snapshot/$(cat first)/nonexistent.txt" && status_is 404 &&
	s3_head admin "admin:shop/snapshot/$(cat first)/nonexistent.txt" && status_is 404 &&
	s3 admin GET "admin:shop/snapshot/NOSUCHCOMMIT/file.txt" && status_is 404
'

test_expect_success 'PUT to NS:DOT@BRANCH changes that branch only' '
	dmA checkout -b other &&
	dmA checkout master &&
	echo onbranch >b.txt &&
	s3 admin PUT "admin:shop@other/b.txt" -T b.txt && status_is 200 &&
	snapshot_header >onbranch &&
	dmA checkout other && log_ids dmA log --dot shop >ids && dmA checkout master &&
	test "$(head -1 ids)" = "$(cat onbranch)" &&
	log_ids dmA log --dot shop >ids && test "$(head -1 ids)" = "$(cat third)" &&
	s3 admin GET "admin:shop/snapshot/$(cat onbranch)/b.txt" >got && status_is 200 &&
	test_cmp b.txt got &&
	s3 admin GET "admin:shop/snapshot/latest/b.txt" && status_is 404
'

test_expect_success 'keys with XML'\''s special characters list as well-formed XML' '
	s3 admin PUT "admin:shop/a%26b%3Cc%3E%22.txt" -T b.txt && status_is 200 &&
	s3 admin GET admin:shop >odd.xml && status_is 200 &&
	python3 -c "import xml.etree.ElementTree as ET
keys = [c.find(\"Key\").text for c in ET.parse(\"odd.xml\").getroot().findall(\"Contents\")]
assert \"a&b<c>\\\".txt\" in keys, keys" &&
	s3 admin GET "admin:shop/snapshot/latest/a%26b%3Cc%3E%22.txt" >got && test_cmp b.txt got
'

test_expect_success 'a dot that does not exist, and one with no commit, are refused' '
	s3 admin PUT admin:nosuch/f -T b.txt && status_is 404 &&
	grep "no such dot" body &&
	dmA init empty &&
	s3 admin GET admin:empty && status_is 404 && grep "no commit" body
'

test_done
