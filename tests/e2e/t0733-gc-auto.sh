#!/usr/bin/env bash
test_description='automatic garbage collection: deletes past the threshold ($DM_GC_AUTO) start a collection by themselves, smaller ones do not, dm df shows both'
. "$(dirname "$0")/test-lib.sh"

# What this proves, against a real dmd started with DM_GC_AUTO=4M: deleting
# a dot whose history holds 8 MiB starts a collection by itself (logged),
# which shrinks the store by at least 90% of it on the dir engine; deleting
# one of 1 MiB only counts towards the next; dm df shows the threshold, the
# garbage counted since the last collection and how many ran.

port=$(test_free_port)
data=$HOME/data
export DM_CONFIG=$HOME/dmconf/config
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1"
engine=${DM_TEST_ENGINE:-dir}

auto_runs() {
	grep -c "automatic garbage collection: deletes made" "$data/dmd.log"
}

test_expect_success 'setup: dmd with a threshold of 4 MiB, a dot of 8 MiB and one of 1 MiB' '
	DM_GC_AUTO=4M dm cluster init --data-dir data --port "$port" >/dev/null &&
	dm init big && dm mount big big &&
	head -c 8388608 /dev/urandom >big/blob && dm commit --dot big -m big >/dev/null &&
	dm init small && dm mount small small &&
	head -c 1048576 /dev/urandom >small/blob && dm commit --dot small -m small >/dev/null &&
	dm df >out &&
	grep "^automatic gc: *once deletes make 4.0 MiB of garbage (0 B so far; 0 runs)$" out
'

test_expect_success 'deleting 1 MiB only counts towards the threshold' '
	dm dot delete -f small &&
	wait_for "the count" sh -c "dm df | grep -q \"(1.0 MiB so far; 0 runs)\"" &&
	test "$(auto_runs)" = 0
'

test_expect_success 'deleting 8 MiB more starts a collection by itself, which frees it' '
	before=$(du -sb "$data/store" | cut -f1) &&
	dm dot delete -f big &&
	wait_for "an automatic collection" sh -c "dm df | grep -q \"(0 B so far; 1 runs)\"" &&
	wait_for "its end" grep -q "garbage collection: [0-9]* of [0-9]* objects freed" "$data/dmd.log" &&
	test "$(auto_runs)" = 1 &&
	grep "automatic garbage collection: deletes made about [0-9]* bytes of garbage since the last one (threshold 4194304)" "$data/dmd.log" &&
	after=$(du -sb "$data/store" | cut -f1) &&
	if [ "$engine" = dir ]; then test $((before - after)) -ge $((9437184 * 9 / 10)); fi
'

test_expect_success 'DM_GC_AUTO=off turns it off' '
	dmd stop --data-dir "$data" >/dev/null &&
	DM_GC_AUTO=off dm cluster start --data-dir "$data" --port "$port" >/dev/null &&
	dm df >out && grep "^automatic gc: *off$" out &&
	dmd stop --data-dir "$data" >/dev/null &&
	DM_GC_AUTO=lots test_must_fail dm cluster start --data-dir "$data" --port "$port" 2>err &&
	grep "DM_GC_AUTO" err
'

test_done
