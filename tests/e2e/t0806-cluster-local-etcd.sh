#!/usr/bin/env bash
test_description='dm cluster init --kv etcd without endpoints: dmd runs a local etcd in its data directory, nodes on this machine join it, it stops and starts with its dmd, outlives a killed dmd, and a failed init or start leaves none running'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-cluster.sh"

# nodes_init makes a local etcd when no endpoints are given
unset ETCD_ENDPOINTS
home=$(pwd -P)

# the pids of the etcd processes that keep their data in data directory $1
etcd_of() {
	pgrep -f -- "--data-dir=$home/$1/etcd "
}

# no etcd process keeps its data in data directory $1
no_etcd_of() {
	if etcd_of "$1" >pids; then
		echo "etcd of $1 still runs:" >&2
		ps -o pid,args -p "$(paste -sd, pids)" >&2
		return 1
	fi
}

# a member of ours that a failing test left behind dies with the script
test_atexit 'for d in N1 N3 N4 N5; do for p in $(etcd_of $d); do kill -9 $p; done; done'

# member $1's client port, from its config.json
client_port() {
	python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["etcd_local"]["client_port"])' "$home/$1/config.json"
}

# hold_port PORT: something listens on 127.0.0.1:PORT until release_port
hold_port() {
	rm -f held
	python3 -c 'import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
open("held", "w").close()
time.sleep(120)' "$1" >/dev/null 2>&1 &
	holder=$!
	wait_until 10 test -e held
}

release_port() {
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	return 0
}

test_expect_success 'init with --kv etcd and no endpoints runs a local etcd that a node on this machine joins' '
	nodes_init N1 N2 &&
	python3 - "$home/N1/config.json" <<-\EOF &&
	import json, sys
	c = json.load(open(sys.argv[1]))
	local = c["etcd_local"]
	assert c["kv"] == "etcd", c
	assert 0 < local["client_port"] < 65536 and 0 < local["peer_port"] < 65536, c
	assert local["client_port"] != local["peer_port"], c
	assert c["etcd_endpoints"] == "https://127.0.0.1:%d" % local["client_port"], c
	assert local["tls"] is True, c
	assert c["etcd_client"] == {"ca": True, "cert": False, "user": "root"}, c
	EOF
	test -d N1/etcd &&
	test $(etcd_of N1 | wc -l) = 1 &&
	test "$(cat N1/etcd.pid)" = "$(etcd_of N1)" &&
	token=$(sed -n "s/^ *dm cluster join dmj1\.//p" init-N1.out) &&
	python3 - "$token" "$(client_port N1)" <<-\EOF &&
	import base64, json, sys
	t = sys.argv[1] + "=" * (-len(sys.argv[1]) % 4)
	etcd = json.loads(base64.urlsafe_b64decode(t))["etcd"]
	assert etcd == "https://127.0.0.1:" + sys.argv[2], etcd
	EOF
	grep "\"etcd_endpoints\": \"https://127.0.0.1:$(client_port N1)\"" N2/config.json &&
	! grep etcd_local N2/config.json &&
	test ! -e N2/etcd &&
	no_etcd_of N2 &&
	dmN2 cluster status -H >st &&
	test $(grep -c "	up	" st) = 2
'

# an etcd request to node $1's local member over scheme $2 with curl's
# further arguments; its answer in etcd.out
etcd_ask() {
	local n=$1 scheme=$2
	shift 2
	curl -s --max-time 5 -X POST -d "{\"key\":\"L2Rt\",\"range_end\":\"L2Ru\"}" "$@" \
		"$scheme://127.0.0.1:$(client_port $n)/v3/kv/range" >etcd.out
}

test_expect_success 'the local etcd speaks TLS only, and lets in only who holds its root password' '
	test "$(stat -c %a N1/etcd-password)" = 600 &&
	test "$(stat -c %a N1/etcd-ca-key.pem)" = 600 &&
	test "$(stat -c %a N1/etcd-server-key.pem)" = 600 &&
	pw=$(cat N1/etcd-password) && test ${#pw} -ge 32 &&
	! etcd_ask N1 http &&
	! etcd_ask N1 https &&
	etcd_ask N1 https --cacert N1/etcd-ca.pem &&
	grep "user name is empty" etcd.out &&
	token=$(curl -s --max-time 5 --cacert N1/etcd-ca.pem -X POST \
		-d "{\"name\":\"root\",\"password\":\"$pw\"}" \
		"https://127.0.0.1:$(client_port N1)/v3/auth/authenticate" |
		python3 -c "import json, sys; print(json.load(sys.stdin)[\"token\"])") &&
	etcd_ask N1 https --cacert N1/etcd-ca.pem -H "Authorization: $token" &&
	grep "\"kvs\"" etcd.out &&
	# the node that joined has the CA and password from the token, 0600
	cmp N1/etcd-ca.pem N2/etcd-ca.pem &&
	cmp N1/etcd-password N2/etcd-password &&
	test "$(stat -c %a N2/etcd-password)" = 600 &&
	# the password is on no command line
	! grep -a -- "$pw" /proc/[0-9]*/cmdline 2>/dev/null
'

test_expect_success 'a commit on node 1 is in dm log on node 2' '
	dmN1 mount --create shop n1 &&
	echo hello >n1/greeting &&
	dmN1 commit -m "first" &&
	c1=$(log_of N1 | head -1) &&
	wait_until 30 has_commit N2 "$c1"
'

test_expect_success 'dm cluster stop stops the local etcd with its dmd; start brings both back, with the data' '
	dmN2 cluster stop &&
	dmN1 cluster stop &&
	no_etcd_of N1 &&
	test ! -e N1/etcd.pid &&
	node_start N1 &&
	test $(etcd_of N1 | wc -l) = 1 &&
	has_commit N1 "$c1" &&
	node_start N2 &&
	has_commit N2 "$c1" &&
	echo again >n1/greeting &&
	dmN1 commit -m "second" &&
	c2=$(log_of N1 | head -1) &&
	wait_until 30 has_commit N2 "$c2"
'

test_expect_success 'a dmd killed with SIGKILL leaves its etcd running: cluster start replaces it, cluster stop stops it' '
	old=$(etcd_of N1) &&
	node_kill N1 &&
	test "$(etcd_of N1)" = "$old" &&
	node_start N1 &&
	new=$(etcd_of N1) &&
	test $(echo "$new" | wc -l) = 1 &&
	test "$new" != "$old" &&
	test "$(cat N1/etcd.pid)" = "$new" &&
	has_commit N1 "$c2" &&
	echo third >n1/greeting &&
	dmN1 commit -m "third" &&
	c3=$(log_of N1 | head -1) &&
	wait_until 30 has_commit N2 "$c3" &&
	dmN2 cluster stop &&
	node_kill N1 &&
	test "$(etcd_of N1)" = "$new" &&
	dmN1 cluster stop &&
	no_etcd_of N1 &&
	test ! -e N1/etcd.pid &&
	node_start N1 &&
	has_commit N1 "$c3"
'

test_expect_success 'an etcd that cannot start: cluster start says why, from its log, and leaves nothing running' '
	dmN1 cluster stop &&
	port=$(client_port N1) &&
	hold_port "$port" &&
	test_when_finished release_port &&
	test_must_fail dmN1 cluster start --data-dir "$home/N1" --port "$(node_port N1)" 2>err &&
	one_error "local etcd exited .*127.0.0.1:$port.*address already in use" &&
	no_etcd_of N1 &&
	test ! -e N1/etcd.pid &&
	test ! -e N1/dmd.pid &&
	release_port &&
	node_start N1 &&
	has_commit N1 "$c3"
'

test_expect_success 'a new node whose dmd cannot start stops the etcd it started' '
	busy=$(test_free_port) &&
	hold_port "$busy" &&
	test_when_finished release_port &&
	test_must_fail dm cluster init --kv etcd --no-plugin --data-dir N3 --port "$busy" 2>err &&
	one_error "cannot listen on 127.0.0.1:$busy" &&
	test -d N3/etcd &&
	no_etcd_of N3 &&
	test ! -e N3/etcd.pid &&
	test ! -e N3/dmd.pid
'

test_expect_success 'a failed init stops the local etcd and removes what it made of it' '
	ETCD_NAME=other test_must_fail dm cluster init --kv etcd --no-plugin --data-dir N4 \
		--port $(test_free_port) 2>err &&
	one_error "local etcd exited with status 1 .*ETCD_NAME" &&
	test ! -e N4 &&
	no_etcd_of N4 &&
	mkdir N5 &&
	ETCD_NAME=other test_must_fail dm cluster init --kv etcd --no-plugin --data-dir N5 \
		--port $(test_free_port) 2>err &&
	one_error "local etcd exited" &&
	test -z "$(ls -A N5)" &&
	no_etcd_of N5
'

test_expect_success 'without an etcd program, init says how to get one and makes nothing' '
	PATH="$DM_BUILD_DIR/src/cli:$DM_BUILD_DIR/src/server" test_must_fail \
		dm cluster init --kv etcd --no-plugin --data-dir N6 --port $(test_free_port) 2>err &&
	one_error "no etcd program in PATH.*etcd-server.*--etcd-endpoints" &&
	test ! -e N6
'

test_done
