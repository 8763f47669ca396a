#!/usr/bin/env bash
test_description='GET /metrics: what promtool accepts, the metrics docs/metrics.md lists, no dot in a label, and counters that move with what they count'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-metrics.sh"

# What this proves, by scrapes before and after each operation:
#   - a commit adds one to dm_rpc_requests_total{dots.commit, ok} and to the
#     dot_commit jobs' count, and its new bytes to what the store was given;
#   - a call of a dot that is not there counts as not_found;
#   - new dots and branches show in dm_dots and dm_branches at once;
#   - a clone counts one pull with its bytes and time on the node that
#     ran it; a collection counts one run; KV calls are timed;
#   - after all that, /metrics of both nodes is what Debian's `promtool
#     check metrics` accepts with no complaint (names, types, help, units,
#     histogram series), the metrics written are exactly those
#     docs/metrics.md lists, and no label carries a dot's name or id.

ok='dm_rpc_requests_total{method="dots.commit",outcome="ok"}'
nf='dm_rpc_requests_total{method="dots.commit",outcome="not_found"}'
jobs='dm_job_duration_seconds_count{kind="dot_commit"}'
fresh='dm_store_put_bytes_total{result="new"}'

# delta BEFORE AFTER SERIES: how much SERIES grew from file BEFORE to AFTER.
delta() {
	echo $(($(metric "$2" "$3") - $(metric "$1" "$3")))
}

test_expect_success 'setup: dmds A and B; on A the dot shop with two branches' '
	command -v promtool &&
	servers_init A B &&
	shop_two_branches A &&
	scrape A >m0.txt
'

test_expect_success 'a commit counts one dots.commit, one commit job and its new bytes' '
	head -c 50000 /dev/urandom >shopA/blob &&
	dmA commit -m third >/dev/null &&
	scrape A >m1.txt &&
	test "$(delta m0.txt m1.txt "$ok")" = 1 &&
	test "$(delta m0.txt m1.txt "$jobs")" = 1 &&
	test "$(delta m0.txt m1.txt "$fresh")" -ge 50000
'

test_expect_success 'a call of a missing dot counts as not_found, not ok' '
	test_must_fail dmA commit --dot nosuch -m x 2>/dev/null &&
	scrape A >m2.txt &&
	test "$(delta m1.txt m2.txt "$nf")" = 1 &&
	test "$(delta m1.txt m2.txt "$ok")" = 0
'

test_expect_success 'new dots and branches show at once' '
	test "$(metric m2.txt dm_dots)" = 1 &&
	test "$(metric m2.txt dm_branches)" = 2 &&
	dmA init cart &&
	scrape A >m3.txt &&
	test "$(metric m3.txt dm_dots)" = 2 &&
	test "$(metric m3.txt dm_branches)" = 3
'

test_expect_success 'a clone counts one pull on the node that ran it, with its bytes and time' '
	dmB clone a shop >/dev/null 2>&1 &&
	scrape B >b.txt &&
	test "$(metric b.txt "dm_transfers_total{direction=\"pull\",outcome=\"ok\"}")" = 1 &&
	test "$(metric b.txt "dm_transfer_bytes_total{direction=\"pull\",outcome=\"ok\"}")" -ge 50000 &&
	test "$(metric b.txt "dm_transfer_duration_seconds_count{direction=\"pull\",outcome=\"ok\"}")" = 1
'

test_expect_success 'a collection counts one run; KV calls are timed' '
	dmA dot delete -f cart >/dev/null &&
	dmA gc >/dev/null &&
	scrape A >metrics.txt &&
	test "$(metric metrics.txt "dm_gc_runs_total{outcome=\"ok\"}")" = 1 &&
	test "$(metric metrics.txt dm_gc_duration_seconds_count)" = 1 &&
	test "$(metric metrics.txt "dm_kv_call_duration_seconds_count{backend=\"lmdb\",call=\"txn\"}")" -gt 0
'

test_expect_success 'promtool check metrics finds nothing to complain about' '
	promtool check metrics <metrics.txt >lint 2>&1 &&
	test ! -s lint &&
	promtool check metrics <b.txt >lint 2>&1 &&
	test ! -s lint
'

test_expect_success 'the metrics written are exactly those docs/metrics.md lists' '
	sed -n "s/^# TYPE \([a-z_]*\) .*/\1/p" metrics.txt | sort >written &&
	sed -n "s/^| \`\([a-z_]*\)\` |.*/\1/p" "$DM_SOURCE_DIR/docs/metrics.md" | sort >documented &&
	test_cmp documented written
'

test_expect_success 'no label carries a dot name or id' '
	id=$(dot_id dmA dot show shop) &&
	! grep -e "$id" -e shop -e cart metrics.txt b.txt
'

test_done
