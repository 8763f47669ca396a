#!/usr/bin/env bash
test_description='users (add, reset-key, list; admins only), remotes (add with a checked key, list, rm, switch), collaborators and upstreams against a real dmd'
. "$(dirname "$0")/test-lib.sh"

port=$(test_free_port)
dead_port=$(test_free_port)
data=$HOME/data
export DM_CONFIG=$HOME/dmconf/config
unset DM_API_KEY
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1"

# test_dm_status STATUS CMD...: test_status, and a CMD that fails says one
# "dm: " line on stderr (in err).
test_dm_status() {
	test_status "$@" || return 1
	if [ "$1" != 0 ] && { [ "$(wc -l <err)" != 1 ] || ! grep -q "^dm: " err; }; then
		shift
		echo "expected one 'dm: ' line on stderr from: $*" >&2
		cat err >&2
		return 1
	fi
}

# The names of the config's remotes, sorted, one a line.
config_remotes() {
	python3 -c 'import json, sys
print("\n".join(sorted(json.load(open(sys.argv[1])).get("remotes", {}))))' "$DM_CONFIG"
}

config_key() {
	python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["remotes"][sys.argv[2]]["api_key"])' "$DM_CONFIG" "$1"
}

test_expect_success 'setup: a dmd with its admin' '
	dm cluster init --data-dir data --port "$port" >/dev/null
'

test_expect_success 'dm user add prints the key alone on stdout, once, with a note on stderr' '
	dm user add bob >key 2>note &&
	grep -E "^[0-9a-f]{64}$" key && test $(wc -l <key) = 1 &&
	grep "Created user '\''bob'\''" note && grep "keep it" note &&
	! grep -f key note &&
	! grep -rqf key "$data/kv"
'

test_expect_success 'dm user list shows the users and who is admin' '
	dm user list >out &&
	printf "USER   ADMIN  KEY EXPIRES\nadmin  yes    never\nbob    no     never\n" >expect &&
	test_cmp expect out &&
	dm user list -H >out &&
	printf "admin\tyes\tnever\nbob\tno\tnever\n" >expect &&
	test_cmp expect out &&
	dm user list --json >out &&
	python3 -c "import json,sys; u=json.load(open(\"out\"))[\"users\"]; assert {\"name\":\"bob\",\"admin\":False} in u, u"
'

test_expect_success 'a second user of the same name, or a bad name, is refused' '
	test_dm_status 4 dm user add bob && grep "^dm: user '\''bob'\'' already exists$" err &&
	test_dm_status 2 dm user add "b@d" && grep "invalid user name" err &&
	test_dm_status 3 dm user reset-key nobody && grep "^dm: no such user '\''nobody'\''$" err
'

test_expect_success 'dm remote add with a good key saves the remote after a ping' '
	DM_API_KEY=$(cat key) dm remote add bob "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" >out &&
	fp=SHA256:$(openssl x509 -in "$data/ca.pem" -outform DER | sha256sum | cut -c1-64) &&
	echo "Added remote '\''bob'\'': bob@127.0.0.1:$port, CA $fp" >expect &&
	test_cmp expect out &&
	printf "bob\nlocal\n" >expect &&
	config_remotes >actual && test_cmp expect actual &&
	test "$(config_key bob)" = "$(cat key)" &&
	test "$(stat -c %a "$DM_CONFIG")" = 600
'

test_expect_success 'dm remote lists names, the current one marked; -v adds addresses' '
	dm remote >out &&
	printf "  bob\n* local\n" >expect && test_cmp expect out &&
	dm remote -v >out &&
	printf "  bob    bob@127.0.0.1:$port\n* local  admin@127.0.0.1:$port\n" >expect &&
	test_cmp expect out &&
	dm remote -H >out &&
	printf "\tbob\tbob@127.0.0.1:$port\n*\tlocal\tadmin@127.0.0.1:$port\n" >expect &&
	test_cmp expect out
'

test_expect_success 'the users methods are for admins only: a user gets permission denied' '
	test_dm_status 10 dm --remote bob user list && grep "admin" err &&
	test_dm_status 10 dm --remote bob user add carol && grep "admin" err &&
	test_dm_status 10 dm --remote bob user reset-key admin &&
	dm user list -H >out && ! grep carol out
'

test_expect_success 'a wrong key is refused at remote add, and nothing is saved' '
	cp "$DM_CONFIG" before &&
	test_dm_status 10 env DM_API_KEY=$(printf "%064d" 0) dm remote add bad "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" &&
	echo "dm: permission denied: invalid user name or API key for remote '\''bad'\''" >expect &&
	test_cmp expect err &&
	test_dm_status 10 env DM_API_KEY=$(cat key) dm remote add bad "nosuch@127.0.0.1:$port" --ca-file "$data/ca.pem" &&
	test_cmp before "$DM_CONFIG"
'

test_expect_success 'an unreachable remote is named, and nothing is saved' '
	cp "$DM_CONFIG" before &&
	test_dm_status 13 env DM_API_KEY=$(cat key) dm remote add dead "bob@127.0.0.1:$dead_port" --ca-file "$data/ca.pem" &&
	grep "^dm: cannot reach dm server at 127.0.0.1:$dead_port: " err &&
	test_cmp before "$DM_CONFIG"
'

test_expect_success 'without a terminal, a key on stdin or DM_API_KEY, remote add says how to give the key' '
	test_dm_status 2 dm remote add typed "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" &&
	echo "dm: no API key for remote '\''typed'\'': pipe it on standard input, set DM_API_KEY, or run this on a terminal to type it" >expect &&
	test_cmp expect err &&
	echo "   " | test_dm_status 2 dm remote add typed "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" &&
	test_cmp expect err &&
	test_dm_status 2 env DM_API_KEY=" " dm remote add typed "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" &&
	grep "empty API key" err
'

test_expect_success 'a key piped on standard input (dotmesh'\''s way) adds the remote; a wrong one is refused' '
	cp "$DM_CONFIG" before &&
	printf "%064d\n" 0 | test_dm_status 10 dm remote add piped "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" &&
	test_cmp before "$DM_CONFIG" &&
	cat key | dm remote add piped "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" >out &&
	grep "^Added remote '\''piped'\'': bob@127.0.0.1:$port" out &&
	dm --remote piped version >/dev/null &&
	dm remote rm piped
'

test_expect_success PYTHON 'on a terminal the CA is shown and trusted on yes, then the key is asked for without echo' '
	python3 - "$port" "$(cat key)" >out <<-\EOF &&
	import os, pty, sys
	port, key = sys.argv[1], sys.argv[2].encode()
	pid, fd = pty.fork()
	if pid == 0:
	    os.execvp("dm", ["dm", "remote", "add", "typed", "bob@127.0.0.1:" + port])
	out = b""
	def more():
	    global out
	    try:
	        data = os.read(fd, 4096)
	    except OSError:
	        data = b""
	    out += data
	    return data
	# first contact: the fingerprint of the CA is shown, trusted on "yes"
	while b"(yes/no)? " not in out:
	    if not more():
	        break
	os.write(fd, b"yes\n")
	while b"API key for bob@127.0.0.1:" not in out:
	    if not more():
	        break
	os.write(fd, key + b"\n")
	while more():
	    pass
	_, status = os.waitpid(pid, 0)
	sys.stdout.write(out.decode("utf-8", "replace"))
	sys.exit(os.waitstatus_to_exitcode(status))
	EOF
	fp=SHA256:$(openssl x509 -in "$data/ca.pem" -outform DER | sha256sum | cut -c1-64) &&
	grep "Its CA.s fingerprint is $fp" out &&
	grep "API key for bob@127.0.0.1:$port: " out &&
	grep "Added remote '\''typed'\''" out &&
	! grep -f key out &&
	test "$(config_key typed)" = "$(cat key)"
'

test_expect_success 'an existing remote name, a bad name or a bad address is refused' '
	test_dm_status 4 env DM_API_KEY=$(cat key) dm remote add bob "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" &&
	grep "remote '\''bob'\'' exists already" err &&
	test_dm_status 2 env DM_API_KEY=k dm remote add "b/d" "bob@127.0.0.1" &&
	test_dm_status 2 env DM_API_KEY=k dm remote add x "127.0.0.1:$port" &&
	grep "no user name" err &&
	test_dm_status 2 env DM_API_KEY=k dm remote add x "bob@" &&
	test_dm_status 2 env DM_API_KEY=k dm remote add x "bob@h:0" &&
	grep "the port must be a number from 1 to 65535" err &&
	test_dm_status 2 env DM_API_KEY=k dm remote add x "bob@h:99999" &&
	test_dm_status 2 env DM_API_KEY=k dm remote add x "bob@[::1" &&
	test_dm_status 2 env DM_API_KEY=k dm remote add x "bob@[::1]x"
'

test_expect_success 'dm remote switch changes where commands go' '
	dm remote switch bob &&
	dm remote >out &&
	printf "* bob\n  local\n  typed\n" >expect && test_cmp expect out &&
	test_dm_status 10 dm user list &&
	dm remote switch local &&
	dm user list >/dev/null &&
	test_dm_status 3 dm remote switch nosuch && grep "no remote named '\''nosuch'\''" err
'

test_expect_success 'dm remote rm removes a remote; the current one is refused' '
	test_dm_status 2 dm remote rm local &&
	grep "^dm: cannot remove remote '\''local'\'': it is the current remote" err &&
	dm remote rm typed &&
	printf "bob\nlocal\n" >expect &&
	config_remotes >actual && test_cmp expect actual &&
	test_dm_status 3 dm remote rm typed
'

test_expect_success 'dm user reset-key: a new key, the old one stops working' '
	dm user reset-key bob >newkey 2>note &&
	grep -E "^[0-9a-f]{64}$" newkey && ! test_cmp key newkey &&
	grep "the old one no longer works" note &&
	test_dm_status 10 dm --remote bob list &&
	test_dm_status 10 env DM_API_KEY=$(cat key) dm remote add bob2 "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" &&
	DM_API_KEY=$(cat newkey) dm remote add bob2 "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" >/dev/null &&
	dm --remote bob2 list >/dev/null
'

test_expect_success 'resetting the key of the user we talk as saves the new key in the config' '
	old=$(config_key local) &&
	dm user reset-key admin >newkey 2>note &&
	grep "the config file has it already" note &&
	test "$(config_key local)" = "$(cat newkey)" &&
	test "$(config_key local)" != "$old" &&
	dm user list >/dev/null
'

test_expect_success 'dm dot add-collaborator lets another user use a dot' '
	dm init shop &&
	test_dm_status 10 dm --remote bob2 dot show admin/shop &&
	dm dot add-collaborator shop bob &&
	dm dot show shop >out &&
	grep "^collaborators: *bob (write)$" out &&
	dm --remote bob2 dot show admin/shop >out &&
	grep "^dot: *shop$" out &&
	test_dm_status 10 dm --remote bob2 dot add-collaborator admin/shop carol &&
	test_dm_status 2 dm dot add-collaborator shop "c d"
'

test_expect_success 'dm dot set-upstream is kept per remote and dot, and dm dot show shows it' '
	dm dot show shop >out && grep "^upstream: *none$" out &&
	dm dot set-upstream shop bob2 bob/shop &&
	dm dot show shop >out && grep "^upstream: *bob2 bob/shop$" out &&
	dm dot show -H shop >out && grep "^upstream	bob2 bob/shop$" out &&
	python3 -c "import json,sys; u=json.load(open(sys.argv[1]))[\"upstreams\"]; assert u == {\"local\": {\"admin/shop\": {\"remote\": \"bob2\", \"dot\": \"bob/shop\"}}}, u" "$DM_CONFIG" &&
	dm dot set-upstream --unset shop &&
	dm dot show shop >out && grep "^upstream: *none$" out
'

test_expect_success 'dm dot set-upstream refuses unknown remotes and dots, and the same remote' '
	test_dm_status 3 dm dot set-upstream shop nosuch shop &&
	test_dm_status 3 dm dot set-upstream nodot bob2 shop &&
	test_dm_status 2 dm dot set-upstream shop local shop &&
	test_dm_status 2 dm dot set-upstream shop bob2 "x/y/z" &&
	dm dot show shop >out && grep "^upstream: *none$" out
'

test_expect_success 'removing a remote forgets the upstreams that point to it' '
	dm dot set-upstream shop bob2 bob/shop &&
	dm remote rm bob2 &&
	dm dot show shop >out && grep "^upstream: *none$" out
'

test_expect_success 'the new commands have help; dm user alone lists its subcommands' '
	for c in "user add" "user reset-key" "user list" "remote" "remote add" "remote rm" \
		"remote switch" "push" "pull" "clone" "dot set-upstream" "dot add-collaborator"; do
		dm help $c >a && dm $c --help >b && test_cmp a b &&
		grep "^usage: dm $c" a || { echo "bad help for $c"; return 1; }
	done &&
	dm user >out && grep "^  add " out && grep "^  reset-key " out && grep "^  list " out &&
	dm remote --help >out && grep "^usage: dm remote \[-v\]" out && grep "^  switch " out
'

test_done
