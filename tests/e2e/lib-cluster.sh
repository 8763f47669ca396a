# shellcheck shell=bash
# lib-cluster.sh - a dm cluster on etcd on this machine: three (or more)
# real dmd nodes on private ports and data directories, sharing an etcd
# cluster started with lib-etcd.sh, or the local etcd the first node's dmd
# runs when $ETCD_ENDPOINTS is empty. Source it after test-lib.sh (and
# lib-etcd.sh), start etcd, then call nodes_init with the nodes' names.
#
#	. "$(dirname "$0")/test-lib.sh"
#	. "$TEST_DIRECTORY/lib-etcd.sh"
#	. "$TEST_DIRECTORY/lib-cluster.sh"
#	etcd_cluster_start "$HOME/etcd" 3 && nodes_init N1 N2 N3
#
# Always true once nodes_init N1 N2 N3 returned 0:
#   - N1 made the cluster (dm cluster init --kv etcd, with --etcd-endpoints
#     $ETCD_ENDPOINTS unless that is empty), the others joined it with the
#     token N1 printed (its output is in $HOME/init-N1.out); every node is up.
#   - node N keeps its data in $HOME/N and serves 127.0.0.1:$port_N;
#     dmN runs dm with a config of its own ($HOME/confN) whose remote
#     `local` is node N, as admin (the joining nodes get the first one's
#     admin key through $DM_API_KEY: a join token carries no API key, and
#     only the first node has $HOME/N1/admin-api-key).
#   - every dmd is stopped when the script ends, however it ends.
#
# A node serves no Docker volume plugin unless $node_opts_N says otherwise
# (options of dm cluster init/join/start, such as --plugin-socket).
#
# Helpers: node_id N (the node's id), node_kill N (SIGKILL of its dmd),
# node_start N, wait_until SECONDS CMD... (polls CMD until it succeeds),
# log_of N [DOT] (the commit ids of DOT, default shop, on node N, newest
# first), has_commit N ID [DOT].

nodes_init() {
	local n first=$1 token arg

	for n in "$@"; do
		eval "port_$n=\$(test_free_port)"
		eval "dm$n() { DM_CONFIG=\$HOME/conf$n dm \"\$@\"; }"
		test_atexit "dmd stop --data-dir '$HOME/$n' >/dev/null 2>&1"
	done
	# shellcheck disable=SC2046
	"dm$first" cluster init --kv etcd ${ETCD_ENDPOINTS:+--etcd-endpoints "$ETCD_ENDPOINTS"} $(node_opts "$first") \
		--data-dir "$HOME/$first" --port "$(node_port "$first")" >"$HOME/init-$first.out" 2>&1 || {
		cat "$HOME/init-$first.out" >&2
		return 1
	}
	token=$(sed -n 's/^ *dm cluster join //p' "$HOME/init-$first.out")
	test -n "$token" || {
		echo "dm cluster init printed no join token" >&2
		cat "$HOME/init-$first.out" >&2
		return 1
	}
	# the second node takes the token as an argument, the others on stdin
	# (TOKEN "-"), as a careful admin would: both ways are in use
	arg=$token
	for n in "$@"; do
		[ "$n" = "$first" ] && continue
		# shellcheck disable=SC2046
		printf '%s\n' "$token" | DM_API_KEY=$(cat "$HOME/$first/admin-api-key") \
			"dm$n" cluster join "$arg" $(node_opts "$n") \
			--data-dir "$HOME/$n" --port "$(node_port "$n")" >"$HOME/init-$n.out" 2>&1 || {
			cat "$HOME/init-$n.out" >&2
			return 1
		}
		arg=-
	done
}

node_port() {
	eval "echo \"\$port_$1\""
}

node_opts() {
	local opts
	eval "opts=\${node_opts_$1:-}"
	echo "${opts:---no-plugin}"
}

# node_id N: the id of node N, as it says itself.
node_id() {
	"dm$1" cluster status --json | python3 -c 'import json, sys
print([n["id"] for n in json.load(sys.stdin)["nodes"] if n["self"]][0])'
}

# node_kill N: SIGKILL of node N's dmd, as a crash.
node_kill() {
	test_kill_hard "$HOME/$1/dmd.pid"
}

node_start() {
	# shellcheck disable=SC2046
	"dm$1" cluster start $(node_opts "$1") --data-dir "$HOME/$1" --port "$(node_port "$1")" >/dev/null
}

# log_of N [DOT]: the ids dm log --json lists on node N, newest first
log_of() {
	"dm$1" log --dot "${2:-shop}" --json | python3 -c 'import json, sys
for c in json.load(sys.stdin)["commits"]:
    print(c["id"])'
}

# has_commit N ID [DOT]: node N has commit ID in its log of DOT (shop)
has_commit() {
	log_of "$1" "${3:-shop}" | grep -x "$2" >/dev/null
}

# wait_until SECONDS CMD...: runs CMD every 0.2 s until it succeeds; fails
# (with CMD's last stderr) when it has not within SECONDS.
wait_until() {
	local deadline=$(($(date +%s) + $1))
	shift
	while ! "$@" 2>"$HOME/wait.err"; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "still failing after the wait: $*" >&2
			cat "$HOME/wait.err" >&2
			return 1
		fi
		sleep 0.2
	done
}
