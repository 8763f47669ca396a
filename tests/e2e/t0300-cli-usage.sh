#!/usr/bin/env bash
test_description='dm without a server: help for every command, usage errors, name and metadata checks'
. "$(dirname "$0")/test-lib.sh"

# Every command of the table, as `dm help` lists it.
commands='cluster init
cluster start
cluster stop
version
init
list
switch
commit
log
branch
checkout
reset
diff
dot show
dot delete
mount'

# expect_error STATUS 'MESSAGE' CMD...: CMD fails with exactly STATUS and
# prints exactly one line, "dm: MESSAGE", on stderr and nothing on stdout.
expect_error() {
	local status=$1 msg=$2
	shift 2
	test_status "$status" "$@" >out || return 1
	echo "dm: $msg" >expect-err &&
	test_cmp expect-err err &&
	test_cmp /dev/null out
}

test_expect_success 'dm alone prints the usage with every command and succeeds' '
	dm >out 2>err &&
	test_cmp /dev/null err &&
	grep "^usage: dm " out &&
	while read -r c; do
		grep "^  $c  " out || { echo "missing: $c"; return 1; }
	done <<<"$commands"
'

test_expect_success 'dm help and dm --help print the same usage' '
	dm >expect &&
	dm help >actual &&
	test_cmp expect actual &&
	dm --help >actual &&
	test_cmp expect actual
'

test_expect_success 'every command has help: dm help CMD, dm CMD --help, dm CMD -h' '
	while read -r c; do
		dm help $c >a 2>err && test_cmp /dev/null err &&
		dm $c --help >b && dm $c -h >c &&
		test_cmp a b && test_cmp a c &&
		grep "^usage: dm $c" a &&
		grep "^Common options:" a &&
		test $(wc -l <a) -ge 8 || { echo "bad help for $c"; return 1; }
	done <<<"$commands"
'

test_expect_success 'help of a command describes its options' '
	dm help commit >out &&
	grep -- "-m, --message MSG" out &&
	grep -- "-d, --metadata KEY=VALUE" out &&
	grep -- "--dot DOT" out &&
	dm list --help >out &&
	grep -- "^  -H " out &&
	grep -- "^  --json " out &&
	dm dot delete --help >out &&
	grep -- "-f, --force" out
'

test_expect_success 'a group alone lists its subcommands' '
	dm cluster >out &&
	grep "^  init " out && grep "^  start " out && grep "^  stop " out &&
	dm dot >out &&
	grep "^  show " out && grep "^  delete " out
'

test_expect_success 'an unknown command fails with status 2 and one line' '
	expect_error 2 "unknown command '\''frobnicate'\''; see '\''dm help'\''" dm frobnicate &&
	expect_error 2 "unknown command '\''dm cluster frob'\''; see '\''dm cluster --help'\''" \
		dm cluster frob &&
	expect_error 2 "no such command '\''nope'\''; see '\''dm help'\''" dm help nope
'

test_expect_success 'an unknown option fails with status 2 and one line' '
	expect_error 2 "unknown option '\''--frob'\'' for '\''dm list'\''; see '\''dm list --help'\''" \
		dm list --frob &&
	expect_error 2 "unknown option '\''-x'\'' for '\''dm commit'\''; see '\''dm commit --help'\''" \
		dm commit -x -m msg &&
	expect_error 2 "unknown option '\''--frob'\''; see '\''dm help'\''" dm --frob list
'

test_expect_success 'an option without its value fails with status 2' '
	expect_error 2 "option '\''-m'\'' needs a value; see '\''dm commit --help'\''" dm commit -m &&
	expect_error 2 "option '\''--dot'\'' needs a value; see '\''dm log --help'\''" dm log --dot
'

test_expect_success 'missing and extra arguments fail with status 2' '
	expect_error 2 "'\''dm init'\'' needs a dot name: dm init DOT; see '\''dm init --help'\''" \
		dm init &&
	expect_error 2 "too many arguments for '\''dm init'\''; see '\''dm init --help'\''" \
		dm init a b &&
	expect_error 2 "'\''dm switch'\'' needs a dot name: dm switch DOT; see '\''dm switch --help'\''" \
		dm switch &&
	expect_error 2 "too many arguments for '\''dm list'\''; see '\''dm list --help'\''" dm list x &&
	expect_error 2 "'\''dm mount'\'' needs a dot and a path: dm mount DOT[@BRANCH] PATH, or DOT[@COMMIT] PATH --read-only; see '\''dm mount --help'\''" \
		dm mount shop &&
	expect_error 2 "too many arguments for '\''dm diff'\''; see '\''dm diff --help'\''" dm diff a1b2 c3d4 e5f6
'

test_expect_success 'dm commit without -m says so' '
	expect_error 2 "'\''dm commit'\'' needs a message: -m MSG; see '\''dm commit --help'\''" dm commit &&
	expect_error 2 "empty commit message" dm commit -m ""
'

test_expect_success 'metadata is checked before anything is sent' '
	expect_error 2 "invalid metadata key '\''Foo'\'': keys start with a lowercase letter" \
		dm commit -m msg -d Foo=bar &&
	expect_error 2 "invalid metadata key '\''1x'\'': keys start with a lowercase letter" \
		dm commit -m msg --metadata 1x=bar &&
	expect_error 2 "invalid metadata '\''foo'\'': use key=value" dm commit -m msg -d foo &&
	expect_error 2 "invalid metadata key '\'''\'': keys start with a lowercase letter" \
		dm commit -m msg -d =v &&
	expect_error 2 "metadata key '\''app'\'' given twice" dm commit -m msg -d app=a -d app=b
'

name_error() {
	echo "invalid dot name '$1': use [namespace/]name with 1 to 64 letters, digits, '-' or '_' in each part"
}

test_expect_success 'bad dot names are refused by every command that takes one' '
	long=$(printf "a%.0s" $(seq 65)) &&
	for name in ../x @ "" "$long" "a b" "x/y/z" "/x" "x/"; do
		msg=$(name_error "$name") &&
		expect_error 2 "$msg" dm init "$name" &&
		expect_error 2 "$msg" dm switch "$name" &&
		expect_error 2 "$msg" dm dot show "$name" &&
		expect_error 2 "$msg" dm dot delete -f "$name" &&
		expect_error 2 "$msg" dm log --dot "$name" &&
		expect_error 2 "$msg" dm commit -m msg --dot "$name" || return 1
	done
'

test_expect_success 'a 64-character name and a namespace pass the name check' '
	name=$(printf "a%.0s" $(seq 64)) &&
	expect_error 3 "no remote configured; run '\''dm cluster init'\'' first" dm init "$name" &&
	expect_error 3 "no remote configured; run '\''dm cluster init'\'' first" dm init ns/db_1-x
'

test_expect_success 'bad branch names and refs are refused' '
	expect_error 2 "invalid branch name '\''a.b'\'': use 1 to 64 letters, digits, '\''-'\'' or '\''_'\''" \
		dm checkout -b a.b &&
	expect_error 2 "invalid branch name '\''x y'\'': use 1 to 64 letters, digits, '\''-'\'' or '\''_'\''" \
		dm mount "shop@x y" mnt &&
	expect_error 2 "invalid commit reference '\''HEAD~x'\'': use a commit id, HEAD, HEAD^ or HEAD~N" \
		dm reset --hard HEAD~x &&
	expect_error 2 "invalid commit reference '\''a/b'\'': use a commit id, HEAD, HEAD^ or HEAD~N" \
		dm diff a/b
'

test_expect_success 'dm reset needs --hard and a ref' '
	expect_error 2 "'\''dm reset'\'' needs --hard: the working copy is always reset with the branch; see '\''dm reset --help'\''" \
		dm reset HEAD^ &&
	expect_error 2 "'\''dm reset'\'' needs a commit: dm reset --hard REF; see '\''dm reset --help'\''" \
		dm reset --hard
'

test_expect_success 'dm dot delete refuses without --force when not on a terminal' '
	expect_error 2 "refusing to delete '\''shop'\'' without --force when not on a terminal" \
		dm dot delete shop
'

test_expect_success 'dm cluster rejects a bad port' '
	expect_error 2 "invalid port '\''0'\'': use 1 to 65535; see '\''dm cluster init --help'\''" \
		dm cluster init --port 0 &&
	expect_error 2 "invalid port '\''x'\'': use 1 to 65535; see '\''dm cluster start --help'\''" \
		dm cluster start --port x &&
	expect_error 2 "unknown option '\''--port'\'' for '\''dm cluster stop'\''; see '\''dm cluster stop --help'\''" \
		dm cluster stop --port 1
'

test_done
