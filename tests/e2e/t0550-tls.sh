#!/usr/bin/env bash
test_description='HTTPS by default: the CA a server makes, clients that pin it, refusals of wrong and changed certificates, plain HTTP only on loopback and only when asked'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"

# What this proves: dm cluster init makes a CA (ca.pem, key 0600) and a
# certificate for the node, serves HTTPS on the TCP port and nothing in
# clear text there; dm remote add verifies the server non-interactively
# with --ca-file or --fingerprint and refuses a wrong fingerprint, or no
# way to verify, printing the fingerprint; a server whose CA changed
# later is refused loudly and nothing is sent to it; transfers between
# two servers run over HTTPS with the CA the client pinned, and a
# transfer to a server with another CA is refused; --insecure-http is
# refused for an address other nodes would use, and works on loopback.

unset DM_API_KEY

fp_of() {
	echo "SHA256:$(openssl x509 -in "$1" -outform DER | sha256sum | cut -c1-64)"
}

test_expect_success 'setup: two servers, A and B' '
	servers_init A B &&
	dmB user add bob >bob.key 2>/dev/null
'

test_expect_success 'cluster init made a CA and a certificate; keys are 0600' '
	test -f "$HOME/B/ca.pem" && test -f "$HOME/B/tls.pem" &&
	test "$(stat -c %a "$HOME/B/ca-key.pem")" = 600 &&
	test "$(stat -c %a "$HOME/B/tls-key.pem")" = 600 &&
	grep "^Its CA.s fingerprint is $(fp_of "$HOME/B/ca.pem")$" "$HOME/init-B.out" &&
	openssl verify -CAfile "$HOME/B/ca.pem" "$HOME/B/tls.pem" &&
	openssl x509 -in "$HOME/B/tls.pem" -noout -ext subjectAltName >san &&
	grep "IP Address:127.0.0.1" san && grep "DNS:localhost" san
'

test_expect_success 'the TCP port speaks HTTPS only: plain HTTP gets no answer, an unknown CA fails' '
	! curl -sS --max-time 10 "http://127.0.0.1:$(server_port B)/healthz" 2>err &&
	! curl -sS --max-time 10 "https://127.0.0.1:$(server_port B)/healthz" 2>err2 &&
	grep -i "certificate" err2 &&
	curl -sS --max-time 10 --cacert "$HOME/B/ca.pem" "https://127.0.0.1:$(server_port B)/healthz" >ok &&
	grep ok ok
'

test_expect_success 'remote add with --fingerprint or --ca-file works without a terminal' '
	DM_API_KEY=$(cat bob.key) dmA remote add bobfp "bob@127.0.0.1:$(server_port B)" \
		--fingerprint "$(fp_of "$HOME/B/ca.pem")" </dev/null >out &&
	grep "Added remote .bobfp.*CA $(fp_of "$HOME/B/ca.pem")" out &&
	DM_API_KEY=$(cat bob.key) dmA remote add bobca "bob@localhost:$(server_port B)" \
		--ca-file "$HOME/B/ca.pem" </dev/null >out &&
	dmA --remote bobfp list && dmA --remote bobca list
'

test_expect_success 'a wrong fingerprint, or none without a terminal, is refused and nothing is saved' '
	DM_API_KEY=$(cat bob.key) test_status 10 dmA remote add w "bob@127.0.0.1:$(server_port B)" \
		--fingerprint "SHA256:$(printf "%064d" 0)" </dev/null &&
	grep "REFUSED: dm server at bob@127.0.0.1:$(server_port B) presents a CA with fingerprint $(fp_of "$HOME/B/ca.pem"), not SHA256:0000" err &&
	DM_API_KEY=$(cat bob.key) test_status 10 dmA remote add w "bob@127.0.0.1:$(server_port B)" </dev/null &&
	grep "cannot verify dm server at .*: its CA.s fingerprint is $(fp_of "$HOME/B/ca.pem").*--fingerprint $(fp_of "$HOME/B/ca.pem")" err &&
	DM_API_KEY=$(cat bob.key) test_status 10 dmA remote add w "bob@127.0.0.1:$(server_port B)" \
		--ca-file "$HOME/A/ca.pem" </dev/null &&
	grep REFUSED err &&
	! dmA remote | grep -w w
'

test_expect_success 'push, pull and clone between the servers go over HTTPS with the pinned CA' '
	dmA init shop && dmA mount shop s && echo apples >s/stock &&
	dmA commit --dot shop -m one >/dev/null &&
	dmA push b shop >/dev/null &&
	echo pears >>s/stock && dmA commit --dot shop -m two >/dev/null &&
	dmA push b shop >/dev/null &&
	dmA init deli && dmA mount deli d && echo cheese >d/menu &&
	dmA commit --dot deli -m one >/dev/null &&
	dmB clone a deli --local-name copy >/dev/null &&
	dmB mount copy c && test_cmp d/menu c/menu &&
	echo ham >>d/menu && dmA commit --dot deli -m two >/dev/null &&
	dmB pull a copy >/dev/null && test_cmp d/menu c/menu
'

test_expect_success 'dmd renew-cert: a new certificate from the same CA, refused while dmd runs; clients and transfers go on' '
	test_status 16 dmd renew-cert --data-dir "$HOME/B" &&
	grep "running" err &&
	old=$(openssl x509 -in "$HOME/B/tls.pem" -noout -serial) &&
	server_stop B &&
	dmd renew-cert --data-dir "$HOME/B" >out &&
	grep "signed by the same CA ($(fp_of "$HOME/B/ca.pem"))" out &&
	new=$(openssl x509 -in "$HOME/B/tls.pem" -noout -serial) &&
	test "$old" != "$new" &&
	test "$(stat -c %a "$HOME/B/tls-key.pem")" = 600 &&
	openssl verify -CAfile "$HOME/B/ca.pem" "$HOME/B/tls.pem" &&
	server_start B &&
	echo "$new" | sed "s/serial=//" >want &&
	openssl s_client -connect "127.0.0.1:$(server_port B)" -CAfile "$HOME/B/ca.pem" </dev/null 2>/dev/null |
		openssl x509 -noout -serial | sed "s/serial=//" >got &&
	test_cmp want got &&
	dmA --remote bobfp list &&
	dmA push b shop
'

test_expect_success 'a server whose CA changed is refused loudly, and a transfer to it too' '
	server_stop B &&
	mv "$HOME/B" "$HOME/B.old" &&
	dmB cluster init --data-dir "$HOME/B" --port "$(server_port B)" >/dev/null 2>&1 &&
	test_status 10 dmA --remote bobfp list &&
	grep "REFUSED: the certificate of dm server at 127.0.0.1:$(server_port B) does not chain to the CA pinned for remote .bobfp. ($(fp_of "$HOME/B.old/ca.pem"))" err &&
	grep "add the remote again with --fingerprint" err &&
	test_status 10 dmA push b shop &&
	grep "REFUSED" err
'

test_expect_success '--insecure-http: refused for an address other nodes use, plain HTTP on loopback' '
	test_status 2 dm cluster init --data-dir "$HOME/P0" --port "$(test_free_port)" --no-plugin \
		--insecure-http --advertise http://10.1.2.3:32607 &&
	grep "only for a node reached on a loopback address" err &&
	test ! -f "$HOME/P0/config.json" &&
	p=$(test_free_port) &&
	test_atexit "dmd stop --data-dir '\''$HOME/P'\'' >/dev/null 2>&1" &&
	DM_CONFIG=$HOME/confP dm cluster init --data-dir "$HOME/P" --port "$p" --no-plugin \
		--insecure-http >outP &&
	grep "http://127.0.0.1:$p (plain HTTP, loopback only)" outP &&
	test ! -f "$HOME/P/ca.pem" &&
	curl -sS --max-time 10 "http://127.0.0.1:$p/healthz" | grep ok &&
	DM_API_KEY=$(cat "$HOME/P/admin-api-key") dmA remote add plain "admin@127.0.0.1:$p" \
		</dev/null >out 2>err &&
	grep "speaks plain HTTP (loopback only)" err &&
	dmA --remote plain list
'

test_done
