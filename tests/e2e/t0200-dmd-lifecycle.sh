#!/usr/bin/env bash
test_description='dmd init, start, stop: data directory, readiness, pid file, signals, restart'
. "$(dirname "$0")/test-lib.sh"

if ! command -v curl >/dev/null 2>&1; then
	test_skip_all 'needs curl'
fi

port=$(test_free_port)
port2=$(test_free_port)
test_atexit 'dmd stop --data-dir "$TRASH_DIRECTORY/data" --timeout 10;
	dmd stop --data-dir "$TRASH_DIRECTORY/data2" --timeout 10'

# The TCP ports speak HTTPS, each with the CA dmd init made in its data
# directory: curl trusts that one and nothing else.
curl() {
	local ca=$TRASH_DIRECTORY/data/ca.pem a
	for a in "$@"; do
		case $a in *":$port2/"*) ca=$TRASH_DIRECTORY/data2/ca.pem ;; esac
	done
	command curl --cacert "$ca" "$@"
}

# rpc KEY WHERE METHOD: POST /rpc as admin; WHERE is a port or a socket path.
rpc() {
	case $2 in
	/*) curl -s --unix-socket "$2" -u "admin:$1" \
		-d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$3\"}" http://dmd/rpc ;;
	*) curl -s -u "admin:$1" \
		-d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$3\"}" "https://127.0.0.1:$2/rpc" ;;
	esac
}

test_expect_success 'dmd --help shows the commands; a bad command is a usage error' '
	dmd --help >out &&
	grep "dmd init" out && grep "dmd start" out && grep "dmd stop" out &&
	test_must_fail dmd frobnicate 2>err &&
	grep "unknown command" err &&
	test_must_fail dmd start 2>err &&
	grep "needs --data-dir" err &&
	test_must_fail dmd init --data-dir x --port 70000 2>err &&
	grep "invalid port" err &&
	test ! -e x
'

test_expect_success 'dmd init makes the data directory and prints the admin key' '
	dmd init --data-dir data --port $port >key.out &&
	test -f data/config.json &&
	test -d data/kv && test -d data/store &&
	test "$(stat -c %a data/admin-api-key)" = 400 &&
	test "$(stat -c %a data)" = 711 &&
	test "$(stat -c %a data/dots)" = 711 &&
	test "$(stat -c %a data/kv)" = 700 &&
	test "$(stat -c %a data/store)" = 700 &&
	test_cmp key.out data/admin-api-key &&
	test "$(wc -l <key.out)" = 1 &&
	grep -E "^[0-9a-f]{64}$" key.out &&
	grep "\"port\": $port" data/config.json &&
	grep -E "\"node_id\": \"[0-9a-f-]{36}\"" data/config.json &&
	grep "\"engine\": \"dir\"" data/config.json
'

test_expect_success 'dmd init refuses an initialised data directory' '
	test_must_fail dmd init --data-dir data 2>err &&
	grep "already initialised" err &&
	test_cmp key.out data/admin-api-key
'

test_expect_success 'dmd init refuses a non-empty directory that is not a data directory' '
	mkdir junk && echo mine >junk/file &&
	test_must_fail dmd init --data-dir junk 2>err &&
	grep "not empty and not a dm data directory" err &&
	test ! -e junk/config.json &&
	echo mine >expect && test_cmp expect junk/file
'

test_expect_success 'dmd start on a directory that is not initialised says to run init' '
	test_must_fail dmd start --data-dir nowhere 2>err &&
	grep "dmd init" err &&
	test_must_fail dmd start --data-dir junk 2>err &&
	grep "not a dm data directory" err
'

test_expect_success 'dmd start returns once dmd serves; /healthz answers without a key' '
	dmd start --data-dir data >out &&
	grep "dmd is running on" out &&
	test -f data/dmd.pid &&
	kill -0 "$(cat data/dmd.pid)" &&
	curl -sf "https://127.0.0.1:$port/healthz" >health &&
	echo ok >expect &&
	test_cmp expect health
'

test_expect_success 'server.version with the admin key over TCP' '
	rpc "$(cat key.out)" $port server.version >out &&
	grep "\"result\":{\"version\":\"[0-9.]*\",\"api\":1,\"data_dir\":\"$PWD/data\"}" out
'

test_expect_success 'server.ping over the unix socket, which only the owner may use' '
	test -S data/dmd.sock &&
	test "$(stat -c %a data/dmd.sock)" = 600 &&
	rpc "$(cat key.out)" "$PWD/data/dmd.sock" server.ping >out &&
	grep "\"result\":{\"user\":\"admin\"}" out
'

test_expect_success 'a wrong key, an unknown user and no key get 401 and permission_denied' '
	curl -s -D headers -o body -w "%{http_code}\n" -u admin:0123 \
		-d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.ping\"}" \
		"https://127.0.0.1:$port/rpc" >code &&
	echo 401 >expect && test_cmp expect code &&
	grep -i "^WWW-Authenticate: Basic realm=\"dm\"" headers &&
	grep "\"code\":\"permission_denied\"" body &&
	grep "invalid user name or API key" body &&
	curl -s -o body2 -w "%{http_code}\n" -u "nobody:$(cat key.out)" \
		-d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.ping\"}" \
		"https://127.0.0.1:$port/rpc" >code &&
	test_cmp expect code &&
	test_cmp body body2 &&
	curl -s -o body3 -w "%{http_code}\n" \
		-d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.version\"}" \
		"https://127.0.0.1:$port/rpc" >code &&
	test_cmp expect code &&
	test_cmp body body3
'

test_expect_success 'a second dmd on the same data directory fails and names the first' '
	pid=$(cat data/dmd.pid) &&
	test_must_fail dmd start --data-dir data 2>err &&
	grep "dmd is already running on $PWD/data (pid $pid)" err &&
	test_must_fail dmd start --data-dir data --foreground 2>err &&
	grep "dmd is already running on $PWD/data (pid $pid)" err &&
	test "$(cat data/dmd.pid)" = "$pid" &&
	curl -sf "https://127.0.0.1:$port/healthz"
'

test_expect_success 'dmd start reports a port already in use, and leaves nothing running' '
	dmd init --data-dir data2 --port $port >key2.out &&
	test_must_fail dmd start --data-dir data2 2>err &&
	grep "cannot listen on 127.0.0.1:$port: Address already in use" err &&
	test ! -e data2/dmd.pid &&
	test ! -e data2/dmd.sock &&
	grep "Address already in use" data2/dmd.log
'

test_expect_success 'two dmds on two data directories and ports run side by side' '
	dmd start --data-dir data2 --port $port2 &&
	rpc "$(cat key.out)" $port server.ping >out1 &&
	rpc "$(cat key2.out)" $port2 server.ping >out2 &&
	grep "\"user\":\"admin\"" out1 &&
	grep "\"user\":\"admin\"" out2 &&
	rpc "$(cat key2.out)" "$PWD/data2/dmd.sock" server.ping >out3 &&
	grep "\"user\":\"admin\"" out3 &&
	test "$(cat data/dmd.pid)" != "$(cat data2/dmd.pid)" &&
	rpc "$(cat key.out)" $port2 server.ping >wrong &&
	grep permission_denied wrong
'

test_expect_success 'dmd stop stops dmd and removes its pid file and socket' '
	pid=$(cat data2/dmd.pid) &&
	dmd stop --data-dir data2 >out &&
	grep "dmd stopped (pid $pid)" out &&
	test_wait_gone "$pid" &&
	test ! -e data2/dmd.pid &&
	test ! -e data2/dmd.sock &&
	test_must_fail curl -sf "https://127.0.0.1:$port2/healthz" &&
	grep "dmd stopped cleanly" data2/dmd.log &&
	curl -sf "https://127.0.0.1:$port/healthz"
'

test_expect_success 'dmd stop when dmd is not running says so and succeeds' '
	dmd stop --data-dir data2 >out &&
	grep "dmd is not running on $PWD/data2" out
'

test_expect_success 'SIGTERM shuts dmd down cleanly' '
	pid=$(cat data/dmd.pid) &&
	kill -TERM "$pid" &&
	test_wait_gone "$pid" &&
	grep "received SIGTERM; shutting down" data/dmd.log &&
	grep "dmd stopped cleanly" data/dmd.log &&
	test ! -e data/dmd.pid &&
	test ! -e data/dmd.sock
'

test_expect_success 'a restart on the same data directory serves the same key' '
	dmd start --data-dir data &&
	rpc "$(cat key.out)" $port server.ping >out &&
	grep "\"user\":\"admin\"" out &&
	rpc "$(cat key.out)" "$PWD/data/dmd.sock" server.version >out &&
	grep "\"api\":1" out
'

test_expect_success 'after a crash, stop cleans the stale pid file and start works' '
	pid=$(cat data/dmd.pid) &&
	kill -KILL "$pid" &&
	test_wait_gone "$pid" &&
	test -e data/dmd.pid &&
	test -S data/dmd.sock &&
	dmd stop --data-dir data >out &&
	grep "not running" out &&
	test ! -e data/dmd.pid &&
	dmd start --data-dir data &&
	rpc "$(cat key.out)" "$PWD/data/dmd.sock" server.ping >out &&
	grep "\"user\":\"admin\"" out
'

test_expect_success 'dmd start --foreground logs to stderr and stops on SIGINT' '
	dmd stop --data-dir data &&
	{ dmd start --data-dir data --foreground 2>fg.log & } &&
	for _ in $(seq 100); do
		curl -sf "https://127.0.0.1:$port/healthz" >/dev/null && break
		sleep 0.1
	done &&
	pid=$(cat data/dmd.pid) &&
	rpc "$(cat key.out)" $port server.ping >out &&
	grep "\"user\":\"admin\"" out &&
	kill -INT "$pid" &&
	test_wait_gone "$pid" &&
	grep "ready (pid $pid)" fg.log &&
	grep "received SIGINT; shutting down" fg.log &&
	grep "dmd stopped cleanly" fg.log &&
	test ! -e data/dmd.pid
'

test_done
