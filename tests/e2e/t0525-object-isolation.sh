#!/usr/bin/env bash
test_description='objects are served only to those who may read them: get, missing, put and update answer relative to the dots the caller reads'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"

# What this proves: on a shared server B, bob cannot read alice's objects
# by naming their ids (get), cannot learn whether the server holds them
# (missing, and put's counts), cannot make them his by uploading an object
# or an update that names them, and cannot use a transfer session without
# its token or someone else's token; while his own transfers, and a push
# of content alice happens to hold too, still work. The admin of B, who may
# read every dot, is the control: the same questions from the admin get
# the other answers, so each refusal is the server's choice and not an
# accident of the ids.

unset DM_API_KEY

oc() {
	DM_CA_FILE=$HOME/B/ca.pem python3 "$TEST_DIRECTORY/objects-client.py" \
		"https://127.0.0.1:$(server_port B)" "$@"
}

test_expect_success 'setup: alice and bob on B, each with a dot' '
	servers_init A B C &&
	dmB user add alice >alice.key 2>/dev/null &&
	dmB user add bob >bob.key 2>/dev/null &&
	cp "$HOME/B/admin-api-key" admin.key &&
	user_remote A alice alice B alice.key &&
	user_remote A bob bob B bob.key &&
	user_remote C bob bob B bob.key &&
	user_remote C alice alice B alice.key &&
	dmA init secret &&
	dmA mount secret s &&
	printf "alice: the launch code is 0000\n" >s/code.txt &&
	dmA commit --dot secret -m "alice secret" >/dev/null &&
	dmA push alice secret --remote-name alice/secret >/dev/null &&
	dmA init mine &&
	dmA mount mine m && echo "bob was here" >m/bob.txt &&
	dmA commit --dot mine -m bob >/dev/null &&
	dmA push bob mine --remote-name bob/mine >/dev/null &&
	sha256sum <s/code.txt | cut -c1-64 >chunk.id &&
	dmB log --dot alice/secret --json |
		python3 -c "import json, sys; print(json.load(sys.stdin)[\"commits\"][0][\"tree\"])" >tree.id &&
	dot_id dmB dot show bob/mine >bob.dot &&
	test -s chunk.id && test -s tree.id
'

session_of() {
	sed -n "s/^session //p" "$1"
}

test_expect_success 'refs gives a user a session token, and the admin none' '
	oc bob bob.key refs bob/mine >refs.bob &&
	grep "\"branches\"" refs.bob &&
	session_of refs.bob >bob.session &&
	test "$(wc -c <bob.session)" = 33 &&
	oc admin admin.key refs bob/mine >refs.admin &&
	test "$(session_of refs.admin)" = -
'

test_expect_success 'bob: get of alice'\''s tree and file bytes through his own dot returns none of them' '
	oc bob bob.key get "$(cat bob.session)" bob/mine "$(cat tree.id)" "$(cat chunk.id)" >get.out &&
	cat get.out &&
	! grep "^object" get.out &&
	grep "^error not_found object $(cat tree.id) is not on this server" get.out &&
	! grep -a "launch code" get.bytes
'

test_expect_success 'the admin, who may read every dot, gets them (the ids are right)' '
	oc admin admin.key get - bob/mine "$(cat tree.id)" "$(cat chunk.id)" >get.admin &&
	test "$(grep -c "^object" get.admin)" = 2 &&
	grep -a "launch code" get.bytes
'

test_expect_success 'bob: missing says alice'\''s objects are missing; the admin is told they are here' '
	oc bob bob.key missing "$(cat bob.session)" "$(cat tree.id)" "$(cat chunk.id)" >missing.bob &&
	cat tree.id chunk.id >expect &&
	test_cmp expect missing.bob &&
	oc admin admin.key missing - "$(cat tree.id)" "$(cat chunk.id)" >missing.admin &&
	test ! -s missing.admin
'

test_expect_success 'bob: a request without his session, or with a made-up one, is refused' '
	oc bob bob.key missing - "$(cat chunk.id)" >nosession &&
	grep "^http 400 .*Dm-Transfer-Session" nosession &&
	oc bob bob.key get 0123456789abcdef0123456789abcdef bob/mine "$(cat chunk.id)" >badsession &&
	grep "^http 404 .*transfer session expired or unknown" badsession
'

test_expect_success 'alice cannot use bob'\''s session token' '
	oc alice alice.key missing "$(cat bob.session)" "$(cat chunk.id)" >stolen &&
	grep "^http 404 .*transfer session expired or unknown" stolen
'

test_expect_success 'bob: put counts every record as new, so it tells nothing of what the store holds' '
	cp s/code.txt same-as-alice &&
	oc bob bob.key put "$(cat bob.session)" "$(cat bob.dot)" same-as-alice >put.bob &&
	grep "\"stored\": *1" put.bob &&
	oc admin admin.key put - "$(cat bob.dot)" same-as-alice >put.admin &&
	grep "\"stored\": *0" put.admin
'

test_expect_success 'bob: a file object naming alice'\''s chunk, which he never sent, is refused' '
	oc bob bob.key refs bob/mine >refs2 && session_of refs2 >s2 &&
	oc bob bob.key file-object "$(cat chunk.id)" "$(wc -c <s/code.txt)" >forged &&
	oc bob bob.key put "$(cat s2)" "$(cat bob.dot)" forged >put.forged &&
	grep "^http 404 .*object $(cat chunk.id) is not on this server" put.forged &&
	forged_id=$(sha256sum <forged | cut -c1-64) &&
	oc bob bob.key get "$(cat s2)" bob/mine "$forged_id" >get.forged &&
	! grep "^object" get.forged
'

test_expect_success 'bob: the same file object is taken once he sent the chunk himself' '
	oc bob bob.key put "$(cat s2)" "$(cat bob.dot)" same-as-alice forged >put.ok &&
	grep "\"stored\": *2" put.ok &&
	forged_id=$(sha256sum <forged | cut -c1-64) &&
	oc bob bob.key get "$(cat s2)" bob/mine "$forged_id" "$(cat chunk.id)" >get.ok &&
	test "$(grep -c "^object" get.ok)" = 2
'

test_expect_success 'bob: an update naming a commit of alice'\''s is refused as not here' '
	dmB log --dot alice/secret --json |
		python3 -c "import json, sys; print(json.load(sys.stdin)[\"commits\"][0][\"id\"])" >alice.commit &&
	oc admin admin.key refs alice/secret >refs.alice &&
	python3 -c "import json, sys; print(json.loads(open(\"refs.alice\").readline())[\"branches\"][\"master\"][\"objects\"][0])" >alice.oid &&
	body=$(printf "{\"dot\":\"bob/mine\",\"id\":\"%s\",\"branch\":\"master\",\"old_head\":\"\",\"new_head\":\"%s\",\"commits\":[\"%s\"],\"objects\":[\"%s\"]}" \
		"$(cat bob.dot)" "$(cat alice.commit)" "$(cat alice.commit)" "$(cat alice.oid)") &&
	curl -sS --cacert "$HOME/B/ca.pem" -u "bob:$(cat bob.key)" -H "Dm-Transfer-Session: $(cat s2)" \
		--data-binary "$body" "https://127.0.0.1:$(server_port B)/objects/v1/update" >update.out &&
	grep "object $(cat alice.oid) is not on this server" update.out
'

test_expect_success 'bob'\''s own transfers still work: a clone of his dot, a pull, and a push of content alice holds too' '
	dmC clone bob bob/mine --local-name mine >/dev/null &&
	dmC mount mine bc && test_cmp m/bob.txt bc/bob.txt &&
	echo more >m/more.txt &&
	dmA commit --dot mine -m more >/dev/null &&
	dmA push bob mine --remote-name bob/mine >/dev/null &&
	dmC pull bob mine >/dev/null &&
	dmC mount mine bc2 && test_cmp m/more.txt bc2/more.txt &&
	dmA init twin &&
	dmA mount twin t && cp s/code.txt t/copy.txt &&
	dmA commit --dot twin -m "same bytes as alice" >/dev/null &&
	dmA push bob twin --remote-name bob/twin >push.out &&
	dmC clone bob bob/twin --local-name twin >/dev/null &&
	dmC mount twin t2 && test_cmp s/code.txt t2/copy.txt
'

test_expect_success 'alice still reads her own dot' '
	dmC clone alice alice/secret --local-name secret >/dev/null &&
	dmC mount secret a && test_cmp s/code.txt a/code.txt
'

test_done
