#!/usr/bin/env bash
test_description='users manage themselves: dm user reset-key of one'\''s own key, keys that expire (--expires), dm user rm with and without --force'
. "$(dirname "$0")/test-lib.sh"

# What this proves, against a real dmd: any user resets its own key (the
# config takes the new one, the old one stops working) and nobody else's;
# a key given --expires works until then and is refused after, with a
# message that names the user and the time only to whoever shows that key;
# a user whose keys expire cannot lengthen their life, an admin can; dm
# user rm refuses a user who owns dots unless --force, which hands them to
# the admin (owner in dm dot show, kept across a restart), and a new user
# of the same name gets neither the old dots nor the old collaborations.

port=$(test_free_port)
data=$HOME/data
export DM_CONFIG=$HOME/dmconf/config
unset DM_API_KEY
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1"

config_key() {
	python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["remotes"][sys.argv[2]]["api_key"])' "$DM_CONFIG" "$1"
}

# add_user NAME [OPTIONS]: makes user NAME (key in NAME.key) and remote NAME.
add_user() {
	local name=$1
	shift
	dm user add "$name" "$@" >"$name.key" 2>"$name.note" &&
		DM_API_KEY=$(cat "$name.key") dm remote add "$name" "$name@127.0.0.1:$port" --ca-file "$data/ca.pem" >/dev/null
}

# expires_of NAME: the user's "expires" as users.list says ("" for never).
expires_of() {
	dm user list --json | python3 -c 'import json, sys
print(next(u for u in json.load(sys.stdin)["users"] if u["name"] == sys.argv[1]).get("expires", ""))' "$1"
}

# A raw call with a given user and key: prints the HTTP status, then the body.
raw_ping() {
	curl -sS --cacert "$data/ca.pem" -u "$1:$2" -w '\n%{http_code}\n' -H 'Content-Type: application/json' \
		--data-binary '{"jsonrpc":"2.0","id":1,"method":"server.ping"}' \
		"https://127.0.0.1:$port/rpc"
}

test_expect_success 'setup: a dmd, users bob and alice' '
	dm cluster init --data-dir data --port "$port" >/dev/null &&
	add_user bob && add_user alice
'

test_expect_success 'dm user reset-key without a name resets your own key; the config takes it' '
	old=$(config_key bob) &&
	dm --remote bob user reset-key >newkey 2>note &&
	grep -E "^[0-9a-f]{64}$" newkey &&
	grep "New API key of user .bob." note &&
	grep "the config file has it already" note &&
	test "$(config_key bob)" = "$(cat newkey)" && test "$old" != "$(cat newkey)" &&
	dm --remote bob list >/dev/null &&
	test_status 10 env DM_API_KEY="$old" dm remote add bobold "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" &&
	grep "invalid user name or API key" err
'

test_expect_success 'a user may not reset another user'\''s key; the refusal says how to reset one'\''s own' '
	test_status 10 dm --remote bob user reset-key alice &&
	echo "dm: user '\''bob'\'' may not reset the key of user '\''alice'\'': only an admin may; '\''dm user reset-key'\'' without a name resets your own" >expect &&
	test_cmp expect err &&
	dm --remote alice list >/dev/null &&
	test "$(config_key alice)" = "$(cat alice.key)"
'

test_expect_success 'an admin resets anyone'\''s key by name' '
	dm user reset-key alice >alice.key 2>/dev/null &&
	test_status 10 dm --remote alice list &&
	DM_API_KEY=$(cat alice.key) dm remote add alice2 "alice@127.0.0.1:$port" --ca-file "$data/ca.pem" >/dev/null &&
	dm --remote alice2 list >/dev/null
'

test_expect_success 'a key made with --expires 2s works, then is refused saying it expired and when' '
	add_user carol --expires 2s &&
	grep "It expires at 20[0-9-]*T[0-9:]*Z" carol.note &&
	when=$(expires_of carol) && test -n "$when" &&
	dm user list >out && grep "^carol  *no  *$when$" out &&
	dm --remote carol list >/dev/null &&
	sleep 3 &&
	test_status 10 dm --remote carol list &&
	echo "dm: remote '\''carol'\'': API key of user '\''carol'\'' expired at $when; ask an admin for a new one ('\''dm user reset-key carol'\'')" >expect &&
	test_cmp expect err
'

test_expect_success 'an expired key tells nothing to whoever lacks it: a wrong key or user gets the usual words' '
	raw_ping carol "$(cat carol.key)" >right &&
	tail -n 1 right | grep -x 401 && grep "expired at" right &&
	raw_ping carol "$(printf "%064d" 0)" >wrong &&
	tail -n 1 wrong | grep -x 401 && grep "invalid user name or API key" wrong &&
	! grep -i expire wrong &&
	raw_ping nobody "$(cat carol.key)" >unknown &&
	grep "invalid user name or API key" unknown && ! grep -i expire unknown
'

test_expect_success 'an admin gives carol a key that never expires' '
	dm user reset-key carol --expires never >carol.key 2>/dev/null &&
	test -z "$(expires_of carol)" &&
	DM_API_KEY=$(cat carol.key) dm remote add carol2 "carol@127.0.0.1:$port" --ca-file "$data/ca.pem" >/dev/null &&
	dm --remote carol2 list >/dev/null
'

test_expect_success 'a user whose keys expire keeps their lifetime on reset, and may not lengthen it' '
	add_user dan --expires 1h &&
	first=$(expires_of dan) && test -n "$first" &&
	test_status 10 dm --remote dan user reset-key --expires never &&
	grep "may not give their key a longer life than 3600 seconds: only an admin may" err &&
	test_status 10 dm --remote dan user reset-key --expires 2h &&
	dm --remote dan user reset-key --expires 30m >/dev/null 2>&1 &&
	dm --remote dan list >/dev/null &&
	test -n "$(expires_of dan)" &&
	dm --remote dan user reset-key >/dev/null 2>&1 &&
	test -n "$(expires_of dan)"
'

test_expect_success 'a bad --expires is a usage error, checked before any request' '
	for d in 5y 0d -3h 12 "" 1.5h; do
		test_status 2 dm user add eve --expires "$d" || return 1
		grep "invalid --expires" err || return 1
	done &&
	dm user list -H >out && ! grep "^eve" out
'

test_expect_success 'dm user rm is for admins, refuses oneself and unknown users' '
	test_status 10 dm --remote bob user rm alice && grep "needs an admin" err &&
	test_status 2 dm user rm admin && grep "may not remove themself" err &&
	test_status 3 dm user rm nobody && grep "no such user .nobody." err
'

test_expect_success 'setup: bob owns bob/shop and bob/tools; alice collaborates on admin/notes' '
	dm --remote bob init bob/shop && dm --remote bob init bob/tools &&
	dm init notes && dm dot add-collaborator notes alice --role read &&
	dm --remote alice2 dot show admin/notes >/dev/null
'

test_expect_success 'dm user rm of a user who owns dots is refused, naming them and --force' '
	test_status 16 dm user rm bob &&
	echo "dm: user '\''bob'\'' owns 2 dots (bob/shop, bob/tools): delete them first, or give --force to hand them to '\''admin'\''" >expect &&
	test_cmp expect err &&
	dm --remote bob list >/dev/null
'

test_expect_success 'dm user rm of a collaborator: its key stops working and it leaves the dots it shared' '
	dm user rm alice >out &&
	grep "Removed user .alice." out &&
	test_status 10 dm --remote alice2 list &&
	dm dot show notes >out && grep "^collaborators: *none$" out &&
	dm user add alice >alice.key 2>/dev/null &&
	DM_API_KEY=$(cat alice.key) dm remote add alice3 "alice@127.0.0.1:$port" --ca-file "$data/ca.pem" >/dev/null &&
	test_status 10 dm --remote alice3 dot show admin/notes &&
	grep "user .alice. may not read .notes.: only its owner, an admin or a collaborator" err
'

test_expect_success 'dm user rm --force hands the dots to the admin, who now owns them' '
	dm user rm --force bob >out &&
	grep "Removed user .bob." out &&
	grep "Dot bob/shop is now owned by .admin." out &&
	grep "Dot bob/tools is now owned by .admin." out &&
	test_status 10 dm --remote bob list &&
	dm dot show bob/shop >out && grep "^owner: *admin$" out &&
	dm dot delete -f bob/tools &&
	test_status 3 dm dot show bob/tools
'

test_expect_success 'the hand-over is kept: after a restart bob/shop is still the admin'\''s' '
	dmd stop --data-dir "$data" >/dev/null &&
	dm cluster start --data-dir "$data" --port "$port" >/dev/null &&
	dm dot show bob/shop >out && grep "^owner: *admin$" out
'

test_expect_success 'a new user named bob owns none of the old bob'\''s dots, yet may make new ones' '
	dm user add bob >bob.key 2>/dev/null &&
	DM_API_KEY=$(cat bob.key) dm remote add bob2 "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" >/dev/null &&
	test_status 10 dm --remote bob2 dot show bob/shop &&
	grep "user .bob. may not read .bob/shop." err &&
	test_status 10 dm --remote bob2 dot delete -f bob/shop &&
	grep "user .bob. may not delete .bob/shop.: only its owner or an admin may" err &&
	dm --remote bob2 init bob/fresh &&
	dm --remote bob2 dot show bob/fresh >out && grep "^owner: *bob$" out
'

test_expect_success 'the new commands and options have help' '
	for c in "user rm" "user reset-key" "user add" "user list"; do
		dm help $c >a && dm $c --help >b && test_cmp a b &&
		grep "^usage: dm $c" a || { echo "bad help for $c"; return 1; }
	done &&
	dm help user reset-key | grep -- "--expires DURATION" &&
	dm help user rm | grep -- "--force" &&
	dm user >out && grep "^  rm " out
'

test_done
