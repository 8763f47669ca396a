#!/usr/bin/env bash
test_description='GET /metrics: what a commit, a failed call, a pull and a collection change moves the metrics that count them'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-metrics.sh"

# What this proves, each by a scrape before and after one operation:
#   - a commit adds one to dm_rpc_requests_total{dots.commit, ok} and to
#     the dot_commit jobs' count, and its bytes to what the store was given;
#   - a call of a dot that is not there adds one to its not_found outcome;
#   - a new dot and branch show in dm_dots and dm_branches at once;
#   - a pull adds one pull and its bytes on the wire;
#   - a collection adds one run; the KV's calls are timed.

test_expect_success 'setup: dmds A and B, a dot on A' '
	servers_init A B &&
	dmA init shop &&
	dmA mount shop shopA &&
	head -c 100000 /dev/urandom >shopA/blob &&
	dmA commit -m first >/dev/null &&
	scrape A >before.txt
'

ok='dm_rpc_requests_total{method="dots.commit",outcome="ok"}'
jobs='dm_job_duration_seconds_count{kind="dot_commit"}'
fresh='dm_store_put_bytes_total{result="new"}'

test_expect_success 'a commit counts one dots.commit, one commit job and its new bytes' '
	head -c 50000 /dev/urandom >shopA/more &&
	dmA commit -m second >/dev/null &&
	scrape A >after.txt &&
	test $(( $(metric after.txt "$ok") - $(metric before.txt "$ok") )) = 1 &&
	test $(( $(metric after.txt "$jobs") - $(metric before.txt "$jobs") )) = 1 &&
	test $(( $(metric after.txt "$fresh") - $(metric before.txt "$fresh") )) -ge 50000
'

test_expect_success 'a call of a missing dot counts as not_found' '
	nf="dm_rpc_requests_total{method=\"dots.commit\",outcome=\"not_found\"}" &&
	test_must_fail dmA commit --dot nosuch -m x 2>/dev/null &&
	scrape A >after2.txt &&
	test $(( $(metric after2.txt "$nf") - $(metric after.txt "$nf") )) = 1 &&
	test "$(metric after2.txt "$ok")" = "$(metric after.txt "$ok")"
'

test_expect_success 'a new dot and branch show at once' '
	dmA init cart &&
	dmA checkout -b autumn --dot shop >/dev/null &&
	scrape A >after3.txt &&
	test "$(metric after3.txt dm_dots)" = 2 &&
	test "$(metric after3.txt dm_branches)" = 3
'

test_expect_success 'a clone from A counts one pull on B, with its bytes' '
	dmB clone a shop >/dev/null 2>&1 &&
	scrape B >b.txt &&
	test "$(metric b.txt "dm_transfers_total{direction=\"pull\",outcome=\"ok\"}")" = 1 &&
	test "$(metric b.txt "dm_transfer_bytes_total{direction=\"pull\",outcome=\"ok\"}")" -ge 150000 &&
	test "$(metric b.txt "dm_transfer_duration_seconds_count{direction=\"pull\",outcome=\"ok\"}")" = 1
'

test_expect_success 'a collection counts one run; KV calls are timed' '
	dmA dot delete -f cart >/dev/null &&
	dmA gc >/dev/null &&
	scrape A >after4.txt &&
	test "$(metric after4.txt "dm_gc_runs_total{outcome=\"ok\"}")" = 1 &&
	test "$(metric after4.txt "dm_gc_duration_seconds_count")" = 1 &&
	test "$(metric after4.txt "dm_kv_call_duration_seconds_count{backend=\"lmdb\",call=\"txn\"}")" -gt 0
'

test_done
