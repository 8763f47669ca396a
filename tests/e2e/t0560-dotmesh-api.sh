#!/usr/bin/env bash
test_description='dotmesh'\''s JSON-RPC API (DotmeshRPC.*) on /rpc: dotmesh'\''s params and result shapes, mapped onto dm'\''s methods and checked as they are (roles), a push and a clone through Transfer and GetTransfer'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"

# What this proves: a client written against dotmesh's API (Go's JSON-RPC
# 2.0 codec: params an object, or an array of one, member names in any
# case; branch "" is master; dots and branches named by their ids) gets
# from dm the answers dotmesh gave, in dotmesh's shapes; each alias is
# checked as the dm method it maps onto (a user may not delete an admin's
# dot), and a push and a clone started through Transfer end "finished"
# as GetTransfer reports them.

unset DM_API_KEY

# drpc SERVER USER METHOD PARAMS: calls DotmeshRPC.METHOD on SERVER as
# USER (whose key is in USER.key, or the admin's); prints the whole reply.
drpc() {
	local key
	if [ "$2" = admin ]; then key=$(cat "$HOME/$1/admin-api-key"); else key=$(cat "$2.key"); fi
	curl -sS --max-time 60 --cacert "$HOME/$1/ca.pem" -u "$2:$key" \
		-H 'Content-Type: application/json' \
		--data-binary "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"DotmeshRPC.$3\",\"params\":$4}" \
		"https://127.0.0.1:$(server_port "$1")/rpc"
}

# result SERVER USER METHOD PARAMS: the result, as JSON; an error fails.
result() {
	drpc "$@" | python3 -c 'import json, sys
r = json.load(sys.stdin)
if "error" in r:
    print(json.dumps(r["error"]), file=sys.stderr)
    sys.exit(1)
print(json.dumps(r["result"]))'
}

# check JSON_FILE PYTHON_EXPR: asserts the expression over r (the JSON).
check() {
	python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
assert eval(sys.argv[2]), r' "$1" "$2"
}

test_expect_success 'setup: dmds A and B, user bob on A' '
	servers_init A B &&
	dmA user add bob >bob.key
'

test_expect_success 'Ping, Version, CurrentUser' '
	result A admin Ping "{}" >r && check r "r is True" &&
	result A admin Ping null >r && check r "r is True" &&
	result A admin Version "{}" >r &&
	check r "r[\"installed_version\"] == r[\"current_version\"] and r[\"outdated\"] is False" &&
	result A bob CurrentUser "{}" >r &&
	check r "r[\"Name\"] == \"bob\" and r[\"Id\"] == \"bob\" and r[\"Metadata\"] == {}"
'

test_expect_success 'Create, Exists, Lookup, Get, List: ids are dotmesh'\''s (master'\''s is the dot'\''s)' '
	result A admin Create "{\"Namespace\":\"admin\",\"Name\":\"shop\"}" >r && check r "r is True" &&
	dot_id dmA dot show shop >id &&
	result A admin Exists "{\"Namespace\":\"admin\",\"Name\":\"shop\",\"Branch\":\"\"}" >r &&
	check r "r == open(\"id\").read().strip()" &&
	result A admin Exists "{\"Namespace\":\"admin\",\"Name\":\"nope\",\"Branch\":\"\"}" >r &&
	check r "r == \"\"" &&
	result A admin Lookup "[{\"namespace\":\"admin\",\"name\":\"shop\",\"branch\":\"\"}]" >r &&
	check r "r == open(\"id\").read().strip()" &&
	drpc A admin Lookup "{\"Namespace\":\"admin\",\"Name\":\"nope\"}" >r &&
	check r "r[\"error\"][\"data\"][\"code\"] == \"not_found\"" &&
	result A admin Get "\"$(cat id)\"" >r &&
	check r "r[\"Name\"] == {\"Namespace\": \"admin\", \"Name\": \"shop\"} and r[\"Branch\"] == \"\" and r[\"Id\"] == open(\"id\").read().strip() and r[\"CommitCount\"] == 0" &&
	result A admin List "{}" >r &&
	check r "r[\"admin\"][\"shop\"][\"Id\"] == open(\"id\").read().strip() and set(r[\"admin\"][\"shop\"]) >= {\"SizeBytes\", \"DirtyBytes\", \"CommitCount\", \"Master\", \"ServerStatuses\"}"
'

test_expect_success 'Commit with #commit-id, Commits (oldest first, message and author in the metadata)' '
	dmA mount shop shopA && echo apples >shopA/stock &&
	result A admin Commit "{\"Namespace\":\"admin\",\"Name\":\"shop\",\"Branch\":\"\",\"Message\":\"first\",\"Metadata\":{\"#commit-id\":\"FIRSTCOMMIT\",\"ticket\":\"42\"}}" >r &&
	check r "r == \"FIRSTCOMMIT\"" &&
	echo pears >>shopA/stock &&
	result A admin Commit "{\"Namespace\":\"admin\",\"Name\":\"shop\",\"Message\":\"second\"}" >r &&
	second=$(python3 -c "import json; print(json.load(open(\"r\")))") &&
	result A admin Commits "{\"Namespace\":\"admin\",\"Name\":\"shop\",\"Branch\":\"\"}" >r &&
	check r "[c[\"Id\"] for c in r] == [\"FIRSTCOMMIT\", \"$second\"]" &&
	check r "r[0][\"Metadata\"][\"message\"] == \"first\" and r[0][\"Metadata\"][\"author\"] == \"admin\" and r[0][\"Metadata\"][\"ticket\"] == \"42\" and int(r[0][\"Metadata\"][\"timestamp\"]) > 0" &&
	drpc A admin Commit "{\"Namespace\":\"admin\",\"Name\":\"shop\",\"Message\":\"x\",\"Metadata\":{\"#commit-id\":\"FIRSTCOMMIT\"}}" >r &&
	check r "r[\"error\"][\"data\"][\"code\"] == \"exists\"" &&
	drpc A admin Commit "{\"Namespace\":\"admin\",\"Name\":\"shop\",\"Message\":\"x\",\"Metadata\":{\"Apples\":\"green\"}}" >r &&
	check r "r[\"error\"][\"data\"][\"code\"] == \"invalid_argument\""
'

test_expect_success 'Branch from a branch'\''s head, Branches (but master), Rollback, SwitchContainers' '
	result A admin Branch "{\"Namespace\":\"admin\",\"Name\":\"shop\",\"SourceBranch\":\"\",\"NewBranchName\":\"b1\",\"SourceCommitId\":\"\"}" >r &&
	result A admin Branch "{\"Namespace\":\"admin\",\"Name\":\"shop\",\"SourceBranch\":\"master\",\"NewBranchName\":\"b0\",\"SourceCommitId\":\"FIRSTCOMMIT\"}" >r &&
	result A admin Branches "{\"Namespace\":\"admin\",\"Name\":\"shop\"}" >r &&
	check r "r == [\"b0\", \"b1\"]" &&
	dmA log --dot shop --json >log && test "$(log_ids dmA log --dot shop | head -n 1)" = "$second" &&
	result A admin Rollback "{\"Namespace\":\"admin\",\"Name\":\"shop\",\"Branch\":\"\",\"SnapshotId\":\"FIRSTCOMMIT\"}" >r &&
	test "$(cat shopA/stock)" = apples &&
	result A admin SwitchContainers "{\"Namespace\":\"admin\",\"Name\":\"shop\",\"NewBranchName\":\"b1\"}" >r &&
	dmA dot show -H shop | grep -x "currentBranch	b1" &&
	test "$(tail -n 1 shopA/stock)" = pears &&
	result A admin Lookup "{\"Namespace\":\"admin\",\"Name\":\"shop\",\"Branch\":\"b1\"}" >b1id &&
	dmA dot show -H shop | grep "^branch	$(python3 -c "import json; print(json.load(open(\"b1id\")))")	b1$" &&
	result A admin Get "{\"FilesystemId\":$(cat b1id)}" >r &&
	check r "r[\"Branch\"] == \"b1\" and r[\"CommitCount\"] == 2"
'

test_expect_success 'Procure makes the dot and its subdot; Containers; DeducePathToTopLevelFilesystem; CheckNameIsValid' '
	result A admin Procure "{\"Namespace\":\"admin\",\"Name\":\"made\",\"Subdot\":\"db\"}" >r &&
	p=$(python3 -c "import json; print(json.load(open(\"r\")))") &&
	test -d "$p" && test "$(basename "$p")" = db &&
	dmA dot show made >/dev/null &&
	result A admin Containers "{\"Namespace\":\"admin\",\"Name\":\"made\",\"Branch\":\"\"}" >r && check r "r == []" &&
	result A admin DeducePathToTopLevelFilesystem "{\"RemoteNamespace\":\"admin\",\"RemoteFilesystemName\":\"shop\",\"RemoteCloneName\":\"b1\"}" >r &&
	check r "r[\"TopLevelFilesystemId\"] == open(\"id\").read().strip() and r[\"Clones\"][0][\"Clone\"][\"FilesystemId\"] == json.load(open(\"b1id\"))" &&
	result A admin CheckNameIsValid "{\"Namespace\":\"admin\",\"Name\":\"a b\"}" >r && check r "\"invalid dot name\" in r" &&
	result A admin CheckNameIsValid "{\"Namespace\":\"admin\",\"Name\":\"ab\"}" >r && check r "r == \"\""
'

test_expect_success 'roles as dm'\''s methods have them: bob may not read or delete admin'\''s dot, AddCollaborator by id lets him read it' '
	drpc A bob Delete "{\"Namespace\":\"admin\",\"Name\":\"made\"}" >r &&
	check r "r[\"error\"][\"data\"][\"code\"] == \"permission_denied\" and \"only its owner or an admin\" in r[\"error\"][\"message\"]" &&
	drpc A bob Commits "{\"Namespace\":\"admin\",\"Name\":\"shop\"}" >r &&
	check r "r[\"error\"][\"data\"][\"code\"] == \"permission_denied\"" &&
	result A bob List "{}" >r && check r "\"admin\" not in r" &&
	result A admin AddCollaborator "{\"MasterBranchID\":\"$(cat id)\",\"Collaborator\":\"bob\"}" >r && check r "r is True" &&
	result A bob Commits "{\"Namespace\":\"admin\",\"Name\":\"shop\"}" >r && check r "len(r) == 1" &&
	drpc A admin AddCollaborator "{\"MasterBranchID\":$(cat b1id),\"Collaborator\":\"bob\"}" >r &&
	check r "r[\"error\"][\"data\"][\"code\"] == \"invalid_argument\"" &&
	result A admin RemoveCollaborator "{\"MasterBranchID\":\"$(cat id)\",\"Collaborator\":\"bob\"}" >r &&
	drpc A bob Commits "{\"Namespace\":\"admin\",\"Name\":\"shop\"}" >r &&
	check r "r[\"error\"][\"data\"][\"code\"] == \"permission_denied\"" &&
	result A admin Delete "{\"Namespace\":\"admin\",\"Name\":\"made\"}" >r && check r "r is True" &&
	result A admin Exists "{\"Namespace\":\"admin\",\"Name\":\"made\"}" >r && check r "r == \"\""
'

test_expect_success 'ForceBranchMasterById: refused on one node, as cluster.set_master is' '
	drpc A admin ForceBranchMasterById "{\"FilesystemId\":\"$(cat id)\",\"Master\":\"\"}" >r &&
	check r "r[\"error\"][\"data\"][\"code\"] == \"unsupported\"" &&
	drpc A bob ForceBranchMasterById "{\"FilesystemId\":\"$(cat id)\"}" >r &&
	check r "r[\"error\"][\"data\"][\"code\"] in (\"permission_denied\", \"not_found\")"
'

# transfer SERVER DIRECTION LOCAL REMOTE BRANCH: a TransferRequest from
# SERVER to B as B's admin (with B's CA, dm's own member), polled with
# GetTransfer until it ends; prints the last TransferPollResult.
transfer() {
	local req id
	req=$(python3 -c "import json, sys
print(json.dumps({\"Peer\": \"127.0.0.1\", \"User\": \"admin\", \"Port\": int(sys.argv[1]),
    \"ApiKey\": open(sys.argv[2]).read().strip(), \"Direction\": sys.argv[3],
    \"LocalNamespace\": \"admin\", \"LocalName\": sys.argv[4], \"LocalBranchName\": sys.argv[6],
    \"RemoteNamespace\": \"admin\", \"RemoteName\": sys.argv[5], \"RemoteBranchName\": sys.argv[6],
    \"TargetCommit\": \"\", \"StashDivergence\": False, \"Ca\": open(sys.argv[7]).read()}))" \
		"$(server_port B)" "$HOME/B/admin-api-key" "$2" "$3" "$4" "$5" "$HOME/B/ca.pem") &&
	result "$1" admin Transfer "$req" >tid &&
	for _ in $(seq 1 100); do
		result "$1" admin GetTransfer "$(cat tid)" >poll || return 1
		python3 -c "import json, sys; sys.exit(0 if json.load(open(\"poll\"))[\"Status\"] in (\"finished\", \"error\") else 1)" && break
		sleep 0.2
	done &&
	cat poll
}

test_expect_success 'Transfer push, polled with GetTransfer until finished; a pull into a dot not here is a clone' '
	transfer A push shop shop "" >r &&
	check r "r[\"Status\"] == \"finished\" and r[\"Direction\"] == \"push\" and r[\"LocalName\"] == \"shop\" and r[\"ApiKey\"] == \"\"" &&
	test "$(log_ids dmB log --dot shop)" = FIRSTCOMMIT &&
	dmB dot show shop --json >b.json && check b.json "r[\"id\"] == open(\"id\").read().strip()" &&
	dmB init only-on-b &&
	transfer A pull only-on-b only-on-b "" >r &&
	check r "r[\"Status\"] == \"finished\" and r[\"Direction\"] == \"pull\"" &&
	test "$(dot_id dmA dot show only-on-b)" = "$(dot_id dmB dot show only-on-b)" &&
	transfer A pull shop nosuch "" >r &&
	check r "r[\"Status\"] == \"error\" and r[\"Message\"] != \"\""
'

test_expect_success 'malformed calls: params not an object, an unknown method, TargetCommit' '
	drpc A admin Create "42" >r && check r "r[\"error\"][\"data\"][\"code\"] == \"invalid_argument\"" &&
	drpc A admin Nope "{}" >r && check r "r[\"error\"][\"code\"] == -32601" &&
	drpc A admin Transfer "{\"Direction\":\"push\",\"LocalName\":\"shop\",\"RemoteName\":\"shop\",\"TargetCommit\":\"x\"}" >r &&
	check r "r[\"error\"][\"data\"][\"code\"] == \"unsupported\""
'

test_expect_success 'dm debug reaches them too (dotmesh'\''s dm debug DotmeshRPC.X)' '
	dmA debug DotmeshRPC.Ping >out && test "$(cat out)" = true &&
	dmA debug DotmeshRPC.Get "$(cat id)" >out &&
	python3 -c "import json; assert json.load(open(\"out\"))[\"Name\"][\"Name\"] == \"shop\""
'

test_done
