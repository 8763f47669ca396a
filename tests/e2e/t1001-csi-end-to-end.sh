#!/usr/bin/env bash
test_description='CSI end to end: a volume published and written as a pod would, snapshotted, restored into a new volume that holds exactly the snapshot, seen in dm log, deleted and freed by dm gc; on btrfs, a volume from a snapshot of 1 GiB without copying it'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-csi.sh"

# Publishing bind-mounts: root only.
test_expect_success 'needs: root (publishing a volume bind-mounts it)' '
	test_have_root
'

store_bytes() {
	du -sb "$HOME/data/store" | cut -f1
}

test_expect_success 'setup: dmd with the CSI socket' '
	csi_start >out &&
	mkdir -p pods
'

test_expect_success 'CreateVolume, NodePublishVolume, and a pod writes into the target path' '
	vol=$(csictl create pvc-shop --size 104857600) &&
	echo "$vol" >vol &&
	csictl publish "$vol" "$HOME/pods/a" &&
	grep " $HOME/pods/a " /proc/self/mountinfo &&
	mkdir pods/a/db &&
	echo "apples: 3" >pods/a/db/stock &&
	head -c 4194304 /dev/urandom >pods/a/db/blob &&
	cp pods/a/db/blob blob.snap
'

test_expect_success 'CreateSnapshot is a commit of the volume; more is written after it' '
	snap=$(csictl snapshot snap-shop "$(cat vol)" --wait) &&
	echo "$snap" >snap &&
	dm log --dot pvc-shop >log &&
	grep "^commit ${snap#*:}$" log &&
	grep "csi.snapshot: snap-shop" log &&
	echo "pears: 2" >pods/a/db/later &&
	echo "apples: 5" >pods/a/db/stock
'

test_expect_success 'CreateVolume from the snapshot holds exactly the snapshot'"'"'s files' '
	vol2=$(csictl create pvc-restore --snapshot "$(cat snap)") &&
	echo "$vol2" >vol2 &&
	csictl publish "$vol2" "$HOME/pods/b" &&
	(cd pods/b && find . | sort) >files &&
	printf ".\n./db\n./db/blob\n./db/stock\n" >expect &&
	test_cmp expect files &&
	echo "apples: 3" >expect &&
	test_cmp expect pods/b/db/stock &&
	cmp blob.snap pods/b/db/blob &&
	echo "apples: 5" >expect &&
	test_cmp expect pods/a/db/stock
'

test_expect_success 'the two volumes are independent: writing one leaves the other' '
	echo "kiwis: 9" >pods/b/db/kiwis &&
	test_must_fail test -e pods/a/db/kiwis &&
	test -e pods/a/db/later && test_must_fail test -e pods/b/db/later
'

test_expect_success 'a published volume is a user of its dot: deleting it is refused' '
	dm list >out &&
	grep "csi $HOME/pods/a" out &&
	test_must_fail csictl delete "$(cat vol)" 2>err &&
	grep "^FAILED_PRECONDITION: " err &&
	test_must_fail dm dot delete -f pvc-shop 2>err &&
	grep "in use" err
'

test_expect_success 'NodeGetVolumeStats: the bytes written' '
	csictl stats "$(cat vol)" "$HOME/pods/a" >stats &&
	test "$(sed -n 1p stats)" -ge 4194304 &&
	test "$(sed -n 2p stats)" = 104857600
'

test_expect_success 'a restarted dmd still knows who uses the volume' '
	dmd stop --data-dir "$HOME/data" >/dev/null &&
	csi_start >out &&
	test_must_fail dm dot delete -f pvc-shop 2>err &&
	grep "in use" err
'

test_expect_success 'unpublished, DeleteSnapshot and DeleteVolume delete the dot; dm gc frees its data' '
	csictl unpublish "$(cat vol2)" "$HOME/pods/b" &&
	csictl unpublish "$(cat vol)" "$HOME/pods/a" &&
	test_must_fail test -e pods/a &&
	before=$(store_bytes) &&
	csictl delete "$(cat vol2)" &&
	csictl delete-snapshot "$(cat snap)" &&
	dm list -H >out &&
	grep pvc-shop out &&
	csictl delete "$(cat vol)" &&
	dm list -H >out &&
	test_must_fail grep pvc-shop out &&
	test -z "$(csictl volumes)" &&
	test -z "$(csictl snapshots)" &&
	dm gc >out &&
	after=$(store_bytes) &&
	echo "store: $before -> $after" &&
	test $((before - after)) -ge 4000000
'

test_expect_success 'a volume from a dot of the StorageClass (fromDot, fromCommit): a branch of it' '
	dm init prod && dm mount prod prodwc &&
	echo "v1" >prodwc/data && dm commit --dot prod -m one >/dev/null &&
	first=$(dm log --dot prod --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"commits\"][0][\"id\"])") &&
	echo "v2" >prodwc/data && dm commit --dot prod -m two >/dev/null &&
	v=$(csictl create clone-latest --param fromDot=prod) &&
	w=$(csictl create clone-first --param fromDot=prod --param fromCommit="$first") &&
	csictl publish "$v" "$HOME/pods/c" && csictl publish "$w" "$HOME/pods/d" &&
	test "$(cat pods/c/data)" = v2 && test "$(cat pods/d/data)" = v1 &&
	dm branch --dot prod >out &&
	grep clone-latest out && grep clone-first out &&
	csictl unpublish "$v" "$HOME/pods/c" && csictl unpublish "$w" "$HOME/pods/d" &&
	csictl delete "$v" && csictl delete "$w" &&
	dm branch --dot prod >out &&
	test_must_fail grep clone- out &&
	dm list -H >out && grep prod out
'

# On btrfs a volume from a snapshot is a writable snapshot of the commit's
# read-only one: instant at any size. The machine must have what a loop
# pool needs (root, btrfs, loop devices): without it this fails, it does
# not skip. The target (p95 under 100 ms) is measured by bench/csi.sh;
# here the bound is one a copy of 1 GiB cannot meet on any disk (1 s).
test_expect_success 'btrfs: CreateVolume from a snapshot of a 1 GiB volume does not copy it' '
	dmd stop --data-dir "$HOME/data" >/dev/null &&
	test_atexit "dmd stop --data-dir '"'"'$HOME/bdata'"'"' >/dev/null 2>&1" &&
	DM_CONFIG=$HOME/bconf dm cluster init --data-dir "$HOME/bdata" --port "$(test_free_port)" \
		--engine btrfs --pool-size 3G --csi-socket "$CSI_SOCK" >out &&
	vol=$(csictl create big --size 2147483648) &&
	csictl publish "$vol" "$HOME/pods/big" &&
	head -c 1073741824 /dev/urandom >pods/big/blob &&
	csictl unpublish "$vol" "$HOME/pods/big" &&
	snap=$(csictl snapshot big-snap "$vol" --wait) &&
	csictl time 1 create from-big --snapshot "$snap" >ms &&
	echo "CreateVolume from a snapshot of 1 GiB: $(cat ms) ms" &&
	python3 -c "import sys; sys.exit(0 if float(open(\"ms\").read()) < 1000 else 1)" &&
	v2=$(csictl create from-big --snapshot "$snap") &&
	csictl publish "$v2" "$HOME/pods/big2" &&
	test "$(stat -c %s pods/big2/blob)" = 1073741824 &&
	csictl unpublish "$v2" "$HOME/pods/big2" &&
	csictl delete "$v2" && csictl delete-snapshot "$snap" && csictl delete "$vol"
'

test_done
