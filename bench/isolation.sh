#!/usr/bin/env bash
# bench/isolation.sh - what serving objects only to those who may read them
# costs: the same pushes and clones between dmds on loopback, once as an
# admin (who sees the whole store: no transfer session is checked) and once
# as a user (every missing, get, put and update checked against the
# session's reachability set, docs/internals/transfer.md "Who may see an
# object"), in one run, on the same data. Writes the "## isolation" section
# of bench/RESULTS.md (between <!-- isolation:begin --> and
# <!-- isolation:end -->). See bench/README.md.
set -euo pipefail
BENCH=isolation.sh
TAG=isolation
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<'EOF'
usage: bench/isolation.sh [options]

Runs four private dmds on 127.0.0.1: A holds a dot of many small files and
one large file; B1 receives it from A's admin, B2 from a user "bench" (its
own namespace); C clones it back, from B1 as admin and from B2 as the user.
Measures, in one run, as admin and as user side by side:
  first push    the whole dot, into an empty server
  push 1%       after rewriting 1% of the small files (median of --runs)
  clone         into a fresh C (median of --runs)
and B1's and B2's peak memory (VmHWM) at the end. Metadata-heavy data is the
session check's worst case: the check reads commits, trees and file objects
(never chunks) once more than the transfer itself does.

options:
  --work DIR      work directory (default bench/work/isolation; gitignored)
  --scale F       data size factor (default 1: 40,000 files of 4 KiB and
                  one file of 256 MiB, about 420 MB; 0.05 for a quick test)
  --seed N        data seed (default 1)
  --runs N        runs of each repeated step (default 3)
  --build DIR     meson build directory (default build-bench/, release)
  --no-build      use --build DIR as it is
  --port N        first TCP port to try (default 39700; four are used)
  --results FILE  results file (default bench/RESULTS.md)
  --keep          keep the work directory's data
  -h, --help      this text
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$REPO/bench/work/isolation
SCALE=1
SEED=1
RUNS=3
BUILD=$REPO/build-bench
DOBUILD=1
PORT=""
RESULTS=$REPO/bench/RESULTS.md
KEEP=0
PORT0=39700

while [ $# -gt 0 ]; do
	common_opt "$@"
	if [ "$SHIFT" -gt 0 ]; then
		shift "$SHIFT"
		continue
	fi
	case $1 in
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument '$1'" ;;
	esac
done
[ -z "$PORT" ] || PORT0=$PORT
check_common python3 awk
LOGS=$WORK/logs
BIG=("$WORK/A" "$WORK/B1" "$WORK/B2" "$WORK/C" "$WORK/wc" "$WORK/conf")
bench_start
build_dm
export DM_CONFIG=$WORK/conf/config
unset DM_API_KEY

NFILES=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 40000 * s }')
BIGMB=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 256 * s + 1 }')
need_space "$WORK" $((BIGMB * 8 + NFILES * 40 / 1024 + 200)) "the isolation benchmark"

# free ports for A, B1, B2, C
PORTS=()
for p in $(seq "$PORT0" $((PORT0 + 99))); do
	if port_free "$p"; then PORTS+=("$p"); fi
	[ ${#PORTS[@]} -lt 4 ] || break
done
[ ${#PORTS[@]} -eq 4 ] || die "no four free TCP ports in $PORT0..$((PORT0 + 99))"
PA=${PORTS[0]} PB1=${PORTS[1]} PB2=${PORTS[2]} PC=${PORTS[3]}

serve() { # NAME PORT: a fresh dmd with its data in WORK/NAME
	PORT=$2
	rm -rf "${WORK:?}/$1"
	start_dmd "$WORK/$1" 0 --no-plugin
}

dmA() { "$DM" --remote a "$@"; }

say "starting dmds A, B1, B2 (ports $PA $PB1 $PB2)"
serve A "$PA"
"$DM" remote rename local a >/dev/null 2>&1 || true
serve B1 "$PB1"
serve B2 "$PB2"
DM_API_KEY=$(cat "$WORK/A/admin-api-key") "$DM" remote add a "admin@127.0.0.1:$PA" --ca-file "$WORK/A/ca.pem" >/dev/null
DM_API_KEY=$(cat "$WORK/B1/admin-api-key") "$DM" remote add b1 "admin@127.0.0.1:$PB1" --ca-file "$WORK/B1/ca.pem" >/dev/null
DM_API_KEY=$(cat "$WORK/B2/admin-api-key") "$DM" remote add b2admin "admin@127.0.0.1:$PB2" --ca-file "$WORK/B2/ca.pem" >/dev/null
"$DM" --remote b2admin user add bench >"$WORK/bench.key" 2>/dev/null
DM_API_KEY=$(cat "$WORK/bench.key") "$DM" remote add b2 "bench@127.0.0.1:$PB2" --ca-file "$WORK/B2/ca.pem" >/dev/null

say "making $NFILES files of 4 KiB and one of $BIGMB MiB on A"
dmA init data >/dev/null
dmA mount data "$WORK/wc" >/dev/null
python3 - "$WORK/wc" "$NFILES" "$BIGMB" "$SEED" <<'EOF'
import os, random, sys
root, n, big, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
for i in range(n):
    d = os.path.join(root, "d%03d" % (i % 200))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%06d" % i), "wb") as f:
        f.write(rng.randbytes(4096))
with open(os.path.join(root, "big"), "wb") as f:
    for _ in range(big):
        f.write(rng.randbytes(1 << 20))
EOF
tm commit-first dmA commit --dot data -m first

# push from A to B1 as admin and to B2 as the user
push_both() { # STEP
	tm "$1-admin" dmA push b1 data --remote-name admin/data
	tm "$1-user" dmA push b2 data --remote-name bench/data
}

say "first push: admin to B1, user to B2"
push_both push-first

for i in $(seq 1 "$RUNS"); do
	say "push 1% ($i/$RUNS)"
	python3 - "$WORK/wc" "$NFILES" "$((SEED * 1000 + i))" <<'EOF'
import os, random, sys
root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
for i in rng.sample(range(n), max(1, n // 100)):
    with open(os.path.join(root, "d%03d" % (i % 200), "f%06d" % i), "wb") as f:
        f.write(rng.randbytes(4096))
EOF
	tm "commit-$i" dmA commit --dot data -m "1% more"
	if [ $((i % 2)) = 1 ]; then
		tm "push1-$i-admin" dmA push b1 data --remote-name admin/data
		tm "push1-$i-user" dmA push b2 data --remote-name bench/data
	else
		tm "push1-$i-user" dmA push b2 data --remote-name bench/data
		tm "push1-$i-admin" dmA push b1 data --remote-name admin/data
	fi
done

clone_from() { # STEP REMOTE DOT
	stop_dmd "$WORK/C"
	"$DM" remote rm c >/dev/null 2>&1 || true
	serve C "$PC"
	DM_API_KEY=$(cat "$WORK/C/admin-api-key") "$DM" remote add c "admin@127.0.0.1:$PC" --ca-file "$WORK/C/ca.pem" >/dev/null
	tm "$1" "$DM" --remote c clone "$2" "$3" --local-name copy
}
for i in $(seq 1 "$RUNS"); do
	say "clone ($i/$RUNS)"
	clone_from "clone-$i-admin" b1 admin/data
	clone_from "clone-$i-user" b2 bench/data
done
HWM_B1=$(proc_kib "$(dmd_pid "$WORK/B1")" VmHWM)
HWM_B2=$(proc_kib "$(dmd_pid "$WORK/B2")" VmHWM)

# ---------------------------------------------------------------- results

ratio() { fx "$(calc "$2 / $1")"; } # ADMIN_T USER_T: the user's time over the admin's
T_PA=$(step_time push-first-admin)
T_PU=$(step_time push-first-user)
median_step push1 -admin
M_P1A=$MED R_P1A=$(runs "${RUNVALS[@]}")
median_step push1 -user
M_P1U=$MED R_P1U=$(runs "${RUNVALS[@]}")
median_step clone -admin
M_CA=$MED R_CA=$(runs "${RUNVALS[@]}")
median_step clone -user
M_CU=$MED R_CU=$(runs "${RUNVALS[@]}")
machine_line
DATA_MB=$(du -sm --apparent-size "$WORK/wc/" | cut -f1)

out=$LOGS/section.md
{
	echo "<!-- isolation:begin -->"
	echo "## isolation: the cost of serving objects only to those who may read them"
	echo
	echo "\`bench/isolation.sh$( [ "$SCALE" = 1 ] || echo " --scale $SCALE")$( [ "$RUNS" = 3 ] || echo " --runs $RUNS")\` at $REV ($BUILDTYPE build), $NOW."
	echo "$MACHINE; load average $LOAD0 at the start, $LOAD1 at the end."
	echo "Data: $NFILES files of 4 KiB in 200 directories and one file of $BIGMB MiB ($DATA_MB MB)."
	echo "Admins see the whole store (no session check); a user's transfer is checked against its session's reachability set."
	echo
	echo "| step | as admin | as user | user / admin |"
	echo "| --- | --- | --- | --- |"
	echo "| first push (A → B) | $(fsec "$T_PA") | $(fsec "$T_PU") | $(ratio "$T_PA" "$T_PU") |"
	echo "| push of 1% of the files, median of $RUNS | $(fsec "$M_P1A") | $(fsec "$M_P1U") | $(ratio "$M_P1A" "$M_P1U") |"
	echo "| clone (B → empty C), median of $RUNS | $(fsec "$M_CA") | $(fsec "$M_CU") | $(ratio "$M_CA" "$M_CU") |"
	echo "| receiving dmd's peak memory (VmHWM) | $(fmib "$HWM_B1") | $(fmib "$HWM_B2") | |"
	echo
	echo "Runs: push 1% as admin $R_P1A, as user $R_P1U; clone as admin $R_CA, as user $R_CU."
	echo "<!-- isolation:end -->"
} >"$out"
write_section isolation "$out"
cat "$out"
