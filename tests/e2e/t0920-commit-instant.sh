#!/usr/bin/env bash
test_description='dm commit as of one instant on the dir engine, with real Docker containers: the containers frozen for the last pass and recorded, a host writer reported, the freeze bounded, never left frozen by a dmd killed or stopped during it, and the consistency hooks (order, output, failure, timeout, who may set them)'
. "$(dirname "$0")/test-lib.sh"

# What this proves, through the real dm and dmd and the private dockerd of
# shared/containers/docker.sh (lib-docker.sh):
#   - a commit of a branch a running container writes pauses it for the
#     last pass only: `dm log -v`, `dm log --json` and `dm dot show` say
#     "frozen for N ms (CONTAINER)", and what was committed is one instant
#     of the container's writes (a counter file and a log of it agree);
#   - with nothing to freeze, a quiet working copy commits "quiet", and one
#     a host process writes while it is read commits "not-instant", with a
#     warning from `dm commit` naming what changed;
#   - dm's own metadata keys (dm.*) cannot be given by a user;
#   - --max-freeze bounds the freeze: past it nothing is committed and the
#     container runs;
#   - a dmd SIGKILLed during a freeze leaves no container paused (its guard
#     thaws them), and one stopped during a freeze neither;
#   - hooks run in order, their output in dmd's log and the commit's record;
#     a failing or slow pre-commit hook commits nothing and the post-commit
#     hook still runs; host hooks are for admins; a container hook runs
#     only in a container that uses the branch.

. "$TEST_DIRECTORY/lib-docker.sh"

data=$HOME/data
export DM_CONFIG=$HOME/conf/config
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1"
docker_cleanup_at_exit

vol=$dk_prefix-shop
w=$dk_prefix-writer

# commits DOT: how many commits DOT's current branch has.
commits() {
	dm log --json --dot "$1" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["commits"]))'
}

# capture DOT FIELD: a field of the head commit's capture record.
capture() {
	dm log --json --dot "$1" | python3 -c 'import json, sys
c = json.load(sys.stdin)["commits"][0].get("capture", {})
print(c.get(sys.argv[1], ""))' "$2"
}

paused() {
	test "$(dk inspect -f '{{.State.Paused}}' "$1")" = true
}

running_not_paused() {
	test "$(dk inspect -f '{{.State.Running}} {{.State.Paused}}' "$1")" = "true false"
}

test_expect_success 'dmd with the Docker Engine API and the volume plugin' '
	port=$(test_free_port) &&
	dm cluster init --data-dir "$data" --port "$port" \
		--plugin-socket "$DM_PLUGIN_SOCK" --docker-socket "$DM_API_SOCK" >out &&
	grep "^dmd is running" out
'

test_expect_success 'a container writes a counter and a log of it on a dm volume' '
	dk_run -d --name "$w" --volume-driver "$DM_DOCKER_PLUGIN" -v "$vol:/data" localhost/busybox \
		sh -c "i=0; while :; do i=\$((i+1)); echo \$i >>/data/log; echo \$i >/data/c.new; mv /data/c.new /data/counter; sleep 0.005; done" >/dev/null &&
	wait_for "dmd to name $w" sh -c "dm dot show $vol | grep \"^containers: *$w\$\""
'

test_expect_success 'a commit freezes it for the last pass and records it' '
	id=$(dm commit -m "while it writes" --dot "$vol" 2>err) &&
	test ! -s err &&
	dm log -v --dot "$vol" 2>/dev/null >log &&
	grep "^capture: frozen for [0-9][0-9]* ms ($w)$" log &&
	test "$(capture "$vol" how)" = frozen &&
	ms=$(capture "$vol" freeze_ms) && test "$ms" -ge 0 && test "$ms" -lt 5000 &&
	dm dot show "$vol" >show &&
	grep "^captured: *frozen for [0-9]* ms ($w)$" show &&
	running_not_paused "$w"
'

# The container appends i to the log, then makes the counter i (a rename):
# any instant has the log's last line equal to the counter or one ahead.
test_expect_success 'what it committed is one instant of the writes: the counter and its log agree' '
	dm commit -m "again" --dot "$vol" >/dev/null &&
	test_when_finished "dk start $w >/dev/null" &&
	dk stop -t 1 "$w" >/dev/null &&
	dm reset --hard HEAD --dot "$vol" &&
	dm mount "$vol" "$HOME/m" &&
	counter=$(cat "$HOME/m/__default__/counter") &&
	last=$(tail -n 1 "$HOME/m/__default__/log") &&
	echo "counter $counter, last logged $last" &&
	test "$counter" -gt 0 &&
	{ test "$last" = "$counter" || test "$last" = "$((counter + 1))"; }
'

test_expect_success 'metadata keys under dm. are refused, by dm and by the API' '
	test_must_fail dm commit -m x -d dm.capture=snapshot --dot "$vol" 2>err &&
	grep "metadata key .dm.capture. is reserved" err
'

test_expect_success 'nothing to freeze, nothing changing: the commit is quiet' '
	dm init quiet &&
	dm mount quiet "$HOME/q" &&
	for i in $(seq 50); do echo "$i" >"$HOME/q/f$i"; done &&
	dm commit -m quiet --dot quiet >/dev/null 2>err &&
	test ! -s err &&
	dm log -v --dot quiet 2>/dev/null | grep "^capture: quiet$"
'

# The writer never sleeps; still, on a loaded machine it may get no CPU
# while a commit reads, and that commit is then rightly quiet: a few tries.
test_expect_success 'a host process writing while the commit reads: not one instant, said and recorded' '
	{ python3 -c "
import os, sys
d = sys.argv[1]
n = 0
while True:
    n += 1
    with open(os.path.join(d, \"w%d\" % (n % 500)), \"w\") as f:
        f.write(str(n))
" "$HOME/q" & } &&
	writer=$! &&
	test_when_finished "kill $writer 2>/dev/null; wait $writer 2>/dev/null; true" &&
	wait_for "the writer to write" test -e "$HOME/q/w499" &&
	for try in 1 2 3 4 5; do
		dm commit -m "busy $try" --dot quiet >/dev/null 2>err &&
		if test -s err; then break; fi
	done &&
	cat err &&
	grep "^dm: warning: not one instant: [0-9]* entries changed while the commit read them (the first: [^)]*); something writes to the dot that dm cannot freeze$" err &&
	dm log -v --dot quiet 2>/dev/null >log &&
	grep "^capture: not-instant$" log &&
	grep "^changed: [0-9]* entries changed while it was read, the first: " log
'

test_expect_success '--max-freeze bounds the freeze: past it nothing is committed and the container runs' '
	n=$(commits "$vol") &&
	test_must_fail dm commit -m bounded --max-freeze 1ms --dot "$vol" 2>err &&
	grep "longer than 1 ms (--max-freeze); they run again and nothing was committed" err &&
	test "$(commits "$vol")" = "$n" &&
	running_not_paused "$w" &&
	test_must_fail dm commit -m x --max-freeze soon --dot "$vol" 2>err &&
	grep "invalid --max-freeze .soon." err
'

# A freeze long enough to act during it: a 1 GiB file the container keeps
# changing must be copied while frozen (on a file system without reflinks;
# with reflinks the freeze is too short to catch, and the guard is proven
# by t0900).
test_expect_success 'a long freeze: a 1 GiB file the container keeps changing' '
	dk exec "$w" sh -c "dd if=/dev/zero of=/data/big bs=1M count=1024 2>/dev/null" &&
	dk exec -d "$w" sh -c "while :; do echo x >>/data/big; sleep 0.05; done"
'

reflinks() {
	cp --reflink=always "$data/dmd.log" "$data/reflink-probe" 2>/dev/null
	local rc=$?
	rm -f "$data/reflink-probe"
	return $rc
}
reflinks || test_set_prereq COPIES

test_expect_success COPIES 'dmd SIGKILLed during a freeze: the guard thaws the container at once' '
	{ dm commit -m killed --max-freeze 120s --dot "$vol" >/dev/null 2>&1 & } &&
	wait_for "the container to be frozen" paused "$w" &&
	kill -9 "$(cat "$data/dmd.pid")" &&
	wait_for "the guard to thaw it" running_not_paused "$w" &&
	ls "$data/freezes" >journals &&
	dm cluster start --data-dir "$data" --plugin-socket "$DM_PLUGIN_SOCK" \
		--docker-socket "$DM_API_SOCK" >/dev/null &&
	ls "$data/freezes" >journals &&
	test ! -s journals &&
	running_not_paused "$w"
'

test_expect_success COPIES 'dmd stopped during a freeze: the container runs' '
	{ dm commit -m stopped --max-freeze 120s --dot "$vol" >/dev/null 2>&1 & } &&
	wait_for "the container to be frozen" paused "$w" &&
	dmd stop --data-dir "$data" >/dev/null &&
	running_not_paused "$w" &&
	dm cluster start --data-dir "$data" --plugin-socket "$DM_PLUGIN_SOCK" \
		--docker-socket "$DM_API_SOCK" >/dev/null
'

test_expect_success 'the long-freeze writer stops' '
	dk restart -t 1 "$w" >/dev/null &&
	dk exec "$w" rm -f /data/big &&
	wait_for "dmd to name $w again" sh -c "dm dot show $vol | grep \"^containers: *$w\$\""
'

test_expect_success 'hooks: pre-commit before the commit reads, post-commit after it, output in the log' '
	dm dot set-hook "$vol" pre-commit --container "$w" -- \
		sh -c "echo pre >>/data/hooks; echo \"pre-hook says \$DM_HOOK of \$DM_DOT\"" &&
	dm dot set-hook "$vol" post-commit --container "$w" --timeout 10s -- \
		sh -c "echo post >>/data/hooks; echo post-hook says \$DM_COMMIT" &&
	dm dot show "$vol" >show &&
	grep "^pre-commit: *in container $w: sh -c echo pre.* (timeout 60000 ms)$" show &&
	grep "^post-commit: *in container $w: sh .* (timeout 10000 ms)$" show &&
	id=$(dm commit -m hooked --dot "$vol") &&
	dm log -v --dot "$vol" 2>/dev/null >log &&
	grep "^hooks: pre-commit: ok in [0-9]* ms; post-commit: ok in [0-9]* ms$" log &&
	grep "pre-commit hook of dot admin/$vol: pre-hook says pre-commit of admin/$vol" "$data/dmd.log" &&
	grep "post-commit hook of dot admin/$vol: post-hook says $id" "$data/dmd.log" &&
	dm diff -H --dot "$vol" >diff &&
	grep "^modified	__default__/hooks$" diff &&
	dk stop -t 1 "$w" >/dev/null &&
	dm reset --hard HEAD --dot "$vol" &&
	test "$(tail -n 1 "$HOME/m/__default__/hooks")" = pre &&
	dk start "$w" >/dev/null &&
	wait_for "dmd to name $w again" sh -c "dm dot show $vol | grep \"^containers: *$w\$\""
'

test_expect_success 'a failing pre-commit hook commits nothing, and the post-commit hook still runs' '
	n=$(commits "$vol") &&
	dm dot set-hook "$vol" pre-commit --container "$w" -- sh -c "echo boom; exit 3" &&
	: >"$HOME/m/__default__/hooks" &&
	test_must_fail dm commit -m "not made" --dot "$vol" 2>err &&
	cat err &&
	grep "nothing was committed" err &&
	grep "boom" err &&
	test "$(commits "$vol")" = "$n" &&
	wait_for "the post-commit hook" grep -q "^post$" "$HOME/m/__default__/hooks"
'

test_expect_success 'a pre-commit hook past its timeout is stopped and commits nothing' '
	n=$(commits "$vol") &&
	dm dot set-hook "$vol" pre-commit --container "$w" --timeout 300ms -- sleep 30 &&
	start=$(date +%s) &&
	test_must_fail dm commit -m "too slow" --dot "$vol" 2>err &&
	cat err &&
	test $(($(date +%s) - start)) -lt 15 &&
	grep "did not finish within 300 ms and was killed" err &&
	test "$(commits "$vol")" = "$n" &&
	dm dot set-hook "$vol" pre-commit --remove &&
	dm dot set-hook "$vol" post-commit --remove &&
	dm dot show "$vol" >show &&
	grep "^pre-commit: *none$" show
'

test_expect_success 'a hook on the host: only an admin sets it; it runs with the dot in its environment' '
	dm dot set-hook quiet pre-commit -- sh -c "echo \"\$DM_DOT \$DM_BRANCH\" >\"$HOME/host-hook\"" &&
	dm commit -m "host hook" --dot quiet >/dev/null 2>&1 &&
	test "$(cat "$HOME/host-hook")" = "admin/quiet master" &&
	dm dot set-hook quiet pre-commit --remove &&
	dm user add bob >key 2>/dev/null &&
	DM_API_KEY=$(cat key) dm remote add bob "bob@127.0.0.1:$port" --ca-file "$data/ca.pem" >/dev/null &&
	dm --remote bob init bob/bobs &&
	test_must_fail dm --remote bob dot set-hook bob/bobs pre-commit -- true 2>err &&
	grep "only an admin may set a hook that runs on the host" err
'

test_expect_success 'a container hook runs only in a container that uses the branch' '
	dm dot set-hook quiet pre-commit --container "$w" -- true &&
	test_must_fail dm commit -m "elsewhere" --dot quiet 2>err &&
	grep "which does not use branch .master. of the dot" err &&
	dm dot set-hook quiet pre-commit --remove
'

test_expect_success 'bad hooks are refused with the reason' '
	test_must_fail dm dot set-hook "$vol" pre-commit 2>err &&
	grep "give the command after" err &&
	test_must_fail dm dot set-hook "$vol" on-push -- true 2>err &&
	grep "no hook .on-push." err &&
	test_must_fail dm dot set-hook "$vol" pre-commit --container "bad name" -- true 2>err &&
	cat err
'

test_done
