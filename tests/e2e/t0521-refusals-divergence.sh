#!/usr/bin/env bash
test_description='refusals that say why: uncommitted, diverged, --stash-on-divergence on push, pull and clone, a stopped or silent remote, two pushes of one branch at once'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"

# What this proves: a push onto a branch with uncommitted changes is refused
# ("uncommitted") and leaves them alone; when both sides committed since
# they were the same, push and pull are refused ("diverged") and change
# nothing, and with --stash-on-divergence the receiving side keeps its
# commits on BRANCH-DIVERGED-<time> and takes the sender's line; clone
# accepts the option; a stopped or silent remote fails the command within
# seconds, naming its address; of two pushes of one branch at once exactly
# one wins and the other says why, and the remote holds the winner's head.

unset DM_API_KEY

# The DIVERGED-<time> branches of a dot, one a line, from `dm branch -H`.
diverged_branches() {
	"$@" -H | grep -o '[A-Za-z0-9_-]*-DIVERGED-[A-Za-z0-9_-]*' | sort -u
}

test_expect_success 'setup: dmds A, B and C; a dot cart on A pushed to B' '
	servers_init A B C &&
	dmA init cart &&
	dmA mount cart cartA && echo one >cartA/one &&
	dmA commit --dot cart -m one >/dev/null &&
	dmA push b cart >/dev/null &&
	dmB mount cart cartB && diff -r cartA/ cartB/
'

test_expect_success 'a push onto a branch with uncommitted changes is refused: "uncommitted"' '
	echo "work in progress" >cartB/wip &&
	echo two >cartA/two &&
	dmA commit --dot cart -m two >/dev/null &&
	log_ids dmB log --dot cart >before &&
	test_must_fail dmA push b cart 2>err &&
	grep "uncommitted" err && test $(grep -c "^dm: " err) = 1 &&
	log_ids dmB log --dot cart >after && test_cmp before after &&
	test "$(cat cartB/wip)" = "work in progress" && test ! -e cartB/two
'

test_expect_success 'once the changes are gone, the same push goes through' '
	rm cartB/wip &&
	dmA push b cart >out &&
	grep "pushed 1 commit " out &&
	log_ids dmA log --dot cart >expect && log_ids dmB log --dot cart >actual &&
	test_cmp expect actual && diff -r cartA/ cartB/
'

test_expect_success 'both sides committed: the push is refused, "diverged", and B keeps its line' '
	echo "from A" >cartA/a1 && dmA commit --dot cart -m a1 >a1 &&
	echo "from B" >cartB/b1 && dmB commit --dot cart -m b1 >b1 &&
	log_ids dmB log --dot cart >before &&
	test_must_fail dmA push b cart 2>err &&
	grep "diverged" err && grep "stash-on-divergence" err &&
	log_ids dmB log --dot cart >after && test_cmp before after &&
	test -f cartB/b1 && test ! -e cartB/a1 &&
	diverged_branches dmB branch --dot cart >stashes && test_cmp /dev/null stashes
'

test_expect_success 'push --stash-on-divergence: B keeps its commits on master-DIVERGED-<time>, takes A'\''s' '
	dmA push b cart --stash-on-divergence >out &&
	grep "master-DIVERGED-" out &&
	log_ids dmA log --dot cart >expect && log_ids dmB log --dot cart >actual &&
	test_cmp expect actual &&
	diff -r cartA/ cartB/ &&
	diverged_branches dmB branch --dot cart >stashes &&
	test $(wc -l <stashes) = 1 && grep "^master-DIVERGED-" stashes &&
	dmB branch --dot cart >listing && grep "$(cat stashes)" listing &&
	dmB checkout "$(cat stashes)" --dot cart &&
	log_ids dmB log --dot cart >stashed &&
	test "$(head -n 1 stashed)" = "$(cat b1)" &&
	sed -n 2p stashed >base && sed -n 2p before >expect && test_cmp expect base &&
	dmB mount "cart@$(cat stashes)" stashB && test "$(cat stashB/b1)" = "from B" &&
	dmB checkout master --dot cart
'

test_expect_success 'both sides committed again: the pull is refused, "diverged", and A keeps its line' '
	echo "again from B" >cartB/b2 && dmB commit --dot cart -m b2 >b2 &&
	echo "again from A" >cartA/a2 && dmA commit --dot cart -m a2 >a2 &&
	log_ids dmA log --dot cart >before &&
	test_must_fail dmA pull b cart 2>err &&
	grep "diverged" err &&
	log_ids dmA log --dot cart >after && test_cmp before after &&
	test -f cartA/a2 && test ! -e cartA/b2 &&
	diverged_branches dmA branch --dot cart >stashes && test_cmp /dev/null stashes
'

test_expect_success 'pull --stash-on-divergence: A keeps its commits on a DIVERGED branch, takes B'\''s' '
	dmA pull b cart master --stash-on-divergence >out &&
	log_ids dmB log --dot cart >expect && log_ids dmA log --dot cart >actual &&
	test_cmp expect actual && diff -r cartB/ cartA/ &&
	diverged_branches dmA branch --dot cart >stashes &&
	test $(wc -l <stashes) = 1 && grep "^master-DIVERGED-" stashes &&
	dmA checkout "$(cat stashes)" --dot cart &&
	log_ids dmA log --dot cart >stashed &&
	test "$(head -n 1 stashed)" = "$(cat a2)" &&
	dmA checkout master --dot cart
'

test_expect_success 'clone --stash-on-divergence is accepted and clones every branch' '
	dmC clone b cart --stash-on-divergence >out &&
	log_ids dmB log --dot cart >expect && log_ids dmC log --dot cart >actual &&
	test_cmp expect actual &&
	diverged_branches dmB branch --dot cart >expect &&
	diverged_branches dmC branch --dot cart >actual &&
	test_cmp expect actual && test $(wc -l <actual) = 1
'

test_expect_success 'two pushes of one branch at once: one wins, the other says why' '
	dmA init race &&
	dmA mount race raceA && echo base >raceA/base &&
	dmA commit --dot race -m base >/dev/null &&
	dmA push b race >/dev/null &&
	dmC clone b race >/dev/null &&
	dmC mount race raceC &&
	head -c 8000000 /dev/urandom >raceA/data && dmA commit --dot race -m fromA >headA &&
	head -c 8000000 /dev/urandom >raceC/data && dmC commit --dot race -m fromC >headC &&
	{ { dmA push b race >outA 2>errA; echo $? >rcA; } & } &&
	{ { dmC push b race >outC 2>errC; echo $? >rcC; } & } &&
	wait &&
	echo "A: $(cat rcA) $(cat errA)" && echo "C: $(cat rcC) $(cat errC)" &&
	if [ "$(cat rcA)" = 0 ]; then win=A lose=C; else win=C lose=A; fi &&
	test "$(cat rc$win)" = 0 && test "$(cat rc$lose)" != 0 &&
	grep -E "conflict|moved|diverged" err$lose &&
	log_ids dmB log --dot race >remote &&
	test "$(head -n 1 remote)" = "$(cat head$win)" &&
	! grep -f head$lose remote &&
	dmB mount race raceB &&
	if [ $win = A ]; then diff -r raceA/ raceB/; else diff -r raceC/ raceB/; fi
'

test_expect_success 'a stopped remote fails the push within seconds, naming its address' '
	server_stop C &&
	start=$(date +%s) &&
	test_must_fail dmA push c cart 2>err &&
	end=$(date +%s) &&
	test $((end - start)) -le 5 &&
	grep "127.0.0.1:$port_C" err && test $(grep -c "^dm: " err) = 1 &&
	start=$(date +%s) &&
	test_must_fail dmA pull c cart 2>err &&
	end=$(date +%s) &&
	test $((end - start)) -le 5 &&
	grep "127.0.0.1:$port_C" err
'

test_expect_success PYTHON 'a remote that accepts connections and never answers fails the push, naming it' '
	silent_port=$(test_free_port) &&
	{ python3 -c "import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((\"127.0.0.1\", int(sys.argv[1]))); s.listen(64)
time.sleep(120)" "$silent_port" & } &&
	silent_pid=$! &&
	test_when_finished "kill $silent_pid" &&
	python3 - "$HOME/confA" "$silent_port" <<-\EOF &&
	import json, sys
	c = json.load(open(sys.argv[1]))
	c["remotes"]["silent"] = {"user": "admin", "host": "127.0.0.1", "port": int(sys.argv[2]),
	                          "api_key": "0" * 64}
	json.dump(c, open(sys.argv[1], "w"))
	EOF
	sleep 0.3 &&
	start=$(date +%s) &&
	test_must_fail dmA push silent cart 2>err &&
	end=$(date +%s) &&
	echo "failed after $((end - start)) s: $(cat err)" &&
	test $((end - start)) -le 15 &&
	grep "127.0.0.1:$silent_port" err
'

test_done
