#!/usr/bin/env bash
test_description='dmd over HTTPS: routes, body limit, JSON-RPC errors, shutdown with a request in flight'
. "$(dirname "$0")/test-lib.sh"

if ! command -v curl >/dev/null 2>&1; then
	test_skip_all 'needs curl'
fi

port=$(test_free_port)
url=https://127.0.0.1:$port
# dmd init made a CA for this server: curl trusts it and nothing else
curl() {
	command curl --cacert "$TRASH_DIRECTORY/data/ca.pem" "$@"
}
test_atexit 'dmd stop --data-dir "$TRASH_DIRECTORY/data" --timeout 20'

# post BODY-FILE: POST /rpc as admin; prints the HTTP status, the body goes to ./reply.
post() {
	curl -s -o reply -w "%{http_code}\n" -u "admin:$(cat key)" --data-binary "@$1" "$url/rpc"
}

test_expect_success 'setup: a running dmd' '
	dmd init --data-dir data --port $port >key &&
	dmd start --data-dir data
'

test_expect_success 'unknown paths get 404, wrong methods 405' '
	curl -s -o body -w "%{http_code}\n" "$url/nope" >code &&
	echo 404 >expect && test_cmp expect code &&
	curl -s -D headers -o body -w "%{http_code}\n" "$url/rpc" >code &&
	echo 405 >expect && test_cmp expect code &&
	grep -i "^Allow: POST" headers &&
	curl -s -o body -w "%{http_code}\n" -d x "$url/healthz" >code &&
	test_cmp expect code
'

test_expect_success 'malformed JSON-RPC is answered 200 with the standard codes and data.code' '
	printf "{not json" >bad.json &&
	post bad.json >code && echo 200 >expect && test_cmp expect code &&
	grep "\"code\":-32700" reply && grep "\"data\":{\"code\":\"protocol_error\"}" reply &&
	printf "{\"jsonrpc\":\"2.0\",\"id\":4}" >nomethod.json &&
	post nomethod.json >code && test_cmp expect code &&
	grep "\"id\":4" reply && grep "\"code\":-32600" reply &&
	printf "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"no.such\"}" >unknown.json &&
	post unknown.json >code && test_cmp expect code &&
	grep "\"code\":-32601" reply && grep "no such method" reply &&
	grep "\"data\":{\"code\":\"unsupported\"}" reply &&
	printf "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"server.ping\",\"params\":[1]}" >params.json &&
	post params.json >code && test_cmp expect code &&
	grep "\"code\":-32602" reply
'

test_expect_success 'a notification (no id) is still answered, with id null' '
	printf "{\"jsonrpc\":\"2.0\",\"method\":\"server.ping\"}" >note.json &&
	post note.json >code && echo 200 >expect && test_cmp expect code &&
	grep "\"id\":null,\"result\":{\"user\":\"admin\"}" reply
'

test_expect_success 'a body of 1 MiB is accepted; a larger one gets 413 and too_large' '
	# server.ping ignores params it does not know; pad the request to just under 1 MiB
	python3 -c "
import json
pad = \"a\" * (1024 * 1024 - 100)
print(json.dumps({\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"server.ping\", \"params\": {\"pad\": pad}}), end=\"\")
" >big.json &&
	test "$(wc -c <big.json)" -le 1048576 &&
	post big.json >code && echo 200 >expect && test_cmp expect code &&
	grep "\"user\":\"admin\"" reply &&
	head -c 1048577 /dev/zero | tr "\0" " " >huge.json &&
	post huge.json >code && echo 413 >expect && test_cmp expect code &&
	grep "\"data\":{\"code\":\"too_large\"}" reply &&
	curl -s -o reply -w "%{http_code}\n" -u "admin:$(cat key)" -H "Transfer-Encoding: chunked" \
		--data-binary @huge.json "$url/rpc" >code &&
	test_cmp expect code &&
	grep "too_large" reply
'

test_expect_success 'an unauthenticated caller is refused before its body is read' '
	curl -s -o reply -w "%{http_code}\n" -u "admin:wrong" --data-binary @huge.json \
		"$url/rpc" >code &&
	echo 401 >expect && test_cmp expect code &&
	curl -s -o reply -w "%{http_code}\n" -u "admin:wrong" -H "Transfer-Encoding: chunked" \
		--data-binary @huge.json "$url/rpc" >code &&
	test_cmp expect code &&
	grep permission_denied reply
'

test_expect_success 'dmd stop lets a request in flight finish before it stops' '
	python3 -c "
import json
print(json.dumps({\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"server.ping\", \"params\": {\"pad\": \"a\" * 8000}}), end=\"\")
" >slow.json &&
	# at 4 KiB/s the upload keeps the request in flight for about 2 s
	{ curl -s -o slow.reply -w "%{http_code}\n" -u "admin:$(cat key)" --limit-rate 4K \
		--data-binary @slow.json "$url/rpc" >slow.code & } &&
	sleep 0.5 &&
	dmd stop --data-dir data &&
	wait &&
	echo 200 >expect && test_cmp expect slow.code &&
	grep "\"user\":\"admin\"" slow.reply &&
	grep "dmd stopped cleanly" data/dmd.log
'

test_done
