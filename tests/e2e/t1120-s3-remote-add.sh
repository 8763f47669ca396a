#!/usr/bin/env bash
test_description='dm s3 remote add: an S3 endpoint is saved as a remote only after it accepted a request signed with the key id and secret (from the argument, $DM_S3_SECRET, standard input or a terminal without echo); dm remote -v lists it, dm remote switch refuses it, dm remote rm removes it; clone, pull and push with it are refused'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-s3.sh"

export DM_CONFIG=$HOME/dmconf/config
unset DM_S3_SECRET DM_S3_REGION

# The names of the config's remotes, one a line ("" when there is no file).
config_remotes() {
	test -f "$DM_CONFIG" || return 0
	python3 -c 'import json, sys
print("\n".join(sorted(json.load(open(sys.argv[1])).get("remotes", {}))))' "$DM_CONFIG"
}

# on_tty SECRET CMD...: runs CMD on a new terminal, types SECRET at its
# prompt, and prints everything the terminal showed (so a secret that was
# echoed would be in it).
on_tty() {
	python3 - "$@" <<-\EOF
	import os, pty, sys, time
	secret, argv = sys.argv[1], sys.argv[2:]
	pid, fd = pty.fork()
	if pid == 0:
	    os.execvp(argv[0], argv)
	seen, typed = b"", False
	deadline = time.time() + 30
	while time.time() < deadline:
	    try:
	        data = os.read(fd, 4096)
	    except OSError:
	        break
	    if not data:
	        break
	    seen += data
	    if not typed and b"S3 secret for" in seen:
	        os.write(fd, secret.encode() + b"\n")
	        typed = True
	_, status = os.waitpid(pid, 0)
	sys.stdout.write(seen.decode(errors="replace"))
	sys.exit(os.waitstatus_to_exitcode(status))
	EOF
}

test_expect_success 'setup: moto_server checking signatures, with a key of its own' '
	s3_server_start &&
	s3c mb first-bucket
'

test_expect_success 'a wrong secret is refused by the endpoint and nothing is saved' '
	test_status 10 dm s3 remote add bad "$s3_key_id:wrong-secret@$s3_endpoint" 2>err &&
	grep "nothing was saved" err &&
	grep SignatureDoesNotMatch err &&
	grep "check the key id and secret" err &&
	test -z "$(config_remotes)"
'

test_expect_success 'a key id the endpoint does not know is refused too' '
	DM_S3_SECRET=$s3_secret test_status 10 dm s3 remote add bad "AKIANOSUCHKEY00000@$s3_endpoint" 2>err &&
	grep InvalidAccessKeyId err &&
	test -z "$(config_remotes)"
'

test_expect_success 'an endpoint that does not answer is refused, saying so' '
	dead=$(test_free_port) &&
	test_status 13 dm s3 remote add bad "$s3_key_id:$s3_secret@http://127.0.0.1:$dead" 2>err &&
	grep "cannot reach S3 endpoint" err &&
	test -z "$(config_remotes)"
'

test_expect_success 'the secret from $DM_S3_SECRET, checked, then saved with mode 0600' '
	DM_S3_SECRET=$s3_secret dm s3 remote add backup "$s3_key_id@$s3_endpoint" >out &&
	grep "Added S3 remote .backup." out &&
	test "$(config_remotes)" = backup &&
	test "$(stat -c %a "$DM_CONFIG")" = 600 &&
	python3 -c "import json, sys
r = json.load(open(sys.argv[1]))[\"remotes\"][\"backup\"]
assert r == {\"kind\": \"s3\", \"key_id\": sys.argv[2], \"secret\": sys.argv[3],
             \"endpoint\": sys.argv[4]}, r" "$DM_CONFIG" "$s3_key_id" "$s3_secret" "$s3_endpoint"
'

test_expect_success 'the secret in the argument (dotmesh form) and on standard input' '
	dm s3 remote add arg "$s3_key_id:$s3_secret@$s3_endpoint" >/dev/null &&
	echo "$s3_secret" | dm s3 remote add piped "$s3_key_id@$s3_endpoint" >/dev/null &&
	echo wrong | test_status 10 dm s3 remote add piped2 "$s3_key_id@$s3_endpoint" 2>err &&
	grep SignatureDoesNotMatch err &&
	printf "arg\nbackup\npiped\n" >expect &&
	config_remotes >actual &&
	test_cmp expect actual
'

test_expect_success 'on a terminal the secret is asked for and not echoed' '
	on_tty "$s3_secret" dm s3 remote add typed "$s3_key_id@$s3_endpoint" >screen &&
	grep "S3 secret for $s3_endpoint:" screen &&
	grep "Added S3 remote .typed." screen &&
	! grep -F "$s3_secret" screen &&
	dm remote rm typed
'

test_expect_success 'a name in use, a bad name and a bad address are refused' '
	DM_S3_SECRET=$s3_secret test_status 4 dm s3 remote add backup "$s3_key_id@$s3_endpoint" 2>err &&
	grep "exists already" err &&
	test_status 2 dm s3 remote add "bad name" "$s3_key_id:x@$s3_endpoint" 2>err &&
	test_status 2 dm s3 remote add x ":secret@$s3_endpoint" 2>err &&
	grep "KEY_ID\[:SECRET\]\[@ENDPOINT\]" err &&
	test_status 2 dm s3 remote add x "$s3_key_id:s@ftp://host" 2>err &&
	grep "http:// or https://" err
'

test_expect_success 'dm remote -v lists S3 remotes as s3 KEY_ID@ENDPOINT' '
	dm remote -v >out &&
	grep "^  backup  *s3 $s3_key_id@$s3_endpoint\$" out &&
	dm remote >out &&
	grep "^  arg\$" out
'

test_expect_success 'dm remote switch to an S3 remote is refused; dm remote rm removes one' '
	test_status 2 dm remote switch backup 2>err &&
	grep "is an S3 endpoint" err &&
	dm remote rm arg &&
	printf "backup\npiped\n" >expect &&
	config_remotes >actual &&
	test_cmp expect actual
'

test_expect_success 'clone, pull and push with an S3 remote are refused, saying why' '
	python3 -c "import json, sys
c = json.load(open(sys.argv[1]))
c[\"remotes\"][\"local\"] = {\"user\": \"admin\", \"host\": \"127.0.0.1\", \"port\": 1, \"api_key\": \"k\"}
c[\"current_remote\"] = \"local\"
json.dump(c, open(sys.argv[1], \"w\"))" "$DM_CONFIG" &&
	for cmd in "clone backup bucket" "pull backup shop" "push backup shop"; do
		test_status 9 dm $cmd 2>err &&
		grep "is an S3 endpoint, not a dm server" err || return 1
	done
'

test_expect_success 'dm help s3 remote add describes the command' '
	dm help s3 remote add >out &&
	grep "DM_S3_SECRET" out &&
	dm s3 --help >out &&
	grep "remote add" out
'

test_done
