#!/usr/bin/env bash
# bench/store.sh - the store benchmark: dm's object store (dm-store-tool)
# against restic, sha256sum and cp -a on the same generated data, in one run.
# Writes the "## store" section of bench/RESULTS.md. See bench/README.md.
set -euo pipefail
# write_section and the number and table helpers come from bench/lib.sh;
# the helpers this script defines below take precedence over lib.sh's.
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<'EOF'
usage: bench/store.sh [options]

Measures dm's object store on generated data against its peers, in one run
on the same data, and writes the "store" section of bench/RESULTS.md:
  ingest       dm commit vs restic backup, sha256sum (1 and 2 processes)
               and cp -a of a 2 GiB mixed set, caches dropped and warm
  re-commit    unchanged and 1%-changed re-commits of 100,000 small files
               and of the 2 GiB set (dm commit vs restic backup)
  materialise  dm checkout vs cp -a into an empty directory, and checkout
               into a directory that already holds the tree

options:
  --work DIR          work directory (default bench/work/; gitignored).
                      Needs about 7x the data size free.
  --scale F           data size factor (default 1 = 2 GiB and 100,000 small
                      files; 0.05 for a quick test)
  --small-files N     number of small files (default 100000 x scale)
  --seed N            data seed (default 1); same seed, same bytes
  --tool PATH         dm-store-tool to use (default: build it in build-bench/
                      with -Dbuildtype=release and use that)
  --results FILE      results file (default bench/RESULTS.md)
  --no-drop-caches    do not drop the page cache (skips the cold runs)
  --keep              keep the data, stores and copies in the work dir
  -h, --help          this text

Dropping caches (sync; echo 3 > /proc/sys/vm/drop_caches) needs root; without
it the cold runs are skipped and the results say so. Run it on a quiet
machine: it is I/O- and CPU-bound and other load changes the numbers.
EOF
}

die() {
	printf 'store.sh: %s\n' "$*" >&2
	exit 1
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$REPO/bench/work
SCALE=1
SEED=1
NSMALL=""
TOOL=""
RESULTS=$REPO/bench/RESULTS.md
DROP=1
KEEP=0
ARGS=("$@")

while [ $# -gt 0 ]; do
	case $1 in
	--work) WORK=${2:?--work needs a directory}; shift 2 ;;
	--scale) SCALE=${2:?--scale needs a number}; shift 2 ;;
	--small-files) NSMALL=${2:?--small-files needs a number}; shift 2 ;;
	--seed) SEED=${2:?--seed needs a number}; shift 2 ;;
	--tool) TOOL=${2:?--tool needs a path}; shift 2 ;;
	--results) RESULTS=${2:?--results needs a file}; shift 2 ;;
	--no-drop-caches) DROP=0; shift ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument '$1'" ;;
	esac
done

[[ $SCALE =~ ^[0-9]*\.?[0-9]+$ ]] && awk -v s="$SCALE" 'BEGIN { exit !(s > 0 && s <= 16) }' ||
	die "--scale must be a number in (0, 16], not '$SCALE'"
[[ $SEED =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, not '$SEED'"
if [ -z "$NSMALL" ]; then
	NSMALL=$(awk -v s="$SCALE" 'BEGIN { n = int(100000 * s + 0.5); print (n < 100 ? 100 : n) }')
fi
[[ $NSMALL =~ ^[0-9]+$ ]] && [ "$NSMALL" -ge 100 ] || die "--small-files must be an integer >= 100"
for c in restic openssl python3 /usr/bin/time sha256sum; do
	command -v "$c" >/dev/null || die "'$c' is needed and not installed"
done
if [ "$DROP" = 1 ] && ! { [ -w /proc/sys/vm/drop_caches ] && sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
	echo "store.sh: cannot drop the page cache (not root?); cold runs skipped" >&2
	DROP=0
fi
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
[ "$WORK" != / ] || die "refusing to use / as the work directory"

DATA=$WORK/data          # the mixed set
SMALL=$WORK/small        # the small-files set
STORE=$WORK/store        # dm store of the mixed set
SSTORE=$WORK/store-small # dm store of the small set
RREPO=$WORK/restic       # restic repository of the mixed set
RSREPO=$WORK/restic-small
COPY=$WORK/copy          # cp -a output
OUT=$WORK/out            # dm checkout output
LOGS=$WORK/logs
BIG=("$DATA" "$SMALL" "$STORE" "$SSTORE" "$RREPO" "$RSREPO" "$COPY" "$OUT"
	"$WORK/restic-cache" "$WORK/restic-small-cache")
export RESTIC_PASSWORD=bench
RBACKUP=(restic --repo "$RREPO" --cache-dir "$WORK/restic-cache" backup --host bench)
RSBACKUP=(restic --repo "$RSREPO" --cache-dir "$WORK/restic-small-cache" backup --host bench)

START=$(date +%s)
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
say() { printf '[store %4ds] %s\n' $(($(date +%s) - START)) "$*" >&2; }

cleanup() {
	local rc=$?
	if [ "$KEEP" = 0 ]; then
		rm -rf "${BIG[@]}"
	fi
	if [ $rc != 0 ]; then
		echo "store.sh: failed; logs of each step are in $LOGS" >&2
	fi
}
trap cleanup EXIT

rm -rf "${BIG[@]}" "$LOGS"
mkdir -p "$LOGS"

# ---------------------------------------------------------------- helpers

# calc, fsec, fx, yesno, median, row and note: lib.sh's
frate() { awk -v b="$1" -v t="$2" 'BEGIN { r = b / 1e6 / t; if (r >= 100) printf "%.0f MB/s", r; else printf "%.1f MB/s", r }'; }
fmb() { awk -v b="$1" 'BEGIN { if (b >= 1e9) printf "%.2f GB", b / 1e9; else printf "%.1f MB", b / 1e6 }'; }
dusize() { du -sb "$1" | cut -f1; }

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# Reads every file of a tree so that the next run finds it in the page cache.
prewarm() { find "$1" -type f -print0 | xargs -0 -n 256 cat >/dev/null; }
# Brings the page cache to the state a measurement of MODE (cold|warm) needs.
prepare() {
	local mode=$1
	shift
	sync
	if [ "$mode" = cold ]; then
		drop_caches
	else
		local d
		for d in "$@"; do prewarm "$d"; done
	fi
}

# timed NAME CMD...: runs CMD once, output in $LOGS/NAME.{out,err}; sets T
# (seconds, wall clock) and RSS (peak resident set of CMD, KiB).
timed() {
	local name=$1 t0 t1
	shift
	[ "$name" = "${name%-sync}" ] && say "  $name"
	t0=$(date +%s%N)
	if ! /usr/bin/time -f '%e %M' -o "$LOGS/$name.time" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err"; then
		tail -n 5 "$LOGS/$name.err" >&2
		die "'$*' failed (step $name)"
	fi
	t1=$(date +%s%N)
	T=$(calc "($t1 - $t0) / 1e9")
	RSS=$(tail -n 1 "$LOGS/$name.time" | cut -d' ' -f2)
}
# timed_w NAME CMD...: as timed for a command that writes, followed by sync
# (timed as part of it, in step NAME-sync): T is the time until the data is
# on disk; T_NOSYNC the time of CMD alone.
timed_w() {
	local name=$1 t rss
	shift
	timed "$name" "$@"
	t=$T rss=$RSS
	timed "$name-sync" sync
	T_NOSYNC=$t
	T=$(calc "$t + $T")
	RSS=$rss
}

restic_init() { # REPO CACHE
	rm -rf "$1" "$2"
	restic --repo "$1" --cache-dir "$2" init >"$LOGS/restic-init.out" 2>&1 ||
		{ cat "$LOGS/restic-init.out" >&2; die "restic init failed"; }
}

ROWS=()
NOTES=()

# ---------------------------------------------------------------- the tool

if [ -z "$TOOL" ]; then
	say "building dm-store-tool (release) in build-bench/"
	if [ ! -f "$REPO/build-bench/build.ninja" ]; then
		meson setup "$REPO/build-bench" "$REPO" -Dbuildtype=release >"$LOGS/build.log" 2>&1 ||
			{ tail -n 20 "$LOGS/build.log" >&2; die "meson setup failed"; }
	fi
	ninja -C "$REPO/build-bench" tests/helpers/dm-store-tool >>"$LOGS/build.log" 2>&1 ||
		{ tail -n 20 "$LOGS/build.log" >&2; die "building dm-store-tool failed"; }
	TOOL=$REPO/build-bench/tests/helpers/dm-store-tool
fi
[ -x "$TOOL" ] || die "no dm-store-tool at '$TOOL'"
TOOL=$(cd "$(dirname "$TOOL")" && pwd)/$(basename "$TOOL")
BUILDTYPE=unknown
bdir=$(dirname "$(dirname "$(dirname "$TOOL")")")
if [ -f "$bdir/meson-info/intro-buildoptions.json" ]; then
	BUILDTYPE=$(python3 -c 'import json, sys
for o in json.load(open(sys.argv[1])):
    if o["name"] == "buildtype": print(o["value"])' "$bdir/meson-info/intro-buildoptions.json")
fi
[ "$BUILDTYPE" = release ] || say "WARNING: dm-store-tool is a '$BUILDTYPE' build, not release"
REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null)" ]; then REV="$REV+changes"; fi

# ---------------------------------------------------------------- data

need=$(awk -v s="$SCALE" -v n="$NSMALL" 'BEGIN { printf "%d", (7 * 2 * 2^30 * s + 4 * n * 9000) / 2^20 }')
avail=$(df -Pm "$WORK" | awk 'NR == 2 { print $4 }')
[ "$avail" -ge "$need" ] || die "need about $need MiB free in $WORK, have $avail MiB"

say "generating the mixed set (scale $SCALE, seed $SEED) in $DATA"
read -r DFILES DBYTES < <(python3 "$REPO/bench/store_data.py" mixed "$DATA" --seed "$SEED" --scale "$SCALE" |
	sed -E 's/files=([0-9]+) bytes=([0-9]+)/\1 \2/')
say "generating $NSMALL small files in $SMALL"
read -r SFILES SBYTES < <(python3 "$REPO/bench/store_data.py" small "$SMALL" --seed "$SEED" --count "$NSMALL" |
	sed -E 's/files=([0-9]+) bytes=([0-9]+)/\1 \2/')
DSIZE=$(fmb "$DBYTES")
say "mixed set: $DFILES files, $DSIZE; small set: $SFILES files, $(fmb "$SBYTES")"

MODES=(warm)
[ "$DROP" = 1 ] && MODES=(cold warm)

# ---------------------------------------------------------------- ingest

for mode in "${MODES[@]}"; do
	say "ingest, $mode"
	rm -rf "$STORE" && prepare "$mode" "$DATA"
	timed_w "ingest-$mode-dm" "$TOOL" --store "$STORE" commit "$DATA"
	dm_t=$T dm_rss=$RSS
	TREE=$(tail -n 1 "$LOGS/ingest-$mode-dm.out")
	[[ $TREE =~ ^[0-9a-f]{64}$ ]] || die "dm-store-tool commit printed '$TREE', not a tree id"

	restic_init "$RREPO" "$WORK/restic-cache"
	prepare "$mode" "$DATA"
	timed_w "ingest-$mode-restic" "${RBACKUP[@]}" "$DATA"
	r_t=$T r_rss=$RSS

	prepare "$mode" "$DATA"
	timed "ingest-$mode-sha256-p2" bash -c 'find "$1" -type f -print0 | xargs -0 -P2 -n 16 sha256sum >/dev/null' _ "$DATA"
	sha2_t=$T
	prepare "$mode" "$DATA"
	timed "ingest-$mode-sha256-p1" bash -c 'find "$1" -type f -print0 | xargs -0 sha256sum >/dev/null' _ "$DATA"
	sha1_t=$T

	rm -rf "$COPY" && prepare "$mode" "$DATA"
	timed_w "ingest-$mode-cp" cp -a "$DATA" "$COPY"
	cp_t=$T cp_nosync=$T_NOSYNC
	rm -rf "$COPY"

	dmv="$(fsec "$dm_t") ($(frate "$DBYTES" "$dm_t"))"
	rr=$(calc "$r_t / $dm_t")
	row "ingest $DSIZE, $mode: dm commit vs restic backup" "$dmv" \
		"$(fsec "$r_t") ($(frate "$DBYTES" "$r_t"))" "$(fx "$rr")" "≥ 2× restic" "$(yesno "$rr >= 2")"
	rc=$(calc "$cp_t / $dm_t")
	row "ingest $DSIZE, $mode: dm commit vs cp -a + sync" "$dmv" \
		"$(fsec "$cp_t") ($(frate "$DBYTES" "$cp_t"))" "$(fx "$rc")" "≥ 0.8× cp -a" "$(yesno "$rc >= 0.8")"
	row "ingest $DSIZE, $mode: dm commit vs cp -a without sync" "$dmv" \
		"$(fsec "$cp_nosync") ($(frate "$DBYTES" "$cp_nosync"))" "$(fx "$(calc "$cp_nosync / $dm_t")")" "info" "–"
	row "ingest $DSIZE, $mode: dm commit vs sha256sum, 2 processes" "$dmv" \
		"$(fsec "$sha2_t") ($(frate "$DBYTES" "$sha2_t"))" "$(fx "$(calc "$sha2_t / $dm_t")")" "info (hashing floor)" "–"
	row "ingest $DSIZE, $mode: dm commit vs sha256sum, 1 process" "$dmv" \
		"$(fsec "$sha1_t") ($(frate "$DBYTES" "$sha1_t"))" "$(fx "$(calc "$sha1_t / $dm_t")")" "info" "–"
	if [ "$mode" = warm ]; then
		INGEST_WARM=$dm_t
		row "peak memory, ingest $mode: dm commit vs restic backup" "$((dm_rss / 1024)) MiB" \
			"$((r_rss / 1024)) MiB" "$(fx "$(calc "$dm_rss / $r_rss")")" "info" "–"
	fi
done
DM_STATS=$(grep -v '^$' "$LOGS/ingest-warm-dm.err" | tail -n 5 || true)

STORE_SIZE=$(dusize "$STORE")
RESTIC_SIZE=$(dusize "$RREPO")
DATA_DU=$(dusize "$DATA")
row "size on disk of $DSIZE of data (du -sb $(fmb "$DATA_DU")): dm store vs restic repository" \
	"$(fmb "$STORE_SIZE") ($(awk -v a="$STORE_SIZE" -v b="$DATA_DU" 'BEGIN { printf "%.0f%%", 100 * a / b }'))" \
	"$(fmb "$RESTIC_SIZE") ($(awk -v a="$RESTIC_SIZE" -v b="$DATA_DU" 'BEGIN { printf "%.0f%%", 100 * a / b }'))" \
	"$(fx "$(calc "$STORE_SIZE / $RESTIC_SIZE")")" "info" "–"

say "verifying the store (untimed)"
"$TOOL" --store "$STORE" verify >"$LOGS/verify.out" 2>"$LOGS/verify.err" ||
	{ cat "$LOGS/verify.err" >&2; die "dm-store-tool verify failed after ingest"; }

# ---------------------------------------------------------------- materialise

for mode in "${MODES[@]}"; do
	say "materialise, $mode"
	rm -rf "$OUT" && prepare "$mode" "$STORE"
	timed_w "checkout-$mode-dm" "$TOOL" --store "$STORE" checkout "$TREE" "$OUT"
	dm_t=$T
	rm -rf "$COPY" && prepare "$mode" "$DATA"
	timed_w "checkout-$mode-cp" cp -a "$DATA" "$COPY"
	cp_t=$T
	rr=$(calc "$dm_t / $cp_t")
	row "materialise $DSIZE into an empty dir, $mode: dm checkout vs cp -a (both + sync)" \
		"$(fsec "$dm_t") ($(frate "$DBYTES" "$dm_t"))" "$(fsec "$cp_t") ($(frate "$DBYTES" "$cp_t"))" \
		"$(fx "$rr") the time" "≤ 1.5× cp -a's time" "$(yesno "$rr <= 1.5")"
	rm -rf "$COPY"
	if [ "$mode" != warm ]; then rm -rf "$OUT"; fi
done

say "checking the checkout against the source (untimed)"
diff -rq "$DATA" "$OUT" >"$LOGS/checkout-diff.out" 2>&1 ||
	{ head -n 5 "$LOGS/checkout-diff.out" >&2; die "the checkout differs from the data"; }
meta() { (cd "$1" && find . -mindepth 1 -printf '%P %y %m %U:%G %s %T@\n' | LC_ALL=C sort); }
if ! cmp -s <(meta "$DATA") <(meta "$OUT"); then
	n=$(diff <(meta "$DATA") <(meta "$OUT") | grep -c '^>' || true)
	note "Checkout restored the content exactly, but $n entries differ in type, mode, owner, size or mtime from the source."
fi

say "materialise into a directory that holds the tree already (x3)"
snap() { (cd "$1" && find . -printf '%P %i %s %T@ %C@\n' | LC_ALL=C sort); }
snap "$OUT" >"$LOGS/recheckout-before.txt"
ts=()
for i in 1 2 3; do
	prepare warm "$STORE"
	timed_w "recheckout-$i" "$TOOL" --store "$STORE" checkout "$TREE" "$OUT"
	ts+=("$T")
done
snap "$OUT" >"$LOGS/recheckout-after.txt"
untouched=no
cmp -s "$LOGS/recheckout-before.txt" "$LOGS/recheckout-after.txt" && untouched=yes
t=$(median "${ts[@]}")
row "materialise $DSIZE into a dir that holds it already, warm, median of 3" "$(fsec "$t")" "–" \
	"$(fx "$(calc "$t / $dm_t")") an empty checkout's time" "nothing written (inode, mtime, ctime unchanged)" \
	"$([ $untouched = yes ] && echo yes || echo "**no**")"
rm -rf "$OUT"

# ---------------------------------------------------------------- re-commit, small files

say "re-commit: $SFILES small files"
SLABEL="$SFILES small files ($(fmb "$SBYTES"))"
if [ "$DROP" = 1 ]; then
	rm -rf "$SSTORE" && prepare cold
	timed_w small-first-cold-dm "$TOOL" --store "$SSTORE" commit "$SMALL"
	dm_t=$T
	restic_init "$RSREPO" "$WORK/restic-small-cache"
	prepare cold
	timed_w small-first-cold-restic "${RSBACKUP[@]}" "$SMALL"
	row "first commit of $SLABEL, cold, empty store" "$(fsec "$dm_t")" "$(fsec "$T")" \
		"$(fx "$(calc "$T / $dm_t")") restic's speed" "info" "–"
fi
rm -rf "$SSTORE" && prepare warm "$SMALL"
timed_w small-first-warm-dm "$TOOL" --store "$SSTORE" commit "$SMALL"
SFIRST=$T
restic_init "$RSREPO" "$WORK/restic-small-cache"
prepare warm "$SMALL"
timed_w small-first-warm-restic "${RSBACKUP[@]}" "$SMALL"
row "first commit of $SLABEL, warm, empty store" "$(fsec "$SFIRST")" "$(fsec "$T")" \
	"$(fx "$(calc "$T / $SFIRST")") restic's speed" "info" "–"

dts=() rts=()
for i in 1 2 3; do
	timed_w "small-unchanged-$i-dm" "$TOOL" --store "$SSTORE" commit "$SMALL"
	dts+=("$T")
	timed_w "small-unchanged-$i-restic" "${RSBACKUP[@]}" "$SMALL"
	rts+=("$T")
done
SUNCH=$(median "${dts[@]}")
rt=$(median "${rts[@]}")
ext=$(calc "$SUNCH * 100000 / $SFILES")
if [ "$SFILES" = 100000 ]; then
	met=$(yesno "$SUNCH < 1")
else
	met="$(yesno "$ext < 1") (linear extrapolation, start-up included: $(fsec "$ext") for 100,000)"
fi
row "unchanged re-commit of $SLABEL, warm, median of 3" "$(fsec "$SUNCH")" "$(fsec "$rt")" \
	"$(fx "$(calc "$rt / $SUNCH")") restic's speed" "< 1 s for 100,000 files" "$met"
if [ "$DROP" = 1 ]; then
	prepare cold
	timed_w small-unchanged-cold-dm "$TOOL" --store "$SSTORE" commit "$SMALL"
	dm_t=$T
	prepare cold
	timed_w small-unchanged-cold-restic "${RSBACKUP[@]}" "$SMALL"
	row "unchanged re-commit of $SLABEL, cold" "$(fsec "$dm_t")" "$(fsec "$T")" \
		"$(fx "$(calc "$T / $dm_t")") restic's speed" "info" "–"
fi

# mutate MODE ROOT ARGS...: changes ROOT with store_data.py; sets MF (files
# written), MB (bytes of new content) and MTB (size of the touched files).
mutate() {
	local mode=$1 root=$2
	shift 2
	read -r MF MB MTB < <(python3 "$REPO/bench/store_data.py" "$mode" "$root" --seed "$SEED" "$@" |
		sed -E 's/files=([0-9]+) bytes=([0-9]+) touched_bytes=([0-9]+)/\1 \2 \3/')
}
# one_change NAME ROOT STORE RESTIC_ARRAY_NAME LABEL: re-commits after
# changing one small file, 3 times; sets BASE, the median: the fixed cost of
# a commit that has something to store (flush, fsync of pack and index).
one_change() {
	local name=$1 root=$2 store=$3 label=$5 i
	local -n rcmd=$4
	local dts=() rts=()
	for i in 1 2 3; do
		mutate mutate-one "$root" --round "$((100 + i))"
		timed_w "$name-one-$i-dm" "$TOOL" --store "$store" commit "$root"
		dts+=("$T")
		timed_w "$name-one-$i-restic" "${rcmd[@]}" "$root"
		rts+=("$T")
	done
	BASE=$(median "${dts[@]}")
	local rt
	rt=$(median "${rts[@]}")
	row "re-commit of $label after changing one file of ≤ 64 KiB (fixed cost of a commit that stores something), warm, median of 3" \
		"$(fsec "$BASE")" "$(fsec "$rt")" "$(fx "$(calc "$rt / $BASE")") restic's speed" "info" "–"
}
# prop_row LABEL DM_T PEER_T CHANGED_BYTES TOTAL_BYTES BASE_T FULL_T: "cost
# proportional to changed bytes" means: the time over a one-file re-commit's
# (BASE_T) is at most twice the changed bytes' share of a full warm first
# commit's time (FULL_T).
prop_row() {
	local share extra ratio
	share=$(calc "$4 / $5 * $7")
	extra=$(calc "$2 - $6")
	ratio=$(calc "($extra > 0 ? $extra : 0) / $share")
	row "$1" "$(fsec "$2")" "$(fsec "$3")" "$(fx "$(calc "$3 / $2")") restic's speed" \
		"∝ changed bytes: time over a one-file re-commit ≤ 2× their share of a full commit ($(fsec "$share"))" \
		"$(yesno "$ratio <= 2") ($(fx "$ratio"))"
}

one_change small "$SMALL" "$SSTORE" RSBACKUP "the small files"
nchange=$((SFILES / 100))
dts=() rts=() bts=()
for i in 1 2 3; do
	mutate mutate-small "$SMALL" --round "$i" --count "$nchange"
	bts+=("$MB")
	timed_w "small-changed-$i-dm" "$TOOL" --store "$SSTORE" commit "$SMALL"
	dts+=("$T")
	timed_w "small-changed-$i-restic" "${RSBACKUP[@]}" "$SMALL"
	rts+=("$T")
done
prop_row "re-commit after rewriting 1% of the small files ($nchange files, $(fmb "$(median "${bts[@]}")")), warm, median of 3" \
	"$(median "${dts[@]}")" "$(median "${rts[@]}")" "$(median "${bts[@]}")" "$SBYTES" "$BASE" "$SFIRST"

# ---------------------------------------------------------------- re-commit, mixed set

say "re-commit: the mixed set"
prepare warm "$DATA"
dts=() rts=()
for i in 1 2 3; do
	timed_w "mixed-unchanged-$i-dm" "$TOOL" --store "$STORE" commit "$DATA"
	dts+=("$T")
	timed_w "mixed-unchanged-$i-restic" "${RBACKUP[@]}" "$DATA"
	rts+=("$T")
done
MUNCH=$(median "${dts[@]}")
rt=$(median "${rts[@]}")
row "unchanged re-commit of the $DSIZE set ($DFILES files), warm, median of 3" "$(fsec "$MUNCH")" \
	"$(fsec "$rt")" "$(fx "$(calc "$rt / $MUNCH")") restic's speed" "info" "–"
one_change mixed "$DATA" "$STORE" RBACKUP "the $DSIZE set"

onepct=$((DBYTES / 100))
mutate mutate-whole "$DATA" --bytes "$onepct"
timed_w mixed-whole-dm "$TOOL" --store "$STORE" commit "$DATA"
dm_t=$T
timed_w mixed-whole-restic "${RBACKUP[@]}" "$DATA"
prop_row "re-commit after rewriting 1% of the $DSIZE set as whole files ($MF files ≤ 8 MiB, $(fmb "$MB")), warm" \
	"$dm_t" "$T" "$MB" "$DBYTES" "$BASE" "$INGEST_WARM"

mutate mutate-spread "$DATA" --bytes "$onepct"
timed_w mixed-spread-dm "$TOOL" --store "$STORE" commit "$DATA"
dm_t=$T
timed_w mixed-spread-restic "${RBACKUP[@]}" "$DATA"
prop_row "re-commit after overwriting 1% of the $DSIZE set in place as 64 KiB blocks spread by size ($(fmb "$MB") in $MF files holding $(fmb "$MTB")), warm" \
	"$dm_t" "$T" "$MB" "$DBYTES" "$BASE" "$INGEST_WARM"
note "In-place edits: a re-commit rereads every file whose stat changed, so its cost follows the size of the touched files ($(fmb "$MTB") here), not the bytes changed; restic does the same."

# ---------------------------------------------------------------- results

ELAPSED=$(($(date +%s) - START))
LOAD1=$(cut -d' ' -f1 /proc/loadavg)
say "done in ${ELAPSED} s; writing $RESULTS"

MODEL=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
MEM=$(free -g | awk '/^Mem:/ { print $2 }')
FSTYPE=$(stat -f -c %T "$WORK")
REALFS=$(findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null || true)
[ -n "$REALFS" ] && FSTYPE="$FSTYPE ($REALFS per findmnt)"
MACHINE="$(nproc) CPUs ($MODEL), $MEM GiB RAM (free -g), Linux $(uname -r), work directory on $FSTYPE"
NOW=$(date -u '+%Y-%m-%d %H:%M UTC')

REPRO="bench/store.sh"
[ ${#ARGS[@]} -gt 0 ] && REPRO="bench/store.sh ${ARGS[*]}"
if [ "$DROP" = 1 ]; then
	CACHES="Caches: **dropped** (\`sync; echo 3 > /proc/sys/vm/drop_caches\`) before every *cold* measurement; *warm* ones first read their input once so it is in the page cache."
else
	CACHES="Caches: **not dropped** (no root, or --no-drop-caches): only warm measurements, each after reading its input once."
fi

SECTION=$(mktemp)
{
	echo "<!-- store:begin -->"
	echo "## store"
	echo
	echo "Run $NOW, dm $REV, dm-store-tool $BUILDTYPE build, restic $(restic version | awk '{ print $2 }'); $MACHINE;"
	echo "load average (1 min) $LOAD0 at the start, $LOAD1 at the end."
	echo "Scale $SCALE, seed $SEED: a mixed set of $DFILES files, $DSIZE (40% random, 40% text, 20% duplicated files)"
	echo "and $SFILES small files of 1–8 KiB. The whole run took $ELAPSED s."
	echo
	echo "$CACHES Every timed command that writes is followed by \`sync\`, timed with it, so"
	echo "times are until the data is on disk. MB = 10^6 bytes. Throughput ratios are"
	echo "dm's speed over the peer's (> 1: dm is faster); materialise ratios are dm's time over cp's."
	echo
	echo "| measurement | dm | peer | ratio | target | met? |"
	echo "| --- | --- | --- | --- | --- | --- |"
	printf '%s\n' "${ROWS[@]}"
	echo
	for n in "${NOTES[@]}"; do echo "* $n"; done
	[ ${#NOTES[@]} -gt 0 ] && echo
	if [ "$SCALE" != 1 ] || [ "$SFILES" != 100000 ]; then
		echo "This is a **reduced-scale** run: the targets are for 2 GiB and 100,000 files, so read"
		echo "the met? column as indicative only."
		echo
	fi
	if [ -n "$DM_STATS" ]; then
		echo "dm-store-tool's own statistics for the warm ingest:"
		echo
		echo '```'
		echo "$DM_STATS"
		echo '```'
		echo
	fi
	echo "Reproduce (as root, on a quiet machine; logs of each step in ${LOGS#"$REPO"/}/):"
	echo
	echo '```'
	echo "$REPRO"
	echo '```'
	echo "<!-- store:end -->"
} >"$SECTION"

if [ ! -f "$RESULTS" ]; then
	cat >"$RESULTS" <<EOF
# dm benchmarks

Results of the scripts in \`bench/\` (what each one measures: \`bench/README.md\`).
The numbers hold for the machine and the moment they were taken on; compare
rows of one run with each other, not runs of different machines.

## How to reproduce

\`\`\`
bench/store.sh              # full run: 2 GiB + 100,000 files (needs root to drop caches)
bench/store.sh --scale 0.05 # a quick check that the script works
\`\`\`

## Machine

Created $NOW on: $MACHINE.
Each section below names the machine it was measured on.

EOF
fi
write_section store "$SECTION"
rm -f "$SECTION"
say "results written to $RESULTS"
