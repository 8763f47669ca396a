#!/usr/bin/env bash
# bench/csi.sh - the CSI driver's latencies as Kubernetes sees them: the
# time of CreateSnapshot and of CreateVolume from a snapshot, on a volume
# of 100 MiB and one of 10 GiB, on the btrfs and the dir engine, and 100
# volumes created from one snapshot in a row; p50 and p95 of each. Writes
# the "csi" section of bench/RESULTS.md (between <!-- csi:begin --> and
# <!-- csi:end -->).
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/csi.sh [options]

Runs a private dmd per engine with --csi-socket and drives it with the
gRPC client of the tests (tests/e2e/csi/csictl.py, /usr/bin/python3 with
python3-grpcio): per engine, a volume of 100 MiB and one of 10 GiB are
created, published (a bind mount, as the kubelet asks) and filled with
random data in 64 MiB files; then --runs times: 1 MiB more is written and
CreateSnapshot timed; CreateVolume from the last snapshot timed (each new
volume deleted after); and on the 100 MiB volume, 100 CreateVolume from one
snapshot in a row. Times are the client's, call to answer.

options:
  --work DIR      work directory (default bench/work/csi; gitignored)
  --scale F       size factor (default 1: 100 MiB and 10 GiB)
  --runs N        repetitions of each timed call (default 10)
  --many N        volumes from one snapshot in a row (default 100)
  --engines LIST  "btrfs dir" (default; btrfs needs root, loop devices)
  --build DIR     meson build directory with dm and dmd (default build)
  --results FILE  results file (default bench/RESULTS.md)
  --keep          keep the data directories
  -h, --help      this text

Needs root (publishing bind-mounts). About 35 GiB of free space at scale 1.
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$REPO/bench/work/csi
SCALE=1
RUNS=10
MANY=100
ENGINES="btrfs dir"
BUILD=$REPO/build
RESULTS=$REPO/bench/RESULTS.md
KEEP=0
PY=/usr/bin/python3

die() {
	echo "csi.sh: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case $1 in
	--work) WORK=$2; shift 2 ;;
	--scale) SCALE=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--many) MANY=$2; shift 2 ;;
	--engines) ENGINES=$2; shift 2 ;;
	--build) BUILD=$2; shift 2 ;;
	--results) RESULTS=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument '$1'" ;;
	esac
done
[ "$(id -u)" = 0 ] || die "publishing a volume bind-mounts it: run as root"
[[ $RUNS =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] || die "--runs must be a positive integer"
"$PY" -c 'import grpc, grpc_tools' 2>/dev/null || die "needs python3-grpcio and python3-grpc-tools"
BUILD=$(cd "$BUILD" && pwd)
[ -x "$BUILD/src/server/dmd" ] || die "no dmd in $BUILD (make build)"
export PATH=$BUILD/src/cli:$BUILD/src/server:$PATH:/usr/sbin:/sbin
export DM_PLUGIN_SOCKET=none
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
LOG=$WORK/times.txt
: >"$LOG"

mib() { awk -v s="$SCALE" -v m="$1" 'BEGIN { printf "%d\n", int(m * s + 0.5) < 1 ? 1 : int(m * s + 0.5) }'; }
SMALL=$(mib 100)
BIG=$(mib 10240)

SOCK=$WORK/csi.sock
csictl() { "$PY" "$REPO/tests/e2e/csi/csictl.py" "$SOCK" "$WORK" "$@"; }

# p50 and p95 (nearest rank) of the numbers in file $1, "p50 / p95".
pct() {
	"$PY" -c 'import math, sys
v = sorted(float(x) for x in open(sys.argv[1]) if x.strip())
r = lambda p: v[max(0, math.ceil(p / 100 * len(v)) - 1)]
print("%.1f / %.1f" % (r(50), r(95)))' "$1"
}

DATA=""
cleanup() {
	[ -n "$DATA" ] && { awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | xargs -r -n1 umount -l 2>/dev/null || true; dmd stop --data-dir "$DATA" >/dev/null 2>&1 || true; }
	return 0
}
trap cleanup EXIT

declare -A ROW
run_engine() {
	local engine=$1 size vol snap t i port init=()

	DATA=$WORK/data-$engine
	rm -rf "$DATA" "$WORK/pods"
	mkdir -p "$WORK/pods"
	port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	if [ "$engine" = btrfs ]; then
		init=(--engine btrfs --pool-size "$(((BIG * 3 + 2048) / 1024 + 1))G")
	fi
	DM_CONFIG=$WORK/config-$engine dm cluster init --data-dir "$DATA" --port "$port" \
		--csi-socket "$SOCK" "${init[@]}" >"$WORK/init-$engine.out"
	for size in "$SMALL" "$BIG"; do
		echo "== $engine, $size MiB" >&2
		# no capacity: on btrfs one would turn quotas on, which costs every
		# snapshot (docs/internals/csi.md, "What turning quotas on costs")
		vol=$(csictl create "vol-$size")
		t=$WORK/pods/vol-$size
		csictl publish "$vol" "$t"
		for ((i = 0; i * 64 < size; i++)); do
			head -c $(((size - i * 64 < 64 ? size - i * 64 : 64) * 1048576)) /dev/urandom >"$t/f$i"
		done
		sync
		: >"$WORK/snap.ms"
		for ((i = 0; i < RUNS; i++)); do
			head -c 1048576 /dev/urandom >"$t/change-$i"
			csictl time 1 snapshot "snap-$size-$i" "$vol" >>"$WORK/snap.ms"
		done
		snap=$(csictl snapshot "snap-$size-$((RUNS - 1))" "$vol" --wait)
		: >"$WORK/create.ms"
		for ((i = 0; i < RUNS; i++)); do
			csictl time 1 create "from-$size-$i" --snapshot "$snap" >>"$WORK/create.ms"
			csictl delete "$(csictl create "from-$size-$i" --snapshot "$snap")"
		done
		ROW[$engine-$size-snap]=$(pct "$WORK/snap.ms")
		ROW[$engine-$size-create]=$(pct "$WORK/create.ms")
		echo "$engine $size MiB CreateSnapshot $(cat "$WORK/snap.ms" | tr '\n' ' ')" >>"$LOG"
		echo "$engine $size MiB CreateVolume-from-snapshot $(cat "$WORK/create.ms" | tr '\n' ' ')" >>"$LOG"
		if [ "$size" = "$SMALL" ]; then
			csictl time "$MANY" create many --snapshot "$snap" >"$WORK/many.ms"
			ROW[$engine-many]=$(pct "$WORK/many.ms")
			ROW[$engine-many-total]=$(awk '{ s += $1 } END { printf "%.2f", s / 1000 }' "$WORK/many.ms")
			echo "$engine $MANY CreateVolume-in-a-row $(tr '\n' ' ' <"$WORK/many.ms")" >>"$LOG"
		fi
		csictl unpublish "$vol" "$t"
	done
	dmd stop --data-dir "$DATA" >/dev/null
	[ "$KEEP" = 1 ] || rm -rf "$DATA"
	DATA=""
}

for e in $ENGINES; do
	run_engine "$e"
done

section=$WORK/section.md
{
	echo "<!-- csi:begin -->"
	echo "## csi: CreateSnapshot and CreateVolume from a snapshot, as Kubernetes calls them"
	echo
	echo "\`bench/csi.sh --scale $SCALE --runs $RUNS --many $MANY\` on $(date -u +%Y-%m-%d), $(nproc) cores."
	echo "Milliseconds, p50 / p95, measured by the gRPC client (call to answer)."
	echo "CreateSnapshot after writing 1 MiB more each time; CreateVolume from a"
	echo "snapshot that is ready (indexed). Raw times: \`${LOG#"$REPO"/}\`."
	echo
	echo "| engine | volume | CreateSnapshot | CreateVolume from snapshot | $MANY volumes from one snapshot (each; total s) |"
	echo "| --- | --- | --- | --- | --- |"
	for e in $ENGINES; do
		echo "| $e | $SMALL MiB | ${ROW[$e-$SMALL-snap]} | ${ROW[$e-$SMALL-create]} | ${ROW[$e-many]}; ${ROW[$e-many-total]} s |"
		echo "| $e | $BIG MiB | ${ROW[$e-$BIG-snap]} | ${ROW[$e-$BIG-create]} | |"
	done
	echo
	echo "Anchors: DBLab clones a 1 TiB database in about 10 s; a btrfs"
	echo "branch-per-request service reports p95 ≈ 90 ms per branch. Target on"
	echo "btrfs: p95 under 100 ms for both calls, whatever the size."
	echo "<!-- csi:end -->"
} >"$section"
cat "$section"
if grep -q '<!-- csi:begin -->' "$RESULTS"; then
	"$PY" - "$RESULTS" "$section" <<'PYEOF'
import re, sys
r, s = open(sys.argv[1]).read(), open(sys.argv[2]).read()
r = re.sub(r"<!-- csi:begin -->.*?<!-- csi:end -->\n?", lambda m: s, r, flags=re.S)
open(sys.argv[1], "w").write(r)
PYEOF
else
	{ echo; cat "$section"; } >>"$RESULTS"
fi
