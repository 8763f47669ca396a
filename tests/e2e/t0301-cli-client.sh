#!/usr/bin/env bash
test_description='dm against a fake server: config file, transport errors, requests and output formats'
. "$(dirname "$0")/test-lib.sh"

if ! command -v python3 >/dev/null 2>&1; then
	test_skip_all 'needs python3 for the fake server'
fi

key=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
port=$(test_free_port)
dead_port=$(test_free_port)
export DM_CONFIG=$HOME/conf/config

# The fake answers from fake/replies.json (see fake-dmd.py).
mkdir -p fake data
python3 "$TEST_DIRECTORY/fake-dmd.py" --port "$port" --dir "$HOME/fake" >/dev/null 2>&1 &
fake_pid=$!
test_atexit "kill $fake_pid"
for _ in $(seq 100); do
	[ -f fake/ready ] && break
	sleep 0.1
done

# write_config PORT [SOCKET] [CURRENT_DOT]: the config, with remote local.
write_config() {
	mkdir -p conf &&
	cat >conf/config <<-EOF
	{"current_remote": "local",
	 "remotes": {"local": {"user": "admin", "host": "127.0.0.1", "port": $1,
	   "api_key": "$key", "data_dir": "$HOME/data"
	   ${2:+, \"socket\": \"$2\"} ${3:+, \"current_dot\": \"$3\"}}}}
	EOF
}

replies() {
	cat >fake/replies.json
}

# The bodies of the requests the fake got, one JSON per line, then forgets them.
requests() {
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    print(json.loads(line)["body"])' fake/requests.jsonl &&
	rm -f fake/requests.jsonl
}

# expect_error STATUS 'MESSAGE' CMD...: see t0300.
expect_error() {
	local status=$1 msg=$2
	shift 2
	test_status "$status" "$@" >out || return 1
	echo "dm: $msg" >expect-err &&
	test_cmp expect-err err
}

dot_json() { # NAME BRANCH SIZE COMMITS DIRTY [NAMESPACE]
	echo "{\"id\":\"id-$1\",\"namespace\":\"${6:-admin}\",\"name\":\"$1\",\"state\":\"ready\",\"branch\":\"$2\",
	\"branches\":[{\"name\":\"master\",\"head\":\"0192f0c1-7b3a-7cde-8f12-3456789abcde\",\"commits\":$4,\"dirty\":$5,\"size\":$3,\"path\":\"$HOME/data/dots/$1/master\"},
	{\"name\":\"$2\",\"head\":\"\",\"commits\":0,\"dirty\":0,\"size\":0,\"path\":\"$HOME/data/dots/$1/$2\"}],
	\"size\":$3,\"commits\":$4,\"dirty\":$5,\"containers\":[],\"server\":\"127.0.0.1:32607\"}"
}

test_expect_success 'no config file: every server command says to run dm cluster init' '
	expect_error 3 "no remote configured; run '\''dm cluster init'\'' first" dm list &&
	expect_error 3 "no remote configured; run '\''dm cluster init'\'' first" dm commit -m x &&
	! test -e conf/config
'

test_expect_success 'a config that is not JSON is named in the error' '
	mkdir -p conf && echo "{\"remotes\": " >conf/config &&
	dm list 2>err; test $? = 5 &&
	grep "^dm: config file '\''$HOME/conf/config'\'' is not valid JSON: line" err &&
	test $(wc -l <err) = 1
'

test_expect_success 'a config with wrong types is corrupt, naming the file and the remote' '
	echo "{\"remotes\": {\"local\": {\"user\": \"admin\", \"host\": \"h\", \"api_key\": \"k\", \"port\": \"x\"}}}" >conf/config &&
	expect_error 5 "config file '\''$HOME/conf/config'\'' is corrupt: remote '\''local'\'': '\''port'\'' must be a number from 1 to 65535" dm list &&
	echo "[1]" >conf/config &&
	expect_error 5 "config file '\''$HOME/conf/config'\'' is corrupt: not a JSON object" dm list
'

test_expect_success 'an unknown remote is named' '
	write_config "$port" &&
	expect_error 3 "no remote named '\''hub'\'' in config file '\''$HOME/conf/config'\''" dm --remote hub list &&
	expect_error 3 "no remote named '\''hub'\'' in config file '\''$HOME/conf/config'\''" dm list --remote hub
'

test_expect_success 'a server that does not listen: one line with a hint, status 13' '
	write_config "$dead_port" &&
	expect_error 13 "cannot reach dm server at 127.0.0.1:$dead_port: Connection refused (is dmd running? try '\''dm cluster start'\'')" dm list
'

test_expect_success 'dm version prints the client version even when the server is down' '
	write_config "$dead_port" &&
	test_must_fail dm version >out 2>err &&
	grep "^  Version: [0-9]" out &&
	grep "^dm: cannot reach dm server at 127.0.0.1:$dead_port" err
'

test_expect_success 'dm version prints both versions' '
	write_config "$port" &&
	echo "{\"server.version\": {\"result\": {\"version\": \"9.8.7\", \"api\": 1}}}" | replies &&
	dm version >out &&
	grep -A1 "^Client:" out | grep "Version: 0\." &&
	grep -A1 "^Server:" out | grep "Version: 9.8.7"
'

test_expect_success 'requests are JSON-RPC 2.0 with basic auth of the remote user and key' '
	echo "{\"dots.list\": {\"result\": {\"dots\": []}}}" | replies &&
	rm -f fake/requests.jsonl &&
	dm list >/dev/null &&
	python3 - "$key" <<-\EOF
	import base64, json, sys
	r = json.loads(open("fake/requests.jsonl").readline())
	assert r["path"] == "/rpc", r
	assert r["auth"] == "Basic " + base64.b64encode(("admin:" + sys.argv[1]).encode()).decode(), r
	b = json.loads(r["body"])
	assert b["jsonrpc"] == "2.0" and b["method"] == "dots.list" and b["params"] == {}, b
	assert isinstance(b["id"], int), b
	EOF
'

test_expect_success 'HTTP 401 is permission denied for the remote' '
	echo "{\"dots.list\": {\"http\": 401, \"body\": \"no\"}}" | replies &&
	expect_error 10 "permission denied: invalid user name or API key for remote '\''local'\''" dm list
'

test_expect_success 'a JSON-RPC error gives its message and the exit status of its code' '
	echo "{\"dots.show\": {\"error\": {\"code\": -32000, \"message\": \"no such dot '\''shop'\''\", \"data\": {\"code\": \"not_found\"}}}}" | replies &&
	expect_error 3 "no such dot '\''shop'\''" dm switch shop &&
	echo "{\"dots.create\": {\"error\": {\"code\": -32000, \"message\": \"dot '\''shop'\'' exists\", \"data\": {\"code\": \"exists\"}}}}" | replies &&
	expect_error 4 "dot '\''shop'\'' exists" dm init shop &&
	echo "{\"dots.create\": {\"error\": {\"code\": -32000, \"message\": \"dot busy\nsecond line\", \"data\": {\"code\": \"busy\"}}}}" | replies &&
	expect_error 16 "dot busy second line" dm init shop
'

test_expect_success 'JSON-RPC errors without a dm code map from their JSON-RPC code' '
	echo "{}" | replies &&
	expect_error 9 "method not found" dm init shop &&
	echo "{\"dots.create\": {\"error\": {\"code\": -32602, \"message\": \"bad params\"}}}" | replies &&
	expect_error 2 "bad params" dm init shop
'

test_expect_success 'answers that are not JSON-RPC replies are protocol errors' '
	echo "{\"dots.list\": {\"http\": 200, \"body\": \"<html>\"}}" | replies &&
	expect_error 18 "invalid JSON-RPC reply from dm server at 127.0.0.1:$port: '\''['\'' or '\''{'\'' expected near '\''<'\''" dm list &&
	echo "{\"dots.list\": {\"http\": 500, \"body\": \"oops\"}}" | replies &&
	expect_error 18 "dm server at 127.0.0.1:$port answered HTTP 500 to '\''dots.list'\''" dm list &&
	echo "{\"dots.list\": {\"bad_id\": true, \"result\": {\"dots\": []}}}" | replies &&
	test_must_fail dm list 2>err &&
	grep "^dm: invalid JSON-RPC reply from dm server at 127.0.0.1:$port: no result for request" err
'

test_expect_success 'an answer larger than 16 MiB is refused' '
	echo "{\"dots.list\": {\"big\": 17000000}}" | replies &&
	expect_error 8 "the answer of dm server at 127.0.0.1:$port to '\''dots.list'\'' is larger than 16 MiB" dm list &&
	echo "{\"dots.list\": {\"big\": 16000000}}" | replies &&
	dm list >/dev/null
'

test_expect_success 'the unix socket is used when it exists, TCP otherwise' '
	sock=$HOME/data/fake.sock &&
	mkdir -p sockfake &&
	echo "{\"dots.list\": {\"result\": {\"dots\": []}}}" >sockfake/replies.json &&
	write_config "$dead_port" "$sock" &&
	expect_error 13 "cannot reach dm server at 127.0.0.1:$dead_port: Connection refused (is dmd running? try '\''dm cluster start'\'')" dm list &&
	{ python3 "$TEST_DIRECTORY/fake-dmd.py" --socket "$sock" --dir "$HOME/sockfake" >/dev/null 2>&1 & } &&
	spid=$! &&
	test_when_finished "kill $spid" &&
	for _ in $(seq 100); do test -S "$sock" && break; sleep 0.1; done &&
	dm list >out &&
	grep "dots.list" sockfake/requests.jsonl
'

test_expect_success 'dm switch checks the dot and stores it; the config becomes mode 0600' '
	write_config "$port" &&
	chmod 644 conf/config &&
	echo "{\"dots.show\": {\"result\": $(dot_json shop master 0 0 0)}}" | replies &&
	dm switch shop &&
	test "$(stat -c %a conf/config)" = 600 &&
	python3 -c "import json,sys; c=json.load(open(sys.argv[1])); assert c[\"remotes\"][\"local\"][\"current_dot\"] == \"shop\", c" conf/config &&
	echo "{}" | replies &&
	test_must_fail dm switch db 2>err &&
	grep -c current_dot conf/config >count && echo 1 >expect && test_cmp expect count &&
	grep "\"current_dot\": \"shop\"" conf/config
'

test_expect_success 'dm list: columns, human sizes, the current dot marked' '
	write_config "$port" "" shop &&
	echo "{\"dots.list\": {\"result\": {\"dots\": [$(dot_json db master 0 0 0), $(dot_json shop test 1258291 3 4096), $(dot_json x master 5 1 0 team)]}}}" | replies &&
	dm list >actual &&
	cat >expect <<-\EOF &&
	  DOT     BRANCH  SERVER           CONTAINERS  SIZE     COMMITS  DIRTY
	  db      master  127.0.0.1:32607              0 B      0        0 B
	* shop    test    127.0.0.1:32607              1.2 MiB  3        4.0 KiB
	  team/x  master  127.0.0.1:32607              5 B      1        0 B
	EOF
	test_cmp expect actual
'

test_expect_success 'dm list -H: dotmesh'\''s columns, tab-separated, raw bytes, no header, then the current mark' '
	dm list -H >actual &&
	printf "db\tmaster\t127.0.0.1:32607\t\t0\t0\t0\t\nshop\ttest\t127.0.0.1:32607\t\t1258291\t3\t4096\t*\nteam/x\tmaster\t127.0.0.1:32607\t\t5\t1\t0\t\n" >expect &&
	test_cmp expect actual &&
	test "$(cut -f 1 actual | tr "\n" " ")" = "db shop team/x " &&
	test "$(cut -f 7 actual | tr "\n" " ")" = "0 4096 0 " &&
	dm ls -H >ls.out && test_cmp actual ls.out
'

test_expect_success 'dm list --json prints the server answer' '
	dm list --json >actual &&
	python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert [x[\"name\"] for x in d[\"dots\"]] == [\"db\",\"shop\",\"x\"]" actual
'

test_expect_success 'the only dot is the current one when none was chosen' '
	write_config "$port" &&
	echo "{\"dots.list\": {\"result\": {\"dots\": [$(dot_json shop master 0 0 0)]}}, \"dots.commit\": {\"result\": {\"id\": \"0192f0c1-7b3a-7cde-8f12-3456789abcde\"}}}" | replies &&
	dm list >actual &&
	grep "^\* shop " actual &&
	rm -f fake/requests.jsonl &&
	dm commit -m "first" -d app=shop -d "note=a = b" >actual &&
	echo 0192f0c1-7b3a-7cde-8f12-3456789abcde >expect &&
	test_cmp expect actual &&
	requests >reqs &&
	tail -n 1 reqs >commit-req &&
	python3 -c "
import json, sys
b = json.load(open(sys.argv[1]))
assert b[\"method\"] == \"dots.commit\", b
assert b[\"params\"] == {\"dot\": \"shop\", \"message\": \"first\", \"metadata\": {\"app\": \"shop\", \"note\": \"a = b\"}}, b" commit-req
'

test_expect_success 'several dots and none chosen: no current dot' '
	echo "{\"dots.list\": {\"result\": {\"dots\": [$(dot_json a master 0 0 0), $(dot_json b master 0 0 0)]}}}" | replies &&
	expect_error 2 "no current dot; use '\''dm switch DOT'\'' or --dot DOT" dm commit -m x &&
	expect_error 2 "no current dot; use '\''dm switch DOT'\'' or --dot DOT" dm log &&
	echo "{\"dots.list\": {\"result\": {\"dots\": []}}}" | replies &&
	expect_error 3 "no current dot: there are no dots yet; create one with '\''dm init DOT'\''" dm branch
'

test_expect_success 'dm log prints commits like dotmesh, metadata sorted, message indented' '
	write_config "$port" "" shop &&
	cat >fake/replies.json <<-\EOF &&
	{"dots.log": {"result": {"commits": [
	  {"id": "0192f0c1-0002", "parents": ["0192f0c1-0001"], "author": "admin",
	   "time": "2026-11-24T21:03:11.123456789Z", "time_ns": 1795554191123456789,
	   "message": "two lines\nof message", "metadata": {"zeta": "z", "app": "shop"}},
	  {"id": "0192f0c1-0001", "parents": [], "author": "bob",
	   "time": "2026-11-24T21:00:00Z", "message": "first", "metadata": {}}]}}}
	EOF
	dm log >actual &&
	cat >expect <<-\EOF &&
	commit 0192f0c1-0002
	author: admin
	date: 2026-11-24T21:03:11Z
	app: shop
	zeta: z

	    two lines
	    of message

	commit 0192f0c1-0001
	author: bob
	date: 2026-11-24T21:00:00Z

	    first

	EOF
	test_cmp expect actual &&
	dm log --json >actual &&
	grep "\"two lines\\\\nof message\"" actual
'

test_expect_success 'dm branch marks the current branch; dm checkout -b sends create' '
	echo "{\"dots.branches\": {\"result\": {\"branches\": [\"master\", \"test\"], \"current\": \"test\"}}, \"dots.checkout\": {\"result\": {}}}" | replies &&
	dm branch >actual &&
	printf "  master\n* test\n" >expect &&
	test_cmp expect actual &&
	dm branch -H >actual &&
	printf "\tmaster\n*\ttest\n" >expect &&
	test_cmp expect actual &&
	rm -f fake/requests.jsonl &&
	dm checkout -b new &&
	dm checkout master &&
	requests >actual &&
	grep "\"params\": *{\"dot\": *\"shop\", *\"branch\": *\"new\", *\"create\": *true}" actual &&
	grep "\"params\": *{\"dot\": *\"shop\", *\"branch\": *\"master\", *\"create\": *false}" actual
'

test_expect_success 'dm --dot overrides the current dot' '
	rm -f fake/requests.jsonl &&
	dm branch --dot other >/dev/null &&
	requests >actual &&
	grep "\"dot\": *\"other\"" actual
'

test_expect_success 'dm reset --hard sends the ref; dm diff prints statuses' '
	cat >fake/replies.json <<-\EOF &&
	{"dots.reset": {"result": {"id": "0192f0c1-0001"}},
	 "dots.diff": {"result": {"changes": [
	   {"status": "added", "path": "a/new"}, {"status": "modified", "path": "b"},
	   {"status": "deleted", "path": "c d"}]}}}
	EOF
	rm -f fake/requests.jsonl &&
	dm reset --hard HEAD^ &&
	dm diff >actual &&
	cat >expect <<-\EOF &&
	Added:    a/new
	Modified: b
	Deleted:  c d
	EOF
	test_cmp expect actual &&
	dm diff -H HEAD~2 0192f0c1 >actual &&
	printf "added\ta/new\nmodified\tb\ndeleted\tc d\n" >expect &&
	test_cmp expect actual &&
	requests >reqs &&
	grep "\"method\": *\"dots.reset\", *\"params\": *{\"dot\": *\"shop\", *\"ref\": *\"HEAD^\"}" reqs &&
	grep "\"params\": *{\"dot\": *\"shop\"}" reqs &&
	grep "\"params\": *{\"dot\": *\"shop\", *\"from\": *\"HEAD~2\", *\"to\": *\"0192f0c1\"}" reqs
'

test_expect_success 'dm dot show describes the dot and its branches' '
	echo "{\"dots.show\": {\"result\": $(dot_json shop test 1258291 3 4096)}}" | replies &&
	dm dot show >actual &&
	grep "^dot: *shop$" actual &&
	grep "^id: *id-shop$" actual &&
	grep "^current: *yes$" actual &&
	grep "^branch: *test$" actual &&
	grep "^size: *1.2 MiB$" actual &&
	grep "^commits: *3$" actual &&
	grep "^dirty: *4.0 KiB$" actual &&
	grep "^upstream: *none$" actual &&
	grep "^  master  0192f0c1-7b3a-7cde-8f12-3456789abcde  3  *1.2 MiB  4.0 KiB" actual &&
	grep "^\* test    -  *0  *0 B" actual &&
	dm dot show -H other >actual &&
	grep "^size	1258291$" actual &&
	grep "^current	no$" actual &&
	! grep "^selected$" actual &&
	grep "^currentBranch	test$" actual &&
	grep "^branch	[0-9a-f-]*	test$" actual &&
	grep "^head	test		0	0	0$" actual
'

test_expect_success 'dm dot delete -f deletes and forgets the current dot' '
	echo "{\"dots.delete\": {\"result\": {}}}" | replies &&
	rm -f fake/requests.jsonl &&
	dm dot delete -f other &&
	grep "\"current_dot\": \"shop\"" conf/config &&
	dm dot delete --force shop &&
	! grep current_dot conf/config &&
	requests >reqs &&
	grep "\"method\": *\"dots.delete\", *\"params\": *{\"dot\": *\"other\"}" reqs &&
	grep "\"method\": *\"dots.delete\", *\"params\": *{\"dot\": *\"shop\"}" reqs
'

if command -v script >/dev/null 2>&1; then
	test_set_prereq SCRIPT
fi

test_expect_success SCRIPT 'dm dot delete asks on a terminal; only "y" deletes' '
	echo "{\"dots.delete\": {\"result\": {}}}" | replies &&
	rm -f fake/requests.jsonl &&
	printf "n\n" | test_must_fail script -qec "dm dot delete shop" /dev/null >out &&
	grep "Please confirm that you really want to delete the dot shop and all its commits \[y/N\]" out &&
	grep "dm: not deleting '\''shop'\''" out &&
	! test -e fake/requests.jsonl &&
	printf "y\n" | script -qec "dm dot delete shop" /dev/null >out &&
	requests >reqs &&
	grep "\"method\": *\"dots.delete\", *\"params\": *{\"dot\": *\"shop\"}" reqs
'

test_expect_success 'dm mount makes a symlink and replaces only its own' '
	mkdir -p data/dots/shop/master data/dots/shop/test &&
	echo "{\"dots.path\": {\"result\": {\"path\": \"$HOME/data/dots/shop/master\"}}}" | replies &&
	dm mount shop mnt &&
	test "$(readlink mnt)" = "$HOME/data/dots/shop/master" &&
	echo "{\"dots.path\": {\"result\": {\"path\": \"$HOME/data/dots/shop/test\"}}}" | replies &&
	rm -f fake/requests.jsonl &&
	dm mount shop@test mnt/ &&
	test "$(readlink mnt)" = "$HOME/data/dots/shop/test" &&
	requests >reqs &&
	grep "\"params\": *{\"dot\": *\"shop\", *\"branch\": *\"test\"}" reqs &&
	mkdir adir && ln -s /tmp foreign && touch afile &&
	expect_error 4 "'\''adir'\'' already exists; dm mount makes a symlink there, so give a path that does not exist" dm mount shop adir &&
	expect_error 4 "'\''afile'\'' already exists; dm mount makes a symlink there, so give a path that does not exist" dm mount shop afile &&
	expect_error 4 "'\''foreign'\'' is a symlink to '\''/tmp'\'', which dm mount did not make; remove it first" dm mount shop foreign &&
	test "$(readlink foreign)" = /tmp && test -d adir && test -f afile
'

test_expect_success 'dm mount --create creates a missing dot first' '
	cat >fake/replies.json <<-EOF &&
	{"dots.show": {"error": {"code": -32000, "message": "no such dot '\''new'\''", "data": {"code": "not_found"}}},
	 "dots.create": {"result": $(dot_json new master 0 0 0)},
	 "dots.path": {"result": {"path": "$HOME/data/dots/new/master"}}}
	EOF
	rm -f fake/requests.jsonl &&
	dm mount --create new mnt2 &&
	test "$(readlink mnt2)" = "$HOME/data/dots/new/master" &&
	requests >reqs &&
	grep -c "dots\.\(show\|create\|path\)" reqs >count &&
	echo 3 >expect && test_cmp expect count &&
	expect_error 3 "no such dot '\''new'\''" dm switch new
'

test_done
