#!/usr/bin/env bash
# bench/consistency.sh - what a consistent commit of a running database
# costs: PostgreSQL 15 in a Docker container on a dm volume under `pgbench
# -c 4`, with a dm commit every 5 s, on each engine: the time of each
# commit, how it was taken, the time the dir engine holds the containers
# frozen for it (dm.freeze-ms, the commit's capture.freeze_ms), and
# pgbench's throughput with those commits against runs of the same length
# without any. Writes the "consistency" section of bench/RESULTS.md (between
# <!-- consistency:begin --> and <!-- consistency:end -->). Helpers:
# bench/lib.sh. The correctness side is tests/e2e/t0910-postgres-consistency.sh.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/consistency.sh [options]

As root, starts the private Docker Engine of ../shared/containers/docker.sh
(with its image localhost/postgres:15), and for each engine a private dmd
serving a volume plugin of its own to it; PostgreSQL runs in a container
on a dm volume with a pgbench database (pgbench -i -s SCALE). Then, --runs
rounds of two pgbench -c 4 runs of --seconds each, one without commits and
one with a dm commit every --interval seconds (the order alternates from
round to round), and the "consistency" section of bench/RESULTS.md gets:
  commit   the wall time of each dm commit under load (p50, p95, max over
           every commit of every round)
  freeze   how each commit was taken (frozen, snapshot...) and the time it
           kept the containers frozen, dm.freeze-ms (capture.freeze_ms in
           dm log --json; p50, p95, max); n/a when no commit records one
  tps      pgbench's tps without commits and with them (median of the
           rounds), and their ratio

options:
  --scale N        pgbench's scale (default 50: 5,000,000 accounts, about
                   750 MB; 5 for a quick test)
  --seconds N      length of each pgbench run (default 120)
  --interval N     seconds from the start of one commit to the next
                   (default 5)
  --clients N      pgbench clients (default 4)
  --engine E       dir, btrfs or both (default both; btrfs needs btrfs in
                   the kernel, loop devices and btrfs-progs)
  --runs N         rounds (default 3; medians of the rounds' tps)
  --work DIR       work directory (default bench/work/consistency;
                   gitignored); holds the dmd data directories and the
                   btrfs pool file. The space needed is checked first.
  --build DIR      meson build directory with src/cli/dm and src/server/dmd
                   (default build-bench/, set up with -Dbuildtype=release
                   if missing); brought up to date with ninja
  --no-build       use --build DIR as it is, without running ninja
  --port N         TCP port for the private dmds (default: the first free
                   one from 39800)
  --results FILE   results file (default bench/RESULTS.md)
  --keep           keep the dmd data directories (and the pool file)
  --section NAME   the section of the results file to write (default
                   consistency), e.g. consistency-reflink for a run whose
                   --work is on a file system with reflinks
  --title TEXT     added to the section's title (what differs in this run)
  -h, --help       this text

Needs root, ../shared/containers/docker.sh beside the repository, python3.
PostgreSQL runs with its defaults (no setting is changed but the socket
and listen_addresses). Run it on a quiet machine. The client config is
WORK/config (DM_CONFIG); ~/.dm is not used. A run at --scale 5 --seconds
30 --runs 1 takes about 4 minutes; the full run about 30.
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=consistency.sh
TAG=consistency
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

WORK=$REPO/bench/work/consistency
SCALE=1 # lib.sh's data factor: unused here (--scale is pgbench's)
SEED=1
RUNS=3
PGSCALE=50
DURATION=120
INTERVAL=5
CLIENTS=4
ENGINES=(dir btrfs)
BUILD=$REPO/build-bench
DOBUILD=1
PORT=""
RESULTS=$REPO/bench/RESULTS.md
KEEP=0
MARK=consistency
TITLE=""
ARGS=("$@")

while [ $# -gt 0 ]; do
	case $1 in
	--scale) PGSCALE=${2:?--scale needs a number}; shift 2 ;;
	--seconds) DURATION=${2:?--seconds needs a number}; shift 2 ;;
	--interval) INTERVAL=${2:?--interval needs a number}; shift 2 ;;
	--clients) CLIENTS=${2:?--clients needs a number}; shift 2 ;;
	--engine)
		case ${2:-} in
		dir | btrfs) ENGINES=("$2") ;;
		both) ENGINES=(dir btrfs) ;;
		*) die "--engine must be dir, btrfs or both, not '${2:-}'" ;;
		esac
		shift 2
		;;
	--section)
		MARK=${2:?--section needs a name}
		[[ $MARK =~ ^[a-z0-9-]+$ ]] || die "--section must be made of a-z, 0-9 and -, not '$MARK'"
		shift 2
		;;
	--title) TITLE=${2:?--title needs a text}; shift 2 ;;
	--seed) die "--seed: nothing here is random but pgbench's own choices" ;;
	-h | --help) usage; exit 0 ;;
	*)
		common_opt "$@"
		[ "$SHIFT" -gt 0 ] || { usage >&2; die "unknown argument '$1'"; }
		shift "$SHIFT"
		;;
	esac
done

check_common python3 meson ninja awk df du
intarg() { [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] || die "$1 must be an integer in $3..$4, not '$2'"; }
intarg --scale "$PGSCALE" 1 10000
intarg --seconds "$DURATION" 10 86400
intarg --interval "$INTERVAL" 1 3600
intarg --clients "$CLIENTS" 1 64
JOBS=$((CLIENTS < 2 ? CLIENTS : 2))
WARMUP=$((DURATION < 30 ? DURATION : 30))
[ "$(id -u)" = 0 ] || die "needs root: the Docker Engine here runs rootful containers (and the btrfs engine makes a pool)"
DOCKER_SH=$REPO/../shared/containers/docker.sh
[ -f "$DOCKER_SH" ] || die "no $DOCKER_SH to start the Docker Engine and build localhost/postgres:15"
PATH=$PATH:/usr/sbin:/sbin
for e in "${ENGINES[@]}"; do
	if [ "$e" = btrfs ]; then
		grep -qw btrfs /proc/filesystems || die "the kernel has no btrfs (run with --engine dir)"
		[ -c /dev/loop-control ] || die "no loop devices for a btrfs pool (run with --engine dir)"
		command -v mkfs.btrfs >/dev/null && command -v btrfs >/dev/null || die "the btrfs engine needs btrfs-progs"
	fi
done

# Space: the database is about 15 MB a scale unit, plus its WAL (up to
# max_wal_size, 1 GB by default). The dir engine keeps the working copy and
# a store that gains the chunks each commit changed (pgbench's random
# updates touch chunks all over the accounts table; they compress well);
# the btrfs pool keeps the snapshots' changed extents. Engines run one
# after the other, and the data of one goes before the next starts unless
# --keep.
DB_MIB=$((PGSCALE * 15 + 1100))
POOL_MIB=$((DB_MIB * 4 + 2048))
NEED_DIR=$((DB_MIB * 6 + 1024))
NEED=$NEED_DIR
for e in "${ENGINES[@]}"; do
	if [ "$e" = btrfs ]; then
		if [ "$KEEP" = 1 ]; then NEED=$((NEED + POOL_MIB)); elif [ "$POOL_MIB" -gt "$NEED" ]; then NEED=$POOL_MIB; fi
	fi
done
need_space "$WORK" "$NEED" "pgbench scale $PGSCALE"

export DM_CONFIG=$WORK/config
LOGS=$WORK/logs
BIG=("$WORK/dmd-dir" "$WORK/dmd-btrfs" "$WORK/config")
PLUGIN=dmbench
PLUGIN_SOCK=/run/docker/plugins/$PLUGIN.sock
LABEL=dm-bench=consistency
PGC=bench-consistency-pg
PG_OPTS="-c listen_addresses="

# The volume made and not yet removed, if any: only a known name is removed
# (dockerd asks every volume plugin it ever met about a name it does not
# have, and waits up to 15 s for each one whose socket went away).
VOL_MADE=""
dk_cleanup() {
	[ -n "${DOCKER_HOST:-}" ] || return 0
	docker ps -aq --filter "label=$LABEL" | xargs -r docker rm -f >/dev/null 2>&1 || true
	if [ -n "$VOL_MADE" ]; then docker volume rm -f "$VOL_MADE" >/dev/null 2>&1 || true; fi
	VOL_MADE=""
}
# The containers go first, while their dmd still serves their volumes; then
# lib.sh's cleanup (dmds, the work data). A loop pool left mounted is
# unmounted, not removed under it.
bench_exit() {
	local rc=$?
	dk_cleanup
	(exit "$rc")
	cleanup
}
cleanup_hook() {
	local p=$WORK/dmd-btrfs/pool
	if mountpoint -q "$p" 2>/dev/null; then
		umount "$p" 2>>"$LOGS/cleanup.log" || { echo "$BENCH: '$p' is still mounted; keeping it" >&2; KEEP=1; }
	fi
}

bench_start
trap bench_exit EXIT
build_dm
pick_port 39800
[ -e "$PLUGIN_SOCK" ] && die "$PLUGIN_SOCK exists: another run of this benchmark is going on (or a dmd of one was left running)"

say "starting the Docker Engine (${DOCKER_SH#"$REPO"/}; building localhost/postgres:15 if needed)"
bash "$DOCKER_SH" --postgres >"$LOGS/docker-setup.log" 2>&1 ||
	{ tail -n 5 "$LOGS/docker-setup.log" >&2; die "docker.sh --postgres failed"; }
eval "$(grep '^export DOCKER_HOST=unix://' "$LOGS/docker-setup.log" | tail -n 1)"
[ -n "${DOCKER_HOST:-}" ] || die "docker.sh printed no DOCKER_HOST"
API_SOCK=${DOCKER_HOST#unix://}
dk_cleanup

psql_in() { docker exec "$PGC" psql -X -q -A -t -v ON_ERROR_STOP=1 -h /tmp -d postgres -c "$1"; }

# wait_ready: PostgreSQL in the container answers (up to 60 s).
wait_ready() {
	local i
	for i in $(seq 300); do
		docker exec "$PGC" pg_isready -q -h /tmp && return 0
		sleep 0.2
	done
	docker logs "$PGC" 2>&1 | tail -n 5 >&2
	die "PostgreSQL did not start in its container"
}

# load ENGINE MODE ROUND SECONDS: one pgbench run; with MODE "commits", a
# dm commit every INTERVAL s (start to start; a tick that falls in a commit
# is skipped) while it runs. Appends the tps to LOGS/tps-ENGINE-MODE.txt
# (not for MODE "warmup") and each commit's "id seconds round" to
# LOGS/commits-ENGINE.txt.
load() {
	local e=$1 mode=$2 r=$3 secs=$4 out pid next now i=0 id tps
	out=$LOGS/pgbench-$e-$mode-$r.out
	psql_in CHECKPOINT >/dev/null || die "CHECKPOINT before the run failed"
	docker exec "$PGC" pgbench -h /tmp -c "$CLIENTS" -j "$JOBS" -T "$secs" postgres >"$out" 2>&1 &
	pid=$!
	if [ "$mode" = commits ]; then
		next=$(calc "${EPOCHREALTIME} + $INTERVAL")
		while :; do
			now=$EPOCHREALTIME
			if awk -v n="$now" -v t="$next" 'BEGIN { exit !(n < t) }'; then
				sleep "$(calc "$next - $now")"
			fi
			kill -0 "$pid" 2>/dev/null || break
			i=$((i + 1))
			tm "commit-$e-$r-$i" "$DM" commit -m "under load, round $r, $i" --dot "$VOL"
			id=$(head -n 1 "$LOGS/commit-$e-$r-$i.out")
			printf '%s %s %s\n' "$id" "$T" "$r" >>"$LOGS/commits-$e.txt"
			next=$(calc "$next + $INTERVAL")
			now=$EPOCHREALTIME
			while awk -v n="$now" -v t="$next" 'BEGIN { exit !(n >= t) }'; do next=$(calc "$next + $INTERVAL"); done
		done
	fi
	wait "$pid" || { tail -n 5 "$out" >&2; die "pgbench failed ($e, $mode, round $r)"; }
	tps=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$out" | tail -n 1)
	[ -n "$tps" ] || die "no tps in pgbench's output ($out)"
	tps=$(printf '%.1f' "$tps")
	[ "$mode" != warmup ] || return 0
	echo "$tps" >>"$LOGS/tps-$e-$mode.txt"
	if [ "$mode" = commits ]; then
		say "  $e, round $r, with commits: $tps tps, $i commits"
	else
		say "  $e, round $r, no commits: $tps tps"
	fi
}

declare -A INIT_T DBSIZE ENG_T INDEXING
for e in "${ENGINES[@]}"; do
	T0=$(date +%s)
	VOL=bench-consistency-$e
	: >"$LOGS/commits-$e.txt"
	: >"$LOGS/tps-$e-none.txt"
	: >"$LOGS/tps-$e-commits.txt"
	if [ "$e" = btrfs ]; then
		say "btrfs: dmd with a loop-mounted pool file of $POOL_MIB MiB (port $PORT), plugin $PLUGIN"
		start_dmd "$WORK/dmd-$e" 0 --plugin-socket "$PLUGIN_SOCK" --docker-socket "$API_SOCK" \
			--engine btrfs --pool-size "${POOL_MIB}M"
	else
		say "dir: dmd (port $PORT), plugin $PLUGIN"
		start_dmd "$WORK/dmd-$e" 0 --plugin-socket "$PLUGIN_SOCK" --docker-socket "$API_SOCK"
	fi
	VOL_MADE=$VOL
	docker run --rm --network none --label "$LABEL" --volume-driver "$PLUGIN" -v "$VOL:/data" \
		localhost/busybox chown "$(id -u postgres):$(id -g postgres)" /data >"$LOGS/chown-$e.log" 2>&1 ||
		{ cat "$LOGS/chown-$e.log" >&2; die "a container cannot use the dm volume $VOL"; }
	docker run -d --name "$PGC" --network none --label "$LABEL" --user postgres \
		--volume-driver "$PLUGIN" -v "$VOL:/var/lib/postgresql/data" localhost/postgres:15 sh -c \
		"initdb -D /var/lib/postgresql/data/pg -A trust >/dev/null && exec postgres -D /var/lib/postgresql/data/pg -k /tmp $PG_OPTS" \
		>"$LOGS/postgres-$e.log" 2>&1 || { cat "$LOGS/postgres-$e.log" >&2; die "docker run of PostgreSQL failed"; }
	wait_ready
	PGVER=$(docker exec "$PGC" postgres --version | awk '{ print $3 }')
	say "$e: pgbench -i -s $PGSCALE"
	tm "init-$e" docker exec "$PGC" pgbench -h /tmp -i -q -s "$PGSCALE" postgres
	INIT_T[$e]=$T
	DBSIZE[$e]=$(psql_in "SELECT pg_database_size('postgres')")
	say "  $(fsec "$T"), database $(fmb "${DBSIZE[$e]}"); a first commit of it (not measured)"
	tm "first-$e" "$DM" commit -m "pgbench -i -s $PGSCALE" --dot "$VOL"
	say "  $(fsec "$T"); a warm-up run of $WARMUP s (not measured)"
	load "$e" warmup 0 "$WARMUP"
	for r in $(seq 1 "$RUNS"); do
		if [ $((r % 2)) = 1 ]; then modes=(none commits); else modes=(commits none); fi
		for m in "${modes[@]}"; do load "$e" "$m" "$r" "$DURATION"; done
	done
	INDEXING[$e]=$("$DM" dot show "$VOL" --json | python3 -c 'import json, sys; print(json.load(sys.stdin).get("indexing", ""))')
	"$DM" log --json --dot "$VOL" >"$LOGS/log-$e.json"
	docker rm -f "$PGC" >/dev/null
	docker volume rm "$VOL" >/dev/null
	VOL_MADE=""
	stop_dmd "$WORK/dmd-$e"
	if [ "$KEEP" = 0 ]; then
		if mountpoint -q "$WORK/dmd-$e/pool" 2>/dev/null; then die "dm cluster stop left the pool mounted at $WORK/dmd-$e/pool"; fi
		rm -rf "$WORK/dmd-$e"
	fi
	ENG_T[$e]=$(($(date +%s) - T0))
done

# ---------------------------------------------------------------- rows

# pct P VALUE...: the P-th percentile (nearest rank) of the values.
pct() {
	local p=$1
	shift
	printf '%s\n' "$@" | sort -g | awk -v p="$p" '{ v[NR] = $1 } END { i = int(p / 100 * NR); if (i < p / 100 * NR) i++; if (i < 1) i = 1; print v[i] }'
}
# spread VALUE...: "p50 / p95 / max" of the values (seconds).
spread() { echo "$(fsec "$(pct 50 "$@")") / $(fsec "$(pct 95 "$@")") / $(fsec "$(pct 100 "$@")")"; }
# freezes ENGINE: the freeze of each measured commit that records one, in
# ms, one a line (the COMMIT object's capture.freeze_ms, or the metadata's
# dm.freeze-ms).
freezes() {
	python3 - "$LOGS/log-$1.json" "$LOGS/commits-$1.txt" <<'EOF'
import json, sys
by_id = {c["id"]: c for c in json.load(open(sys.argv[1]))["commits"]}
for line in open(sys.argv[2]):
    c = by_id.get(line.split()[0], {})
    f = (c.get("capture") or {}).get("freeze_ms", (c.get("metadata") or {}).get("dm.freeze-ms"))
    if f is not None:
        print(f)
EOF
}
# hows ENGINE: how the measured commits were taken (capture.how or the
# metadata's dm.capture), counted: "frozen 12, not-instant 1".
hows() {
	python3 - "$LOGS/log-$1.json" "$LOGS/commits-$1.txt" <<'EOF'
import collections, json, sys
by_id = {c["id"]: c for c in json.load(open(sys.argv[1]))["commits"]}
n = collections.Counter()
for line in open(sys.argv[2]):
    c = by_id.get(line.split()[0], {})
    n[(c.get("capture") or {}).get("how", (c.get("metadata") or {}).get("dm.capture", "not recorded"))] += 1
print(", ".join("%s %d" % kv for kv in sorted(n.items())))
EOF
}

declare -A C_CELL F_CELL TPS0 TPS1 RATIO PER_RUN HOW
for e in "${ENGINES[@]}"; do
	HOW[$e]=$(hows "$e")
	PER_RUN[$e]=$(for r in $(seq 1 "$RUNS"); do awk -v r="$r" '$3 == r' "$LOGS/commits-$e.txt" | wc -l; done | paste -sd ' ' | sed 's/ /, /g')
	nc=$(wc -l <"$LOGS/commits-$e.txt")
	if [ "$nc" -gt 0 ]; then PER_RUN[$e]="${PER_RUN[$e]} (one every $(fsec "$(calc "$DURATION * $RUNS / $nc")") on average)"; fi
	mapfile -t cs < <(awk '{ print $2 }' "$LOGS/commits-$e.txt")
	if [ ${#cs[@]} -gt 0 ]; then C_CELL[$e]="$(spread "${cs[@]}") (${#cs[@]} commits)"; else C_CELL[$e]="no commit"; fi
	mapfile -t fz < <(freezes "$e")
	if [ ${#fz[@]} -gt 0 ]; then
		F_CELL[$e]="$(fms "$(pct 50 "${fz[@]}")") / $(fms "$(pct 95 "${fz[@]}")") / $(fms "$(pct 100 "${fz[@]}")") (${#fz[@]} of ${#cs[@]} commits)"
	else
		F_CELL[$e]="n/a"
	fi
	mapfile -t t0 <"$LOGS/tps-$e-none.txt"
	mapfile -t t1 <"$LOGS/tps-$e-commits.txt"
	TPS0[$e]="$(median "${t0[@]}") (runs: $(printf '%s, ' "${t0[@]}" | sed 's/, $//'))"
	TPS1[$e]="$(median "${t1[@]}") (runs: $(printf '%s, ' "${t1[@]}" | sed 's/, $//'))"
	RATIO[$e]=$(fx "$(calc "$(median "${t1[@]}") / $(median "${t0[@]}")")")
done
cells() { # NAME: the cells of an associative array, one per engine
	local e out=() ref
	for e in "${ENGINES[@]}"; do
		ref="$1[$e]"
		out+=("${!ref}")
	done
	row "$ROWLABEL" "${out[@]}"
}
ROWLABEL="dm commit under load, wall time of the command: p50 / p95 / max" cells C_CELL
ROWLABEL="commits in each run with commits (asked for: one every $INTERVAL s)" cells PER_RUN
ROWLABEL="how the commits were taken (the commit's capture: dm log --json)" cells HOW
ROWLABEL="containers frozen per commit (the commit's capture.freeze_ms, dm.freeze-ms): p50 / p95 / max" cells F_CELL
ROWLABEL="pgbench tps without commits, median of $RUNS runs of $DURATION s" cells TPS0
ROWLABEL="pgbench tps with a dm commit every $INTERVAL s, median of $RUNS runs of $DURATION s" cells TPS1
ROWLABEL="tps with commits over tps without (medians)" cells RATIO

declare -A SIZE_CELL
for e in "${ENGINES[@]}"; do SIZE_CELL[$e]="$(fmb "${DBSIZE[$e]}") in $(fsec "${INIT_T[$e]}")"; done
ROWLABEL="the database after pgbench -i -s $PGSCALE (pg_database_size), and the time pgbench -i took" cells SIZE_CELL

note "PostgreSQL $PGVER (Debian's, in the image localhost/postgres:15 that ../shared/containers/docker.sh builds from the host's package) runs in a Docker container (Docker $(docker version --format '{{.Server.Version}}' 2>/dev/null), no network) as user postgres, with its default settings, on a dm volume served by the dmd under test; pgbench runs in the same container (\`docker exec\`): \`pgbench -c $CLIENTS -j $JOBS -T $DURATION\`, the default TPC-B-like transaction."
note "Before the rounds: \`pgbench -i -s $PGSCALE\`, a first commit of the database (not measured) and a warm-up run of $WARMUP s (not measured). Each round is one run without commits and one with a \`dm commit\` every $INTERVAL s (start to start; a tick that falls during a commit is skipped); the order alternates from round to round, so the database's growth (pgbench_history) weighs on both. A CHECKPOINT precedes every run. The commit rows cover every commit of every round (percentiles by nearest rank); a commit that takes longer than $INTERVAL s makes the next start right after it, so the commits row says how many there were."
note "freeze: the time the dir engine keeps the volume's containers paused (Docker pause) for its last pass, as each commit records it (\`dm.freeze-ms\`; \`capture.freeze_ms\` in \`dm log --json\`, docs/consistency.md); n/a when no commit records one (btrfs snapshots freeze nothing)."
for e in "${ENGINES[@]}"; do
	if [ -n "${INDEXING[$e]}" ] && [ "${INDEXING[$e]}" != 0 ]; then
		note "$e: ${INDEXING[$e]} commit(s) were still being indexed when the last run ended: dmd's background indexing did not keep up with a commit every $INTERVAL s."
	fi
done
note "Times are wall clock of the whole dm command, process start-up included."

ELAPSED=$(($(date +%s) - START))
ENGT=""
for e in "${ENGINES[@]}"; do ENGT="$ENGT${ENGT:+, }$e ${ENG_T[$e]} s"; done
say "done in $ELAPSED s ($ENGT); writing $RESULTS"
machine_line
REPRO="bench/consistency.sh"
[ ${#ARGS[@]} -gt 0 ] && REPRO="$REPRO ${ARGS[*]}"

SECTION=$(mktemp)
{
	echo "<!-- $MARK:begin -->"
	echo "## $MARK: commits of a running PostgreSQL${TITLE:+, $TITLE}"
	echo
	echo "Run $NOW, dm $REV, dm and dmd $BUILDTYPE build; $MACHINE;"
	echo "load average (1 min) $LOAD0 at the start, $LOAD1 at the end."
	echo "pgbench scale $PGSCALE, $CLIENTS clients, $RUNS rounds of two runs of $DURATION s, a commit every $INTERVAL s in one of them."
	echo "The whole run took $ELAPSED s ($ENGT)."
	echo
	hdr="| measurement |" sep="| --- |"
	for e in "${ENGINES[@]}"; do hdr="$hdr $e engine |"; sep="$sep --- |"; done
	echo "$hdr"
	echo "$sep"
	printf '%s\n' "${ROWS[@]}"
	echo
	for n in "${NOTES[@]}"; do echo "* $n"; done
	echo
	if [ "$PGSCALE" != 50 ] || [ "$DURATION" != 120 ] || [ "$RUNS" != 3 ]; then
		echo "This is a **reduced** run (the full one: scale 50, 3 rounds of 120 s): read it as indicative only."
		echo
	fi
	echo "Reproduce (as root, on a quiet machine; logs of each step in ${LOGS#"$REPO"/}/):"
	echo
	echo '```'
	echo "$REPRO"
	echo '```'
	echo "<!-- $MARK:end -->"
} >"$SECTION"
write_section "$MARK" "$SECTION"
rm -f "$SECTION"
say "results written to $RESULTS"
