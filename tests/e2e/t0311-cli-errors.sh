#!/usr/bin/env bash
test_description='what a user can get wrong, against a real dmd: refs, branches, names, keys, a stopped server'
. "$(dirname "$0")/test-lib.sh"

data="$TRASH_DIRECTORY/data"
port=$(test_free_port)
export DM_CONFIG="$TRASH_DIRECTORY/config"

test_atexit 'dm cluster stop --data-dir "$data" >/dev/null 2>&1'

test_expect_success 'setup: a dot with three commits' '
	dm cluster init --data-dir "$data" --port "$port" >/dev/null &&
	dm mount --create shop mnt &&
	test -L mnt &&
	for i in 1 2 3; do
		echo $i >mnt/f && dm commit -m "c$i" >id$i || return 1
	done
'

test_expect_success 'HEAD~N and HEAD^^ walk back; past the first commit is an error' '
	dm diff HEAD~2 HEAD >out &&
	grep "Modified: *f" out &&
	test_must_fail dm reset --hard HEAD~3 2>err &&
	one_error "back past the first commit" &&
	test "$(cat mnt/f)" = 3
'

test_expect_success 'a unique prefix of a commit id names it; an unknown one is "no commit"' '
	prefix=$(cut -c1-30 id1) &&
	dm reset --hard "$prefix" &&
	test "$(cat mnt/f)" = 1 &&
	test_must_fail dm reset --hard zzzzzzzz 2>err &&
	one_error "no commit .zzzzzzzz." &&
	test_must_fail dm reset --hard ab 2>err &&
	one_error "too short"
'

test_expect_success 'reset keeps later commits reachable by id' '
	dm reset --hard "$(cat id3)" &&
	test "$(cat mnt/f)" = 3
'

test_expect_success 'checkout of a missing branch says how to create it; -b of an existing one is "exists"' '
	test_must_fail dm checkout nope 2>err &&
	one_error "no branch .nope.*checkout -b" &&
	test_must_fail dm checkout -b master 2>err &&
	one_error "exists" &&
	test_must_fail dm checkout -b "bad.name" 2>err &&
	one_error "invalid branch name"
'

test_expect_success 'deleting a dot that does not exist is "no such dot"' '
	test_must_fail dm dot delete -f ghost 2>err &&
	one_error "no such dot"
'

test_expect_success 'namespaces: ns/name is a different dot from name' '
	dm init team/shop &&
	dm list -H >out &&
	grep "team/shop" out &&
	test_must_fail dm init team/shop 2>err &&
	one_error "dot .team/shop. exists"
'

test_expect_success 'bad names fail with "invalid dot name" on the server side too' '
	for bad in "../x" "@" "a/b/c" "$(printf "%065d" 0)"; do
		test_must_fail dm init "$bad" 2>err && one_error "invalid dot name" || return 1
	done
'

test_expect_success 'a wrong API key is refused as permission denied' '
	cp "$DM_CONFIG" good-config &&
	sed "s/\"api_key\": *\"[0-9a-f]*\"/\"api_key\": \"$(printf "%064d" 0)\"/" good-config >"$DM_CONFIG" &&
	test_must_fail dm list 2>err &&
	one_error "permission denied" &&
	cp good-config "$DM_CONFIG"
'

test_expect_success 'with dmd stopped, commands fail within seconds naming the address' '
	dm cluster stop --data-dir "$data" >/dev/null &&
	start=$(date +%s) &&
	test_must_fail dm list 2>err &&
	test $(( $(date +%s) - start )) -le 5 &&
	one_error "cannot reach dm server" &&
	dm cluster start --data-dir "$data" >/dev/null &&
	dm list >/dev/null
'

test_done
