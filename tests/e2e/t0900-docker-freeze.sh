#!/usr/bin/env bash
test_description='freezing containers of the real Docker engine for a one-instant commit: a freeze stops a counting container and the end restarts it; a thaw guard thaws when the freezing process dies or the freeze outlives its limit; journals left by a dead process are undone by recovery; a container paused by someone else is refused and left paused; exec runs commands in a container (output, exit status, environment, a deadline that kills); hooks run in a container'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-docker.sh"

# freeze_tool (tests/unit/freeze_tool.c) drives the library: see its usage.
freeze_tool=$DM_BUILD_DIR/tests/unit/freeze_tool
[ -x "$freeze_tool" ] || docker_setup_failed "no $freeze_tool: build first"
docker_cleanup_at_exit

ft() {
	"$freeze_tool" "$DM_API_SOCK" "$HOME/freezes" "$@"
}

ctr=${dk_prefix}-count
other=${dk_prefix}-other

# counter: what the counting container last wrote (it writes every 50 ms)
counter() {
	cat "$HOME/count/n"
}

paused() {
	test "$(dk inspect -f '{{.State.Paused}}' "$1")" = true
}

not_paused() {
	test "$(dk inspect -f '{{.State.Paused}}' "$1")" = false
}

# start_freeze KEY MAX_MS ID...: a freeze held by freeze_tool in the
# background ($fz_pid, the tool itself: not through ft, a function, which
# would make it a subshell's) until end_freeze writes a line to it (fd 8).
start_freeze() {
	rm -f fz.in fz.out fz.err
	mkfifo fz.in
	"$freeze_tool" "$DM_API_SOCK" "$HOME/freezes" freeze "$@" <fz.in >fz.out 2>fz.err &
	fz_pid=$!
	exec 8>fz.in
	wait_for "the freeze to begin" grep -q '^frozen$' fz.out || { cat fz.err; return 1; }
}

end_freeze() {
	echo >&8
	exec 8>&-
	wait "$fz_pid"
}

# moving: the counter moves (within 2 s)
moving() {
	local c1
	c1=$(counter) &&
	for _ in $(seq 40); do
		[ "$(counter)" != "$c1" ] && return 0
		sleep 0.05
	done
	echo "counter stuck at $c1" >&2
	return 1
}

# still: the counter does not move for 0.6 s
still() {
	local c1
	c1=$(counter) && sleep 0.6 && test "$(counter)" = "$c1"
}

test_expect_success 'a container counts into a directory of ours' '
	mkdir -p count freezes &&
	dk_run -d --name "$ctr" -v "$HOME/count:/c" localhost/busybox \
		sh -c "i=0; while :; do i=\$((i+1)); echo \$i >/c/n.tmp && mv /c/n.tmp /c/n; sleep 0.05; done" &&
	dk_run -d --name "$other" localhost/busybox sleep 3600 &&
	wait_for "the counter" test -s count/n &&
	moving
'

test_expect_success 'pause and unpause; unpausing what is not paused is fine' '
	ft pause "$ctr" &&
	paused "$ctr" &&
	still &&
	ft unpause "$ctr" &&
	not_paused "$ctr" &&
	ft unpause "$ctr" &&
	moving &&
	test_status 1 ft pause "${dk_prefix}-nosuch" &&
	grep "DM_ENOTFOUND: no container" err
'

test_expect_success 'a freeze stops the container until it ends; its journal lives as long' '
	start_freeze k1 5000 "$ctr" "$other" &&
	paused "$ctr" && paused "$other" &&
	test -f freezes/k1.freeze &&
	test "$(stat -c %a freezes/k1.freeze)" = 600 &&
	grep "\"containers\":\\[\"$ctr\",\"$other\"\\]" freezes/k1.freeze &&
	still &&
	end_freeze &&
	grep "^thawed after [0-9]* ms" fz.out &&
	not_paused "$ctr" && not_paused "$other" &&
	! test -e freezes/k1.freeze &&
	moving
'

test_expect_success 'a container already paused by someone else is refused and left paused' '
	dk pause "$other" &&
	test_status 1 ft freeze k2 5000 "$ctr" "$other" </dev/null &&
	grep "DM_ECONFLICT: cannot freeze the containers of .k2.: container .$other. is already paused" err &&
	paused "$other" &&
	not_paused "$ctr" &&
	moving &&
	! test -e freezes/k2.freeze &&
	test_status 1 ft pause "$other" &&
	grep "DM_ECONFLICT" err &&
	dk unpause "$other"
'

test_expect_success 'SIGKILL of the freezing process: the guard thaws within 2 s' '
	start_freeze k3 30000 "$ctr" &&
	still &&
	guard=$(pgrep -P "$fz_pid") &&
	kill -9 "$fz_pid" &&
	exec 8>&- &&
	{ wait "$fz_pid"; true; } &&
	for _ in $(seq 20); do not_paused "$ctr" && break; sleep 0.1; done &&
	not_paused "$ctr" &&
	moving &&
	test_wait_gone "$guard" 5 &&
	test -f freezes/k3.freeze
'

test_expect_success 'recovery removes the journal a dead process left, naming what it did' '
	ft recover 2>log &&
	grep "container .$ctr. is thawed: the freeze .k3." log &&
	grep "the freeze .k3. left by a dmd that stopped is undone" log &&
	! test -e freezes/k3.freeze &&
	not_paused "$ctr"
'

test_expect_success 'a freeze that outlives its limit is thawed by the guard, and its end says so' '
	start_freeze k4 300 "$ctr" &&
	paused "$ctr" &&
	for _ in $(seq 30); do not_paused "$ctr" && break; sleep 0.1; done &&
	not_paused "$ctr" &&
	moving &&
	kill -0 "$fz_pid" &&
	test_must_fail end_freeze &&
	grep "DM_ETIMEOUT: the freeze of .k4. outlived its limit" fz.err &&
	! test -e freezes/k4.freeze
'

test_expect_success 'process and guard both killed: paused until recovery thaws it' '
	start_freeze k5 30000 "$ctr" "$other" &&
	guard=$(pgrep -P "$fz_pid") &&
	kill -9 "$guard" "$fz_pid" &&
	exec 8>&- &&
	{ wait "$fz_pid"; true; } &&
	sleep 0.5 &&
	paused "$ctr" && paused "$other" &&
	still &&
	ft recover 2>log &&
	not_paused "$ctr" && not_paused "$other" &&
	moving &&
	! test -e freezes/k5.freeze &&
	grep "container .$other. is thawed" log
'

test_expect_success 'a corrupt journal is removed and logged; a journal left blocks its key' '
	echo "{\"version\":1,\"containers\":[\"../x\"]}" >freezes/bad.freeze &&
	echo "{\"version\":1,\"key\":\"k6\",\"socket\":\"$DM_API_SOCK\",\"pid\":1,\"started_ns\":0,\"containers\":[\"$ctr\"]}" >freezes/k6.freeze &&
	test_status 1 ft freeze k6 1000 "$ctr" </dev/null &&
	grep "DM_EBUSY: the journal of an earlier freeze of .k6. is left" err &&
	not_paused "$ctr" &&
	ft recover 2>log &&
	grep "bad.freeze. is corrupt" log &&
	! test -e freezes/bad.freeze &&
	! test -e freezes/k6.freeze &&
	test_status 1 ft freeze "../k" 1000 "$ctr" </dev/null &&
	grep "DM_EINVAL: invalid freeze key" err
'

test_expect_success 'exec: output of both streams, exit status, environment' '
	ft exec 10000 "$ctr" DM_DOT=shop DM_BRANCH=b1 -- \
		sh -c "echo out; echo err >&2; echo \$DM_DOT@\$DM_BRANCH; exit 3" >out &&
	# the engine copies stdout and stderr apart: their order may change
	sort out >sorted &&
	printf "err\nexit 3\nout\nshop@b1\n" >expect &&
	test_cmp expect sorted &&
	test "$(tail -n 1 out)" = "exit 3" &&
	ft exec 10000 "$ctr" -- no-such-command >out &&
	grep "no-such-command" out &&
	grep "^exit 12[67]$" out &&
	test_status 1 ft exec 10000 "${dk_prefix}-nosuch" -- true &&
	grep "DM_ENOTFOUND: no container" err
'

test_expect_success 'exec: only the last 64 KiB of a long output are kept' '
	ft exec 10000 "$ctr" -- sh -c "seq 1 30000; echo last" >out &&
	head -n 1 out | grep "^\[[0-9]* bytes of earlier output dropped\]$" &&
	test "$(tail -n 2 out)" = "$(printf "last\nexit 0")" &&
	test "$(wc -c <out)" -le $((64 * 1024 + 64)) &&
	test "$(wc -c <out)" -ge $((60 * 1024))
'

test_expect_success 'exec: past its deadline the command and its children are killed' '
	start=$(date +%s%N) &&
	test_status 1 ft exec 500 "$ctr" -- sh -c "sleep 31 & sleep 32" &&
	test $(( ($(date +%s%N) - start) / 1000000 )) -lt 3000 &&
	grep "DM_ETIMEOUT: .sh. in container .$ctr. did not finish within 500 ms and was killed" err &&
	sleep 0.3 &&
	dk exec "$ctr" ps >ps &&
	! grep "sleep 3[12]" ps
'

test_expect_success 'exec in a paused container is refused' '
	dk pause "$other" &&
	test_status 1 ft exec 5000 "$other" -- true &&
	grep "DM_ECONFLICT: cannot run .true. in container .$other.: .*paused" err &&
	dk unpause "$other"
'

test_expect_success 'a hook in a container: output logged, a failure names status and last line' '
	# one stream: the engine may reorder lines of stdout and stderr
	ft hook "{\"argv\":[\"sh\",\"-c\",\"echo \$DM_HOOK ran >&2; echo checkpoint failed >&2; exit 4\"],\"container\":\"$ctr\",\"timeout_ms\":5000}" \
		DM_HOOK=pre-commit 2>log;
	test $? = 1 &&
	grep "info test hook: pre-commit ran$" log &&
	grep "DM_ECONFLICT: test hook (.sh.) exited with status 4: checkpoint failed$" log &&
	ft hook "{\"argv\":[\"true\"],\"container\":\"$ctr\"}"
'

test_done
