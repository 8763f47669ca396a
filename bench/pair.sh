#!/usr/bin/env bash
# bench/pair.sh - two builds of dm compared on the same data directories,
# round by round: is a change a regression, or noise?
#
# The other benchmarks run one build against a peer tool; their rows move
# by 20-40% from one run to the next on this kind of machine (page cache
# and write-back of the gigabytes each run writes). To compare two builds
# of dm, this script keeps one pair of data directories and swaps the
# binaries under them between rounds (stop, start with the other build),
# so both builds see the same data in the same state, interleaved in time:
#
#   push   a dot of the mixed set (bench/store_data.py) is cloned from dmd A
#          to dmd B; each round rewrites 1% of its bytes as whole files,
#          commits on A (untimed) and times `dm push` (A to B) + sync
#   reset  a dot of small files (100,000 × --scale); each round commits
#          after changing nothing, then after changing one file, and times
#          `dm reset --hard HEAD^` after each
#
# Both builds must read the same data format. Prints one line per round
# and the median of each build; writes nothing else.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/pair.sh --old DIR --new DIR [options]

  --old DIR     a meson build directory of the first build (src/cli/dm, src/server/dmd)
  --new DIR     the same for the second build
  --scale F     data size factor (default 0.5: 1 GB mixed set, 50,000 small files)
  --rounds N    rounds of each measurement, alternating builds (default 10)
  --work DIR    work directory (default bench/work/pair; removed at the end)
  --port N      first of the two TCP ports (default 39700)
  -h, --help    this text

Example: the commit before a change built beside this tree, then both:
  git worktree add /tmp/before HEAD~1 && meson setup /tmp/before/b -Dbuildtype=release
  ninja -C /tmp/before/b src/cli/dm src/server/dmd
  meson setup build-bench -Dbuildtype=release && ninja -C build-bench src/cli/dm src/server/dmd
  bench/pair.sh --old /tmp/before/b --new build-bench
EOF
}

die() {
	echo "pair.sh: $*" >&2
	exit 1
}

REPO=$(cd "$(dirname "$0")/.." && pwd)
OLD= NEW= SCALE=0.5 ROUNDS=10 WORK=$REPO/bench/work/pair PORT=39700
while [ $# -gt 0 ]; do
	case $1 in
	--old) OLD=$(cd "${2:?--old needs a directory}" && pwd); shift 2 ;;
	--new) NEW=$(cd "${2:?--new needs a directory}" && pwd); shift 2 ;;
	--scale) SCALE=${2:?--scale needs a number}; shift 2 ;;
	--rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
	--work) WORK=${2:?--work needs a directory}; shift 2 ;;
	--port) PORT=${2:?--port needs a number}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument '$1'" ;;
	esac
done
[ -n "$OLD" ] && [ -n "$NEW" ] || { usage >&2; die "--old and --new are both needed"; }
for b in "$OLD" "$NEW"; do
	[ -x "$b/src/cli/dm" ] && [ -x "$b/src/server/dmd" ] || die "'$b' has no src/cli/dm and src/server/dmd"
done
[[ $ROUNDS =~ ^[0-9]+$ ]] && [ "$ROUNDS" -ge 2 ] || die "--rounds must be 2 or more"
[[ $SCALE =~ ^[0-9]*\.?[0-9]+$ ]] || die "--scale must be a number"

rm -rf "$WORK"
mkdir -p "$WORK"
DIRS=()
cleanup() {
	for d in "${DIRS[@]}"; do
		"$DM" cluster stop --data-dir "$d" >/dev/null 2>&1 || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

use() { DM=$1/src/cli/dm; export DM_DMD=$1/src/server/dmd; }
dmA() { DM_CONFIG=$WORK/confA "$DM" "$@"; }
dmB() { DM_CONFIG=$WORK/confB "$DM" "$@"; }
dmR() { DM_CONFIG=$WORK/confR "$DM" "$@"; }
now() { date +%s.%N; }
# build_of ROUND: the build of that round (odd: new, even: old)
build_of() { if [ $(($1 % 2)) = 1 ]; then echo new; else echo old; fi; }
switch_to() {
	local d

	for d in "${DIRS[@]}"; do "$DM" cluster stop --data-dir "$d" >/dev/null; done
	if [ "$1" = new ]; then use "$NEW"; else use "$OLD"; fi
	for d in "${DIRS[@]}"; do "$DM" cluster start --data-dir "$d" >/dev/null; done
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f\n", m }'; }
summary() {
	local what=$1 b

	for b in new old; do
		printf '%-28s %s: median %s s of %s rounds\n' "$what" "$b" \
			"$(awk -v b="$b" -v w="$what" '$1 == b && $2 == w { print $3 }' "$WORK/times" | median)" \
			"$(awk -v b="$b" -v w="$what" '$1 == b && $2 == w' "$WORK/times" | wc -l)"
	done
}

# ---------------------------------------------------------------- push
use "$NEW"
echo "push: a dot of the mixed set (scale $SCALE) cloned from A to B"
dmA cluster init --data-dir "$WORK/A" --port "$PORT" >/dev/null
DIRS+=("$WORK/A")
dmB cluster init --data-dir "$WORK/B" --port $((PORT + 1)) >/dev/null
DIRS+=("$WORK/B")
DM_API_KEY=$(cat "$WORK/B/admin-api-key") dmA remote add b "admin@127.0.0.1:$((PORT + 1))" --ca-file "$WORK/B/ca.pem" >/dev/null
DM_API_KEY=$(cat "$WORK/A/admin-api-key") dmB remote add a "admin@127.0.0.1:$PORT" --ca-file "$WORK/A/ca.pem" >/dev/null
dmA init bench >/dev/null
dmA mount bench "$WORK/wcA" >/dev/null
python3 "$REPO/bench/store_data.py" mixed "$WORK/wcA/" --seed 1 --scale "$SCALE" >/dev/null
NB=$(du -sb "$WORK/wcA/" | cut -f1)
dmA commit --dot bench -m first >/dev/null
dmB clone a bench >/dev/null 2>&1
sync
# the first push after a clone also has B look at its new working copy
# once (files written moments ago are read again): not a round
python3 "$REPO/bench/store_data.py" mutate-whole "$WORK/wcA/" --seed 100 --bytes $((NB / 100)) >/dev/null
dmA commit --dot bench -m warm >/dev/null
dmA push b bench >/dev/null 2>&1
for r in $(seq 1 "$ROUNDS"); do
	b=$(build_of "$r")
	switch_to "$b"
	python3 "$REPO/bench/store_data.py" mutate-whole "$WORK/wcA/" --seed $((100 + r)) --bytes $((NB / 100)) >/dev/null
	dmA commit --dot bench -m "round $r" >/dev/null
	sync
	sleep 1
	t0=$(now)
	dmA push b bench >/dev/null 2>&1 || die "dm push failed in round $r"
	sync
	t=$(echo "$(now) - $t0" | bc)
	echo "$b push $t" >>"$WORK/times"
	printf 'round %2d %s: push of %s bytes + sync %.3f s\n' "$r" "$b" $((NB / 100)) "$t"
done
for d in "${DIRS[@]}"; do "$DM" cluster stop --data-dir "$d" >/dev/null; done
DIRS=()

# ---------------------------------------------------------------- reset
use "$NEW"
NSMALL=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 100000 * s }')
echo "reset: a dot of $NSMALL small files"
dmR cluster init --data-dir "$WORK/R" --port "$((PORT + 2))" >/dev/null
DIRS+=("$WORK/R")
dmR init small >/dev/null
dmR mount small "$WORK/wcR" >/dev/null
python3 "$REPO/bench/store_data.py" small "$WORK/wcR/" --seed 1 --count "$NSMALL" >/dev/null
dmR commit --dot small -m first >/dev/null
sleep 3
for r in $(seq 1 "$ROUNDS"); do
	b=$(build_of "$r")
	switch_to "$b"
	for kind in nothing one; do
		[ $kind = one ] && python3 "$REPO/bench/store_data.py" mutate-one "$WORK/wcR/" --seed 1 --round "$r" >/dev/null
		dmR commit --dot small -m "round $r, $kind" >/dev/null
		sleep 2.5 # past the racy-stat window, as bench/commit.sh
		t0=$(now)
		dmR reset --hard HEAD^ --dot small >/dev/null || die "dm reset failed in round $r"
		t=$(echo "$(now) - $t0" | bc)
		echo "$b reset-after-$kind $t" >>"$WORK/times"
		printf 'round %2d %s: reset --hard HEAD^ after changing %s %.3f s\n' "$r" "$b" "$kind" "$t"
	done
done

echo
summary push
summary reset-after-nothing
summary reset-after-one
