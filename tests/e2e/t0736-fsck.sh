#!/usr/bin/env bash
test_description='dm fsck: clean on a sound store, also after dmd is killed (SIGKILL) at random points of garbage collections, round after round, with no live data lost; --repair restores an index entry from the packs and marks the commits whose data is gone'
. "$(dirname "$0")/test-lib.sh"

# What this proves, against a real dmd on the dir engine:
#   - dm fsck checks the store, the dots' heads and working copies, and
#     says "no problems found" (exit 0) on a sound store;
#   - six rounds of: garbage made (a 24 MiB dot deleted, a commit reset
#     away), dm gc --expire now started and dmd killed by SIGKILL after a
#     random 0 to 250 ms, dmd started again; after each, dm fsck is clean
#     and every kept commit of every kept dot checks out to exactly the
#     bytes it had;
#   - an index entry lost while its record is still in a pack: dm fsck
#     finds the damaged commit (exit 5), --repair stores the object again
#     from the pack, and nothing is damaged any more;
#   - a chunk whose bytes are overwritten in its pack: dm fsck finds it
#     (exit 5), --repair drops it and marks the commits that need it
#     damaged; dm log says so, reset refuses them, the other commits check
#     out whole, and dm fsck is clean again.

[ "${DM_TEST_ENGINE:-dir}" = dir ] || test_skip_all 'the dir engine only (it pokes at pack files)'
command -v dm-store-tool >/dev/null || test_skip_all "dm-store-tool is not built in $DM_BUILD_DIR"

port=$(test_free_port)
data=$HOME/data
export DM_CONFIG=$HOME/dmconf/config
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1"

head_id() {
	dm log --dot "$1" --json |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["commits"][0]["id"])'
}

# commit DOT N: a new file of 700 kB and a change to the file "log"; saves
# the commit id and the working copy's checksums under ids/ and sums/
commit_n() {
	head -c 700000 /dev/urandom >"w$1/f$2" &&
	echo "$2" >>"w$1/log" &&
	dm commit --dot "$1" -m "$1 $2" >/dev/null &&
	id=$(head_id "$1") &&
	echo "$id" >>"ids.$1" &&
	(cd "w$1" && sha256sum $(ls | sort)) >"sums.$id"
}

# every kept commit of the dots checks out to what it had; back to the head
check_all() {
	local dot id

	for dot in keep other; do
		for id in $(cat "ids.$dot"); do
			dm reset --dot "$dot" --hard "$id" >/dev/null &&
			(cd "w$dot" && sha256sum $(ls | sort)) >now.sums &&
			cmp now.sums "sums.$id" || { echo "commit $id of $dot is not whole"; return 1; }
		done
	done
}

test_expect_success 'setup: two dots with three commits each' '
	dm cluster init --data-dir data --port "$port" >/dev/null &&
	dm init keep && dm mount keep wkeep &&
	dm init other && dm mount other wother &&
	for n in 1 2 3; do commit_n keep $n && commit_n other $n || return 1; done
'

test_expect_success 'dm fsck is clean on a sound store' '
	dm fsck >out 2>err && cat out &&
	grep "^checked [0-9]* objects (.*) in [0-9]* packs, 6 commits, 2 branches of 2 dots$" out &&
	grep "^no problems found$" out &&
	dm fsck --json >out.json &&
	python3 -c "
import json
r = json.load(open(\"out.json\"))
assert r[\"problems\"] == 0 and r[\"commits\"] == 6 and r[\"dots\"] == 2, r
"
'

# One round: 24 MiB of garbage (a dot deleted) and a dropped commit, a
# collection killed after a random time, dmd started again.
kill_round() {
	local ms=$((RANDOM % 250))

	dm init "junk$1" >/dev/null && dm mount "junk$1" "junk$1" &&
	head -c 25165824 /dev/urandom >"junk$1/blob" &&
	dm commit --dot "junk$1" -m junk >/dev/null &&
	dm dot delete -f "junk$1" &&
	commit_n keep "r$1" && sed -i "\$d" ids.keep &&
	dm reset --dot keep --hard HEAD^ >/dev/null &&
	{ dm gc --expire now >/dev/null 2>&1 & } &&
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))" &&
	test_kill_hard "$data/dmd.pid" &&
	wait &&
	echo "round $1: killed after $ms ms" &&
	dm cluster start --data-dir "$data" --port "$port" >/dev/null &&
	dm fsck >fsck.out 2>&1 || { cat fsck.out; return 1; }
	grep "^no problems found$" fsck.out &&
	check_all
}

test_expect_success 'SIGKILL at random points of collections: dm fsck clean, nothing live lost' '
	done_before=$(grep -c "garbage collection: " "$data/dmd.log" || true) &&
	for r in 1 2 3 4 5 6; do
		kill_round $r || { echo "round $r failed"; return 1; }
	done &&
	done_after=$(grep -c "garbage collection: " "$data/dmd.log" || true) &&
	echo "$((6 - done_after + done_before)) of 6 collections were killed before they ended" &&
	dm gc --expire now >/dev/null &&
	dm fsck >out && grep "^no problems found$" out &&
	check_all
'

test_expect_success 'an index entry lost, its record still in a pack: --repair restores it' '
	dmd stop --data-dir "$data" >/dev/null &&
	dm-store-tool --store "$data/store" list >objects &&
	chunk=$(awk "\$1 == \"chunk\" { print \$2; exit }" objects) &&
	dm-store-tool --store "$data/store" forget "$chunk" &&
	dm cluster start --data-dir "$data" --port "$port" >/dev/null &&
	test_status 5 dm fsck >out &&
	cat out err &&
	grep "is damaged: some of its data is missing" out &&
	grep "^dm: [0-9]* problems found; .dm fsck --repair. repairs what is safe to$" err &&
	dm fsck --repair >out && cat out &&
	grep "^repaired: dropped 0 index entries whose bytes were gone, restored 1 objects from the packs, marked 0 commits damaged$" out &&
	grep "^no problems found$" out &&
	! grep "commits are damaged" out &&
	check_all
'

# overwrite ID: 16 bytes of every record of object ID in the pack files
# (its header holds its id; a copy a killed collection left is hit too)
overwrite() {
	python3 - "$1" "$data/store/packs" <<'EOF'
import os, sys
oid, d = bytes.fromhex(sys.argv[1]), sys.argv[2]
hit = 0
for name in os.listdir(d):
    path = os.path.join(d, name)
    with open(path, "r+b") as f:
        b = f.read()
        at = b.find(oid)
        while at >= 0:
            # a record's header: kind (1, a chunk), flags, two zero bytes,
            # raw and stored lengths, then the id; elsewhere (a file object
            # names the chunk) it is not a record
            h = at - 12
            stored = int.from_bytes(b[h + 8:h + 12], "little") if h >= 0 else 0
            if h >= 16 and b[h] == 1 and b[h + 2:h + 4] == b"\0\0" and stored > 600:
                f.seek(at + 32 + 500)
                f.write(b"X" * 16)
                hit += 1
            at = b.find(oid, at + 1)
print("overwrote %d records" % hit)
sys.exit(0 if hit else 1)
EOF
}

test_expect_success 'a chunk overwritten in its pack: --repair drops it and marks the commits that need it' '
	dmd stop --data-dir "$data" >/dev/null &&
	dm-store-tool --store "$data/store" list >objects &&
	chunk=$(awk "\$1 == \"chunk\" && \$3 > 1000 { c = \$2 } END { print c }" objects) &&
	overwrite "$chunk" &&
	dm cluster start --data-dir "$data" --port "$port" >/dev/null &&
	test_status 5 dm fsck >out &&
	cat out &&
	grep "^  chunk [0-9a-f]*: " out &&
	dm fsck --repair >out && cat out &&
	grep "^repaired: dropped 1 index entries whose bytes were gone, restored 0 objects from the packs, marked [1-9][0-9]* commits damaged$" out &&
	grep "^no problems found$" out &&
	dm fsck >out && grep "^no problems found$" out &&
	grep "^[1-9][0-9]* commits are damaged (dm log marks them)$" out &&
	dm log --dot keep >log.txt && dm log --dot other >>log.txt &&
	damaged=0 &&
	for dot in keep other; do
		for id in $(cat "ids.$dot"); do
			if dm reset --dot "$dot" --hard "$id" >/dev/null 2>err; then
				(cd "w$dot" && sha256sum $(ls | sort)) >now.sums &&
				cmp now.sums "sums.$id" || return 1
			else
				grep "^dm: commit $id is damaged: dm fsck found its data missing$" err &&
				damaged=$((damaged + 1)) || return 1
			fi
		done
	done &&
	echo "$damaged damaged commits refused" &&
	test "$damaged" -ge 1 &&
	test "$(grep -c "(damaged: its data is missing)" log.txt)" = "$damaged"
'

test_done
