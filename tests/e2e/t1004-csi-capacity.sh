#!/usr/bin/env bash
test_description='CSI capacities: on btrfs a volume capacity is a qgroup limit of its working copy, so a write past it fails with EDQUOT in the pod and one under it is accepted, through a reset and in a volume from a snapshot; on the dir engine it is recorded and reported, not enforced'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-csi.sh"

MiB=1048576

# Publishing bind-mounts, and a btrfs pool is a loop device: root only.
test_expect_success 'needs: root (publishing a volume bind-mounts it)' '
	test_have_root
'

# write FILE MIB: what a pod does, flushed, so that a refusal shows here.
write() {
	dd if=/dev/urandom of="$1" bs=$MiB count="$2" conv=fsync 2>dd.err
}

test_expect_success 'dir engine: the capacity is recorded and reported, not enforced' '
	csi_start >out &&
	mkdir -p pods &&
	vol=$(csictl create small --size $((4 * MiB))) &&
	csictl publish "$vol" "$HOME/pods/small" &&
	write pods/small/blob 8 &&
	csictl stats "$vol" "$HOME/pods/small" >stats &&
	test "$(sed -n 2p stats)" = $((4 * MiB)) &&
	csictl unpublish "$vol" "$HOME/pods/small" &&
	csictl delete "$vol" &&
	dmd stop --data-dir "$HOME/data" >/dev/null
'

# The pool is a loop file of its own; the machine must have what one needs
# (root, btrfs, loop devices): without it this fails, it does not skip.
test_expect_success 'setup: dmd on a btrfs pool (quotas off until a limit is set)' '
	test_atexit "dmd stop --data-dir '"'"'$HOME/bdata'"'"' >/dev/null 2>&1" &&
	DM_CONFIG=$HOME/bconf dm cluster init --data-dir "$HOME/bdata" --port "$(test_free_port)" \
		--engine btrfs --pool-size 1G --csi-socket "$CSI_SOCK" >out &&
	pool=$(findmnt -n -o TARGET -T "$HOME/bdata/dots" 2>/dev/null ||
		findmnt -n -o TARGET -T "$HOME/bdata") &&
	echo "$pool" >pool &&
	test_must_fail btrfs qgroup show "$pool" 2>err
'

test_expect_success 'a volume of 64 MiB: 16 MiB written in the pod are accepted' '
	vol=$(csictl create quota --size $((64 * MiB))) &&
	echo "$vol" >vol &&
	csictl publish "$vol" "$HOME/pods/q" &&
	write pods/q/first 16 &&
	test "$(stat -c %s pods/q/first)" = $((16 * MiB))
'

test_expect_success 'quotas are on, and the working copy has a limit of 64 MiB on its referenced bytes' '
	btrfs qgroup show -r --raw "$(cat pool)" >qgroups &&
	cat qgroups &&
	grep " $((64 * MiB)) .*/master/wc\$" qgroups
'

test_expect_success 'writing past the capacity fails in the pod with EDQUOT' '
	test_must_fail write pods/q/second 100 &&
	cat dd.err &&
	grep "Disk quota exceeded" dd.err
'

test_expect_success 'what was refused can be removed, and writing under the capacity works again' '
	rm -f pods/q/second &&
	sync &&
	write pods/q/third 8
'

test_expect_success 'NodeGetVolumeStats: the limit is the total' '
	csictl stats "$(cat vol)" "$HOME/pods/q" >stats &&
	test "$(sed -n 2p stats)" = $((64 * MiB)) &&
	test "$(sed -n 1p stats)" -ge $((24 * MiB))
'

test_expect_success 'a volume from a snapshot has its own capacity, and what it shares counts' '
	snap=$(csictl snapshot quota-snap "$(cat vol)" --wait) &&
	vol2=$(csictl create quota-restore --snapshot "$snap" --size $((40 * MiB))) &&
	echo "$vol2" >vol2 &&
	csictl publish "$vol2" "$HOME/pods/r" &&
	write pods/r/more 8 &&
	test_must_fail write pods/r/past 16 &&
	grep "Disk quota exceeded" dd.err &&
	write pods/q/fourth 16
'

# A reset makes a new subvolume the working copy; the limit goes with it.
# The dot is reached through dm mount here, not through a new publish
# (which would set the limit again).
test_expect_success 'the limit outlives a reset of the branch to a commit' '
	csictl unpublish "$(cat vol)" "$HOME/pods/q" &&
	export DM_CONFIG=$HOME/bconf &&
	dm commit --dot quota -m before-reset >/dev/null &&
	first=$(dm log --dot quota --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"commits\"][-1][\"id\"])") &&
	dm reset --dot quota --hard "$first" >/dev/null &&
	dm mount quota wc &&
	test -e wc/third && test_must_fail test -e wc/fourth &&
	write wc/under 16 &&
	test_must_fail write wc/past 100 &&
	grep "Disk quota exceeded" dd.err
'

# btrfs starts a snapshot with its source's limit; a branch is not a
# volume of that capacity, and the engine lifts it.
test_expect_success 'a branch made from the volume with dm checkout -b has no limit' '
	dm checkout --dot quota -b unlimited >/dev/null &&
	write wc/big 100 &&
	test "$(stat -c %s wc/big)" = $((100 * MiB))
'

test_done
