#!/usr/bin/env bash
# bench/commit.sh - dm commit and reset latency on a dot of 2 GiB in 100,000
# files, against git on the same tree in the same run, and dmd's resident
# memory idle and with 1,000 dots. Writes the "## commit" section of
# bench/RESULTS.md (between <!-- commit:begin --> and <!-- commit:end -->).
# With --engine btrfs it runs bench/commit_btrfs.sh instead (the btrfs
# engine's section). Helpers: bench/lib.sh. See bench/README.md.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/commit.sh [options]
       bench/commit.sh --engine btrfs [commit_btrfs.sh options]

Runs a private dmd and measures, on generated data, against git on a copy of
the same tree in the same run, and writes the "commit" section of
bench/RESULTS.md:
  commit   dm commit vs git add -A && git commit: the first commit, then
           after changing nothing, one file, and 1% of the bytes
  reset    dm reset --hard HEAD^ vs git reset --hard HEAD^ after each of
           those changes (back across it), and a full materialisation
           (dm checkout -b vs git worktree add) for reference
  memory   dmd's resident memory idle, with 1,000 dots, after dm list and
           after a restart with them; the time to create them and to list

options:
  --engine E      dir (the default: this benchmark) or btrfs (runs
                  bench/commit_btrfs.sh with the other options; see its
                  --help)
  --work DIR      work directory (default bench/work/commit; gitignored).
                  Needs about 6x the data size free.
  --scale F       data size factor (default 1 = 100,000 files, 2 GiB;
                  0.02 for a quick test); files and bytes both scale
  --seed N        data seed (default 1); same seed, same bytes
  --runs N        repetitions of each step after the first commit (default
                  3; the median is reported)
  --dots N        dots to create for the memory test (default 1000)
  --build DIR     meson build directory with src/cli/dm and src/server/dmd
                  (default build-bench/, set up with -Dbuildtype=release
                  if missing); brought up to date with ninja
  --no-build      use --build DIR as it is, without running ninja
  --port N        TCP port for the private dmd (default: the first free
                  one from 39500)
  --results FILE  results file (default bench/RESULTS.md)
  --keep          keep the data, dmd data directories and git repository
  -h, --help      this text

No root needed: every measurement is warm (the tree was just written and
is in the page cache). Run it on a quiet machine; other load changes the
numbers. The client config is WORK/config (DM_CONFIG); ~/.dm is not used.
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=commit.sh
TAG=commit
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

# --engine btrfs: the btrfs engine's benchmark, bench/commit_btrfs.sh, with
# the other arguments (its options differ: see its --help).
for ((i = 1; i <= $#; i++)); do
	if [ "${!i}" = --engine ]; then
		j=$((i + 1))
		case ${!j:-} in
		dir) set -- "${@:1:i-1}" "${@:j+1}"; break ;;
		btrfs) exec "$REPO/bench/commit_btrfs.sh" "${@:1:i-1}" "${@:j+1}" ;;
		*) die "--engine must be dir or btrfs, not '${!j:-}'" ;;
		esac
	fi
done

WORK=$REPO/bench/work/commit
SCALE=1
SEED=1
RUNS=3
NDOTS=1000
BUILD=$REPO/build-bench
DOBUILD=1
PORT=""
RESULTS=$REPO/bench/RESULTS.md
KEEP=0
ARGS=("$@")

while [ $# -gt 0 ]; do
	case $1 in
	--dots) NDOTS=${2:?--dots needs a number}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*)
		common_opt "$@"
		[ "$SHIFT" -gt 0 ] || { usage >&2; die "unknown argument '$1'"; }
		shift "$SHIFT"
		;;
	esac
done

check_common git python3 openssl meson ninja awk
[[ $NDOTS =~ ^[0-9]+$ ]] && [ "$NDOTS" -ge 1 ] && [ "$NDOTS" -le 99999 ] || die "--dots must be an integer in 1..99999"

DDOTS=$WORK/dmd-dots # dmd data directory of the memory test
DDATA=$WORK/dmd      # dmd data directory of the commit test
WC=$WORK/wc          # dm mount link to the dot's working copy
WCF=$WORK/wc-full    # dm mount link to the branch made by checkout -b
GIT=$WORK/git        # the git repository with the same tree
GWT=$WORK/git-wt     # git worktree add output
LOGS=$WORK/logs
BIG=("$DDOTS" "$DDATA" "$GIT" "$GWT" "$WC" "$WCF" "$WORK/config")
export DM_CONFIG=$WORK/config
export GIT_CONFIG_NOSYSTEM=1

bench_start
build_dm
pick_port 39500

# ---------------------------------------------------------------- memory

need_space "$WORK" "$(awk -v s="$SCALE" 'BEGIN { printf "%d", 6 * 2 * 1024 * s + 200 }')" "scale $SCALE"

say "memory: an idle dmd, then $NDOTS dots (port $PORT)"
start_dmd "$DDOTS" 0
PID=$(dmd_pid "$DDOTS")
sleep 0.5
RSS_START=$(proc_kib "$PID" VmRSS)
tm list-empty "$DM" list -H
RSS_IDLE=$(proc_kib "$PID" VmRSS)
[ "$RSS_START" -gt "$RSS_IDLE" ] && RSS_IDLE=$RSS_START

"$DM" cluster stop --data-dir "$DDOTS" >>"$LOGS/dmd-stop.log" 2>&1 || die "dm cluster stop failed"
"$DMD" start --data-dir "$DDOTS" --port "$PORT" --log-level debug >>"$LOGS/init-dmd-dots.log" 2>&1 ||
	die "dmd start --log-level debug failed"
PID=$(dmd_pid "$DDOTS")
DMDLOG=$DDOTS/dmd.log
say "  creating $NDOTS dots (dm init, one process each)"
off=$(logsize)
t0=$(date +%s%N)
for i in $(seq 1 "$NDOTS"); do
	"$DM" init "$(printf 'd%05d' "$i")" >>"$LOGS/dots-create.out" 2>>"$LOGS/dots-create.err" ||
		{ tail -n 5 "$LOGS/dots-create.err" >&2; die "dm init of dot $i failed"; }
done
t1=$(date +%s%N)
T_CREATE=$(calc "($t1 - $t0) / 1e9")
sleep 0.05
tail -c +"$((off + 1))" "$DMDLOG" >"$LOGS/dots-create.dmd"
CREATE_RPC=$(sed -nE "s/.* debug rpc dots\.create by '[^']*': ok in ([0-9.]+) ms.*/\1/p" "$LOGS/dots-create.dmd" |
	sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%s %s %d", v[int((NR + 1) / 2)], v[NR], NR }')
RSS_DOTS=$(proc_kib "$PID" VmRSS)

ts=()
for i in $(seq 1 "$RUNS"); do
	tm "list-$i" "$DM" list
	ts+=("$T")
done
T_LIST=$(median "${ts[@]}")
nlisted=$(($(wc -l <"$LOGS/list-1.out") - 1))
[ "$nlisted" = "$NDOTS" ] || die "dm list shows $nlisted dots, not $NDOTS"
RSS_LIST=$(proc_kib "$PID" VmRSS)
HWM_DOTS=$(proc_kib "$PID" VmHWM)

say "  restarting dmd with $NDOTS dots"
DMDLOG=""
"$DM" cluster stop --data-dir "$DDOTS" >>"$LOGS/dmd-stop.log" 2>&1 || die "dm cluster stop failed"
tm restart-dots "$DM" cluster start --data-dir "$DDOTS" --port "$PORT"
T_RESTART=$T
PID=$(dmd_pid "$DDOTS")
sleep 0.5
RSS_RESTART=$(proc_kib "$PID" VmRSS)
tm list-after-restart "$DM" list -H
RSS_RESTART_LIST=$(proc_kib "$PID" VmRSS)
stop_dmd "$DDOTS"
[ "$KEEP" = 1 ] || rm -rf "$DDOTS"

# ---------------------------------------------------------------- the tree

say "commit: starting dmd (debug log) and creating the dot 'bench'"
start_dmd "$DDATA" 1
DMDLOG=$DDATA/dmd.log
"$DM" init bench >"$LOGS/init-bench.log" 2>&1 || { cat "$LOGS/init-bench.log" >&2; die "dm init bench failed"; }
"$DM" mount bench "$WC" >>"$LOGS/init-bench.log" 2>&1 || { cat "$LOGS/init-bench.log" >&2; die "dm mount failed"; }
[ -d "$WC/" ] || die "dm mount did not make $WC a link to a directory"
# the fixed cost of any dm command: start-up, config, one call to dmd
ts=()
for i in $(seq 1 "$RUNS"); do
	tm "fixed-$i" "$DM" list -H
	ts+=("$T")
done
T_FIXED=$(median "${ts[@]}")


say "generating the tree (scale $SCALE, seed $SEED) in the working copy"
read -r NF NB NL LB < <(python3 "$REPO/bench/commit_data.py" tree "$WC/" --seed "$SEED" --scale "$SCALE" |
	sed -E 's/files=([0-9]+) bytes=([0-9]+) large=([0-9]+) large_bytes=([0-9]+)/\1 \2 \3 \4/')
[ -n "$LB" ] || die "commit_data.py tree printed nothing"
SIZE=$(fmb "$NB")
say "  $NF files, $SIZE ($NL large files of $(fmb "$LB") together); copying it into a git repository"
git init -q "$GIT"
git -C "$GIT" config user.name bench
git -C "$GIT" config user.email bench@example.invalid
git -C "$GIT" config core.fsmonitor false
git -C "$GIT" config gc.auto 0
cp -a "$WC/." "$GIT/"
sync
GITV=$(git --version | awk '{ print $3 }')
gcommit() { git -C "$GIT" add -A && git -C "$GIT" commit -q --allow-empty -m "$1"; }

# ---------------------------------------------------------------- first commit

say "first commit: dm, then git (each + sync)"
tm_sync first-dm "$DM" commit -m first --dot bench
FIRST_DM=$T FIRST_DM_CMD=$T_CMD
where "first commit" first-dm
HWM_FIRST=$(proc_kib "$PID" VmHWM)
if [ -x /usr/bin/time ]; then
	tm_sync first-git /usr/bin/time -f '%M' -o "$LOGS/first-git.time" bash -c \
		'git -C "$1" add -A && git -C "$1" commit -q -m first' _ "$GIT"
	GIT_PEAK=$(tail -n 1 "$LOGS/first-git.time")
else
	tm_sync first-git gcommit first
	GIT_PEAK=""
fi
FIRST_GIT=$T FIRST_GIT_CMD=$T_CMD

# ---------------------------------------------------------------- changes

ONEPCT=$((NB / 100))
declare -A CH_FILES CH_BYTES CH_ALLF CH_ALLB
change() { # KIND ROUND: the same change in the working copy and in git
	local kind=$1 r=$2 out
	case $kind in
	none) CH_FILES[$kind]=0 CH_BYTES[$kind]=0; return ;;
	one) set -- mutate-one --round "$r" ;;
	bytes) set -- mutate-bytes --round "$r" --bytes "$ONEPCT" ;;
	esac
	out=$(python3 "$REPO/bench/commit_data.py" "$1" "$WC/" --seed "$SEED" --scale "$SCALE" "${@:2}")
	python3 "$REPO/bench/commit_data.py" "$1" "$GIT/" --seed "$SEED" --scale "$SCALE" "${@:2}" >/dev/null
	CH_FILES[$kind]=$(sed -E 's/files=([0-9]+).*/\1/' <<<"$out")
	CH_BYTES[$kind]=$(sed -E 's/.* bytes=([0-9]+).*/\1/' <<<"$out")
	CH_ALLF[$kind]="${CH_ALLF[$kind]:-} ${CH_FILES[$kind]}"
	CH_ALLB[$kind]="${CH_ALLB[$kind]:-} ${CH_BYTES[$kind]}"
}
# span KIND: "N whole files, B" over the runs of KIND, as ranges when they
# differ; CH_BYTES[KIND] becomes the median of the bytes changed.
span() {
	local f b f1 f2 b1 b2
	# shellcheck disable=SC2086
	f=$(printf '%s\n' ${CH_ALLF[$1]} | sort -n | sed -n '1p;$p' | paste -sd ' ')
	# shellcheck disable=SC2086
	b=$(printf '%s\n' ${CH_ALLB[$1]} | sort -n | sed -n '1p;$p' | paste -sd ' ')
	# shellcheck disable=SC2086
	CH_BYTES[$1]=$(median ${CH_ALLB[$1]})
	read -r f1 f2 <<<"$f"
	read -r b1 b2 <<<"$b"
	if [ "$f1" = "$f2" ]; then f="$f1"; else f="$f1–$f2"; fi
	if [ "$b1" = "$b2" ]; then b=$(fmb "$b1"); else b="$(fmb "$b1")–$(fmb "$b2")"; fi
	echo "$f whole file$([ "$f" = 1 ] || echo s), $b"
}

for kind in none one bytes; do
	say "change '$kind' x $RUNS: commit (dm, git), reset --hard HEAD^ (dm, git)"
	for i in $(seq 1 "$RUNS"); do
		change "$kind" "$((10 * i))"
		tm "commit-$kind-$i-dm" "$DM" commit -m "$kind $i" --dot bench
		tm "commit-$kind-$i-git" gcommit "$kind $i"
		tm "reset-$kind-$i-dm" "$DM" reset --hard 'HEAD^' --dot bench
		tm "reset-$kind-$i-git" git -C "$GIT" reset -q --hard 'HEAD^'
	done
done

# ---------------------------------------------------------------- full materialisation

say "full materialisation: dm checkout -b, git worktree add (each + sync)"
sync # so that the timed syncs flush only what their step wrote
tm_sync branch-dm "$DM" checkout -b full --dot bench
FULL_DM=$T
where "new branch with its own working copy (dm checkout -b)" branch-dm
tm_sync branch-git git -C "$GIT" worktree add -q --detach "$GWT" HEAD
FULL_GIT=$T
RSS_END=$(proc_kib "$PID" VmRSS)
HWM_END=$(proc_kib "$PID" VmHWM)

say "checking that dm's working copies and git's trees are identical (untimed)"
"$DM" mount bench@full "$WCF" >>"$LOGS/init-bench.log" 2>&1 || die "dm mount bench@full failed"
diff -rq --exclude=.git "$WC/" "$GIT/" >"$LOGS/diff-master.out" 2>&1 ||
	{ head -n 5 "$LOGS/diff-master.out" >&2; die "dm's working copy differs from git's after the resets"; }
diff -rq --exclude=.git "$WCF/" "$GWT/" >"$LOGS/diff-full.out" 2>&1 ||
	{ head -n 5 "$LOGS/diff-full.out" >&2; die "the branch made by dm checkout -b differs from git's worktree"; }
"$DM" list -H >"$LOGS/list-end.out" 2>&1 || die "dm list failed"
DIRTY=$(awk -F'\t' '$2 == "bench" { print $NF }' "$LOGS/list-end.out")
[ "$DIRTY" = 0 ] || note "dm list reports $DIRTY uncommitted bytes in the new branch 'full' right after dm checkout -b (expected 0)."
stop_dmd "$DDATA"
DMDLOG=""

# ---------------------------------------------------------------- rows

LABEL="$NF files, $SIZE"
EXTRA=""
[ "$NF" -lt 100000 ] && EXTRA=1
# per100k T: T extrapolated to 100,000 files: the fixed cost of a dm
# command (T_FIXED) plus the rest scaled linearly.
per100k() { calc "$T_FIXED + ($1 > $T_FIXED ? $1 - $T_FIXED : 0) * 100000 / $NF"; }
target_lt1() { # T: met? cell for "< 1 s for 100,000 files"
	if [ -z "$EXTRA" ]; then
		yesno "$1 < 1"
	else
		local e
		e=$(per100k "$1")
		echo "$(yesno "$e < 1") (extrapolated: $(fsec "$e") for 100,000 files)"
	fi
}
speed() { fx "$(calc "$2 / $1")"; } # DM_T GIT_T: "N×" of git's time over dm's

row "first commit of $LABEL, + sync (command alone: dm $(fsec "$FIRST_DM_CMD"), git $(fsec "$FIRST_GIT_CMD"))" \
	"$(fsec "$FIRST_DM")" "$(fsec "$FIRST_GIT")" "$(speed "$FIRST_DM" "$FIRST_GIT") git's speed" "info" "–"
if [ -n "$GIT_PEAK" ]; then
	row "peak resident memory during the first commit: dmd (VmHWM) vs git add/commit (max RSS)" \
		"$(fmib "$HWM_FIRST")" "$(fmib "$GIT_PEAK")" "$(fx "$(calc "$HWM_FIRST / $GIT_PEAK")")" "info" "–"
fi

declare -A MED_C MED_CG MED_R MED_RG CR RR
median_step list ""
where "dm list, $NDOTS dots (median run)" "$MEDSTEP"
for kind in none one bytes; do
	median_step "commit-$kind" -dm
	MED_C[$kind]=$MED
	CR[$kind]=$(runs "${RUNVALS[@]}")
	where "commit after changing $kind (median run)" "$MEDSTEP"
	median_step "commit-$kind" -git
	MED_CG[$kind]=$MED
	median_step "reset-$kind" -dm
	MED_R[$kind]=$MED
	RR[$kind]=$(runs "${RUNVALS[@]}")
	where "reset --hard HEAD^ after changing $kind (median run)" "$MEDSTEP"
	median_step "reset-$kind" -git
	MED_RG[$kind]=$MED
done
WHERE=("${WHERE[@]/changing none/changing nothing}")
WHERE=("${WHERE[@]/changing one/changing one file}")
WHERE=("${WHERE[@]/changing bytes/changing 1% of the bytes}")

BDESC=$(span bytes)
ODESC=$(span one)
span bytes >/dev/null # sets CH_BYTES to the medians (span ran in subshells above)
span one >/dev/null
M="median of $RUNS"
row "commit after changing nothing, $M (dm runs: ${CR[none]})" "$(fsec "${MED_C[none]}")" \
	"$(fsec "${MED_CG[none]}")" "$(speed "${MED_C[none]}" "${MED_CG[none]}") git's speed" \
	"< 1 s for 100,000 files" "$(target_lt1 "${MED_C[none]}")"
row "commit after changing one file ($ODESC), $M (dm runs: ${CR[one]})" "$(fsec "${MED_C[one]}")" \
	"$(fsec "${MED_CG[one]}")" "$(speed "${MED_C[one]}" "${MED_CG[one]}") git's speed" "info" "–"
row "commit after changing 1% of the bytes ($BDESC), $M (dm runs: ${CR[bytes]})" "$(fsec "${MED_C[bytes]}")" \
	"$(fsec "${MED_CG[bytes]}")" "$(speed "${MED_C[bytes]}" "${MED_CG[bytes]}") git's speed" "info" "–"

row "reset --hard HEAD^ after changing nothing, $M (dm runs: ${RR[none]})" "$(fsec "${MED_R[none]}")" \
	"$(fsec "${MED_RG[none]}")" "$(speed "${MED_R[none]}" "${MED_RG[none]}") git's speed" \
	"∝ changed: nothing to do, < 1 s for 100,000 files" "$(target_lt1 "${MED_R[none]}")"
# prop KIND: reset after KIND costs at most the unchanged reset's time plus
# twice the changed bytes' share of a full materialisation, plus 20 ms.
prop() {
	local kind=$1 share extra bound
	share=$(calc "${CH_BYTES[$kind]} / $NB * $FULL_DM")
	extra=$(calc "${MED_R[$kind]} - ${MED_R[none]}")
	bound=$(calc "2 * $share + 0.02")
	echo "$(yesno "$extra <= $bound") ($(fsec "$(calc "$extra > 0 ? $extra : 0")") over the unchanged reset; bound $(fsec "$bound"))"
}
PT="∝ changed: time over the unchanged reset ≤ 2× the changed bytes' share of a full materialisation + 20 ms"
row "reset --hard HEAD^ after changing one file ($ODESC), $M (dm runs: ${RR[one]})" \
	"$(fsec "${MED_R[one]}")" "$(fsec "${MED_RG[one]}")" "$(speed "${MED_R[one]}" "${MED_RG[one]}") git's speed" \
	"$PT" "$(prop one)"
row "reset --hard HEAD^ after changing 1% of the bytes ($BDESC), $M (dm runs: ${RR[bytes]})" \
	"$(fsec "${MED_R[bytes]}")" "$(fsec "${MED_RG[bytes]}")" "$(speed "${MED_R[bytes]}" "${MED_RG[bytes]}") git's speed" \
	"$PT" "$(prop bytes)"
row "full materialisation of $LABEL, + sync: dm checkout -b NEW vs git worktree add" \
	"$(fsec "$FULL_DM")" "$(fsec "$FULL_GIT")" "$(speed "$FULL_DM" "$FULL_GIT") git's speed" "info (the reset rows' reference)" "–"

row "a dm command that does no work (dm list -H, one dot), $M" "$(fsec "$T_FIXED")" "–" "–" "info (fixed cost of every dm step)" "–"
row "dmd resident memory, idle (just started, no dots; after one dm list)" "$(fmib "$RSS_IDLE")" "–" "–" \
	"< 20 MiB" "$(yesno "$RSS_IDLE < 20 * 1024")"
cr=""
if [ -n "$CREATE_RPC" ]; then
	read -r cmed cmax cn <<<"$CREATE_RPC"
	cr="; dmd's own time per dots.create: median $(fms "$cmed"), max $(fms "$cmax") of $cn"
fi
row "create $NDOTS dots, one dm init each$cr" "$(fsec "$T_CREATE") ($(fms "$(calc "$T_CREATE * 1000 / $NDOTS")") a dot)" \
	"–" "–" "info" "–"
row "dmd resident memory with $NDOTS dots, after creating them" "$(fmib "$RSS_DOTS")" "–" "–" "info" "–"
row "dm list with $NDOTS dots, $M" "$(fsec "$T_LIST")" "–" "–" "info" "–"
row "dmd resident memory with $NDOTS dots, after dm list (peak since start: $(fmib "$HWM_DOTS"))" \
	"$(fmib "$RSS_LIST")" "–" "–" "info" "–"
row "dmd restart with $NDOTS dots (dm cluster stop; time of dm cluster start)" "$(fsec "$T_RESTART")" "–" "–" "info" "–"
row "dmd resident memory with $NDOTS dots after a restart (then after a dm list)" \
	"$(fmib "$RSS_RESTART") ($(fmib "$RSS_RESTART_LIST"))" "–" "–" "info" "–"
row "dmd resident memory at the end of the commit runs (peak since start: $(fmib "$HWM_END"))" \
	"$(fmib "$RSS_END")" "–" "–" "info" "–"

note "git $GITV with default settings except \`core.fsmonitor false\` and \`gc.auto 0\` (so that no automatic gc runs in the background during the measurements; with the default, git would start packing its $NF loose objects after the first commit). Every git commit is \`git add -A && git commit --allow-empty\` (without --allow-empty git refuses to record an unchanged tree; dm records it)."
note "dm writes its objects durably (fsync) before a commit returns; git does not fsync loose objects by default. The first commits are therefore timed with a \`sync\` after each; the later steps, which write little, are timed as the command alone."
note "Each change is made the same way in dm's working copy and in git's tree (bench/commit_data.py, seed $SEED, a new round each time), then both commit, then both reset back across it, so every run starts from the first commit's tree. The changed files get new random bytes; the 1% change rewrites whole files picked at random (nearly all small ones)."
note "A file is read again when its stat was taken less than 2 s after its mtime or ctime (a \"racy\" stat, which could hide a change made in the same clock tick; see src/store/statcache.h). So each commit also rehashes the files the reset before it wrote, and the first unchanged commit rehashes the files written shortly before the first commit; the engine column below shows how many files each step hashed."
note "Times are wall clock of the whole command, process start-up included; dm's include the call to dmd over its unix socket."

# ---------------------------------------------------------------- results

ELAPSED=$(($(date +%s) - START))
say "done in ${ELAPSED} s; writing $RESULTS"

machine_line
REPRO="bench/commit.sh"
[ ${#ARGS[@]} -gt 0 ] && REPRO="bench/commit.sh ${ARGS[*]}"

SECTION=$(mktemp)
{
	echo "<!-- commit:begin -->"
	echo "## commit"
	echo
	echo "Run $NOW, dm $REV, dm and dmd $BUILDTYPE build, git $GITV; $MACHINE;"
	echo "load average (1 min) $LOAD0 at the start, $LOAD1 at the end."
	echo "Scale $SCALE, seed $SEED: one dot holding $NF files, $SIZE ($((NF - NL)) small files of 1–16 KiB,"
	echo "$NL large ones of $(fmb "$LB") together; half of the files random bytes, half text that"
	echo "compresses about 2×), and a git repository with a copy of the same tree."
	echo "The whole run took $ELAPSED s."
	echo
	echo "Warm page cache throughout. MB = 10^6 bytes, MiB = 2^20. The ratio is git's time over dm's"
	echo "(> 1: dm is faster)."
	echo
	echo "| measurement | dm | git | ratio | target | met? |"
	echo "| --- | --- | --- | --- | --- | --- |"
	printf '%s\n' "${ROWS[@]}"
	echo
	for n in "${NOTES[@]}"; do echo "* $n"; done
	echo
	if [ -n "$EXTRA" ]; then
		echo "This is a **reduced-scale** run: the targets are for 100,000 files and 2 GiB, so read"
		echo "the met? column as indicative only. Times for 100,000 files are extrapolated as the"
		echo "fixed cost of a dm command ($(fsec "$T_FIXED"), the row above) plus the rest scaled linearly by files."
		echo
	fi
	echo "Where dm's time goes (dmd's debug log: each call's duration inside dmd, and the"
	echo "engine's statistics of the commit or checkout; wall is the dm command):"
	echo
	echo "| dm step | wall | dmd calls | engine |"
	echo "| --- | --- | --- | --- |"
	printf '%s\n' "${WHERE[@]}"
	echo
	echo "Reproduce (on a quiet machine; logs of each step, dmd's log lines included, in ${LOGS#"$REPO"/}/):"
	echo
	echo '```'
	echo "$REPRO"
	echo '```'
	echo "<!-- commit:end -->"
} >"$SECTION"

write_section commit "$SECTION"
rm -f "$SECTION"
say "results written to $RESULTS"
