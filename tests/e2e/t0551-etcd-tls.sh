#!/usr/bin/env bash
test_description='a cluster on an etcd of three members that speaks TLS only, asks for client certificates and has authentication on: nodes join with the CA, certificate and user given, replicate and forward; what is wrong is refused saying so; a node record pointed at another address gets no credential'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-etcd.sh"
. "$TEST_DIRECTORY/lib-cluster.sh"

tls=$HOME/etcd/tls
# etcdctl as etcd's root, over TLS
ctl() {
	# shellcheck disable=SC2086 # a list of flags
	etcdctl --endpoints="$ETCD_ENDPOINTS" $ETCD_CTL_TLS "$@"
}

# etcd's own answer to an unauthenticated range over curl's arguments
etcd_range() {
	curl -s --max-time 5 -X POST -d "{\"key\":\"L2Rt\",\"range_end\":\"L2Ru\"}" "$@" \
		"$(etcd_member_endpoint 0)/v3/kv/range"
}

test_expect_success 'setup: etcd with TLS, client certificates, and a user dm that may touch /dm/ only' '
	ETCD_TLS=1 etcd_cluster_start "$HOME/etcd" 3 &&
	printf "%s\n" "root-$RANDOM$RANDOM" >root.pw &&
	printf "%s\n" "dm-$RANDOM$RANDOM-pass" >dm.pw &&
	ctl user add "root:$(cat root.pw)" >/dev/null &&
	ctl user grant-role root root >/dev/null &&
	ctl role add dm >/dev/null &&
	ctl role grant-permission dm --prefix=true readwrite /dm/ >/dev/null &&
	ctl user add "dm:$(cat dm.pw)" >/dev/null &&
	ctl user grant-role dm dm >/dev/null &&
	ctl auth enable >/dev/null &&
	# etcd itself refuses plain HTTP, clients without a certificate, and
	# requests without a user
	! curl -s --max-time 5 "http://127.0.0.1:$etcd_client_port_0/v3/kv/range" -X POST -d "{}" &&
	! etcd_range --cacert "$tls/ca.pem" &&
	etcd_range $ETCD_CLIENT_TLS >ans &&
	grep "\"error\"" ans && ! grep "\"kvs\"" ans
'

etcd_flags="--etcd-ca $tls/ca.pem --etcd-cert $tls/client.pem --etcd-key $tls/client-key.pem --etcd-user dm --etcd-password-file $HOME/dm.pw"
node_opts_N1="--no-plugin $etcd_flags"
# the nodes that join take etcd's CA, user and password from the token, and
# give their own client certificate
node_opts_N2="--no-plugin --etcd-cert $tls/client.pem --etcd-key $tls/client-key.pem"
node_opts_N3=$node_opts_N2

test_expect_success 'three nodes make and join the cluster; the password is on no command line' '
	nodes_init N1 N2 N3 &&
	for n in N1 N2 N3; do
		"dm$n" cluster status -H >st.$n &&
		test $(grep -c "	up	" st.$n) = 3 || return 1
	done &&
	for n in N1 N2 N3; do
		cmp dm.pw $n/etcd-password &&
		test "$(stat -c %a $n/etcd-password)" = 600 &&
		test "$(stat -c %a $n/etcd-client-key.pem)" = 600 &&
		cmp "$tls/ca.pem" $n/etcd-ca.pem || return 1
	done &&
	! grep -a -- "$(cat dm.pw)" /proc/[0-9]*/cmdline 2>/dev/null
'

test_expect_success 'a commit on node 1 reaches nodes 2 and 3; one asked of node 2 is made by node 1' '
	dmN1 mount --create shop n1 &&
	echo hello >n1/greeting &&
	dmN1 commit -m "first" &&
	c1=$(log_of N1 | head -1) &&
	wait_until 30 has_commit N2 "$c1" &&
	wait_until 30 has_commit N3 "$c1" &&
	echo again >n1/greeting &&
	dmN2 commit --dot shop -m "second, through node 2" &&
	c2=$(log_of N1 | head -1) &&
	test "$c2" != "$c1" &&
	wait_until 30 has_commit N3 "$c2"
'

test_expect_success 'a wrong password, a wrong CA, no client certificate or plain HTTP: init refuses, saying what' '
	printf "%s\n" wrong >wrong.pw &&
	test_must_fail dm cluster init --kv etcd --etcd-endpoints "$ETCD_ENDPOINTS" --no-plugin \
		--data-dir X1 --port $(test_free_port) --etcd-ca "$tls/ca.pem" \
		--etcd-cert "$tls/client.pem" --etcd-key "$tls/client-key.pem" \
		--etcd-user dm --etcd-password-file wrong.pw 2>err &&
	grep "cannot log in to etcd as .dm.*authentication failed" err &&
	test ! -e X1 &&
	test_must_fail dm cluster init --kv etcd --etcd-endpoints "$ETCD_ENDPOINTS" --no-plugin \
		--data-dir X2 --port $(test_free_port) --etcd-ca N1/ca.pem \
		--etcd-cert "$tls/client.pem" --etcd-key "$tls/client-key.pem" \
		--etcd-user dm --etcd-password-file dm.pw 2>err &&
	grep "TLS handshake with etcd at https://127.0.0.1:[0-9]* failed.*--etcd-ca" err &&
	test_must_fail dm cluster init --kv etcd --etcd-endpoints "$ETCD_ENDPOINTS" --no-plugin \
		--data-dir X3 --port $(test_free_port) --etcd-ca "$tls/ca.pem" \
		--etcd-user dm --etcd-password-file dm.pw 2>err &&
	grep "etcd at https://127.0.0.1:[0-9]* asks for a client certificate, and none was given: give --etcd-cert FILE and --etcd-key FILE" err &&
	test_must_fail dm cluster init --kv etcd --no-plugin --data-dir X4 --port $(test_free_port) \
		--etcd-endpoints "$(echo "$ETCD_ENDPOINTS" | sed s/https:/http:/g)" 2>err &&
	grep "etcd" err &&
	# a user without a password says where the password comes from
	test_must_fail dm cluster init --kv etcd --etcd-endpoints "$ETCD_ENDPOINTS" --no-plugin \
		--data-dir X5 --port $(test_free_port) --etcd-ca "$tls/ca.pem" --etcd-user dm 2>err &&
	grep "etcd-password-file FILE or set .DM_ETCD_PASSWORD" err &&
	# $DM_ETCD_PASSWORD works as well as a file: it logs in, and finds the
	# cluster there
	DM_ETCD_PASSWORD=$(cat dm.pw) test_must_fail dm cluster init --kv etcd \
		--etcd-endpoints "$ETCD_ENDPOINTS" --no-plugin --data-dir X6 --port $(test_free_port) \
		--etcd-ca "$tls/ca.pem" --etcd-cert "$tls/client.pem" --etcd-key "$tls/client-key.pem" \
		--etcd-user dm 2>err &&
	grep "this KV holds dm cluster .* already" err
'

# a TLS server at port $1 with a certificate no CA of ours signed, that
# logs every connection and what it was sent into fake.log
fake_node() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
		-keyout fake-key.pem -out fake.pem 2>/dev/null &&
	python3 - "$1" <<-\EOF >/dev/null 2>&1 &
	import socket, ssl, sys
	ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
	ctx.load_cert_chain("fake.pem", "fake-key.pem")
	s = socket.socket()
	s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	s.bind(("127.0.0.1", int(sys.argv[1])))
	s.listen()
	open("fake.ready", "w").close()
	while True:
	    c, _ = s.accept()
	    with open("fake.log", "ab") as log:
	        log.write(b"connection\n")
	        try:
	            t = ctx.wrap_socket(c, server_side=True)
	            t.settimeout(5)
	            log.write(t.recv(65536) + b"\n")
	        except Exception as e:
	            log.write(b"handshake failed: " + str(e).encode() + b"\n")
	        c.close()
	EOF
	fake=$!
	test_atexit "kill $fake 2>/dev/null"
	wait_until 10 test -e fake.ready
}

# point_node ID URL: node ID's record in etcd says it is at URL
point_node() {
	ctl --user "root:$(cat root.pw)" get --print-value-only "/dm/nodes/$1" >rec &&
	python3 - "$2" <<-\EOF >rec.new &&
	import json, sys
	r = json.load(open("rec"))
	r["address"] = sys.argv[1]
	print(json.dumps(r))
	EOF
	ctl --user "root:$(cat root.pw)" put "/dm/nodes/$1" "$(cat rec.new)" >/dev/null
}

test_expect_success 'a node record pointed at another address: the handshake fails before any credential goes' '
	dmN3 checkout --dot shop -b side &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN1 dm branch --dot shop -H | grep -q side" &&
	dmN1 checkout --dot shop side &&
	id3=$(node_id N3) &&
	port=$(test_free_port) &&
	fake_node $port &&
	point_node "$id3" "https://127.0.0.1:$port" &&
	echo there >n1/greeting &&
	test_must_fail dmN1 commit --dot shop -m "to the master of side, node 3" 2>err &&
	cat err &&
	grep -i "certificate\|TLS\|SSL" err &&
	grep "^connection" fake.log &&
	grep "handshake failed" fake.log &&
	! grep -a "$(cat N1/admin-api-key)" fake.log &&
	! grep -ai "authorization\|POST" fake.log
'

test_done
