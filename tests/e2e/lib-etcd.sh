# shellcheck shell=bash
# lib-etcd.sh - a real etcd cluster of N members on private ports, for the
# scripts that run dm on etcd or test failover. Source it after
# test-lib.sh, then start a cluster under a directory of the script's:
#
#	. "$(dirname "$0")/test-lib.sh"
#	. "$TEST_DIRECTORY/lib-etcd.sh"
#	etcd_cluster_start "$HOME/etcd" 3
#	etcdctl --endpoints="$ETCD_ENDPOINTS" put k v
#
# Always true once etcd_cluster_start DIR N returned 0:
#   - members 0..N-1 run, each with its data in DIR/m<i> and its output in
#     DIR/m<i>.log, listening on 127.0.0.1 only, on ports test_free_port
#     gave (client and peer), and each answers a linearizable read, so the
#     cluster has a leader;
#   - $ETCD_ENDPOINTS (exported) lists the members' client URLs,
#     comma-separated, in member order, as dm_kv_open_etcd and etcdctl's
#     --endpoints take them;
#   - every member is killed when the script ends, however it ends
#     (etcd_cluster_stop is registered with test_atexit).
# Raft runs with a 50 ms heartbeat and a 500 ms election timeout, so that
# a new leader is elected within a second of a member's death;
# $ETCD_EXTRA_FLAGS adds flags to every member.
#
# With ETCD_TLS=1 set before etcd_cluster_start, the members speak TLS on
# client and peer URLs (https://) and ask clients for a certificate: a CA,
# the members' certificate and a client certificate are made under
# DIR/tls with openssl (ca.pem, server.pem, client.pem and their -key.pem;
# the client's has no CommonName, which etcd's JSON gateway refuses),
# and $ETCD_CLIENT_TLS holds curl's flags for them (etcdctl's are
# $ETCD_CTL_TLS).
#
# Helpers: etcd_member_endpoint I (its client URL), etcd_member_pid I,
# etcd_member_kill I (SIGKILL, and waits for it), etcd_member_restart I
# (the same command on the same data; waits until it answers),
# etcd_cluster_wait (until every running member answers), etcd_cluster_pids,
# etcd_cluster_stop.

etcd_n=0
etcd_dir=

etcd_scheme=http
ETCD_CLIENT_TLS=
ETCD_CTL_TLS=

# etcd_member_ready I: member I answers a linearizable read.
etcd_member_ready() {
	# shellcheck disable=SC2086 # a list of flags
	curl -sf --max-time 1 $ETCD_CLIENT_TLS -X POST -d '{"key":"AA==","count_only":true}' \
		"$(etcd_member_endpoint "$1")/v3/kv/range" >/dev/null 2>&1
}

# etcd_tls_make DIR: a CA, a certificate for 127.0.0.1 that members serve
# and peers present, and a client certificate, under DIR.
etcd_tls_make() {
	local d=$1

	mkdir -p "$d" &&
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=etcd test CA" -keyout "$d/ca-key.pem" -out "$d/ca.pem" 2>/dev/null &&
	printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
		"extendedKeyUsage=serverAuth,clientAuth" >"$d/server.ext" &&
	printf '%s\n' "extendedKeyUsage=clientAuth" >"$d/client.ext" &&
	# a client certificate without a CommonName: etcd's JSON gateway
	# refuses one that has a CN (it cannot pass it on as a user)
	for who in server client; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-subj "$([ $who = server ] && echo "/CN=etcd test server" || echo "/O=etcd test client")" \
			-keyout "$d/$who-key.pem" -out "$d/$who.csr" 2>/dev/null &&
		openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" \
			-CAcreateserial -days 2 -extfile "$d/$who.ext" -out "$d/$who.pem" \
			2>/dev/null || return 1
	done
}

# etcd_member_spawn I: starts member I in the background.
etcd_member_spawn() {
	local i=$1 pid
	local -n flags=etcd_flags_$i

	# shellcheck disable=SC2086 # ETCD_EXTRA_FLAGS is a list of flags
	etcd "${flags[@]}" ${ETCD_EXTRA_FLAGS-} >>"$etcd_dir/m$i.log" 2>&1 </dev/null &
	pid=$!
	eval "etcd_pid_$i=$pid"
}

# etcd_member_wait I: waits up to 30 s until member I answers.
etcd_member_wait() {
	local i=$1 tries=0

	until etcd_member_ready "$i"; do
		if ! kill -0 "$(etcd_member_pid "$i")" 2>/dev/null; then
			echo "etcd member m$i died; its log:" >&2
			tail -n 20 "$etcd_dir/m$i.log" >&2
			return 1
		fi
		tries=$((tries + 1))
		if [ $tries -gt 300 ]; then
			echo "etcd member m$i does not answer; its log:" >&2
			tail -n 20 "$etcd_dir/m$i.log" >&2
			return 1
		fi
		sleep 0.1
	done
}

# etcd_cluster_start DIR N: starts N members under DIR (see above).
etcd_cluster_start() {
	local dir=$1 n=$2 i initial='' endpoints='' client peer

	if ! command -v etcd >/dev/null 2>&1; then
		echo "etcd_cluster_start: no etcd in PATH (Debian package etcd-server)" >&2
		return 1
	fi
	mkdir -p "$dir" || return 1
	etcd_dir=$(cd "$dir" && pwd)
	etcd_n=$n
	test_atexit etcd_cluster_stop
	if [ "${ETCD_TLS-}" = 1 ]; then
		etcd_tls_make "$etcd_dir/tls" || return 1
		etcd_scheme=https
		ETCD_CLIENT_TLS="--cacert $etcd_dir/tls/ca.pem --cert $etcd_dir/tls/client.pem --key $etcd_dir/tls/client-key.pem"
		ETCD_CTL_TLS="--cacert=$etcd_dir/tls/ca.pem --cert=$etcd_dir/tls/client.pem --key=$etcd_dir/tls/client-key.pem"
	fi
	for ((i = 0; i < n; i++)); do
		client=$(test_free_port) && peer=$(test_free_port) || return 1
		eval "etcd_client_port_$i=$client etcd_peer_port_$i=$peer etcd_pid_$i="
		initial="$initial${initial:+,}m$i=$etcd_scheme://127.0.0.1:$peer"
		endpoints="$endpoints${endpoints:+,}$etcd_scheme://127.0.0.1:$client"
	done
	for ((i = 0; i < n; i++)); do
		eval "client=\$etcd_client_port_$i peer=\$etcd_peer_port_$i"
		eval "etcd_flags_$i=(
			--name=m$i --data-dir='$etcd_dir/m$i'
			--listen-client-urls=$etcd_scheme://127.0.0.1:$client
			--advertise-client-urls=$etcd_scheme://127.0.0.1:$client
			--listen-peer-urls=$etcd_scheme://127.0.0.1:$peer
			--initial-advertise-peer-urls=$etcd_scheme://127.0.0.1:$peer
			--initial-cluster='$initial'
			--initial-cluster-token=dm-e2e-$$
			--heartbeat-interval=50 --election-timeout=500
			--logger=zap --log-outputs=stderr --log-level=warn
		)"
		if [ "$etcd_scheme" = https ]; then
			eval "etcd_flags_$i+=(
				--cert-file='$etcd_dir/tls/server.pem'
				--key-file='$etcd_dir/tls/server-key.pem'
				--trusted-ca-file='$etcd_dir/tls/ca.pem' --client-cert-auth
				--peer-cert-file='$etcd_dir/tls/server.pem'
				--peer-key-file='$etcd_dir/tls/server-key.pem'
				--peer-trusted-ca-file='$etcd_dir/tls/ca.pem' --peer-client-cert-auth
			)"
		fi
		etcd_member_spawn "$i"
	done
	for ((i = 0; i < n; i++)); do
		etcd_member_wait "$i" || return 1
	done
	ETCD_ENDPOINTS=$endpoints
	export ETCD_ENDPOINTS
}

etcd_member_endpoint() {
	eval "echo \"$etcd_scheme://127.0.0.1:\$etcd_client_port_$1\""
}

etcd_member_pid() {
	eval "echo \"\$etcd_pid_$1\""
}

# etcd_member_kill I: SIGKILL, as a crash would; waits until it is gone.
etcd_member_kill() {
	local pid

	pid=$(etcd_member_pid "$1")
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		eval "etcd_pid_$1="
	fi
	return 0
}

# etcd_member_restart I: starts member I again on its data and ports.
etcd_member_restart() {
	etcd_member_kill "$1"
	etcd_member_spawn "$1"
	etcd_member_wait "$1"
}

# etcd_cluster_wait: waits until every running member answers (after a
# member's death: until the others have a leader again).
etcd_cluster_wait() {
	local i

	for ((i = 0; i < etcd_n; i++)); do
		if [ -n "$(etcd_member_pid "$i")" ]; then
			etcd_member_wait "$i" || return 1
		fi
	done
}

# etcd_cluster_pids: the pids of the running members, one a line.
etcd_cluster_pids() {
	local i

	for ((i = 0; i < etcd_n; i++)); do
		if [ -n "$(etcd_member_pid "$i")" ]; then
			etcd_member_pid "$i"
		fi
	done
}

# etcd_cluster_stop: kills every member (safe to call twice).
etcd_cluster_stop() {
	local i

	for ((i = 0; i < etcd_n; i++)); do
		etcd_member_kill "$i"
	done
}
