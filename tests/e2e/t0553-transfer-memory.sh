#!/usr/bin/env bash
test_description='eight pushes at once into one dmd keep its resident memory under a stated bound: 128 MiB for eight pushes of 32 MiB each over eight connections (a put streams its records into the store; a pull holds at most 64 MiB of fetched objects in memory, test_transfer)'
. "$(dirname "$0")/test-lib.sh"

unset DM_API_KEY
dmA() {
	DM_CONFIG=$HOME/confA dm "$@"
}
dmB() {
	DM_CONFIG=$HOME/confB dm "$@"
}

# the peak resident memory of data directory $1's dmd so far, in MiB
peak_mib() {
	awk '/^VmHWM:/ { print int($2 / 1024) }' "/proc/$(cat "$1/dmd.pid")/status"
}

test_expect_success 'setup: dmds A and B; eight dots of 32 MiB of random data each on A' '
	port_a=$(test_free_port) && port_b=$(test_free_port) &&
	dmA cluster init --no-plugin --data-dir A --port "$port_a" >/dev/null &&
	test_atexit "dmd stop --data-dir $HOME/A >/dev/null 2>&1" &&
	dmB cluster init --no-plugin --data-dir B --port "$port_b" >/dev/null &&
	test_atexit "dmd stop --data-dir $HOME/B >/dev/null 2>&1" &&
	DM_API_KEY=$(cat B/admin-api-key) dmA remote add b "admin@127.0.0.1:$port_b" --ca-file B/ca.pem >/dev/null &&
	DM_API_KEY=$(cat A/admin-api-key) dmB remote add a "admin@127.0.0.1:$port_a" --ca-file A/ca.pem >/dev/null &&
	for i in 1 2 3 4 5 6 7 8; do
		dmA init d$i &&
		dmA mount d$i wc$i &&
		head -c $((32 << 20)) /dev/urandom >wc$i/big &&
		dmA commit --dot d$i -m "32 MiB" >/dev/null || return 1
	done
'

test_expect_success 'eight pushes at once into B: B stays under 128 MiB resident' '
	for i in 1 2 3 4 5 6 7 8; do
		dmA push b d$i >push$i.out 2>&1 &
	done &&
	wait &&
	for i in 1 2 3 4 5 6 7 8; do
		dmB list -H | cut -f1 | grep -x d$i >/dev/null || { cat push$i.out; return 1; }
	done &&
	peak=$(peak_mib B) &&
	echo "B peak resident: $peak MiB" &&
	test "$peak" -lt 128
'

test_done
