#!/usr/bin/env bash
test_description='nodes of a cluster call each other with certificates of their own: a joining node gets its certificate signed by the node that holds the CA key, and holds neither that key nor the admin key; replication goes on after the admin key changed; a node record pointed at an impostor with another node certificate gets nothing; a removed node is refused'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-etcd.sh"
. "$TEST_DIRECTORY/lib-cluster.sh"

ctl() {
	etcdctl --endpoints="$ETCD_ENDPOINTS" "$@"
}

# rpc_as_node N PORT METHOD: a JSON-RPC call to 127.0.0.1:PORT with node
# N's certificate and key and no API key; the HTTP status, then the body
rpc_as_node() {
	curl -s --max-time 10 --cacert N1/ca.pem --cert "$1/tls.pem" --key "$1/tls-key.pem" \
		-w "\n%{http_code}\n" -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$3\",\"params\":{}}" \
		"https://127.0.0.1:$2/rpc"
}

# key_of N: the API key of remote local in node N config
key_of() {
	python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["remotes"]["local"]["api_key"])' "$HOME/conf$1"
}

# set_key N KEY: remote local of node N config calls with KEY
set_key() {
	python3 -c 'import json, sys
c = json.load(open(sys.argv[1]))
c["remotes"]["local"]["api_key"] = sys.argv[2]
json.dump(c, open(sys.argv[1], "w"))' "$HOME/conf$1" "$2"
}

test_expect_success 'setup: three nodes on etcd' '
	etcd_cluster_start "$HOME/etcd" 1 &&
	nodes_init N1 N2 N3 &&
	for n in N1 N2 N3; do
		eval "id_$n=$(node_id $n)" || return 1
	done
'

test_expect_success 'the token carries no API key and no CA key; joined nodes hold neither' '
	token=$(sed -n "s/^ *dm cluster join dmj1\.//p" init-N1.out) &&
	printf "%s" "$token" | tr -- "-_" "+/" | base64 -d 2>/dev/null >token.json;
	grep "\"signer\"" token.json &&
	! grep -i "PRIVATE KEY\|\"key\"" token.json &&
	! grep "$(cat N1/admin-api-key)" token.json &&
	for n in N2 N3; do
		test ! -e $n/admin-api-key &&
		test ! -e $n/ca-key.pem &&
		cmp N1/ca.pem $n/ca.pem &&
		test "$(stat -c %a $n/tls-key.pem)" = 600 || return 1
	done &&
	test -e N1/ca-key.pem
'

test_expect_success 'a token whose secret is wrong gets no certificate; without DM_API_KEY a node joins all the same' '
	token=$(sed -n "s/^ *dm cluster join //p" init-N1.out) &&
	bad=$(python3 -c "import base64, json, sys
t = sys.argv[1][5:]
d = json.loads(base64.urlsafe_b64decode(t + \"=\" * (-len(t) % 4)))
d[\"secret\"] = \"0\" * 64
print(\"dmj1.\" + base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip(\"=\"))" "$token") &&
	port_N4=$(test_free_port) &&
	test_atexit "dmd stop --data-dir $HOME/N4 >/dev/null 2>&1" &&
	printf "%s\n" "$bad" | test_must_fail env DM_CONFIG=$HOME/confN4 dm cluster join - \
		--no-plugin --data-dir "$HOME/N4" --port $port_N4 2>err &&
	grep "refused to sign this node.s certificate: the join token is unknown or expired" err &&
	test ! -e N4 &&
	# a token past its --ttl is refused the same way
	dmN1 cluster join-token --ttl 1s >short.out &&
	grep "lets a node join for 1 s" short.out &&
	sleep 2 &&
	sed -n "s/^ *dm cluster join //p" short.out |
		test_must_fail env DM_CONFIG=$HOME/confN4 dm cluster join - \
		--no-plugin --data-dir "$HOME/N4" --port $port_N4 2>err &&
	grep "the join token is unknown or expired" err &&
	test ! -e N4 &&
	dmN1 cluster join-token --ttl never | grep "never expires" &&
	printf "%s\n" "$token" | DM_CONFIG=$HOME/confN4 dm cluster join - \
		--no-plugin --data-dir "$HOME/N4" --port $port_N4 >out &&
	grep "The join token carries no API key" out &&
	dmN1 cluster status -H >st &&
	test $(grep -c "	up	" st) = 4 &&
	id_N4=$(DM_CONFIG=$HOME/confN1 dm cluster status -H | grep -v "$id_N1\|$id_N2\|$id_N3" | cut -f2) &&
	dmd stop --data-dir N4 >/dev/null &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN1 dm cluster status -H | grep -c \"	up	\" | grep -qx 3" &&
	dmN1 cluster remove "$id_N4"
'

test_expect_success 'each node certificate names its node id, signed by the cluster CA' '
	for n in N1 N2 N3; do
		eval "id=\$id_$n" &&
		openssl verify -CAfile N1/ca.pem $n/tls.pem &&
		openssl x509 -in $n/tls.pem -noout -ext subjectAltName >san.$n &&
		grep "DNS:$id.node.dm.invalid" san.$n &&
		test $(grep -o "node.dm.invalid" san.$n | wc -l) = 1 || return 1
	done
'

test_expect_success 'with the admin key reset (no node has the new one), commits replicate and forward' '
	dmN1 mount --create shop n1 &&
	echo one >n1/greeting &&
	dmN1 commit -m one &&
	wait_until 30 has_commit N2 "$(log_of N1 | head -1)" &&
	dmN1 user reset-key admin 2>reset.out &&
	! grep -q "$(cat N1/admin-api-key)" confN1 &&
	# the test reads node 2 and 3 with the new key; they call with none
	set_key N2 "$(key_of N1)" &&
	set_key N3 "$(key_of N1)" &&
	echo two >n1/greeting &&
	dmN1 commit -m two &&
	c2=$(log_of N1 | head -1) &&
	wait_until 30 has_commit N3 "$c2" &&
	wait_until 30 has_commit N2 "$c2" &&
	# node 3 has only its certificate to forward a commit to node 1 with
	echo three >n1/greeting &&
	dmN3 commit --dot shop -m "three, through node 3" &&
	c3=$(log_of N1 | head -1) &&
	test "$c3" != "$c2" &&
	wait_until 30 has_commit N2 "$c3"
'

test_expect_success 'a node certificate is a caller; a certificate for no node of the cluster is not' '
	rpc_as_node N2 $port_N1 dots.list >ok.out &&
	tail -1 ok.out | grep -x 200 &&
	grep "\"result\"" ok.out &&
	mkdir -p X &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=stranger" \
		-keyout X/tls-key.pem -out x.csr 2>/dev/null &&
	printf "subjectAltName=DNS:11111111-2222-4333-8444-555555555555.node.dm.invalid\nextendedKeyUsage=clientAuth,serverAuth\n" >x.ext &&
	openssl x509 -req -in x.csr -CA N1/ca.pem -CAkey N1/ca-key.pem -CAcreateserial \
		-days 1 -extfile x.ext -out X/tls.pem 2>/dev/null &&
	rpc_as_node X $port_N1 dots.list >no.out &&
	tail -1 no.out | grep -x 401 &&
	! grep "\"result\"" no.out &&
	grep "not a node of this cluster" N1/dmd.log
'

# a TLS server at port $1 with node 3's own certificate and key (the
# cluster CA signed it, for node 3), that logs every connection and what
# it was sent into fake.log
impostor() {
	python3 - "$1" <<-\EOF >/dev/null 2>&1 &
	import socket, ssl, sys
	ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
	ctx.load_cert_chain("N3/tls.pem", "N3/tls-key.pem")
	ctx.load_verify_locations("N1/ca.pem")
	ctx.verify_mode = ssl.CERT_OPTIONAL
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
	            log.write(b"peer: " + str(t.getpeercert()).encode() + b"\n")
	            log.write(t.recv(65536) + b"\n")
	        except Exception as e:
	            log.write(b"handshake failed: " + str(e).encode() + b"\n")
	        c.close()
	EOF
	fake=$!
	test_atexit "kill $fake 2>/dev/null"
	wait_until 10 test -e fake.ready
}

# point_node ID URL: node ID record in etcd says it is at URL
point_node() {
	ctl get --print-value-only "/dm/nodes/$1" >rec &&
	python3 - "$2" <<-\EOF >rec.new &&
	import json, sys
	r = json.load(open("rec"))
	r["address"] = sys.argv[1]
	print(json.dumps(r))
	EOF
	ctl put "/dm/nodes/$1" "$(cat rec.new)" >/dev/null
}

test_expect_success 'node 2 record pointed at an impostor with node 3 certificate: it gets no request' '
	dmN2 checkout --dot shop -b side &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN1 dm branch --dot shop -H | grep -q side" &&
	dmN1 checkout --dot shop side &&
	port=$(test_free_port) &&
	impostor $port &&
	point_node "$id_N2" "https://127.0.0.1:$port" &&
	echo there >n1/greeting &&
	test_must_fail dmN1 commit --dot shop -m "to the master of side, node 2" 2>err &&
	cat err &&
	grep "REFUSED: the server at 127.0.0.1:$port did not prove it is node" err &&
	grep "^connection" fake.log &&
	grep "handshake failed" fake.log &&
	! grep -a "^peer:" fake.log &&
	! grep -ai "POST\|GET /\|authorization" fake.log &&
	point_node "$id_N2" "https://127.0.0.1:$port_N2" &&
	dmN1 checkout --dot shop master &&
	dmN2 checkout --dot shop master
'

test_expect_success 'a certificate of an older dm (naming no node): start refuses, renew-cert mends it' '
	dmd stop --data-dir N2 >/dev/null &&
	# as an older dm made it: the cluster CA signed it, it names no node,
	# and the node holds the CA key
	cp N1/ca-key.pem N2/ca-key.pem &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
		-keyout N2/tls-key.pem -out old.csr 2>/dev/null &&
	printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=clientAuth,serverAuth\n" >old.ext &&
	openssl x509 -req -in old.csr -CA N1/ca.pem -CAkey N1/ca-key.pem -CAcreateserial \
		-days 1 -extfile old.ext -out N2/tls.pem 2>/dev/null &&
	test_must_fail node_start N2 2>err &&
	grep "does not name node $id_N2.*dmd renew-cert --data-dir" err &&
	dmd renew-cert --data-dir N2 >/dev/null &&
	openssl x509 -in N2/tls.pem -noout -ext subjectAltName | grep "DNS:$id_N2.node.dm.invalid" &&
	rm N2/ca-key.pem &&
	node_start N2 &&
	echo four >n1/greeting &&
	dmN1 commit --dot shop -m four &&
	c4=$(log_of N1 | head -1) &&
	wait_until 30 has_commit N2 "$c4"
'

test_expect_success 'a removed node: its certificate is refused, and it may not come back' '
	test_must_fail dmN1 cluster remove "$id_N3" 2>err &&
	grep "is up; stop it first" err &&
	dmd stop --data-dir N3 >/dev/null &&
	wait_until 30 sh -c "DM_CONFIG=$HOME/confN1 dm cluster status -H | grep \"$id_N3\" | grep -q down" &&
	rpc_as_node N3 $port_N1 dots.list >before.out &&
	tail -1 before.out | grep -x 200 &&
	ctl get --prefix --keys-only "/dm/n/$id_N3/" | grep . &&
	dmN1 cluster remove "$id_N3" &&
	! dmN1 cluster status -H | grep "$id_N3" &&
	test -z "$(ctl get --prefix --keys-only "/dm/n/$id_N3/")" &&
	rpc_as_node N3 $port_N1 dots.list >after.out &&
	tail -1 after.out | grep -x 401 &&
	rpc_as_node N3 $port_N2 dots.list >after2.out &&
	tail -1 after2.out | grep -x 401 &&
	test_must_fail node_start N3 2>err &&
	grep "was removed from the cluster" err N3/dmd.log
'

# restart N: dmd stopped and started again (dm cluster start pins the CAs
# the node trusts now in its remote)
restart() {
	dmd stop --data-dir "$HOME/$1" >/dev/null && node_start "$1"
}

# reaches_n2 TEXT: a commit on node 1 reaches node 2
reaches_n2() {
	echo "$1" >n1/greeting &&
	dmN1 commit --dot shop -m "$1" >/dev/null &&
	wait_until 30 has_commit N2 "$(log_of N1 | head -1)"
}

test_expect_success 'dm cluster rotate-certs: a new CA, node by node, and the cluster up all along' '
	test_must_fail dmN2 cluster rotate-certs 2>err &&
	grep "does not hold the cluster CA.s key" err &&
	cp N1/ca.pem old-ca.pem &&
	dmN1 cluster rotate-certs >out &&
	grep "Phase .trust." out &&
	test_must_fail dmN1 cluster rotate-certs 2>err &&
	grep "not restarted since the last step" err &&
	restart N1 && reaches_n2 r1 &&
	restart N2 && reaches_n2 r2 &&
	test $(grep -c "BEGIN CERTIFICATE" N2/ca.pem) = 2 &&
	dmN1 cluster rotate-certs | grep "Phase .renew." &&
	restart N1 && reaches_n2 r3 &&
	restart N2 && reaches_n2 r4 &&
	sed -n "/BEGIN/,/END/p" N1/ca.pem | tail -n +$(($(sed -n "/BEGIN/,/END/p" old-ca.pem | wc -l) + 1)) >new-ca.pem &&
	openssl verify -CAfile new-ca.pem N1/tls.pem &&
	openssl verify -CAfile new-ca.pem N2/tls.pem &&
	! openssl verify -CAfile old-ca.pem N2/tls.pem &&
	test ! -e N2/ca-key.pem &&
	dmN1 cluster rotate-certs | grep "Phase .done." &&
	restart N1 && reaches_n2 r5 &&
	restart N2 && reaches_n2 r6 &&
	cmp new-ca.pem N1/ca.pem &&
	cmp new-ca.pem N2/ca.pem &&
	echo r7 >n1/greeting &&
	dmN2 commit --dot shop -m "r7, through node 2" &&
	wait_until 30 has_commit N2 "$(log_of N1 | head -1)" &&
	grep "signed a certificate for node $id_N2 (a new one" N1/dmd.log
'

test_done
