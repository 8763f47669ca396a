#!/usr/bin/env bash
test_description='what a dot costs: dm dot show counts referenced, unique and written bytes for the dot and each branch, and "unique" is what deleting it then frees (dm gc, du of the packs)'
. "$(dirname "$0")/test-lib.sh"

# What this proves, against a real dmd on the dir engine: `dm dot show`
# (and --json) gives, for the dot and for each branch, the bytes its
# commits reference, the bytes only it holds, and the bytes its head wrote
# since the previous commit; data another dot has too counts as referenced
# but not as unique; the figures follow a commit (they are recounted, not
# left stale); and deleting a branch (-D) or the dot, then `dm gc`, frees
# exactly the unique bytes shown (gc's own count within 1%, the packs on
# disk within 5%).

[ "${DM_TEST_ENGINE:-dir}" = dir ] || test_skip_all 'the dir engine only (sizes of pack records)'

port=$(test_free_port)
data=$HOME/data
export DM_CONFIG=$HOME/dmconf/config
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1"

packs_bytes() {
	du -sb "$data/store/packs" | cut -f1
}

# space DOT [BRANCH] FIELD: the figure dm dot show --json gives; fails
# while the figures are stale (they are recounted within seconds)
space() {
	dm dot show "$1" --json >show.json &&
	python3 - "$@" <<'EOF'
import json, sys
d = json.load(open("show.json"))
args = sys.argv[1:]
sp = d["space"]
assert sp.get("stale") is False, sp
if len(args) == 3:
    sp = [b for b in d["branches"] if b["name"] == args[1]][0]["space"]
print(sp[args[-1]])
EOF
}

# near A B PCT: A and B differ by at most PCT% of B (and 64 kB)
near() {
	python3 -c "import sys; a, b, p = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
sys.exit(0 if abs(a - b) <= max(b * p / 100, 65536) else 1)" "$1" "$2" "$3" || {
		echo "$1 is not within $3% of $2" >&2
		return 1
	}
}

test_expect_success 'setup: dot a (3 MB of its own, 1 MB shared with b), dot b (1 MB of its own)' '
	dm cluster init --data-dir data --port "$port" >/dev/null &&
	head -c 1000000 /dev/urandom >shared &&
	dm init a && dm mount a wa &&
	head -c 3000000 /dev/urandom >wa/own && cp shared wa/shared &&
	dm commit -m one >/dev/null &&
	dm init b && dm mount b wb &&
	head -c 1000000 /dev/urandom >wb/own && cp shared wb/shared &&
	dm commit --dot b -m one >/dev/null
'

test_expect_success 'dm dot show gives what the dot references, holds alone and wrote' '
	dm dot show a >out && cat out &&
	grep "^referenced: *3.8 MiB$" out &&
	grep "^unique: *2.9 MiB (what deleting it frees)$" out &&
	grep "^written: *3.8 MiB (since the previous commit)$" out &&
	grep "REFERENCED *UNIQUE *WRITTEN" out &&
	ref=$(space a referenced) && uniq=$(space a unique) &&
	near "$ref" 4000000 2 && near "$uniq" 3000000 2 &&
	near "$(space b unique)" 1000000 2 &&
	near "$(space b referenced)" 2000000 2 &&
	dm dot show -H a >out && grep "^unique	$uniq$" out
'

test_expect_success 'the figures follow a commit: written is what the head added' '
	head -c 500000 /dev/urandom >wa/more &&
	dm commit --dot a -m two >/dev/null &&
	near "$(space a written)" 500000 2 &&
	near "$(space a master written)" 500000 2 &&
	near "$(space a unique)" 3500000 2
'

test_expect_success 'a branch: its own bytes are unique to it, the shared history is not' '
	dm checkout --dot a -b side >/dev/null &&
	head -c 2000000 /dev/urandom >wa/side &&
	dm commit --dot a -m side >/dev/null &&
	dm checkout --dot a master >/dev/null &&
	near "$(space a side unique)" 2000000 2 &&
	near "$(space a side written)" 2000000 2 &&
	near "$(space a side referenced)" 6500000 2 &&
	test "$(space a master unique)" -lt 65536 &&
	near "$(space a unique)" 5500000 2
'

test_expect_success 'dm branch -D and dm gc free exactly the branch'"'"'s unique bytes' '
	uniq=$(space a side unique) &&
	before=$(packs_bytes) &&
	dm branch --dot a -D side >/dev/null &&
	dm gc --expire now --json >gc.json &&
	freed=$(python3 -c "import json; print(json.load(open(\"gc.json\"))[\"freed_object_bytes\"])") &&
	after=$(packs_bytes) &&
	echo "unique $uniq, gc freed $freed, packs $before -> $after" &&
	near "$freed" "$uniq" 1 &&
	near "$((before - after))" "$uniq" 5
'

test_expect_success 'deleting the dot and dm gc free exactly its unique bytes; the shared ones stay' '
	uniq=$(space a unique) &&
	near "$uniq" 3500000 2 &&
	before=$(packs_bytes) &&
	dm dot delete -f a &&
	dm gc --json >gc.json &&
	freed=$(python3 -c "import json; print(json.load(open(\"gc.json\"))[\"freed_object_bytes\"])") &&
	after=$(packs_bytes) &&
	echo "unique $uniq, gc freed $freed, packs $before -> $after" &&
	near "$freed" "$uniq" 1 &&
	near "$((before - after))" "$uniq" 5 &&
	near "$(space b unique)" 2000000 2 &&
	dm reset --dot b --hard HEAD >/dev/null && cmp wb/shared shared
'

test_done
