#!/usr/bin/env bash
test_description='the web page at /ui/: login into a session cookie, CSRF, logout, expiry; in headless chromium: the dot list with search, a dot, at 375 pixels'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"

# What this proves:
#   - dmd serves its page from itself, with a policy that allows only its
#     own scripts; a login with a user and API key opens a session whose
#     cookie is HttpOnly, Secure and SameSite=Strict, a wrong key is refused
#     without a browser password prompt (no Basic challenge);
#   - the page's JSON-RPC needs the session and its CSRF token; a session
#     ends unused after $DM_UI_SESSION_IDLE seconds;
#   - in Debian's chromium (playwright-core, tests/browser/ui-test.js): log
#     in, see the dots, search, see a dot another client made appear at
#     the next poll, open a dot with its branches and commits,
#     refuse calls without or with a wrong CSRF token, log out and be
#     refused after, fit a 375-pixel-wide window, pass axe-core's WCAG 2
#     A and AA rules (labels, contrast, headings); the screenshots are
#     saved ($DM_ARTIFACTS, default tests/e2e/artifacts/) and not empty.

shots=${DM_ARTIFACTS:-$TEST_DIRECTORY/artifacts}
browser=$DM_SOURCE_DIR/tests/browser

# ui_curl PATH [CURL_ARGS...]: a request of the page to server A, with the
# cookie jar ./jar; the body to stdout, the status to ./status, the
# headers to ./headers.
ui_curl() {
	local path=$1

	shift
	curl -sS --max-time 30 --cacert "$HOME/A/ca.pem" -b jar -c jar -D headers -o body \
		-w '%{http_code}\n' "$@" "https://127.0.0.1:$(server_port A)$path" >status &&
	cat body
}

# csrf_of FILE: the csrf of a session answer.
csrf_of() {
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["csrf"])' "$1"
}

test_expect_success 'setup: dmd A with dots shop (two branches, two commits) and cart' '
	test -x /usr/bin/chromium &&
	test -d "$browser/node_modules/playwright-core" && test -d "$browser/node_modules/axe-core" &&
	servers_init A &&
	shop_two_branches A &&
	dmA init cart &&
	mkdir -p "$shots"
'

test_expect_success 'the page is served from dmd, with its security headers' '
	ui_curl /ui/ >page.html &&
	echo 200 >expect && test_cmp expect status &&
	grep "<script src=\"/ui/app.js\"" page.html &&
	grep -i "^Content-Security-Policy: default-src .none.; script-src .self." headers &&
	grep -i "^X-Content-Type-Options: nosniff" headers &&
	ui_curl /ui/app.js >/dev/null && test_cmp expect status &&
	grep -i "^Content-Type: text/javascript" headers &&
	ui_curl /ui/nope >/dev/null && echo 404 >expect && test_cmp expect status
'

test_expect_success 'no session: the page calls nothing' '
	ui_curl /ui/session >/dev/null &&
	echo 401 >expect && test_cmp expect status &&
	! grep -i "^WWW-Authenticate" headers &&
	ui_curl /ui/rpc -H "Content-Type: application/json" \
		-d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"dots.list\"}" >out &&
	test_cmp expect status && grep "log in again" out && ! grep shop out
'

test_expect_success 'a wrong key: refused, with no Basic challenge' '
	ui_curl /ui/login -X POST -u admin:0000000000000000000000000000000000000000000000000000000000000000 >out &&
	echo 401 >expect && test_cmp expect status &&
	! grep -i "^WWW-Authenticate" headers && ! grep -i "^Set-Cookie" headers
'

test_expect_success 'login: an HttpOnly, Secure, SameSite=Strict cookie and a CSRF token' '
	ui_curl /ui/login -X POST -u "admin:$(cat A/admin-api-key)" >login.json &&
	echo 200 >expect && test_cmp expect status &&
	grep -i "^Set-Cookie: dm_ui=[0-9a-f]\{64\}; Path=/ui/; Max-Age=43200; HttpOnly; SameSite=Strict; Secure" headers &&
	csrf=$(csrf_of login.json) && test ${#csrf} = 64 &&
	! grep "$(sed -n "s/.*dm_ui=\([0-9a-f]*\);.*/\1/p" headers)" login.json
'

test_expect_success 'the JSON-RPC of the page: with the CSRF token only' '
	csrf=$(csrf_of login.json) &&
	ui_curl /ui/rpc -H "Content-Type: application/json" -H "X-DM-CSRF: $csrf" \
		-d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"dots.list\"}" >out &&
	echo 200 >expect && test_cmp expect status && grep "\"name\":\"shop\"" out &&
	ui_curl /ui/rpc -H "Content-Type: application/json" \
		-d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"dots.list\"}" >out &&
	echo 403 >expect && test_cmp expect status && grep "X-DM-CSRF" out &&
	ui_curl /ui/logout -X POST >out && test_cmp expect status
'

test_expect_success 'logout ends the session: the old cookie is refused' '
	csrf=$(csrf_of login.json) &&
	cp jar jar.old &&
	ui_curl /ui/logout -X POST -H "X-DM-CSRF: $csrf" >/dev/null &&
	echo 200 >expect && test_cmp expect status &&
	grep -i "^Set-Cookie: dm_ui=; Path=/ui/; Max-Age=0" headers &&
	cp jar.old jar &&
	ui_curl /ui/session >/dev/null &&
	echo 401 >expect && test_cmp expect status
'

test_expect_success 'in chromium: log in, list, search, open a dot, CSRF, log out, 375 pixels' '
	rm -f "$shots"/ui-*.png &&
	node "$browser/ui-test.js" "https://127.0.0.1:$(server_port A)" admin "$(cat A/admin-api-key)" "$shots" &&
	for s in ui-dots ui-dot ui-375; do
		test -s "$shots/$s.png" || return 1
	done
'

test_expect_success 'a session unused for DM_UI_SESSION_IDLE seconds ends' '
	server_stop A &&
	DM_UI_SESSION_IDLE=2 server_start A &&
	ui_curl /ui/login -X POST -u "admin:$(cat A/admin-api-key)" >/dev/null &&
	ui_curl /ui/session >/dev/null && echo 200 >expect && test_cmp expect status &&
	sleep 2.5 &&
	ui_curl /ui/session >out && echo 401 >expect && test_cmp expect status &&
	grep "expired" out
'

test_done
