#!/usr/bin/env bash
test_description='the README walk-through works as written, against a real dmd'
. "$(dirname "$0")/test-lib.sh"

readme="$DM_SOURCE_DIR/README.md"
data="$TRASH_DIRECTORY/data"
port=$(test_free_port)
export DM_CONFIG="$TRASH_DIRECTORY/config"

test_atexit 'dm cluster stop --data-dir "$data" >/dev/null 2>&1'

test_expect_success 'the README has a walk-through' '
	sed -n "/<!-- walkthrough -->/,/<!-- \/walkthrough -->/p" "$readme" |
		sed -e "/^<!--/d" -e "/^\`\`\`/d" >walkthrough.sh &&
	test $(wc -l <walkthrough.sh) -gt 10
'

test_expect_success 'start a private dmd' '
	dm cluster init --data-dir "$data" --port "$port" >/dev/null
'

test_expect_success 'the walk-through runs without an error' '
	bash -e -x walkthrough.sh >out 2>trace
'

test_expect_success 'and does what its comments say' '
	grep "^Modified: *stock.txt" out &&
	test $(grep -c "^commit " out) -ge 2 &&
	grep "ticket: 42" out &&
	grep "^\* experiment" out &&
	test "$(cat shop/stock.txt)" = "apples: 3" &&
	grep "^./then is commit .* of .shop., read-only$" out && ! test -e then &&
	grep "^Forked .shop. into .shop-test." out &&
	test "$(dm log --dot shop-test --json | python3 -c "import json, sys; print(len(json.load(sys.stdin)[\"commits\"]))")" = 1 &&
	dm log --dot shop >log && grep -c "^commit " log >n && echo 1 >expect && test_cmp expect n
'

test_done
