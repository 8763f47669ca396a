#!/usr/bin/env bash
# bench/gc.sh - garbage collection: dm gc against restic's prune on the same
# history, and what a collection running costs the commits and pushes
# beside it. Writes the "## gc" section of bench/RESULTS.md (between
# <!-- gc:begin --> and <!-- gc:end -->). See bench/README.md.
set -euo pipefail
BENCH=gc.sh
TAG=gc
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<'EOF'
usage: bench/gc.sh [options]

Builds the same history in dm and in a restic repository: a dot of 16
files that changes between 50 commits (each commit rewrites random 1 MiB
blocks, 6% of the dot), each state also backed up by restic, and 5 more
dots (each also a restic snapshot tagged junk) that are then deleted. Then,
in one run:
  collect     dm dot delete of the 5 dots, dm dot prune --keep-last 5 and
              dm gc, against restic forget of the 5 junk snapshots and
              restic forget --keep-last 5 --prune --max-unused 0: time,
              bytes freed, peak memory
  commit      a dm commit of 1% of the dot, alone and while dm gc runs
              again and again (median of --runs each)
  push        a dm push of that commit to a second dmd, the same way

options:
  --work DIR      work directory (default bench/work/gc; gitignored)
  --scale F       data size factor (default 1: a dot of 2 GiB, a store of
                  about 9 GiB; 0.05 for a quick test)
  --seed N        data seed (default 1; the data is random: only sizes follow it)
  --runs N        runs of each repeated step (default 3)
  --build DIR     meson build directory (default build-bench/, release)
  --no-build      use --build DIR as it is
  --port N        first TCP port to try (default 39800; two are used)
  --results FILE  results file (default bench/RESULTS.md)
  --keep          keep the work directory's data
  -h, --help      this text
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$REPO/bench/work/gc
SCALE=1
SEED=1
RUNS=3
BUILD=$REPO/build-bench
DOBUILD=1
PORT=""
RESULTS=$REPO/bench/RESULTS.md
KEEP=0
PORT0=39800

while [ $# -gt 0 ]; do
	common_opt "$@"
	if [ "$SHIFT" -gt 0 ]; then
		shift "$SHIFT"
		continue
	fi
	case $1 in
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
done

check_common restic python3 /usr/bin/time
LOGS=$WORK/logs
A=$WORK/A
B=$WORK/B
REPOS=$WORK/restic
DATA=$WORK/wc
BIG=("$A" "$B" "$REPOS" "$WORK/junk" "$WORK/conf")
bench_start
build_dm
if [ "$DOBUILD" = 1 ]; then
	ninja -C "$BUILD" tests/helpers/dm-store-tool >>"$LOGS/build.log" 2>&1 ||
		die "building dm-store-tool failed"
fi
TOOL=$BUILD/tests/helpers/dm-store-tool
[ -x "$TOOL" ] || die "no dm-store-tool in '$BUILD' (tests/helpers/dm-store-tool)"
RANDOM=$SEED
export DM_CONFIG=$WORK/conf/config
export RESTIC_PASSWORD=bench RESTIC_REPOSITORY=$REPOS

# sizes in MiB
DOT_MIB=$(calc "2048 * $SCALE" | awk '{ printf "%d", $1 < 16 ? 16 : $1 }')
FILE_MIB=$((DOT_MIB / 16))
CHANGE_BLOCKS=$(awk -v d="$DOT_MIB" 'BEGIN { n = int(d * 0.06); print n < 1 ? 1 : n }')
SMALL_BLOCKS=$(awk -v d="$DOT_MIB" 'BEGIN { n = int(d * 0.01); print n < 1 ? 1 : n }')
JUNK_MIB=$(awk -v d="$DOT_MIB" 'BEGIN { n = int(d / 10); print n < 1 ? 1 : n }')
COMMITS=50
need_space "$WORK" $(((DOT_MIB + COMMITS * CHANGE_BLOCKS + 5 * JUNK_MIB) * 3)) "the history in dm and in restic"

# rewrite N: N random 1 MiB blocks of random files of the dot
rewrite() {
	local i f blocks=$((FILE_MIB > 0 ? FILE_MIB : 1))
	for i in $(seq "$1"); do
		f=$DATA/f$((RANDOM % 16))
		dd if=/dev/urandom of="$f" bs=1M count=1 seek=$((RANDOM % blocks)) conv=notrunc status=none
	done
}

# peak_reset PID / peak_kib PID: the process's peak RSS from now on
peak_reset() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

pick_port "$PORT0"
PORT_A=$PORT
start_dmd "$A" 0
PID_A=$PID
PORT=""
pick_port $((PORT_A + 1))
PORT_B=$PORT
DM_CONFIG=$WORK/conf/configB start_dmd "$B" 0
PID_B=$PID
DM_API_KEY=$(cat "$B/admin-api-key") "$DM" remote add b "admin@127.0.0.1:$PORT_B" --ca-file "$B/ca.pem" >/dev/null
restic init >"$LOGS/restic-init.log" 2>&1

say "history: a dot of $DOT_MIB MiB, $COMMITS commits of $CHANGE_BLOCKS MiB changes, 5 dots of $JUNK_MIB MiB"
"$DM" init data >/dev/null
"$DM" mount data "$DATA" >/dev/null
REAL=$(readlink -f "$DATA") # restic backs up the directory, not the link
for i in $(seq 0 15); do
	head -c $((FILE_MIB * 1048576)) /dev/urandom >"$DATA/f$i"
done
for c in $(seq "$COMMITS"); do
	[ "$c" = 1 ] || rewrite "$CHANGE_BLOCKS"
	"$DM" commit --dot data -m "c$c" >>"$LOGS/history.log" 2>&1
	restic backup --host bench "$REAL" >>"$LOGS/history-restic.log" 2>&1
done
mkdir -p "$WORK/junk"
for j in 1 2 3 4 5; do
	"$DM" init "junk$j" >/dev/null
	"$DM" mount "junk$j" "$WORK/junk/$j" >/dev/null
	head -c $((JUNK_MIB * 1048576)) /dev/urandom >"$WORK/junk/$j/blob"
	"$DM" commit --dot "junk$j" -m junk >>"$LOGS/history.log" 2>&1
	restic backup --host bench --tag junk "$(readlink -f "$WORK/junk/$j")" \
		>>"$LOGS/history-restic.log" 2>&1
done
DM_STORE0=$(du -sb "$A/store" | cut -f1)
RESTIC0=$(du -sb "$REPOS" | cut -f1)
say "dm's store: $(fmb "$DM_STORE0"), restic's repository: $(fmb "$RESTIC0")"

# the whole dot to B before the prune (a pruned commit's data cannot be
# sent to a remote that lacks it): not measured
tm push-first "$DM" push b data

say "collect: dm"
for j in 1 2 3 4 5; do "$DM" dot delete -f "junk$j" >/dev/null; done
sync
peak_reset "$PID_A"
tm dm-prune "$DM" dot prune data --keep-last 5 --json
T_PRUNE=$T
PRUNED=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["pruned"])' "$LOGS/dm-prune.out")
tm dm-gc-dry "$DM" gc --dry-run --json
tm dm-gc "$DM" gc --json
T_GC=$T
T_DM=$(calc "$T_PRUNE + $T_GC")
DM_PEAK=$(proc_kib "$PID_A" VmHWM)
sync
DM_STORE1=$(du -sb "$A/store" | cut -f1)
PREDICTED=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["freed_disk_bytes"])' "$LOGS/dm-gc-dry.out")
FREED=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["freed_disk_bytes"])' "$LOGS/dm-gc.out")
MARK=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["mark_bytes"])' "$LOGS/dm-gc.out")
OBJECTS=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["objects"])' "$LOGS/dm-gc.out")

say "collect: restic"
JUNK_IDS=$(restic snapshots --tag junk --json | python3 -c 'import json, sys
print(" ".join(s["id"] for s in json.load(sys.stdin)))')
[ -n "$JUNK_IDS" ] || die "restic has no snapshots tagged junk"
# shellcheck disable=SC2086 # one word per snapshot id
tm restic-forget restic forget $JUNK_IDS
T_FORGET=$T
tm restic-prune /usr/bin/time -v restic forget --keep-last 5 --prune --max-unused 0
T_RESTIC=$(calc "$T_FORGET + $T")
RESTIC_PEAK=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$LOGS/restic-prune.err")
RESTIC1=$(du -sb "$REPOS" | cut -f1)

say "commits and pushes, without and with collections running"
gc_loop() {
	while [ ! -e "$WORK/stop" ]; do "$DM" gc >/dev/null 2>&1 || true; done
}
for mode in alone during; do
	for r in $(seq "$RUNS"); do
		rewrite "$SMALL_BLOCKS"
		rm -f "$WORK/stop"
		if [ "$mode" = during ]; then
			gc_loop &
			LOOP=$!
			sleep 0.2
		fi
		tm "commit-$mode-$r" "$DM" commit --dot data -m "$mode $r"
		tm "push-$mode-$r" "$DM" push b data
		if [ "$mode" = during ]; then
			touch "$WORK/stop"
			wait "$LOOP"
		fi
	done
done
median_step commit-alone ""
C_ALONE=$MED C_ALONE_RUNS=$(runs "${RUNVALS[@]}")
median_step commit-during ""
C_DURING=$MED C_DURING_RUNS=$(runs "${RUNVALS[@]}")
median_step push-alone ""
P_ALONE=$MED P_ALONE_RUNS=$(runs "${RUNVALS[@]}")
median_step push-during ""
P_DURING=$MED P_DURING_RUNS=$(runs "${RUNVALS[@]}")
GCS=$(grep -c "garbage collection: " "$A/dmd.log" || true)

say "verifying dm's store"
stop_dmd "$A"
"$TOOL" --store "$A/store" verify >"$LOGS/verify.log" 2>&1 ||
	die "dm's store does not verify after the runs (see $LOGS/verify.log)"

machine_line
row "collect the 5 deleted dots and all but the last 5 commits: time" "$(fsec "$T_DM") (prune $(fsec "$T_PRUNE"), gc $(fsec "$T_GC"))" "$(fsec "$T_RESTIC") (forget of the junk $(fsec "$T_FORGET"), forget --keep-last 5 --prune $(fsec "$(step_time restic-prune)"))" "$(fx "$(calc "$T_RESTIC / $T_DM")") faster (target ≥ 2×)"
row "bytes freed on disk" "$(fmb $((DM_STORE0 - DM_STORE1))) (store $(fmb "$DM_STORE0") → $(fmb "$DM_STORE1"))" "$(fmb $((RESTIC0 - RESTIC1))) (repository $(fmb "$RESTIC0") → $(fmb "$RESTIC1"))" "–"
row "--dry-run's prediction of dm gc's freed bytes" "$(fmb "$PREDICTED") predicted, $(fmb "$FREED") freed" "–" "$(awk -v p="$PREDICTED" -v f="$FREED" 'BEGIN { if (f == 0) print "–"; else printf "%.1f%% off", (p - f) * 100 / f }')"
row "peak memory" "$(fmib "$DM_PEAK") (dmd's VmHWM during dm gc; mark sets $(fmb "$MARK") for $OBJECTS objects)" "$(fmib "$RESTIC_PEAK") (restic prune's max RSS)" "target < 100 MiB"
row "dm commit of 1% of the dot: alone / during collections" "$(fsec "$C_ALONE") / $(fsec "$C_DURING")" "–" "$(fx "$(calc "$C_DURING / $C_ALONE")") (target ≤ 2×)"
row "dm push of that commit: alone / during collections" "$(fsec "$P_ALONE") / $(fsec "$P_DURING")" "–" "$(fx "$(calc "$P_DURING / $P_ALONE")")"
note "History: a dot of 16 files, $DOT_MIB MiB, $COMMITS commits (each rewrites $CHANGE_BLOCKS random 1 MiB blocks of random files, from /dev/urandom: incompressible), each state also a restic snapshot; 5 more dots of $JUNK_MIB MiB each, also restic snapshots tagged junk. Collecting: \`dm dot delete\` of the 5 dots, \`dm dot prune data --keep-last 5\` ($PRUNED commits pruned, their records kept) then \`dm gc\`, against \`restic forget\` of the 5 junk snapshots then \`restic forget --keep-last 5 --prune\` (restic $(restic version | awk '{ print $2 }'), with --max-unused 0 so that it frees all it can, as dm gc does)."
note "dm gc rewrites each pack whose live records fill less than 80% of it (the others keep their dead records); restic prune --max-unused 0 repacks every pack with an unused blob. restic's repository is larger than dm's store for the same history: its chunks average 1 MiB (dm's 64 KiB), so a rewritten 1 MiB block costs it more new data."
note "Commit and push runs: $RUNS each, medians (commits alone: $C_ALONE_RUNS; during: $C_DURING_RUNS; pushes alone: $P_ALONE_RUNS; during: $P_DURING_RUNS). During: \`dm gc\` runs again and again in a loop from 0.2 s before the commit until after the push ($GCS collections logged in the whole run)."
note "dm's peak memory is the whole dmd's (the HTTP server, the dots' actors and the collection), reset (\`/proc/PID/clear_refs\`) just before the dry run and the collection."
note "What the collection itself holds grows with the objects: its mark sets (docs/internals/gc.md, \"Memory\") took $(fmb "$MARK") for $OBJECTS objects here, so about $(fmb $((MARK * 10))) for 10× the objects (a Bloom filter of 10 bits per object, capped at 64 MiB, and 64 bytes per file, tree and commit reached); the rest of dmd's peak does not grow with the store."
note "After the runs dmd was stopped and \`dm-store-tool verify\` checked every object of dm's store."
if [ "$SCALE" != 1 ]; then
	note "This is a **reduced** run (--scale $SCALE; the full one: a 2 GiB dot and a store of about 9 GiB): read it as indicative only."
fi

SECT=$LOGS/section.md
{
	echo "<!-- gc:begin -->"
	echo "## gc: dm gc against restic prune, and commits and pushes during collections"
	echo
	echo "Run $NOW, dm $REV, dm and dmd $BUILDTYPE build; $MACHINE;"
	echo "load average (1 min) $LOAD0 at the start, $LOAD1 at the end."
	echo "The whole run took $(($(date +%s) - START)) s."
	echo
	echo "| measurement | dm | restic | dm against the target |"
	echo "| --- | --- | --- | --- |"
	printf '%s\n' "${ROWS[@]}"
	echo
	for n in "${NOTES[@]}"; do echo "* $n"; done
	echo
	echo "Reproduce (as root, on a quiet machine; logs of each step in bench/work/gc/logs/):"
	echo
	echo '```'
	echo "bench/gc.sh --scale $SCALE --runs $RUNS"
	echo '```'
	echo "<!-- gc:end -->"
} >"$SECT"
write_section gc "$SECT"
say "results written to ${RESULTS#"$REPO"/}"
