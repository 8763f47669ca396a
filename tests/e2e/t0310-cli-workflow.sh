#!/usr/bin/env bash
test_description='the dm workflow against a real dmd: cluster init, dots, commits, branches, reset, diff, mount, restart'
. "$(dirname "$0")/test-lib.sh"

port=$(test_free_port)
data=$HOME/data
export DM_CONFIG=$HOME/dmconf/config
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1"

test_expect_success 'dm cluster init makes the data dir, saves the remote, starts dmd' '
	dm cluster init --data-dir data --port "$port" >out 2>err &&
	test_cmp /dev/null err &&
	grep "^Initialised the dm data directory $data$" out &&
	grep "$DM_CONFIG" out &&
	grep "^dmd is running: https://127.0.0.1:$port and $data/dmd.sock$" out &&
	fp=$(sed -n "s/^Its CA.s fingerprint is \(SHA256:[0-9a-f]\{64\}\)$/\1/p" out) &&
	test -n "$fp" &&
	grep -F -- "--fingerprint $fp" out &&
	test -S "$data/dmd.sock" &&
	test "$(stat -c %a "$DM_CONFIG")" = 600 &&
	test "$(stat -c %a dmconf)" = 700 &&
	python3 - "$DM_CONFIG" "$port" "$data" <<-\EOF
	import json, re, sys
	c = json.load(open(sys.argv[1]))
	assert c["current_remote"] == "local", c
	r = c["remotes"]["local"]
	assert r["user"] == "admin" and r["host"] == "127.0.0.1", r
	assert r["port"] == int(sys.argv[2]), r
	assert r["socket"] == sys.argv[3] + "/dmd.sock", r
	assert r["data_dir"] == sys.argv[3], r
	assert re.fullmatch("[0-9a-f]{64}", r["api_key"]), r
assert r["ca"] == open(sys.argv[3] + "/ca.pem").read(), r
	EOF
'

test_expect_success 'the API key is nowhere on stdout' '
	key=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"remotes\"][\"local\"][\"api_key\"])" "$DM_CONFIG") &&
	! grep "$key" out
'

test_expect_success 'dm version shows client and server' '
	dm version >out &&
	grep -A1 "^Server:" out | grep "Version: [0-9]"
'

test_expect_success 'dm list on a new cluster shows only the header' '
	dm list >out &&
	echo "  DOT  BRANCH  SERVER  CONTAINERS  SIZE  COMMITS  DIRTY" >expect &&
	test_cmp expect out
'

test_expect_success 'dm init makes a dot; the only dot is current' '
	dm init shop &&
	dm list >out &&
	grep "^\* shop  *master  *127.0.0.1:$port " out
'

test_expect_success 'dm init of an existing dot fails with "exists"' '
	test_status 4 dm init shop &&
	grep "^dm: .*'\''shop'\''.*exists" err &&
	test $(wc -l <err) = 1
'

test_expect_success 'dm mount links PATH to the working copy' '
	dm mount shop mnt &&
	test -L mnt && test -d mnt/ &&
	case $(readlink mnt) in "$data"/*) ;; *) false ;; esac &&
	echo hello >mnt/a.txt
'

test_expect_success 'dm diff shows the new file; dm list counts dirty bytes' '
	dm diff >out &&
	echo "Added:    a.txt" >expect &&
	test_cmp expect out &&
	dm list -H >out &&
	grep "^shop	master	.*	\*$" out &&
	test "$(cut -f7 out)" = 6
'

test_expect_success 'dm commit prints the id; dm log shows it with metadata' '
	dm commit -m "first commit" -d app=shop -d stage=test >id1 &&
	grep -E "^[0-9a-f-]{20,}$" id1 &&
	dm log >out &&
	head -n 1 out >first && echo "commit $(cat id1)" >expect && test_cmp expect first &&
	grep "^author: admin$" out &&
	grep "^date: 20[0-9][0-9]-" out &&
	grep "^app: shop$" out &&
	grep "^stage: test$" out &&
	grep "^    first commit$" out &&
	dm diff >out && test_cmp /dev/null out
'

test_expect_success 'a second commit; dm log is newest first' '
	echo more >mnt/b.txt &&
	echo changed >mnt/a.txt &&
	dm commit -m second >id2 &&
	dm log >out &&
	grep "^commit " out >ids &&
	printf "commit %s\ncommit %s\n" "$(cat id2)" "$(cat id1)" >expect &&
	test_cmp expect ids
'

test_expect_success 'dm diff between two commits' '
	dm diff "$(cat id1)" "$(cat id2)" >out &&
	printf "Modified: a.txt\nAdded:    b.txt\n" | sort >expect &&
	sort out >actual &&
	test_cmp expect actual &&
	dm diff --json HEAD^ HEAD >out &&
	grep "\"status\": \"added\"" out
'

test_expect_success 'dm reset --hard HEAD^ goes back one commit, files included' '
	dm reset --hard HEAD^ &&
	dm log >out &&
	grep "^commit " out >ids &&
	echo "commit $(cat id1)" >expect &&
	test_cmp expect ids &&
	test "$(cat mnt/a.txt)" = hello &&
	! test -e mnt/b.txt
'

test_expect_success 'dm checkout -b makes a branch; dm branch marks it' '
	dm checkout -b test &&
	dm branch >out &&
	printf "  master\n* test\n" >expect &&
	test_cmp expect out &&
	dm list >out &&
	grep "^\* shop  *test " out
'

test_expect_success 'a commit on the branch leaves master alone' '
	dm mount shop@test tmnt &&
	echo branch >tmnt/c.txt &&
	dm commit -m "on test" >id3 &&
	dm log >out && grep -c "^commit " out >n && echo 2 >expect && test_cmp expect n &&
	dm checkout master &&
	dm log >out && grep -c "^commit " out >n && echo 1 >expect && test_cmp expect n &&
	dm mount shop mnt &&
	! test -e mnt/c.txt && test -e tmnt/c.txt
'

test_expect_success 'a mount without @BRANCH follows dm checkout; @BRANCH pins one' '
	dm checkout test &&
	test "$(cat mnt/c.txt)" = branch &&
	dm checkout master &&
	! test -e mnt/c.txt &&
	test "$(cat tmnt/c.txt)" = branch
'

test_expect_success 'dm dot show describes the dot' '
	dm dot show >out &&
	grep "^dot: *shop$" out &&
	grep "^branch: *master$" out &&
	grep "^commits: *1$" out &&
	grep "^\* master  *$(cat id1) " out &&
	grep "^  test  *$(cat id3) " out &&
	dm dot show --json shop >out &&
	grep "\"name\": \"shop\"" out
'

test_expect_success 'dm init makes the new dot the current one (as dotmesh did)' '
	dm init db &&
	grep "\"current_dot\": \"db\"" "$DM_CONFIG" &&
	dm init ns2/other &&
	grep "\"current_dot\": \"ns2/other\"" "$DM_CONFIG" &&
	dm list >out &&
	grep "^\* ns2/other " out
'

test_expect_success 'with several dots and none chosen, commit says "no current dot"' '
	python3 -c "import json, sys
c = json.load(open(sys.argv[1]))
del c[\"remotes\"][\"local\"][\"current_dot\"]
json.dump(c, open(sys.argv[1], \"w\"))" "$DM_CONFIG" &&
	dm list >out &&
	grep "^  ns2/other " out &&
	test_must_fail grep "^\*" out &&
	test_status 2 dm commit -m x &&
	echo "dm: no current dot; use '\''dm switch DOT'\'' or --dot DOT" >expect &&
	test_cmp expect err
'

test_expect_success 'dm switch picks the current dot; --dot overrides it' '
	dm switch db &&
	dm list >out &&
	grep "^\* db " out &&
	dm commit -m "db first" >/dev/null &&
	dm log --dot shop >out &&
	grep "^    first commit$" out &&
	dm log >out &&
	grep "^    db first$" out
'

test_expect_success 'dm switch to a missing dot fails and keeps the current one' '
	test_status 3 dm switch nope &&
	grep "^dm: .*'\''nope'\''" err &&
	dm list >out && grep "^\* db " out
'

test_expect_success 'dmd restarts with the data intact' '
	dm cluster stop >out &&
	grep "^dmd stopped" out &&
	test_status 13 dm list &&
	grep "^dm: cannot reach dm server at 127.0.0.1:$port: Connection refused (is dmd running? try '\''dm cluster start'\'')$" err &&
	dm cluster start >out &&
	grep "^dmd is running" out &&
	dm log --dot shop >out &&
	grep "^commit $(cat id1)$" out &&
	dm branch --dot shop >out &&
	grep "^  test$" out &&
	test "$(cat mnt/a.txt)" = hello &&
	dm list >out && grep "^\* db " out
'

test_expect_success 'dm cluster start --port moves the remote to the new port' '
	port2=$(test_free_port) &&
	dm cluster stop >/dev/null &&
	dm cluster start --port "$port2" >/dev/null &&
	grep "\"port\": $port2," "$DM_CONFIG" &&
	mv "$data/dmd.sock" "$data/dmd.sock.hidden" &&
	test_when_finished "mv \"$data/dmd.sock.hidden\" \"$data/dmd.sock\"" &&
	dm list >out && grep "^\* db " out &&
	dm -v list 2>err >/dev/null &&
	grep "127.0.0.1:$port2" err
'

test_expect_success 'dm cluster init on an initialised data dir fails in one line, config kept' '
	cp "$DM_CONFIG" before &&
	test_must_fail dm cluster init --data-dir data --port "$port" >out 2>err &&
	test $(wc -l <err) = 1 &&
	grep "^dm: " err &&
	test_cmp before "$DM_CONFIG" &&
	test_cmp /dev/null out
'

test_expect_success 'dm cluster init elsewhere replaces remote local with a note' '
	port3=$(test_free_port) &&
	cp "$DM_CONFIG" before &&
	test_when_finished "cp before \"\$DM_CONFIG\"; dmd stop --data-dir \"$HOME/data2\" >/dev/null" &&
	dm cluster init --data-dir data2 --port "$port3" >out 2>err &&
	echo "dm: note: replacing remote '\''local'\'' (was 127.0.0.1:$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"remotes\"][\"local\"][\"port\"])" before), data dir $data)" >expect &&
	test_cmp expect err &&
	grep "\"port\": $port3," "$DM_CONFIG" &&
	dm list >out &&
	echo "  DOT  BRANCH  SERVER  CONTAINERS  SIZE  COMMITS  DIRTY" >expect &&
	test_cmp expect out
'

test_expect_success 'dm dot delete removes the dot and forgets it as current' '
	test_status 2 dm dot delete db &&
	dm dot delete -f db &&
	dm list >out &&
	test_must_fail grep " db " out &&
	! grep current_dot "$DM_CONFIG" &&
	test_status 3 dm dot delete -f db &&
	grep "^dm: .*'\''db'\''" err
'

test_expect_success 'a wrong API key is refused as permission denied' '
	cp "$DM_CONFIG" good-config &&
	sed "s/\"api_key\": \"./\"api_key\": \"x/" good-config >"$DM_CONFIG" &&
	test_when_finished "cp good-config \"\$DM_CONFIG\"" &&
	test_status 10 dm list &&
	echo "dm: permission denied: invalid user name or API key for remote '\''local'\''" >expect &&
	test_cmp expect err
'

test_expect_success 'dm cluster stop stops dmd' '
	dm cluster stop &&
	test_must_fail dm version >out 2>err &&
	grep "^  Version:" out
'

test_done
