#!/usr/bin/env bash
test_description='btrfs: a commit returns once its snapshot is taken; the tree is indexed in the background, and a restart finishes what a killed dmd left pending'
. "$(dirname "$0")/test-lib.sh"

if ! test_have_root || ! grep -qw btrfs /proc/filesystems || ! [ -c /dev/loop-control ] ||
	! PATH=$PATH:/usr/sbin:/sbin command -v mkfs.btrfs >/dev/null 2>&1; then
	test_skip_all 'needs root, btrfs in the kernel, loop devices and btrfs-progs'
fi
PATH=$PATH:/usr/sbin:/sbin

port=$(test_free_port)
data=$HOME/data
export DM_CONFIG=$HOME/config

stop_all() {
	dm cluster stop --data-dir "$data" >/dev/null 2>&1
	awk -v t="$TRASH_DIRECTORY" 'index($2, t) == 1 { print $2 }' /proc/self/mounts |
		sort -r | while read -r m; do umount -l "$m"; done
}
test_atexit stop_all

# indexing of the current dot: the number of commits still pending
indexing() {
	dm dot show --json shop | python3 -c 'import json, sys; print(json.load(sys.stdin).get("indexing", -1))'
}

test_expect_success 'setup: a btrfs dmd and a dot with 300 MB of data' '
	dm cluster init --data-dir "$data" --port "$port" --engine btrfs --pool-size 3G >/dev/null &&
	dm init shop && dm mount shop mnt &&
	head -c 300000000 /dev/urandom >mnt/big &&
	echo one >mnt/small
'

test_expect_success 'the commit returns at once; the index follows; dm log waits for it' '
	start=$(date +%s%N) &&
	dm commit -m "300 MB" >id1 &&
	took=$(( ($(date +%s%N) - start) / 1000000 )) &&
	now=$(indexing) &&
	echo "commit took ${took} ms; pending right after: $now" &&
	test "$now" = 1 &&
	dm log >log && grep "^commit $(cat id1)$" log && grep "300 MB" log &&
	test "$(indexing)" = 0 &&
	dm dot show shop >show && grep "^indexing: *done$" show
'

test_expect_success 'reset and diff wait for indexing, then work on the sealed commit' '
	echo two >mnt/small &&
	dm commit -m "small change" >id2 &&
	dm reset --hard HEAD^ &&
	test "$(cat mnt/small)" = one &&
	dm reset --hard "$(cat id2)" &&
	test "$(cat mnt/small)" = two
'

test_expect_success 'a dmd killed with a commit pending finishes it after a restart' '
	head -c 300000000 /dev/urandom >mnt/big2 &&
	dm commit -m "pending when killed" >id3 &&
	pending=$(indexing) &&
	test_kill_hard "$data/dmd.pid" &&
	echo "pending when killed: $pending" &&
	dm cluster start --data-dir "$data" >/dev/null &&
	dm log >log &&
	grep "^commit $(cat id3)$" log && grep "pending when killed" log &&
	test "$(indexing)" = 0 &&
	dm reset --hard HEAD^ && ! test -e mnt/big2 &&
	dm reset --hard "$(cat id3)" && test -e mnt/big2
'

test_expect_success 'a snapshot no commit records (a crash before its record) is removed at start' '
	id=$(dm dot show --json shop | python3 -c "import json, sys; print(json.load(sys.stdin)[\"id\"])") &&
	snaps="$data/dots/$id/.snapshots" &&
	test -d "$snaps" &&
	btrfs subvolume snapshot -r "$data/dots/$id/master/wc" "$snaps/orphan-0001" >/dev/null &&
	dm cluster stop --data-dir "$data" >/dev/null &&
	dm cluster start --data-dir "$data" >/dev/null &&
	! test -e "$snaps/orphan-0001" &&
	grep "removing snapshot orphan-0001" "$data/dmd.log" &&
	dm reset --hard HEAD^ && ! test -e mnt/big2
'

test_done
