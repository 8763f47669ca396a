#!/usr/bin/env bash
test_description='GET /metrics needs an admin unless dmd start --metrics-public; refusals are counted'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-metrics.sh"

# What this proves:
#   - without credentials, or with a wrong key, /metrics is refused with
#     401 and a Basic challenge, and says nothing of the node;
#   - a user who is not an admin is refused with 403, naming the way in;
#   - the refusals of bad credentials are counted in
#     dm_http_refused_total{reason="credentials"};
#   - only GET and HEAD are served;
#   - restarted with dm cluster start --metrics-public (which passes it to
#     dmd start), dmd serves /metrics to anyone.

test_expect_success 'setup: dmd A and a user who is not an admin' '
	servers_init A &&
	dmA user add bob >bob.key 2>/dev/null
'

test_expect_success 'no credentials, or a wrong key: 401, and no metrics' '
	scrape A --no-auth >body &&
	echo 401 >expect && test_cmp expect status &&
	! grep dm_dots body && grep "invalid user name or API key" body &&
	scrape A -u admin:0000000000000000000000000000000000000000000000000000000000000000 >body &&
	test_cmp expect status && ! grep dm_dots body
'

test_expect_success 'a user who is not an admin: 403, naming --metrics-public' '
	scrape A -u "bob:$(cat bob.key)" >body &&
	echo 403 >expect && test_cmp expect status &&
	grep "needs an admin user" body && grep -e --metrics-public body && ! grep dm_dots body
'

test_expect_success 'an admin gets the metrics, with the refusals counted' '
	scrape A >metrics.txt &&
	echo 200 >expect && test_cmp expect status &&
	test "$(metric metrics.txt "dm_http_refused_total{reason=\"credentials\"}")" -ge 2
'

test_expect_success 'only GET and HEAD' '
	curl -sS --cacert A/ca.pem -u "admin:$(cat A/admin-api-key)" -o /dev/null -w "%{http_code}\n" \
		-d x "https://127.0.0.1:$(server_port A)/metrics" >code &&
	echo 405 >expect && test_cmp expect code
'

test_expect_success 'dm cluster start --metrics-public (dmd start --metrics-public): anyone may scrape' '
	server_stop A &&
	dmA cluster start --data-dir A --port "$(server_port A)" --metrics-public >/dev/null &&
	scrape A --no-auth >metrics.txt &&
	echo 200 >expect && test_cmp expect status &&
	grep "^dm_dots 0$" metrics.txt
'

test_expect_success 'dmd init takes no --metrics-public' '
	test_must_fail dmd init --data-dir other --metrics-public 2>err &&
	grep "is for dmd start" err
'

test_done
