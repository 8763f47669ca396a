# shellcheck shell=bash
# lib-servers.sh - two or three real dmds on private ports for the scripts
# that move dots between servers (t052x). Source it after test-lib.sh, then
# call servers_init with the servers' names.
#
#	. "$(dirname "$0")/test-lib.sh"
#	. "$TEST_DIRECTORY/lib-servers.sh"
#	servers_init A B C
#
# Always true once servers_init A B returned 0:
#   - server A keeps its data in $HOME/A and serves 127.0.0.1:$port_A; its
#     admin's API key is in $HOME/A/admin-api-key (as dm cluster init left
#     it); the same for B (and C).
#   - dmA runs dm as a user whose config ($HOME/confA) has A as `local`
#     (the current remote) and every other server as a remote named by its
#     lower-case letter, as admin: from A, `dmA push b shop` pushes to B.
#   - every dmd is stopped when the script ends, however it ends.
#
# Helpers (test_status is test-lib.sh's): shop_two_branches, log_ids and
# dot_id (of a `dm log`/`dm dot show` command), server_rpc (a JSON-RPC call
# to a server as admin, with curl), last_transfer (the newest transfer a
# server ran, as JSON), transfer_field, user_remote (a user of one server
# as a remote of another's client), server_stop / server_start.

# servers_init NAME...: starts the dmds and wires their remotes.
servers_init() {
	local n m lc

	for n in "$@"; do
		eval "port_$n=\$(test_free_port)"
		eval "dm$n() { DM_CONFIG=\$HOME/conf$n dm \"\$@\"; }"
		test_atexit "dmd stop --data-dir '$HOME/$n' >/dev/null 2>&1"
	done
	for n in "$@"; do
		"dm$n" cluster init --data-dir "$HOME/$n" --port "$(server_port "$n")" \
			>"$HOME/init-$n.out" 2>&1 || {
			cat "$HOME/init-$n.out" >&2
			return 1
		}
	done
	for n in "$@"; do
		for m in "$@"; do
			[ "$n" = "$m" ] && continue
			lc=$(printf '%s' "$m" | tr '[:upper:]' '[:lower:]')
			DM_API_KEY=$(cat "$HOME/$m/admin-api-key") \
				"dm$n" remote add "$lc" "admin@127.0.0.1:$(server_port "$m")" --ca-file "$HOME/$m/ca.pem" >/dev/null || return 1
		done
	done
}

server_port() {
	eval "echo \"\$port_$1\""
}

# server_stop NAME / server_start NAME: a clean stop, a start on the same
# data directory and port.
server_stop() {
	dmd stop --data-dir "$HOME/$1" >/dev/null
}
server_start() {
	"dm$1" cluster start --data-dir "$HOME/$1" --port "$(server_port "$1")" >/dev/null
}

# log_ids CMD...: the commit ids CMD --json (a dm log) lists, newest first.
log_ids() {
	"$@" --json | python3 -c 'import json, sys
for c in json.load(sys.stdin)["commits"]:
    print(c["id"])'
}

# dot_id CMD...: the id of the dot CMD --json (a dm dot show) shows.
dot_id() {
	"$@" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}

# shop_two_branches NAME: on server NAME, the dot shop mounted at shopNAME,
# with commit "first" on master and "second" on autumn, its current branch.
shop_two_branches() {
	"dm$1" init shop &&
	"dm$1" mount shop "shop$1" &&
	echo "apples: 3" >"shop$1/stock.txt" &&
	"dm$1" commit -m first >/dev/null &&
	"dm$1" checkout -b autumn >/dev/null &&
	echo "pears: 2" >>"shop$1/stock.txt" &&
	"dm$1" commit -m second >/dev/null
}

# server_rpc NAME METHOD [PARAMS_JSON]: calls METHOD on server NAME as its
# admin and prints the result as JSON; an error reply fails, printing it.
server_rpc() {
	curl -sS --max-time 30 --cacert "$HOME/$1/ca.pem" -u "admin:$(cat "$HOME/$1/admin-api-key")" \
		-H 'Content-Type: application/json' \
		--data-binary "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":${3:-{\}}}" \
		"https://127.0.0.1:$(server_port "$1")/rpc" |
		python3 -c 'import json, sys
r = json.load(sys.stdin)
if "error" in r:
    print(json.dumps(r["error"]), file=sys.stderr)
    sys.exit(1)
print(json.dumps(r["result"]))'
}

# last_transfer NAME: the newest transfer server NAME ran (a TRANSFER object).
last_transfer() {
	server_rpc "$1" transfers.list | python3 -c 'import json, sys
t = json.load(sys.stdin)["transfers"]
print(json.dumps(t[0] if t else {}))'
}

# transfer_field FIELD <TRANSFER_JSON: one field of a TRANSFER object.
transfer_field() {
	python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"
}

# user_remote CLIENT REMOTE USER SERVER KEYFILE: makes USER of SERVER (key
# in KEYFILE) remote REMOTE of CLIENT's config.
user_remote() {
	DM_API_KEY=$(cat "$5") "dm$1" remote add "$2" "$3@127.0.0.1:$(server_port "$4")" --ca-file "$HOME/$4/ca.pem" >/dev/null
}
