#!/usr/bin/env bash
test_description='push of stacked new branches; users with the same dot name in their namespaces; collaborators; permission refusals on push, pull and clone'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"

# What this proves: pushing a branch that stands on other branches nobody
# pushed yet brings every commit it stands on, so the whole line shows on
# the other side; one server holds alice/shop and bob/shop as two distinct
# dots; a collaborator of a dot may push to it and nobody else may; and a
# user can neither push into another user's namespace nor read a dot that
# is not theirs, and a refused transfer leaves nothing behind.
#
# A is where the data is made (its client is admin there); B is the shared
# server with users alice, bob and carol, each a remote of A's client.

unset DM_API_KEY

test_expect_success 'setup: dmds A and B, users alice, bob and carol on B' '
	servers_init A B &&
	dmB user add alice >alice.key 2>/dev/null &&
	dmB user add bob >bob.key 2>/dev/null &&
	dmB user add carol >carol.key 2>/dev/null &&
	user_remote A alice alice B alice.key &&
	user_remote A bob bob B bob.key &&
	user_remote A carol carol B carol.key
'

test_expect_success 'setup: on A, branch b2 made from b1 made from master, all new' '
	dmA init stack &&
	dmA mount stack sm && echo m >sm/m && head -c 200000 /dev/urandom >sm/blob &&
	dmA commit --dot stack -m m1 >m1 &&
	dmA checkout -b b1 --dot stack &&
	dmA mount stack@b1 s1 && echo one >s1/one &&
	dmA commit --dot stack -m c1 >c1 &&
	dmA checkout -b b2 --dot stack &&
	dmA mount stack@b2 s2 && echo two >s2/two &&
	dmA commit --dot stack -m c2 >c2 &&
	log_ids dmA log --dot stack >expect &&
	cat c2 c1 m1 >line && test_cmp line expect
'

test_expect_success 'pushing b2 alone brings the commits it stands on: dm log there shows the whole line' '
	dmA push b stack b2 >out &&
	grep "pushed 3 commits" out &&
	test "$(dot_id dmA dot show stack)" = "$(dot_id dmB dot show stack)" &&
	dmB branch --dot stack -H >branches &&
	grep -w b2 branches && ! grep -w b1 branches &&
	dmB checkout b2 --dot stack &&
	log_ids dmB log --dot stack >actual &&
	test_cmp line actual &&
	dmB mount stack@b2 r2 &&
	diff -r s2/ r2/ && test -f r2/m && test -f r2/one && test -f r2/two
'

test_expect_success 'then b1 needs no data, only its commits' '
	dmA push b stack b1 >out &&
	grep "pushed 2 commits" out &&
	last_transfer A >t.json &&
	test "$(transfer_field objects_total <t.json)" = 0 &&
	dmB checkout b1 --dot stack &&
	cat c1 m1 >expect && log_ids dmB log --dot stack >actual &&
	test_cmp expect actual
'

test_expect_success 'alice/shop and bob/shop on one server: two dots with their own data' '
	dmA init shop &&
	dmA mount shop shopA && echo "alice sells apples" >shopA/stock &&
	dmA commit --dot shop -m alice >/dev/null &&
	dmA init shop2 &&
	dmA mount shop2 shop2A && echo "bob sells bikes" >shop2A/stock &&
	head -c 100000 /dev/urandom >shop2A/bikes &&
	dmA commit --dot shop2 -m bob >/dev/null &&
	dmA push alice shop --remote-name alice/shop >/dev/null &&
	dmA push bob shop2 --remote-name bob/shop >/dev/null &&
	test "$(dot_id dmB dot show alice/shop)" = "$(dot_id dmA dot show shop)" &&
	test "$(dot_id dmB dot show bob/shop)" = "$(dot_id dmA dot show shop2)" &&
	test "$(dot_id dmB dot show alice/shop)" != "$(dot_id dmB dot show bob/shop)" &&
	dmB list -H >list &&
	grep "alice/shop" list && grep "bob/shop" list &&
	dmB mount alice/shop aliceB && dmB mount bob/shop bobB &&
	diff -r shopA/ aliceB/ && diff -r shop2A/ bobB/ &&
	! diff -r aliceB/ bobB/ >/dev/null &&
	log_ids dmA log --dot shop >expect && log_ids dmB log --dot alice/shop >actual &&
	test_cmp expect actual &&
	log_ids dmA log --dot shop2 >expect && log_ids dmB log --dot bob/shop >actual &&
	test_cmp expect actual
'

test_expect_success 'each user reaches their own shop, not the other one' '
	dmA --remote alice dot show alice/shop >out && grep "^dot: *alice/shop$" out &&
	test_status 10 dmA --remote alice dot show bob/shop &&
	test_status 10 dmA --remote bob dot show alice/shop
'

test_expect_success 'bob cannot push to alice/shop before he is a collaborator' '
	echo "pears too" >>shopA/stock &&
	dmA commit --dot shop -m pears >/dev/null &&
	log_ids dmB log --dot alice/shop >before &&
	test_status 10 dmA push bob shop --remote-name alice/shop &&
	grep "^dm: user .bob. may not push to .alice/shop.: only its owner, an admin or a collaborator with role write may" err &&
	log_ids dmB log --dot alice/shop >after && test_cmp before after
'

test_expect_success 'a collaborator (bob, added to alice/shop) can push to it' '
	dmB dot add-collaborator alice/shop bob &&
	dmA push bob shop --remote-name alice/shop >out &&
	grep "pushed 1 commit " out &&
	log_ids dmA log --dot shop >expect &&
	log_ids dmB log --dot alice/shop >actual &&
	test_cmp expect actual && test $(wc -l <actual) = 2 &&
	diff -r shopA/ aliceB/
'

test_expect_success 'carol, not a collaborator, cannot: the refusal says what she lacks, nothing changes' '
	echo "plums" >>shopA/stock &&
	dmA commit --dot shop -m plums >/dev/null &&
	log_ids dmB log --dot alice/shop >before &&
	test_status 10 dmA push carol shop --remote-name alice/shop &&
	grep "^dm: user .carol. may not push to .alice/shop.: only its owner, an admin or a collaborator with role write may" err &&
	log_ids dmB log --dot alice/shop >after && test_cmp before after &&
	! grep plums aliceB/stock
'

test_expect_success 'a push into another user'\''s namespace is refused, and makes no dot; without a name there it goes to the user'\''s own (dotmesh'\''s default)' '
	dmA init cdot &&
	dmA mount cdot cdotA && echo c >cdotA/c &&
	head -c 2000000 /dev/urandom >cdotA/data &&
	dmA commit --dot cdot -m c >/dev/null &&
	test_status 10 dmA push carol cdot --remote-name alice/cdot &&
	grep "^dm: user .carol. may not create .alice/cdot.: only user .alice. or an admin may create dots in namespace .alice." err &&
	last_transfer A >t.json && wire=$(transfer_field wire_bytes <t.json) &&
	echo "wire bytes of the refused push: $wire" &&
	test "${wire:-0}" -lt 100000 &&
	test_status 3 dmB dot show alice/cdot &&
	test_status 10 dmA push carol cdot --remote-name admin/cdot &&
	grep "^dm: user .carol. may not create .cdot.: only user .admin. or an admin" err &&
	test_status 3 dmB dot show cdot &&
	dmA push carol cdot >out &&
	grep "to .carol/cdot. on" out &&
	test "$(dot_id dmB dot show carol/cdot)" = "$(dot_id dmA dot show cdot)"
'

test_expect_success 'a pull or clone of a dot you cannot read is refused, and makes nothing' '
	test_status 10 dmA clone carol alice/shop --local-name stolen &&
	grep "^dm: user .carol. may not read .alice/shop.: only its owner, an admin or a collaborator with role read may" err &&
	test_status 3 dmA dot show stolen &&
	log_ids dmA log --dot shop >before &&
	test_status 10 dmA pull carol shop --remote-name alice/shop &&
	grep "^dm: user .carol. may not read .alice/shop." err &&
	log_ids dmA log --dot shop >after && test_cmp before after
'

test_expect_success 'a clone of a dot that is already here under another name is refused' '
	test_status 4 dmA clone alice alice/shop --local-name mine &&
	grep "already here as .shop.; pull into that instead" err &&
	test_status 3 dmA dot show mine
'

test_done
