#!/usr/bin/env bash
test_description='roles of a dot: its owner, collaborators with role write or read, and everyone else; every command that reads or changes a dot is allowed or refused by role, and a refusal names what is missing'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"

# What this proves: on server B, alice owns alice/shop, bob collaborates
# with role write, carol with role read, dave not at all. For every
# command (show, list, log, branch, diff, commit with metadata, a new
# branch, mount, checkout, reset, set-hook, add/remove-collaborator,
# delete, clone and pull from B, push to B, pull into B) the roles that
# may run it do, the others are refused with a message naming what they
# lack, and a refusal changes nothing. A's client talks to B as each user
# (remotes alice, bob, carol, dave), and to A itself as admin.

unset DM_API_KEY

# as USER CMD...: dm, on B, as USER.
as() {
	local u=$1
	shift
	dmA --remote "$u" "$@"
}

# head_of: the head of alice/shop's master on B, as the admin sees it.
head_of() {
	dmB log --dot alice/shop --json | python3 -c 'import json, sys
c = json.load(sys.stdin)["commits"]
print(c[0]["id"] if c else "")'
}

# user_rpc USER METHOD PARAMS: a JSON-RPC call to B as USER; prints the
# reply, error or not.
user_rpc() {
	curl -sS --max-time 30 --cacert "$HOME/B/ca.pem" -u "$1:$(cat "$1.key")" -H 'Content-Type: application/json' \
		--data-binary "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":$3}" \
		"https://127.0.0.1:$(server_port B)/rpc"
}

# refused STATUS PATTERN CMD...: CMD fails with STATUS and one "dm: " line
# matching PATTERN (a grep pattern).
refused() {
	local status=$1 pattern=$2
	shift 2
	test_status "$status" "$@" || return 1
	grep "^dm: $pattern" err || {
		echo "expected 'dm: $pattern' from: $*" >&2
		cat err >&2
		return 1
	}
}

NOREAD="may not read .alice/shop.: only its owner, an admin or a collaborator with role read may (the owner adds one with .dm dot add-collaborator alice/shop dave --role read.)"
OWNER_ONLY="only its owner or an admin may$"

test_expect_success 'setup: dmds A and B; users alice, bob, carol and dave on B' '
	servers_init A B &&
	for u in alice bob carol dave; do
		dmB user add $u >$u.key 2>/dev/null &&
		user_remote A $u $u B $u.key || return 1
	done
'

test_expect_success 'alice makes alice/shop and shares it: bob (default role write), carol (read)' '
	as alice init alice/shop &&
	as alice mount alice/shop ws && echo apples >ws/stock &&
	as alice commit --dot alice/shop -m first >/dev/null &&
	as alice dot add-collaborator alice/shop bob &&
	as alice dot add-collaborator alice/shop carol --role read &&
	as alice dot show alice/shop >out &&
	grep "^owner: *alice$" out &&
	grep "^collaborators: *bob (write), carol (read)$" out &&
	as alice dot show -H alice/shop >out &&
	grep "^collaborators	bob:write,carol:read$" out &&
	as alice dot show --json alice/shop >out &&
	python3 -c "import json; d = json.load(open(\"out\")); assert d[\"collaborators\"] == [{\"user\": \"bob\", \"role\": \"write\"}, {\"user\": \"carol\", \"role\": \"read\"}], d"
'

test_expect_success 'read commands: bob and carol may show, log, list branches and diff; dave may not' '
	for u in alice bob carol; do
		as $u dot show alice/shop >/dev/null &&
		as $u log --dot alice/shop >out && grep first out &&
		as $u branch --dot alice/shop >/dev/null &&
		as $u diff --dot alice/shop >/dev/null || return 1
	done &&
	refused 10 "user .dave. $NOREAD" as dave dot show alice/shop &&
	refused 10 "user .dave. $NOREAD" as dave log --dot alice/shop &&
	refused 10 "user .dave. $NOREAD" as dave branch --dot alice/shop &&
	refused 10 "user .dave. $NOREAD" as dave diff --dot alice/shop
'

test_expect_success 'dm list shows alice/shop to its collaborators, not to dave' '
	as carol list -H >out && grep "alice/shop" out &&
	as dave list -H >out && ! grep "alice/shop" out
'

test_expect_success 'commit (with metadata): bob may; carol (read) and dave may not, and nothing is committed' '
	echo pears >>ws/stock &&
	as bob commit --dot alice/shop -m by-bob -d fruit=pears >/dev/null &&
	dmB log --dot alice/shop --json >log.json &&
	python3 -c "import json; c = json.load(open(\"log.json\"))[\"commits\"][0]; assert c[\"author\"] == \"bob\" and c[\"metadata\"] == {\"fruit\": \"pears\"}, c" &&
	before=$(head_of) &&
	refused 10 "user .carol. may not commit to .alice/shop.: it needs role write, and .carol. has role read (the owner can change it with .dm dot add-collaborator alice/shop carol --role write.)$" \
		as carol commit --dot alice/shop -m by-carol &&
	refused 10 "user .dave. may not commit to .alice/shop.: only its owner, an admin or a collaborator with role write may" \
		as dave commit --dot alice/shop -m by-dave &&
	test "$(head_of)" = "$before"
'

test_expect_success 'a new branch (dots.branch): bob may, carol may not' '
	user_rpc bob dots.branch "{\"dot\":\"alice/shop\",\"branch\":\"b-bob\"}" >out &&
	grep "\"result\"" out &&
	user_rpc carol dots.branch "{\"dot\":\"alice/shop\",\"branch\":\"b-carol\"}" >out &&
	grep "user '\''carol'\'' may not make a branch of '\''alice/shop'\'': it needs role write" out &&
	grep "permission_denied" out &&
	dmB branch --dot alice/shop -H >out && grep b-bob out && ! grep b-carol out
'

test_expect_success 'mount (the working copy, dots.path): bob may, carol and dave may not' '
	as bob mount alice/shop bobws && test -f bobws/stock &&
	refused 10 "user .carol. may not use the working copy of .alice/shop.: it needs role write, and .carol. has role read" \
		as carol mount alice/shop carolws &&
	refused 10 "user .dave. may not use the working copy of .alice/shop." as dave mount alice/shop davews &&
	! test -e carolws && ! test -e davews
'

test_expect_success 'checkout is the owner'\''s: bob may not, alice may' '
	refused 10 "user .bob. may not check out a branch of .alice/shop.: $OWNER_ONLY" \
		as bob checkout -b b2 --dot alice/shop &&
	refused 10 "user .bob. may not check out a branch of .alice/shop.: $OWNER_ONLY" \
		as bob checkout b-bob --dot alice/shop &&
	refused 10 "user .carol. may not check out a branch of .alice/shop.: $OWNER_ONLY" \
		as carol checkout b-bob --dot alice/shop &&
	dmB dot show -H alice/shop >out && grep "^currentBranch	master$" out &&
	as alice checkout b-bob --dot alice/shop &&
	as alice checkout master --dot alice/shop
'

test_expect_success 'reset is the owner'\''s: bob and carol may not, alice may' '
	before=$(head_of) &&
	refused 10 "user .bob. may not reset .alice/shop.: $OWNER_ONLY" as bob reset --hard HEAD^ --dot alice/shop &&
	refused 10 "user .carol. may not reset .alice/shop.: $OWNER_ONLY" as carol reset --hard HEAD^ --dot alice/shop &&
	test "$(head_of)" = "$before" &&
	as alice reset --hard HEAD^ --dot alice/shop >/dev/null &&
	test "$(head_of)" != "$before" && test "$(cat ws/stock)" = apples
'

test_expect_success 'hooks are the owner'\''s: bob and carol may not set one; alice may in a container, not on the host' '
	refused 10 "user .bob. may not set the hooks of .alice/shop.: $OWNER_ONLY" \
		as bob dot set-hook alice/shop pre-commit --container db -- true &&
	refused 10 "user .carol. may not set the hooks of .alice/shop.: $OWNER_ONLY" \
		as carol dot set-hook alice/shop pre-commit --container db -- true &&
	refused 10 "only an admin may set a hook that runs on the host" \
		as alice dot set-hook alice/shop pre-commit -- true &&
	as alice dot set-hook alice/shop pre-commit --container db -- true &&
	dmB dot show alice/shop >out && grep "^pre-commit: *in container db: true" out &&
	refused 10 "user .bob. may not set the hooks of .alice/shop.: $OWNER_ONLY" \
		as bob dot set-hook alice/shop pre-commit --remove &&
	as alice dot set-hook alice/shop pre-commit --remove &&
	dmB dot show alice/shop >out && grep "^pre-commit: *none$" out
'

test_expect_success 'collaborators are the owner'\''s to manage; unknown users and roles are refused' '
	refused 10 "user .bob. may not manage the collaborators of .alice/shop.: $OWNER_ONLY" \
		as bob dot add-collaborator alice/shop dave &&
	refused 10 "user .bob. may not manage the collaborators of .alice/shop.: $OWNER_ONLY" \
		as bob dot remove-collaborator alice/shop carol &&
	refused 10 "user .carol. may not manage the collaborators of .alice/shop.: $OWNER_ONLY" \
		as carol dot add-collaborator alice/shop carol --role write &&
	refused 10 "user .dave. may not manage the collaborators of .alice/shop.: $OWNER_ONLY" \
		as dave dot add-collaborator alice/shop dave &&
	refused 3 "no such user .nobody.; an admin adds it with .dm user add nobody." \
		as alice dot add-collaborator alice/shop nobody &&
	refused 2 "invalid role .admin.: use read or write" \
		as alice dot add-collaborator alice/shop dave --role admin &&
	refused 3 "user .dave. is not a collaborator of .alice/shop." \
		as alice dot remove-collaborator alice/shop dave &&
	dmB dot show alice/shop >out && grep "^collaborators: *bob (write), carol (read)$" out
'

test_expect_success 'clone and pull from B need role read: carol may, dave may not' '
	dmA clone carol alice/shop --local-name shop >/dev/null &&
	test "$(dot_id dmA dot show shop)" = "$(dot_id dmB dot show alice/shop)" &&
	dmA pull carol shop --remote-name alice/shop >/dev/null &&
	refused 10 "user .dave. $NOREAD" dmA clone dave alice/shop --local-name stolen &&
	test_status 3 dmA dot show stolen &&
	refused 10 "user .dave. $NOREAD" dmA pull dave shop --remote-name alice/shop
'

test_expect_success 'push to B needs role write: bob may, carol (read) may not, and nothing changes' '
	dmA mount shop shopA && echo plums >>shopA/stock &&
	dmA commit --dot shop -m plums >/dev/null &&
	before=$(head_of) &&
	refused 10 "user .carol. may not push to .alice/shop.: it needs role write, and .carol. has role read" \
		dmA push carol shop --remote-name alice/shop &&
	refused 10 "user .dave. may not push to .alice/shop.: only its owner, an admin or a collaborator with role write may" \
		dmA push dave shop --remote-name alice/shop &&
	test "$(head_of)" = "$before" &&
	dmA push bob shop --remote-name alice/shop --stash-on-divergence >out &&
	grep "pushed" out &&
	test "$(head_of)" = "$(log_ids dmA log --dot shop | head -n 1)"
'

test_expect_success 'a pull into alice/shop on B needs role write: bob may, carol may not' '
	refused 10 "user .carol. may not pull into .alice/shop.: it needs role write, and .carol. has role read" \
		as carol pull local alice/shop --remote-name shop &&
	as bob pull local alice/shop --remote-name shop >out &&
	grep "up to date" out
'

test_expect_success 'roles change: carol given write may commit; removed, she may not even read' '
	as alice dot add-collaborator alice/shop carol --role write &&
	as carol commit --dot alice/shop -m by-carol >/dev/null &&
	as alice dot remove-collaborator alice/shop carol &&
	as alice dot show alice/shop >out && grep "^collaborators: *bob (write)$" out &&
	refused 10 "user .carol. may not read .alice/shop.: only its owner" as carol dot show alice/shop &&
	as carol list -H >out && ! grep alice/shop out
'

test_expect_success 'delete is the owner'\''s: bob and dave may not, alice may' '
	as alice init alice/tmp &&
	as alice dot add-collaborator alice/tmp bob &&
	refused 10 "user .bob. may not delete .alice/tmp.: $OWNER_ONLY" as bob dot delete -f alice/tmp &&
	refused 10 "user .dave. may not delete .alice/tmp.: $OWNER_ONLY" as dave dot delete -f alice/tmp &&
	dmB dot show alice/tmp >/dev/null &&
	as alice dot delete -f alice/tmp &&
	test_status 3 dmB dot show alice/tmp
'

test_expect_success 'creating a dot is the namespace'\''s user'\''s: bob may not make alice/x, even as her collaborator' '
	refused 10 "user .bob. may not create .alice/x.: only user .alice. or an admin may create dots in namespace .alice." \
		as bob init alice/x &&
	test_status 3 dmB dot show alice/x
'

test_expect_success 'dm dot set-upstream is the caller'\''s own config: a reader may record one, dave may not' '
	as alice dot add-collaborator alice/shop carol --role read &&
	as carol dot set-upstream alice/shop local shop &&
	as carol dot show alice/shop >out && grep "^upstream: *local shop$" out &&
	refused 10 "user .dave. $NOREAD" as dave dot set-upstream alice/shop local shop
'

test_expect_success 'the new commands have help' '
	for c in "dot add-collaborator" "dot remove-collaborator"; do
		dm help $c >a && dm $c --help >b && test_cmp a b &&
		grep "^usage: dm $c" a || { echo "bad help for $c"; return 1; }
	done &&
	dm help dot add-collaborator | grep -- "--role ROLE"
'

test_done
