#!/usr/bin/env bash
test_description='btrfs: data that arrives by clone, pull or push is on disk once (the commit'\''s snapshot, not also packs); a dmd killed while receiving restarts with a store that verifies; a moved data directory still reads its history'

# What this proves: a btrfs server (B) that clones, pulls or is pushed a dot
# from a dir-engine server (A) grows by about the data that arrived, not
# twice it (a new branch too: it starts from the commit it stands on): its
# store's packs and its pool together stay under 1.5x; the
# data reads back identically and the store verifies; a SIGKILL of B's dmd
# in the middle of a clone leaves a store that verifies and a dmd that
# restarts and finishes the clone; and once B's data directory is moved,
# every commit it holds is still read back (a clone from it by C, another
# dir-engine server).
#
# Needs root, btrfs in the kernel, loop devices and btrfs-progs.
export DM_TEST_ENGINE=btrfs DM_TEST_DIR_ENGINE_FOR='A C' DM_TEST_POOL_SIZE=3G
. "$(dirname "$0")/test-lib.sh"

if ! test_have_root || ! grep -qw btrfs /proc/filesystems || ! [ -c /dev/loop-control ] ||
	! PATH=$PATH:/usr/sbin:/sbin command -v mkfs.btrfs >/dev/null 2>&1; then
	test_skip_all 'needs root, btrfs in the kernel, loop devices and btrfs-progs'
fi
PATH=$PATH:/usr/sbin:/sbin
. "$TEST_DIRECTORY/lib-servers.sh"

unmount_all() {
	awk -v t="$TRASH_DIRECTORY" 'index($2, t) == 1 { print $2 }' /proc/self/mounts |
		sort -r | while read -r m; do umount -l "$m"; done
}
test_atexit "dmd stop --data-dir '$HOME/Bm' >/dev/null 2>&1; unmount_all"

MB=1000000

# footprint DATADIR: bytes B keeps of its dots: its store (packs, index)
# plus its pool's extents under dots/ counted once (btrfs filesystem du:
# exclusive + set shared).
footprint() {
	local store pool
	sync
	store=$(du -sb "$1/store" | cut -f1)
	pool=$(btrfs filesystem du -s --raw "$(readlink -f "$1/dots")" | awk 'NR == 2 { printf "%.0f\n", $2 + $3 }')
	echo $((store + pool))
}

# grew NAME BEFORE BYTES: B's footprint grew by less than 1.5x BYTES (and
# by at least 0.9x: the data is there); says by how much.
grew() {
	local now growth
	now=$(footprint "$HOME/B")
	growth=$((now - $2))
	echo "$1: $3 bytes arrived, B grew by $growth bytes ($(awk -v g="$growth" -v b="$3" 'BEGIN { printf "%.2f", g / b }')x)"
	[ "$growth" -lt $(($3 * 3 / 2)) ] && [ "$growth" -gt $(($3 * 9 / 10)) ]
}

# same_files DIR1 DIR2: both hold the same files with the same bytes.
same_files() {
	(cd "$1" && find . -type f -print0 | sort -z | xargs -0 cksum) >sums1 &&
		(cd "$2" && find . -type f -print0 | sort -z | xargs -0 cksum) >sums2 &&
		test_cmp sums1 sums2
}

# verify_b DATADIR: B's dmd is not running; its store verifies (with its
# pool mounted, where its objects are kept).
verify_b() {
	local rc=0
	mountpoint -q "$1/pool" || mount -o loop "$1/pool.img" "$1/pool" || return 1
	dm-store-tool --store "$1/store" --external-root "$(readlink -f "$1/dots")" --quiet \
		verify >verify.out || rc=1
	umount "$1/pool" || rc=1
	grep "^ok: " verify.out && return $rc
}

test_expect_success 'setup: A and C on the dir engine, B on btrfs; a dot of 100 MB on A' '
	servers_init A B C &&
	grep "\"engine\": *\"btrfs\"" B/config.json && ! grep -q btrfs A/config.json &&
	dmA init shop && dmA mount shop shopA &&
	head -c $((100 * MB)) /dev/urandom >shopA/big &&
	mkdir shopA/small && for i in $(seq 1 20); do head -c 10000 /dev/urandom >shopA/small/f$i; done &&
	dmA commit -m first >/dev/null &&
	cksum <shopA/big >first.sum
'

test_expect_success 'a clone onto btrfs is on disk once, and reads back the same' '
	before=$(footprint B) &&
	dmB clone a shop >/dev/null &&
	grew clone "$before" $((100 * MB + 200000)) &&
	dmB mount shop shopB &&
	same_files shopA shopB &&
	id=$(dot_id dmB dot show shop) &&
	test -d "B/dots/$id/.snapshots/$(log_ids dmB log --dot shop | head -n 1)"
'

test_expect_success 'a pull of an in-place change and a new file grows B by what changed' '
	dd if=/dev/urandom of=shopA/big bs=1000000 count=1 seek=40 conv=notrunc status=none &&
	head -c $((30 * MB)) /dev/urandom >shopA/new &&
	dmA commit --dot shop -m second >/dev/null &&
	before=$(footprint B) &&
	dmB pull a shop >/dev/null &&
	grew pull "$before" $((31 * MB)) &&
	same_files shopA shopB &&
	test "$(log_ids dmB log --dot shop)" = "$(log_ids dmA log --dot shop)"
'

test_expect_success 'a push onto btrfs grows B by what was pushed' '
	head -c $((20 * MB)) /dev/urandom >shopA/pushed &&
	dmA commit --dot shop -m third >/dev/null &&
	before=$(footprint B) &&
	dmA push b shop >/dev/null &&
	grew push "$before" $((20 * MB)) &&
	same_files shopA shopB &&
	dmB dot show shop >show && grep "^dirty: *0 B$" show
'

test_expect_success 'a new branch pushed onto btrfs shares the data of the commit it stands on' '
	dmA checkout --dot shop -b feature &&
	head -c $((5 * MB)) /dev/urandom >shopA/feature.dat &&
	dmA commit --dot shop -m feature >/dev/null &&
	before=$(footprint B) &&
	dmA push b shop feature >/dev/null &&
	grew "new branch" "$before" $((5 * MB)) &&
	dmA checkout --dot shop master &&
	dmB branch --dot shop >branches && grep feature branches
'

test_expect_success 'B restarts and its store verifies' '
	server_stop B && verify_b B && server_start B &&
	test "$(log_ids dmB log --dot shop | wc -l)" = 3
'

test_expect_success 'a dmd killed in the middle of a clone restarts, verifies, and finishes it' '
	dmA init big2 && dmA mount big2 big2A &&
	head -c $((300 * MB)) /dev/urandom >big2A/data &&
	dmA commit --dot big2 -m big >/dev/null &&
	(dmB clone a big2 >clone.out 2>&1 &) &&
	seen= && tries=0 &&
	while [ $tries -lt 2000 ]; do
		state=$(last_transfer B | transfer_field state) &&
		case $state in
		applying) seen=applying; break ;;
		done | failed) break ;;
		esac
		tries=$((tries + 1))
	done &&
	echo "B killed while its clone was ${seen:-past applying}" &&
	test "$seen" = applying &&
	test_kill_hard B/dmd.pid &&
	verify_b B &&
	server_start B &&
	if dmB dot show big2 >/dev/null 2>&1; then dmB pull a big2 >/dev/null; else dmB clone a big2 >/dev/null; fi &&
	dmB mount big2 big2B &&
	same_files big2A big2B &&
	server_stop B && verify_b B && server_start B
'

test_expect_success 'a moved data directory still reads every commit it holds' '
	dmB init local && dmB mount local localB &&
	head -c $((5 * MB)) /dev/urandom >localB/made-here &&
	dmB commit --dot local -m "made on B" >/dev/null &&
	dmB log --dot local >/dev/null &&
	cp -a localB/. local.copy &&
	server_stop B &&
	mv B Bm &&
	dmB cluster start --data-dir Bm --port "$port_B" >/dev/null &&
	dmC clone b shop >/dev/null && dmC clone b local >/dev/null &&
	dmC mount shop shopC && dmC mount local localC &&
	same_files shopA shopC && same_files local.copy localC &&
	dmC reset --dot shop --hard HEAD^^ &&
	test "$(cksum <shopC/big)" = "$(cat first.sum)" &&
	dmB cluster stop --data-dir Bm >/dev/null && verify_b Bm
'

test_done
