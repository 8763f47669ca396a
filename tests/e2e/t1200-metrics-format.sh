#!/usr/bin/env bash
test_description='GET /metrics: Prometheus text format that promtool accepts, every metric docs/metrics.md lists, no dot in a label'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-metrics.sh"

# What this proves:
#   - after dots, commits, a branch, a push, a collection and a failed
#     call, /metrics is what Debian's `promtool check metrics` accepts
#     with no complaint (names, types, help, units, histogram series);
#   - the metrics /metrics writes are exactly those docs/metrics.md lists;
#   - no label carries a dot's name or id (labels are bounded sets).

test_expect_success 'setup: dmds A and B; dots, commits, a branch, a push, a gc, a failure' '
	command -v promtool &&
	servers_init A B &&
	dmA init shop &&
	dmA mount shop shopA &&
	echo "apples: 3" >shopA/stock.txt &&
	dmA commit -m first >/dev/null &&
	dmA checkout -b autumn >/dev/null &&
	echo "pears: 2" >>shopA/stock.txt &&
	dmA commit -m second >/dev/null &&
	dmA push b shop >/dev/null 2>&1 &&
	dmA gc >/dev/null &&
	test_must_fail dmA commit --dot nosuchdot -m x 2>/dev/null
'

test_expect_success 'promtool check metrics finds nothing to complain about' '
	scrape A >metrics.txt &&
	echo 200 >expect && test_cmp expect status &&
	promtool check metrics <metrics.txt >lint 2>&1 &&
	test ! -s lint &&
	scrape B >metrics-b.txt &&
	promtool check metrics <metrics-b.txt
'

test_expect_success 'the metrics are those docs/metrics.md lists, and moved as the setup did' '
	sed -n "s/^# TYPE \([a-z_]*\) .*/\1/p" metrics.txt | sort >written &&
	sed -n "s/^| \`\([a-z_]*\)\` |.*/\1/p" "$DM_SOURCE_DIR/docs/metrics.md" | sort >documented &&
	test_cmp documented written &&
	test "$(metric metrics.txt dm_dots)" = 1 &&
	test "$(metric metrics.txt dm_branches)" = 2 &&
	test "$(metric metrics.txt "dm_gc_runs_total{outcome=\"ok\"}")" = 1 &&
	test "$(metric metrics.txt "dm_transfers_total{direction=\"push\",outcome=\"ok\"}")" = 1 &&
	test "$(metric metrics.txt "dm_rpc_requests_total{method=\"dots.commit\",outcome=\"not_found\"}")" = 1
'

test_expect_success 'no label carries a dot name or id' '
	id=$(dot_id dmA dot show shop) &&
	! grep -e "$id" -e "shop" metrics.txt &&
	! grep -e "$id" -e "shop" metrics-b.txt
'

test_done
