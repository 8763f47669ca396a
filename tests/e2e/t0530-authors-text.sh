#!/usr/bin/env bash
test_description='the author of a commit is who called (only an admin may name another), and dm log shows text from users with its control characters escaped, against a real dmd'
. "$(dirname "$0")/test-lib.sh"

if ! command -v curl >/dev/null 2>&1; then
	test_skip_all 'needs curl'
fi

port=$(test_free_port)
url=https://127.0.0.1:$port
curl() {
	command curl --cacert "$data/ca.pem" "$@"
}
data=$HOME/data
export DM_CONFIG=$HOME/dmconf/config
unset DM_API_KEY
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1"

# rpc USER KEY-FILE METHOD PARAMS-JSON: calls METHOD as USER; the reply goes
# to ./reply.
rpc() {
	printf '{"jsonrpc":"2.0","id":1,"method":"%s","params":%s}' "$3" "$4" >request &&
	curl -s -o reply -u "$1:$(cat "$2")" --data-binary @request "$url/rpc"
}

# The authors of DOT's commits as USER sees them, newest first, one a line.
authors() {
	rpc "$1" "$2" dots.log "{\"dot\":\"$3\"}" &&
	python3 -c 'import json
for c in json.load(open("reply"))["result"]["commits"]:
    print(c["author"])'
}

test_expect_success 'setup: a dmd, its admin, a user bob with a dot of his own' '
	dm cluster init --data-dir data --port "$port" >/dev/null &&
	python3 -c "import json, sys
print(json.load(open(sys.argv[1]))[\"remotes\"][\"local\"][\"api_key\"])" "$DM_CONFIG" >adminkey &&
	dm user add bob >bobkey 2>/dev/null &&
	DM_API_KEY=$(cat bobkey) dm remote add bob "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" >/dev/null &&
	dm --remote bob init bob/notes
'

test_expect_success 'a user who names another author is refused and nothing is committed' '
	rpc bob bobkey dots.commit "{\"dot\":\"bob/notes\",\"message\":\"forged\",\"author\":\"alice\"}" &&
	grep "\"code\":\"permission_denied\"" reply &&
	grep "only an admin may commit as another author" reply &&
	authors bob bobkey bob/notes >out &&
	test_cmp /dev/null out
'

test_expect_success 'a plain commit, or one naming the caller, records the caller as author' '
	rpc bob bobkey dots.commit "{\"dot\":\"bob/notes\",\"message\":\"mine\"}" &&
	grep "\"result\"" reply &&
	rpc bob bobkey dots.commit "{\"dot\":\"bob/notes\",\"message\":\"mine too\",\"author\":\"bob\"}" &&
	grep "\"result\"" reply &&
	authors bob bobkey bob/notes >out &&
	printf "bob\nbob\n" >expect && test_cmp expect out
'

test_expect_success 'an admin may commit as another author' '
	rpc admin adminkey dots.commit "{\"dot\":\"bob/notes\",\"message\":\"for carol\",\"author\":\"carol\"}" &&
	grep "\"result\"" reply &&
	authors admin adminkey bob/notes >out &&
	printf "carol\nbob\nbob\n" >expect && test_cmp expect out
'

test_expect_success 'dm log shows a message with an escape sequence escaped; --json keeps it' '
	dm init shop && dm switch shop &&
	dm commit -m "$(printf "\033[31mred\033[0m\nsecond\tline\a")" >/dev/null &&
	dm log >out &&
	test "$(grep -c "$(printf "\033")" out)" = 0 &&
	test "$(grep -c "$(printf "\a")" out)" = 0 &&
	grep -F "    \\x1b[31mred\\x1b[0m" out &&
	grep -F "    second line\\x07" out &&
	dm log --json >json &&
	python3 -c "import json
m = json.load(open(\"json\"))[\"commits\"][0][\"message\"]
assert m == \"\\x1b[31mred\\x1b[0m\\nsecond\\tline\\x07\", repr(m)"
'

test_expect_success 'dm log escapes metadata keys and values and the author too' '
	rpc admin adminkey dots.commit "{\"dot\":\"shop\",\"message\":\"m\",\"author\":\"eve\\u001b]0;x\\u0007\",\"metadata\":{\"note\":\"a\\u001bb\"}}" &&
	grep "\"result\"" reply &&
	dm log >out &&
	test "$(grep -c "$(printf "\033")" out)" = 0 &&
	grep -F "author: eve\\x1b]0;x\\x07" out &&
	grep -F "note: a\\x1bb" out
'

test_expect_success 'a pushed commit whose text is not UTF-8 is kept: dots.log sends its bytes as \xNN, dm log shows them escaped' '
	oc() { DM_CA_FILE=$data/ca.pem python3 "$TEST_DIRECTORY/objects-client.py" "$url" "$@"; } &&
	dm log --json >before.json &&
	python3 -c "import json
c = json.load(open(\"before.json\"))[\"commits\"][0]
print(c[\"id\"], c[\"tree\"])" >head &&
	read -r parent tree <head &&
	dm dot show shop --json | python3 -c "import json, sys; print(json.load(sys.stdin)[\"id\"])" >dotid &&
	oc admin adminkey refs admin/shop >refs &&
	session=$(sed -n "s/^session //p" refs) &&
	oc admin adminkey commit-object "$(cat dotid)" bad-utf8 "$parent" "$tree" \
		"6d616c6c6f7279ff" "6361666520ff6e6f7420757466380a" >commit.obj &&
	python3 -c "import sys; d = open(sys.argv[1], \"rb\").read(); sys.exit(0 if b\"\\xff\" in d else 1)" commit.obj &&
	oc admin adminkey put "$session" "$(cat dotid)" commit.obj >put.out &&
	grep "\"stored\"" put.out &&
	oid=$(sha256sum <commit.obj | cut -c1-64) &&
	oc admin adminkey update "$session" "{\"dot\":\"admin/shop\",\"id\":\"$(cat dotid)\",\"branch\":\"master\",\"old_head\":\"$parent\",\"new_head\":\"bad-utf8\",\"commits\":[\"bad-utf8\"],\"objects\":[\"$oid\"]}" >update.out &&
	! grep "^http" update.out &&
	dm log --json >after.json &&
	python3 -c "import json
c = json.load(open(\"after.json\"))[\"commits\"][0]
assert c[\"id\"] == \"bad-utf8\", c[\"id\"]
assert c[\"message\"] == \"cafe \\\\xffnot utf8\\n\", repr(c[\"message\"])" &&
	dm log >out &&
	grep -F "    cafe \\xffnot utf8" out
'

test_done
