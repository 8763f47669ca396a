#!/usr/bin/env bash
test_description='the btrfs engine: the shared scenarios on a loop pool, pool life cycle, snapshots, refusals'
. "$(dirname "$0")/test-lib.sh"

# What this proves: with --engine btrfs the same workflow, PostgreSQL and
# transfer scenarios pass as with the dir engine (they run again here,
# unchanged, with DM_TEST_ENGINE=btrfs, which makes their `dm cluster init`
# make a loop pool), also with one server on each engine, both ways; commits are read-only snapshots; a stop unmounts the pool and frees
# its loop device, a start (also after a SIGKILL) mounts it again; deleting
# a dot deletes its subvolumes; and a machine or directory that cannot hold
# a pool is refused in one line that suggests the dir engine, leaving
# nothing behind.
#
# Needs root, btrfs in the kernel, loop devices and mkfs.btrfs (Debian
# package btrfs-progs); skipped otherwise.

if ! test_have_root; then
	test_skip_all 'the btrfs engine needs root (loop devices, mounts, snapshots)'
fi
if ! grep -qw btrfs /proc/filesystems; then
	test_skip_all 'the kernel has no btrfs'
fi
if ! [ -c /dev/loop-control ]; then
	test_skip_all 'no loop devices (/dev/loop-control)'
fi
if ! PATH=$PATH:/usr/sbin:/sbin command -v mkfs.btrfs >/dev/null 2>&1 ||
	! PATH=$PATH:/usr/sbin:/sbin command -v btrfs >/dev/null 2>&1; then
	test_skip_all 'needs btrfs-progs (mkfs.btrfs, btrfs)'
fi
PATH=$PATH:/usr/sbin:/sbin

port=$(test_free_port)
data=$HOME/data

# Whatever a failed test leaves mounted under the trash directory goes, so
# that the trash can go too.
unmount_all() {
	local m

	dmd stop --data-dir "$data" >/dev/null 2>&1
	awk -v t="$TRASH_DIRECTORY" 'index($2, t) == 1 { print $2 }' /proc/self/mounts |
		sort -r | while read -r m; do umount -l "$m"; done
}
test_atexit unmount_all

# The scenarios' trash directories live under a short path: a unix socket's
# path (DATA/dmd.sock) must stay under 108 bytes. The database user of t0400
# must pass through it.
scenario_root=$(mktemp -d /tmp/dm-t0700.XXXXXX) && chmod 711 "$scenario_root" || exit 1
test_atexit "awk -v t='$scenario_root' 'index(\$2, t) == 1 { print \$2 }' /proc/self/mounts |
	sort -r | while read -r m; do umount -l \"\$m\"; done; rm -rf '$scenario_root'"

# Runs the e2e script $1 with DM_TEST_ENGINE=btrfs in a trash directory of
# its own; its TAP goes to $2; fails when any of its tests failed.
run_scenario() {
	DM_TEST_ENGINE=btrfs DM_TRASH_ROOT=$scenario_root \
		DM_TEST_DIR_ENGINE_FOR=${DM_TEST_DIR_ENGINE_FOR-} \
		bash "$TEST_DIRECTORY/$1" >"$2" 2>&1
	local rc=$?

	cat "$2"
	! grep -q '^not ok' "$2" && grep -q '^1\.\.' "$2" && [ "$rc" = 0 ]
}

test_expect_success 'the shared workflow (t0310) passes on a btrfs pool' '
	run_scenario t0310-cli-workflow.sh t0310.tap
'

test_expect_success 'the PostgreSQL scenario (t0400) passes on a btrfs pool' '
	run_scenario t0400-postgres.sh t0400.tap
'

test_expect_success 'push, pull and clone between btrfs servers (t0510)' '
	run_scenario t0510-push-pull-clone.sh t0510.tap
'

test_expect_success 'garbage collection on btrfs servers (t0730)' '
	run_scenario t0730-gc.sh t0730.tap &&
	run_scenario t0731-gc-history.sh t0731.tap &&
	run_scenario t0734-prune.sh t0734.tap
'

test_expect_success "dotmesh's S3 PUT and DELETE on a btrfs pool, uploads from another file system (t1101)" '
	run_scenario t1101-s3-delete.sh t1101.tap
'

test_expect_success 'the same from a btrfs server to a dir server and back (t0510 twice)' '
	DM_TEST_DIR_ENGINE_FOR=B run_scenario t0510-push-pull-clone.sh t0510-b-dir.tap &&
	DM_TEST_DIR_ENGINE_FOR=A run_scenario t0510-push-pull-clone.sh t0510-a-dir.tap
'

test_expect_success 'dm cluster init --engine btrfs --pool-size makes and mounts a pool' '
	dm cluster init --data-dir "$data" --port "$port" --engine btrfs --pool-size 1G >out &&
	grep "\"engine\": \"btrfs\"" "$data/config.json" &&
	grep "\"pool_size\": 1073741824" "$data/config.json" &&
	test "$(stat -f -c %T "$data/pool")" = btrfs &&
	test "$(stat -c %s "$data/pool.img")" = 1073741824 &&
	test "$(readlink "$data/dots")" = pool/dots &&
	losetup -j "$data/pool.img" | grep -q "^/dev/loop" &&
	awk -v m="$data/pool" '\''$2 == m { print $4 }'\'' /proc/self/mounts >opts &&
	grep -E "(^|,)nosuid(,|$)" opts && grep -E "(^|,)nodev(,|$)" opts &&
	! grep "mounted without" "$data/dmd.log"
'

test_expect_success 'a commit is a read-only snapshot; the working copy a subvolume' '
	dm init shop &&
	dm mount shop mnt &&
	echo one >mnt/file &&
	id=$(dm commit -m one) &&
	dot=$(basename "$(dirname "$(dirname "$(readlink -f mnt)")")") &&
	snap="$data/pool/dots/$dot/.snapshots" &&
	btrfs subvolume show "$data/pool/dots/$dot/master/wc" >/dev/null &&
	ls "$snap" >snaps &&
	test "$(grep -cv "\." snaps)" = 1 &&
	test "$(btrfs property get "$snap/$(grep -v "\." snaps)" ro)" = ro=true &&
	test "$(cat "$snap/$(grep -v "\." snaps)/file")" = one
'

test_expect_success 'reset --hard swaps in a snapshot; checkout -b is a writable snapshot' '
	echo two >mnt/file &&
	dm commit -m two >/dev/null &&
	echo scratch >mnt/file &&
	dm reset --hard HEAD^ &&
	test "$(cat mnt/file)" = one &&
	dm checkout -b feature &&
	btrfs subvolume show "$data/pool/dots/$dot/feature/wc" >show &&
	grep -q "Parent UUID:.*-" show &&
	echo three >mnt/file &&
	dm commit -m three >/dev/null &&
	dm checkout master &&
	test "$(cat mnt/file)" = one
'

test_expect_success 'dm cluster stop unmounts the pool and frees its loop device' '
	dm cluster stop >/dev/null &&
	test "$(stat -f -c %T "$data/pool")" != btrfs &&
	test -z "$(losetup -j "$data/pool.img")"
'

test_expect_success 'dm cluster start mounts it again, history intact' '
	dm cluster start >/dev/null &&
	test "$(stat -f -c %T "$data/pool")" = btrfs &&
	test "$(cat mnt/file)" = one &&
	dm log >log &&
	grep -A4 "^commit $id" log | grep -q "^    one$" &&
	test "$(grep -c "^commit " log)" = 1
'

test_expect_success 'after a SIGKILL of dmd the pool stays usable: start, then stop cleans up' '
	test_kill_hard "$data/dmd.pid" &&
	dm cluster start >/dev/null &&
	test "$(cat mnt/file)" = one &&
	test_kill_hard "$data/dmd.pid" &&
	dmd stop --data-dir "$data" >out &&
	grep "not running" out &&
	test -z "$(losetup -j "$data/pool.img")" &&
	dm cluster start >/dev/null
'

test_expect_success 'deleting a dot deletes its subvolumes and snapshots' '
	btrfs subvolume list "$data/pool" >before &&
	grep -q "dots/$dot/" before &&
	dm dot delete -f shop &&
	btrfs subvolume list "$data/pool" >after &&
	! grep -q "dots/$dot/" after &&
	test ! -e "$data/pool/dots/$dot"
'

test_expect_success '--pool-dir uses an existing btrfs mount' '
	truncate -s 1G other.img &&
	mkfs.btrfs -q other.img >/dev/null 2>&1 &&
	mkdir other &&
	mount -o loop other.img other &&
	dmd init --data-dir data2 --engine btrfs --pool-dir "$HOME/other" >key &&
	grep "\"pool_dir\": \"$HOME/other\"" data2/config.json &&
	test "$(readlink data2/dots)" = "$HOME/other/dots" &&
	test -d other/dots &&
	test_must_fail dmd init --data-dir data3 --engine btrfs --pool-dir "$HOME/other" 2>err &&
	grep "another data directory uses this pool" err &&
	test ! -e data3
'

test_expect_success 'a directory that is not btrfs is refused, suggesting the dir engine' '
	mkdir plain &&
	test_must_fail dmd init --data-dir data4 --engine btrfs --pool-dir "$HOME/plain" 2>err &&
	grep "^error: cannot use .*plain. as a btrfs pool: it is not on a btrfs file system; use --engine dir instead" err &&
	test ! -e data4 &&
	test_must_fail dm cluster init --data-dir data4 --port "$port" --engine btrfs 2>err &&
	grep "needs --pool-dir PATH" err &&
	test ! -e data4
'

test_expect_success 'without root, init says so and leaves nothing behind' '
	command -v setpriv >/dev/null || { echo "no setpriv: skipped"; exit 0; } &&
	mkdir -m 777 open &&
	test_must_fail setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$(command -v dmd)" init --data-dir "$HOME/open/d" --engine btrfs --pool-size 1G 2>err &&
	grep "needs root" err &&
	grep "use --engine dir instead" err &&
	test -z "$(ls -A open)"
'

test_expect_success 'dm cluster stop stops dmd and unmounts the pool' '
	dm cluster stop >/dev/null &&
	test -z "$(losetup -j "$data/pool.img")" &&
	umount other
'

test_done
