#!/usr/bin/env bash
test_description='dm clone, pull and push between two real dmds: new dots, increments, --remote-name, --local-name, upstreams, up to date, progress without a terminal'
. "$(dirname "$0")/test-lib.sh"

port_a=$(test_free_port)
port_b=$(test_free_port)
dead_port=$(test_free_port)
unset DM_API_KEY
test_atexit "dmd stop --data-dir '$HOME/A' >/dev/null 2>&1; dmd stop --data-dir '$HOME/B' >/dev/null 2>&1"

# Two users of dm: one whose local dmd is A (config confA, where B is the
# remote "b"), one whose local dmd is B (confB, where A is "a").
dmA() {
	DM_CONFIG=$HOME/confA dm "$@"
}
dmB() {
	DM_CONFIG=$HOME/confB dm "$@"
}

# The commit ids of a dot's current branch, newest first.
log_ids() {
	"$@" --json | python3 -c 'import json, sys
for c in json.load(sys.stdin)["commits"]:
    print(c["id"])'
}

dot_id() {
	"$@" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}

test_expect_success 'setup: dmds A and B, each knowing the other as a remote' '
	dmA cluster init --data-dir A --port "$port_a" >/dev/null &&
	dmB cluster init --data-dir B --port "$port_b" >/dev/null &&
	DM_API_KEY=$(cat B/admin-api-key) dmA remote add b "admin@127.0.0.1:$port_b" --ca-file B/ca.pem >/dev/null &&
	DM_API_KEY=$(cat A/admin-api-key) dmB remote add a "admin@127.0.0.1:$port_a" --ca-file A/ca.pem >/dev/null &&
	dmA remote >out && grep "^\* local$" out
'

test_expect_success 'setup: a dot on A with two commits' '
	dmA init shop &&
	dmA mount shop shopA &&
	echo "apples: 3" >shopA/stock.txt &&
	mkdir shopA/sub && head -c 300000 /dev/urandom >shopA/sub/blob &&
	dmA commit -m first >/dev/null &&
	echo "pears: 2" >>shopA/stock.txt &&
	dmA commit -m second >/dev/null
'

test_expect_success 'dm clone copies the dot with its id, commits and files' '
	dmB clone a shop >out 2>progress &&
	log_ids dmA log --dot shop >expect &&
	log_ids dmB log --dot shop >actual &&
	test_cmp expect actual && test $(wc -l <actual) = 2 &&
	test "$(dot_id dmA dot show shop)" = "$(dot_id dmB dot show shop)" &&
	dmB mount shop shopB &&
	diff -r shopA/ shopB/
'

test_expect_success 'a clone records its upstream' '
	dmB dot show shop >out &&
	grep "^upstream: *a shop$" out
'

test_expect_success 'a second clone into the same name is refused before anything moves' '
	test_status 4 dmB clone a shop &&
	grep "^dm: dot '\''shop'\'' exists here already" err && test $(wc -l <err) = 1
'

test_expect_success 'dm pull brings new commits and the working copy follows' '
	echo "kiwis: 9" >>shopA/stock.txt &&
	dmA commit -m third >/dev/null &&
	dmB pull a shop >out 2>progress &&
	log_ids dmA log --dot shop >expect &&
	log_ids dmB log --dot shop >actual &&
	test_cmp expect actual && test $(wc -l <actual) = 3 &&
	diff -r shopA/ shopB/
'

test_expect_success 'nothing to pull: "everything up to date", exit 0; no REMOTE uses the upstream' '
	dmB switch shop &&
	dmB pull >out &&
	grep "up to date" out &&
	dmB pull a shop >out &&
	grep "up to date" out
'

test_expect_success 'dm push creates the dot on the other side' '
	dmA init cart &&
	dmA mount cart cartA &&
	echo "one" >cartA/one &&
	dmA commit --dot cart -m one >/dev/null &&
	dmA push b cart >out 2>progress &&
	log_ids dmA log --dot cart >expect &&
	log_ids dmB log --dot cart >actual &&
	test_cmp expect actual &&
	test "$(dot_id dmA dot show cart)" = "$(dot_id dmB dot show cart)" &&
	dmB mount cart cartB && diff -r cartA/ cartB/
'

test_expect_success 'an incremental push sends the new commit' '
	echo "two" >cartA/two &&
	dmA commit --dot cart -m two >/dev/null &&
	dmA push b cart >out &&
	log_ids dmA log --dot cart >expect &&
	log_ids dmB log --dot cart >actual &&
	test_cmp expect actual && test $(wc -l <actual) = 2 &&
	diff -r cartA/ cartB/
'

test_expect_success 'nothing to push: "everything up to date" on stdout, exit 0' '
	dmA push b cart >out 2>progress &&
	grep "everything up to date" out
'

test_expect_success 'dm push --remote-name gives the dot another name there' '
	dmA init inv &&
	dmA mount inv invA && echo 42 >invA/count &&
	dmA commit --dot inv -m count >/dev/null &&
	dmA push b inv --remote-name stock >/dev/null &&
	log_ids dmA log --dot inv >expect &&
	log_ids dmB log --dot stock >actual &&
	test_cmp expect actual &&
	test_status 3 dmB dot show inv
'

test_expect_success 'with an upstream, push and pull use its name there' '
	dmA dot set-upstream inv b stock &&
	echo 43 >invA/count &&
	dmA commit --dot inv -m more >/dev/null &&
	dmA push b inv >/dev/null &&
	log_ids dmA log --dot inv >expect &&
	log_ids dmB log --dot stock >actual &&
	test_cmp expect actual && test $(wc -l <actual) = 2
'

test_expect_success 'dm clone --local-name makes the copy under another name' '
	dmA init logs &&
	dmA mount logs logsA && echo line >logsA/log &&
	dmA commit --dot logs -m log >/dev/null &&
	dmB clone a logs --local-name journal >/dev/null &&
	log_ids dmA log --dot logs >expect &&
	log_ids dmB log --dot journal >actual &&
	test_cmp expect actual &&
	test_status 3 dmB dot show logs &&
	dmB dot show journal >out && grep "^upstream: *a logs$" out
'

test_expect_success 'without a terminal, progress is a few plain lines on stderr' '
	dmA init big &&
	dmA mount big bigA &&
	head -c 4000000 /dev/urandom >bigA/data &&
	dmA commit --dot big -m data >/dev/null &&
	dmA push b big >out 2>progress &&
	test_must_fail grep -q "$(printf "\r")" progress &&
	grep -E "^(negotiating|sending|receiving|applying|done)(: .*objects.*)?$" progress &&
	grep -E "^done: 100%  [0-9]+/[0-9]+ objects  [0-9.]+/[0-9.]+ MiB" progress &&
	test $(wc -l <progress) -le 10 &&
	test $(wc -l <out) = 1
'

test_expect_success 'an unreachable remote fails the push at once, naming it' '
	python3 - "$HOME/confA" "$dead_port" <<-\EOF &&
	import json, sys
	c = json.load(open(sys.argv[1]))
	c["remotes"]["dead"] = {"user": "admin", "host": "127.0.0.1", "port": int(sys.argv[2]),
	                        "api_key": "0" * 64}
	json.dump(c, open(sys.argv[1], "w"))
	EOF
	test_status 13 dmA push dead cart &&
	grep "127.0.0.1:$dead_port" err && test $(wc -l <err) = 1
'

test_expect_success 'push and pull refuse the remote they would talk to anyway' '
	test_status 2 dmA push local cart &&
	grep "is the server dm talks to" err &&
	test_status 3 dmA pull nosuch cart
'

test_done
