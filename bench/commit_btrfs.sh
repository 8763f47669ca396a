#!/usr/bin/env bash
# bench/commit_btrfs.sh - the btrfs engine: dm commit and reset latency on a
# dot of 100 MiB and one of 10 GiB, background indexing after a 1% change,
# dm's overhead over a raw `btrfs subvolume snapshot -r`, the pool's
# usage after ten 1% commits beside the dir engine's for the same history,
# and the space a clone of that history onto a fresh btrfs dmd takes, all
# in one run. Writes the "commit, btrfs engine" section of
# bench/RESULTS.md (between <!-- commit-btrfs:begin --> and
# <!-- commit-btrfs:end -->). Helpers: bench/lib.sh. See bench/README.md.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/commit_btrfs.sh [options]
       bench/commit.sh --engine btrfs [options]

As root, runs a private dmd with the btrfs engine (a loop-mounted pool file
it makes, or --pool-dir), creates two dots of generated data, 'small'
(100 MiB) and 'big' (10 GiB), with the same number of files, and writes
the "commit, btrfs engine" section of bench/RESULTS.md:
  commit    dm commit latency after changing nothing and after changing 1%
            of the bytes (median of --runs), on both dots
  reset     dm reset --hard HEAD^ right after each of those commits
  indexing  time from a commit's start until `dm dot show --json` reports
            no pending indexing (field "indexing"; without that field, the
            commit's own time), after the first commit, after changing
            nothing, and in a history of ten commits each after a 1% change
  raw       btrfs subvolume snapshot -r of the same working copies, after
            changing nothing and after 1%: dm's overhead over it
  space     the big dot's subvolumes and snapshots on the pool (btrfs
            filesystem du) and dm's store after that history, beside a
            dir-engine dmd's store and working copy after the same history
  received  dm clone of that history from the dir-engine dmd onto a fresh
            btrfs dmd: its pool space and store beside the dot's bytes and
            the sender's store (data that arrives is kept once)

options:
  --work DIR       work directory (default bench/work/commit-btrfs;
                   gitignored); holds the pool file and the dir engine's
                   copy. The space needed is checked first (about 35 GiB
                   at scale 1).
  --scale F        size factor (default 1: 100 MiB and 10 GiB in 2,000
                   files each; 0.01 for a quick test)
  --files N        files in each dot (default 2,000 x scale, at least 16)
  --seed N         data seed (default 1); same seed, same bytes
  --runs N         repetitions of each latency step (default 5; medians)
  --history N      1% commits in the history (default 10)
  --pool-dir PATH  use this existing btrfs mount (its dots/ must not exist)
                   instead of a loop-mounted pool file in WORK
  --build DIR      meson build directory with src/cli/dm and src/server/dmd
                   (default build-bench/, set up with -Dbuildtype=release
                   if missing); brought up to date with ninja
  --no-build       use --build DIR as it is, without running ninja
  --port N         TCP port for the private dmd (default: the first free
                   one from 39700)
  --results FILE   results file (default bench/RESULTS.md)
  --keep           keep the data, the pool and the dmd data directories
  -h, --help       this text

Needs root, btrfs in the kernel and loop devices (or --pool-dir), and
btrfs-progs, openssl and jq. Warm page cache throughout. Run it on a quiet
machine. The client config is WORK/config (DM_CONFIG); ~/.dm is not used.
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=commit_btrfs.sh
TAG=btrfs
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

WORK=$REPO/bench/work/commit-btrfs
SCALE=1
SEED=1
RUNS=5
HIST=10
NF=""
POOLDIR=""
BUILD=$REPO/build-bench
DOBUILD=1
PORT=""
RESULTS=$REPO/bench/RESULTS.md
KEEP=0
ARGS=("$@")

while [ $# -gt 0 ]; do
	case $1 in
	--files) NF=${2:?--files needs a number}; shift 2 ;;
	--history) HIST=${2:?--history needs a number}; shift 2 ;;
	--pool-dir) POOLDIR=${2:?--pool-dir needs a directory}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*)
		common_opt "$@"
		[ "$SHIFT" -gt 0 ] || { usage >&2; die "unknown argument '$1'"; }
		shift "$SHIFT"
		;;
	esac
done

check_common python3 openssl jq meson ninja awk btrfs sha256sum dd df du
[[ $HIST =~ ^[0-9]+$ ]] && [ "$HIST" -ge 1 ] && [ "$HIST" -le 99 ] || die "--history must be an integer in 1..99"
if [ -z "$NF" ]; then
	NF=$(awk -v s="$SCALE" 'BEGIN { n = int(2000 * s + 0.5); printf "%d\n", (n < 16 ? 16 : n) }')
fi
[[ $NF =~ ^[0-9]+$ ]] && [ "$NF" -ge 1 ] && [ "$NF" -le 1000000 ] || die "--files must be an integer in 1..1000000"
[ "$(id -u)" = 0 ] ||
	die "the btrfs engine needs root (subvolumes, snapshots, a loop-mounted pool); run this as root, or bench/commit.sh for the dir engine"
if [ -n "$POOLDIR" ]; then
	POOLDIR=$(cd "$POOLDIR" && pwd) || die "--pool-dir '$POOLDIR' is not a directory"
	[ "$(stat -f -c %T "$POOLDIR")" = btrfs ] || die "--pool-dir '$POOLDIR' is not on btrfs"
	[ ! -e "$POOLDIR/dots" ] || die "'$POOLDIR/dots' exists already; give an empty btrfs mount with --pool-dir"
else
	[ -e /dev/loop-control ] ||
		die "no loop devices (/dev/loop-control) for a pool file; give an existing btrfs mount with --pool-dir"
fi

DBT=$WORK/dmd-btrfs  # dmd data directory, btrfs engine (its pool: DBT/pool)
DDIR=$WORK/dmd-dir   # dmd data directory, dir engine (same history)
DCL=$WORK/dmd-clone  # dmd data directory, btrfs engine, the clone of DDIR's dot
LOGS=$WORK/logs
BIG=("$DBT" "$DDIR" "$DCL" "$WORK/wc-small" "$WORK/wc-big" "$WORK/wc-dir" "$WORK/config" "$WORK/config-clone")
export DM_CONFIG=$WORK/config
POOL=${POOLDIR:-$DBT/pool}
RAWDIR=$POOL/dm-bench-raw # the raw snapshots (plain btrfs, outside dm's dots/)

# The sizes: each dot holds NF files of FS_x bytes (4 KiB multiples), the
# last one taking the rest of BYTES_x.
declare -A BYTES FS LAST CH_K CH_LEN CH_BYTES WCP DOTDIR
bytes_of() { awk -v s="$SCALE" -v m="$1" 'BEGIN { b = int(m * 1048576 * s / 4096) * 4096; printf "%.0f\n", (b < 4096 ? 4096 : b) }'; }
BYTES[small]=$(bytes_of 100)
BYTES[big]=$(bytes_of 10240)
DOTS=(small big)
for d in "${DOTS[@]}"; do
	FS[$d]=$((BYTES[$d] / NF / 4096 * 4096))
	[ "${FS[$d]}" -ge 4096 ] || die "--files $NF is too many for ${BYTES[$d]} bytes (files of at least 4 KiB)"
	LAST[$d]=$((BYTES[$d] - (NF - 1) * FS[$d]))
	# a 1% change: CH_K files, one run of CH_LEN bytes (4 KiB multiples) in
	# each, about a tenth of the files
	CH_LEN[$d]=$(awk -v c="$((BYTES[$d] / 100))" -v n="$NF" -v fs="${FS[$d]}" 'BEGIN {
		k = n / 10; if (k < 1) k = 1
		l = int(c / k / 4096 + 0.5) * 4096; if (l < 4096) l = 4096; if (l > fs) l = fs
		printf "%.0f\n", l }')
	CH_K[$d]=$(awk -v c="$((BYTES[$d] / 100))" -v l="${CH_LEN[$d]}" -v n="$NF" 'BEGIN {
		k = int(c / l + 0.5); if (k < 1) k = 1; if (k > n) k = n; printf "%.0f\n", k }')
	CH_BYTES[$d]=$((CH_K[$d] * CH_LEN[$d]))
done
DATA_MIB=$(((BYTES[small] + BYTES[big]) / 1048576 + 1))
POOL_MIB=$(awk -v d="$DATA_MIB" 'BEGIN { p = int(2 * d + 2048); printf "%.0f\n", p }')

# Space: the btrfs part (the pool's data: the dots, ten 1% commits, raw
# snapshots; dm's store holds only an index) and the dir part (a working
# copy and a store of the big dot, which rewrites whole chunks of 64 KiB on
# average around each change). The btrfs part is removed before the dir
# part starts, unless --keep.
NEED_BT=$(awk -v d="$DATA_MIB" 'BEGIN { printf "%.0f", 1.3 * d + 512 }')
# (the clone's pool then: its dot and the history's changed chunks, while
# the dir engine's store serves it; its working copy is removed first)
NEED_DIR=$(awk -v b="$((BYTES[big] / 1048576))" 'BEGIN { printf "%.0f", 2.5 * b + 1024 }')
if [ -n "$POOLDIR" ]; then
	need_space "$POOLDIR" "$NEED_BT" "the btrfs part at scale $SCALE"
	need_space "$WORK" "$NEED_DIR" "the dir engine's copy at scale $SCALE"
elif [ "$KEEP" = 1 ]; then
	need_space "$WORK" $((NEED_BT + NEED_DIR)) "scale $SCALE with --keep (pool file and dir engine copy)"
else
	need_space "$WORK" $((NEED_BT > NEED_DIR ? NEED_BT : NEED_DIR)) "scale $SCALE (pool file, then the dir engine's copy)"
fi

# With --pool-dir, what the run made in the pool goes at exit: the raw
# snapshots, and the dots' subvolumes when dmd could not delete them.
delete_subvols() { # DIR: deletes DIR's subvolumes (any depth), then DIR
	[ -d "$1" ] || return 0
	local s
	while read -r s; do
		btrfs subvolume delete "$s" >>"$LOGS/cleanup.log" 2>&1 || true
	done < <(find "$1" -mindepth 1 -depth -type d -inum 256 2>/dev/null)
	rm -rf "$1"
}
cleanup_hook() {
	if [ -n "$POOLDIR" ]; then
		delete_subvols "$RAWDIR"
		if [ "$KEEP" = 0 ]; then delete_subvols "$POOLDIR/dots"; fi
	fi
	# a loop pool still mounted (dmd did not stop) is not removed under it
	local d
	for d in "$DBT" "$DCL"; do
		if mountpoint -q "$d/pool" 2>/dev/null; then
			umount "$d/pool" 2>>"$LOGS/cleanup.log" || { echo "$BENCH: '$d/pool' is still mounted; keeping $d" >&2; KEEP=1; }
		fi
	done
}

bench_start
build_dm
pick_port 39700

# ---------------------------------------------------------------- data

# keystream LABEL: endless pseudo-random bytes (openssl AES-128-CTR keyed by
# the seed and LABEL); the same LABEL gives the same bytes.
keystream() {
	local k iv
	k=$(printf '%s/%s/key' "$SEED" "$1" | sha256sum | cut -c1-32)
	iv=$(printf '%s/%s/iv' "$SEED" "$1" | sha256sum | cut -c1-32)
	openssl enc -aes-128-ctr -nosalt -K "$k" -iv "$iv" -in /dev/zero 2>/dev/null || true
}
fpath() { printf -v FP '%s/d%03d/f%06d.dat' "$1" $(($2 / 100)) "$2"; } # ROOT I: FP

# gen_tree ROOT DOT: NF files of random bytes for DOT's sizes, 100 to a
# directory, written with head -c from one keystream (head reads no more
# than it writes, so the bytes are a function of seed and DOT).
gen_tree() {
	local root=$1 d=$2 i
	keystream "tree-$d" | {
		for ((i = 0; i < NF; i++)); do
			fpath "$root" "$i"
			if [ $((i % 100)) = 0 ]; then mkdir -p "${FP%/*}"; fi
			if [ "$i" = $((NF - 1)) ]; then head -c "${LAST[$d]}" >"$FP"; else head -c "${FS[$d]}" >"$FP"; fi
		done
	}
}

# mutate ROOT DOT ROUND: overwrites about 1% of DOT's bytes in place: CH_K[DOT]
# files picked by seed and round, CH_LEN[DOT] new random bytes each at a
# random 4 KiB-aligned offset. The same arguments make the same change.
mutate() {
	local root=$1 d=$2 r=$3 plan i off
	plan=$LOGS/plan-$d-$r.txt
	awk -v seed="$SEED" -v r="$r" -v dn="$([ "$d" = big ] && echo 2 || echo 1)" -v n="$NF" \
		-v k="${CH_K[$d]}" -v fs="${FS[$d]}" -v len="${CH_LEN[$d]}" 'BEGIN {
		srand(seed * 7919 + r * 31 + dn)
		for (i = 0; i < n; i++) p[i] = i
		nb = int((fs - len) / 4096) + 1
		for (i = 0; i < k; i++) {
			j = i + int(rand() * (n - i)); t = p[i]; p[i] = p[j]; p[j] = t
			printf "%.0f %.0f\n", p[i], int(rand() * nb) * 4096
		}
	}' >"$plan"
	keystream "mutate-$d-$r" | {
		while read -r -u 3 i off; do
			fpath "$root" "$i"
			head -c "${CH_LEN[$d]}" | dd of="$FP" bs=1M seek="$off" oflag=seek_bytes conv=notrunc status=none
		done 3<"$plan"
	}
}

# ---------------------------------------------------------------- steps

# wait_indexed NAME DOT OFF: after tm NAME (a commit of DOT), polls `dm dot
# show DOT --json` until it reports no pending indexing. TI is the time
# from the commit's start until the poll that saw none began (at least the
# commit's own time); without an "indexing" field, the commit's own time
# (HAVE_INDEXING=0). The dmd log from offset OFF, polls left out, goes to
# LOGS/NAME.dmd. A poll is one dm process and no other (about 10 ms).
HAVE_INDEXING=""
wait_indexed() {
	local name=$1 dot=$2 off=$3 out now polls=0 deadline
	deadline=$(($(date +%s) + 3600))
	while :; do
		now=${EPOCHREALTIME/./}
		polls=$((polls + 1))
		out=$("$DM" dot show "$dot" --json 2>"$LOGS/$name.show.err") ||
			{ cat "$LOGS/$name.show.err" >&2; die "dm dot show $dot failed (step $name)"; }
		if [[ ! $out =~ \"indexing\" ]]; then
			HAVE_INDEXING=0
			TI=$T
			break
		fi
		[[ $out =~ \"indexing\":\ *([0-9]+) ]] || die "dm dot show $dot --json: 'indexing' is not a count (step $name)"
		HAVE_INDEXING=1
		if [ "${BASH_REMATCH[1]}" = 0 ]; then
			TI=$(calc "($now * 1000 - $T_START) / 1e9")
			TI=$(calc "$TI > $T ? $TI : $T")
			break
		fi
		[ "$(date +%s)" -lt "$deadline" ] || die "indexing of dot '$dot' did not end within an hour (step $name)"
		sleep 0.005
	done
	printf '%s\n' "$out" >"$LOGS/$name.show"
	printf '%s %s\n' "$name-index" "$TI" >>"$LOGS/times.txt"
	printf '%s %s\n' "$name" "$polls" >>"$LOGS/polls.txt"
	if [ -n "$DMDLOG" ]; then
		sleep 0.05
		tail -c +"$((off + 1))" "$DMDLOG" 2>/dev/null | grep -v 'debug rpc dots\.show ' >"$LOGS/$name.dmd" || true
	fi
}
# index_ms NAME: the engine's own time of the index that step NAME's dmd log
# shows, in ms ("" when it shows none).
index_ms() { sed -nE "s/.* debug index of snapshot .* in ([0-9]+) ms$/\1/p" "$LOGS/$1.dmd" | tail -n 1; }
# commit_step NAME DOT: dm commit of DOT, timed (T), then wait_indexed (TI).
commit_step() {
	local off log=$DMDLOG
	off=$(logsize)
	DMDLOG="" # the log is collected after the indexing, by wait_indexed
	tm "$1" "$DM" commit -m "$1" --dot "$2"
	DMDLOG=$log
	wait_indexed "$1" "$2" "$off"
}
reset_step() { tm "$1" "$DM" reset --hard 'HEAD^' --dot "$2"; } # NAME DOT
# footprint DIR: the bytes DIR's files take on btrfs, shared extents counted
# once (btrfs filesystem du: exclusive + set shared).
footprint() {
	sync
	btrfs filesystem du -s --raw "$1" >"$LOGS/fi-du.out" 2>&1 || { cat "$LOGS/fi-du.out" >&2; die "btrfs filesystem du '$1' failed"; }
	# as an integer: mawk prints sums past 2^31 in exponent form
	awk 'NR == 2 { printf "%.0f\n", $2 + $3 }' "$LOGS/fi-du.out"
}
# manifest DIR OUT: the CRC and size of every file under DIR, by path
# (cksum: fast; this only checks that two engines saw the same bytes).
manifest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r cksum) >"$2"; }

# ---------------------------------------------------------------- btrfs

BTRFS_T0=$(date +%s)
if [ -n "$POOLDIR" ]; then
	say "btrfs: starting dmd on the btrfs mount $POOLDIR (port $PORT)"
	start_dmd "$DBT" 1 --engine btrfs --pool-dir "$POOLDIR"
	POOLDESC="the existing btrfs mount $POOLDIR (\`--pool-dir\`)"
else
	say "btrfs: starting dmd with a loop-mounted pool file of $POOL_MIB MiB (port $PORT)"
	start_dmd "$DBT" 1 --engine btrfs --pool-size "${POOL_MIB}M"
	POOLDESC="a pool file of $POOL_MIB MiB, loop-mounted by dmd (\`--pool-size ${POOL_MIB}M\`)"
fi
DMDLOG=$DBT/dmd.log
mountpoint -q "$POOL" || [ -n "$POOLDIR" ] || die "dmd did not mount its pool at $POOL"

declare -A FIRST_C FIRST_I FP_FIRST
for d in "${DOTS[@]}"; do
	"$DM" init "$d" >>"$LOGS/init-dots.log" 2>&1 || { cat "$LOGS/init-dots.log" >&2; die "dm init $d failed"; }
	"$DM" mount "$d" "$WORK/wc-$d" >>"$LOGS/init-dots.log" 2>&1 || { cat "$LOGS/init-dots.log" >&2; die "dm mount $d failed"; }
	WCP[$d]=$(readlink -f "$WORK/wc-$d")
	[ -d "${WCP[$d]}" ] || die "dm mount did not make $WORK/wc-$d a link to a directory"
	[ "$(stat -f -c %T "${WCP[$d]}")" = btrfs ] || die "the working copy of '$d' (${WCP[$d]}) is not on btrfs"
	DOTDIR[$d]=$(dirname "$(dirname "${WCP[$d]}")")
	say "generating dot '$d': $NF files, $(fmb "${BYTES[$d]}")"
	tm "gen-$d" gen_tree "${WCP[$d]}" "$d"
	say "  written in $(fsec "$T") ($(fmb "$(calc "${BYTES[$d]} / $T")")/s); sync"
	tm "gen-$d-sync" sync
done
for d in "${DOTS[@]}"; do
	say "first commit of '$d', then its indexing"
	commit_step "first-$d" "$d"
	FIRST_C[$d]=$T FIRST_I[$d]=$TI
	FP_FIRST[$d]=$(footprint "${DOTDIR[$d]}")
done
[ "$HAVE_INDEXING" = 1 ] ||
	say "  dm dot show --json has no 'indexing' field: indexing is taken as part of the commit"

say "history: $HIST rounds of changing 1% of each dot and committing"
for r in $(seq 1 "$HIST"); do
	for d in "${DOTS[@]}"; do
		mutate "${WCP[$d]}" "$d" "$r"
		commit_step "hist-$r-$d" "$d"
	done
done
declare -A FP_HIST
for d in "${DOTS[@]}"; do FP_HIST[$d]=$(footprint "${DOTDIR[$d]}"); done
manifest "${WCP[big]}" "$LOGS/manifest-btrfs.txt"
sync
STORE_BT=$(du -sb "$DBT/store" | cut -f1)
POOL_USED=$(df -B1 --output=used "$POOL" | tail -n 1 | tr -d ' ')

say "commit after changing nothing, then reset --hard HEAD^ (x $RUNS)"
for i in $(seq 1 "$RUNS"); do
	for d in "${DOTS[@]}"; do
		commit_step "none-$i-$d" "$d"
		reset_step "reset-none-$i-$d" "$d"
	done
done
say "commit after changing 1% of the bytes, then reset --hard HEAD^ (x $RUNS)"
for i in $(seq 1 "$RUNS"); do
	for d in "${DOTS[@]}"; do
		mutate "${WCP[$d]}" "$d" $((100 + i))
		commit_step "bytes-$i-$d" "$d"
		reset_step "reset-bytes-$i-$d" "$d"
	done
done

say "raw btrfs subvolume snapshot -r of the working copies (x $RUNS, after nothing and after 1%)"
delete_subvols "$RAWDIR"
mkdir -p "$RAWDIR"
for i in $(seq 1 "$RUNS"); do
	for d in "${DOTS[@]}"; do
		tm "raw-none-$i-$d" btrfs subvolume snapshot -r "${WCP[$d]}" "$RAWDIR/$d-none-$i"
	done
done
for i in $(seq 1 "$RUNS"); do
	for d in "${DOTS[@]}"; do
		mutate "${WCP[$d]}" "$d" $((200 + i))
		tm "raw-bytes-$i-$d" btrfs subvolume snapshot -r "${WCP[$d]}" "$RAWDIR/$d-bytes-$i"
	done
done
delete_subvols "$RAWDIR"

if [ -n "$POOLDIR" ]; then
	for d in "${DOTS[@]}"; do
		"$DM" dot delete -f "$d" >>"$LOGS/delete-dots.log" 2>&1 || say "WARNING: dm dot delete $d failed (see $LOGS/delete-dots.log)"
	done
fi
stop_dmd "$DBT"
DMDLOG=""
if [ "$KEEP" = 0 ]; then
	if [ -z "$POOLDIR" ] && mountpoint -q "$DBT/pool"; then die "dm cluster stop left the pool mounted at $DBT/pool"; fi
	rm -rf "$DBT" "$WORK/wc-small" "$WORK/wc-big"
fi
BTRFS_T=$(($(date +%s) - BTRFS_T0))

# ---------------------------------------------------------------- dir engine

DIR_T0=$(date +%s)
say "dir engine: the same history of the big dot (first commit + $HIST x 1%)"
start_dmd "$DDIR" 0
"$DM" init big >>"$LOGS/init-dir.log" 2>&1 || { cat "$LOGS/init-dir.log" >&2; die "dm init big (dir engine) failed"; }
"$DM" mount big "$WORK/wc-dir" >>"$LOGS/init-dir.log" 2>&1 || { cat "$LOGS/init-dir.log" >&2; die "dm mount big (dir engine) failed"; }
WCD=$(readlink -f "$WORK/wc-dir")
gen_tree "$WCD" big
sync
tm_sync "dir-first" "$DM" commit -m first --dot big
DIR_FIRST=$T
for r in $(seq 1 "$HIST"); do
	mutate "$WCD" big "$r"
	tm "dir-hist-$r" "$DM" commit -m "hist-$r" --dot big
done
manifest "$WCD" "$LOGS/manifest-dir.txt"
sync
STORE_DIR=$(du -sb "$DDIR/store" | cut -f1)
WC_DIR=$(du -sb "$WCD/" | cut -f1)
DIR_T=$(($(date +%s) - DIR_T0))

# ---------------------------------------------------------------- received

# A fresh btrfs dmd (its own port, client config and loop pool) clones the
# dir engine's big dot, its whole history, while the dir dmd serves it from
# its store (its working copy, measured above, goes first to make room).
CLONE_T0=$(date +%s)
find "$WCD" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
DIR_PORT=$PORT
PORT=""
pick_port $((DIR_PORT + 1))
say "received: a btrfs dmd (port $PORT) clones the big dot's history from the dir engine's dmd"
export DM_CONFIG=$WORK/config-clone
if [ -n "$POOLDIR" ]; then
	# the btrfs part's dots are gone (deleted above); its dots/ must go too
	[ "$KEEP" = 0 ] || die "--keep with --pool-dir: the clone needs the pool's dots/ free; run without --keep"
	delete_subvols "$POOLDIR/dots"
	start_dmd "$DCL" 1 --engine btrfs --pool-dir "$POOLDIR"
else
	start_dmd "$DCL" 1 --engine btrfs --pool-size "${POOL_MIB}M"
fi
DM_API_KEY=$(cat "$DDIR/admin-api-key") "$DM" remote add src "admin@127.0.0.1:$DIR_PORT" --ca-file "$DDIR/ca.pem" >>"$LOGS/clone.log" 2>&1 ||
	{ cat "$LOGS/clone.log" >&2; die "dm remote add (clone) failed"; }
tm clone "$DM" clone src big
CLONE_SECS=$T
CL_ID=$("$DM" dot show big --json | jq -r .id) || die "dm dot show big (clone) failed"
"$DM" mount big "$WORK/wc-clone" >>"$LOGS/clone.log" 2>&1 || die "dm mount big (clone) failed"
manifest "$(readlink -f "$WORK/wc-clone")" "$LOGS/manifest-clone.txt"
rm -f "$WORK/wc-clone"
FP_CLONE=$(footprint "$(readlink -f "$DCL/dots")/$CL_ID")
STORE_CL=$(du -sb "$DCL/store" | cut -f1)
stop_dmd "$DCL"
export DM_CONFIG=$WORK/config
PORT=$DIR_PORT
stop_dmd "$DDIR"
if [ "$KEEP" = 0 ]; then
	if [ -n "$POOLDIR" ]; then delete_subvols "$POOLDIR/dots"; fi
	rm -rf "$DCL"
fi
CLONE_T=$(($(date +%s) - CLONE_T0))

# ---------------------------------------------------------------- rows

S=small B=big
med() { median_step "$1" "$2" "${3:-$RUNS}"; echo "$MED"; } # PREFIX SUFFIX [N]: the median
# noise A B: met? cell for "the same within noise": the medians differ by at
# most 10 ms or 20% of the smaller.
noise() {
	local d
	d=$(calc "$2 > $1 ? $2 - $1 : $1 - $2")
	echo "$(yesno "$d <= 0.010 || $d <= 0.2 * ($1 < $2 ? $1 : $2)") (difference $(fms "$(calc "$d * 1000")"))"
}
rv() { median_step "$1" "$2" "${3:-$RUNS}"; runs "${RUNVALS[@]}"; } # the runs, for the label
M="median of $RUNS"
declare -A C0 C1 R0 R1 I0 I1 H1 RAW0 RAW1 E0 E1 EF
# eng_med PREFIX SUFFIX N: the median of the engine's own index times (ms)
# of the runs PREFIX-1SUFFIX .. PREFIX-NSUFFIX, or "" when dmd logged none.
eng_med() {
	local i v vals=()
	for i in $(seq 1 "$3"); do
		v=$(index_ms "$1-$i$2")
		if [ -n "$v" ]; then vals+=("$v"); fi
	done
	if [ ${#vals[@]} -gt 0 ]; then median "${vals[@]}"; fi
}
# eng MS [BYTES]: "; engine's own index N ms (R MB/s of BYTES)", or "".
eng() {
	[ -n "$1" ] || return 0
	printf '; engine %s ms' "$1"
	if [ -n "${2:-}" ] && [ "$1" -gt 0 ]; then printf ' (%s/s)' "$(fmb "$(calc "$2 / $1 * 1000")")"; fi
}
for d in "${DOTS[@]}"; do
	C0[$d]=$(med none "-$d") C1[$d]=$(med bytes "-$d")
	R0[$d]=$(med reset-none "-$d") R1[$d]=$(med reset-bytes "-$d")
	I0[$d]=$(med none "-$d-index") I1[$d]=$(med hist "-$d-index" "$HIST")
	E0[$d]=$(eng_med none "-$d" "$RUNS") E1[$d]=$(eng_med hist "-$d" "$HIST") EF[$d]=$(index_ms "first-$d")
	H1[$d]=$(med hist "-$d" "$HIST")
	RAW0[$d]=$(med raw-none "-$d") RAW1[$d]=$(med raw-bytes "-$d")
done
fms_s() { fms "$(calc "$1 * 1000")"; } # seconds as ms
cell2() { echo "$(fsec "$1") | $(fsec "$2")"; }

row "first commit (dm commit; the snapshot)" "$(fsec "${FIRST_C[$S]}")" "$(fsec "${FIRST_C[$B]}")" "info" "–"
row "indexing of the first commit, from the commit's start (all the dot's bytes)" \
	"$(fsec "${FIRST_I[$S]}") ($(fmb "$(calc "${BYTES[$S]} / ${FIRST_I[$S]}")")/s)$(eng "${EF[$S]}")" \
	"$(fsec "${FIRST_I[$B]}") ($(fmb "$(calc "${BYTES[$B]} / ${FIRST_I[$B]}")")/s)$(eng "${EF[$B]}")" "info" "–"
row "commit after changing nothing, $M (runs: small $(rv none "-$S"); big $(rv none "-$B"))" \
	"$(cell2 "${C0[$S]}" "${C0[$B]}")" "< 50 ms on both, the same within noise" \
	"$(yesno "${C0[$S]} < 0.05 && ${C0[$B]} < 0.05") (< 50 ms); $(noise "${C0[$S]}" "${C0[$B]}")"
row "commit after changing 1% of the bytes, $M (runs: small $(rv bytes "-$S"); big $(rv bytes "-$B"))" \
	"$(cell2 "${C1[$S]}" "${C1[$B]}")" "< 50 ms on both, the same within noise" \
	"$(yesno "${C1[$S]} < 0.05 && ${C1[$B]} < 0.05") (< 50 ms); $(noise "${C1[$S]}" "${C1[$B]}")"
row "commit after changing 1%, in the history, median of $HIST" "$(cell2 "${H1[$S]}" "${H1[$B]}")" "info" "–"
row "reset --hard HEAD^ after changing nothing, $M (runs: small $(rv reset-none "-$S"); big $(rv reset-none "-$B"))" \
	"$(cell2 "${R0[$S]}" "${R0[$B]}")" "the same within noise" "$(noise "${R0[$S]}" "${R0[$B]}")"
row "reset --hard HEAD^ after changing 1% (back across it), $M (runs: small $(rv reset-bytes "-$S"); big $(rv reset-bytes "-$B"))" \
	"$(cell2 "${R1[$S]}" "${R1[$B]}")" "the same within noise" "$(noise "${R1[$S]}" "${R1[$B]}")"
row "btrfs subvolume snapshot -r of the working copy, after changing nothing, $M" \
	"$(cell2 "${RAW0[$S]}" "${RAW0[$B]}")" "info (the floor)" "–"
row "btrfs subvolume snapshot -r of the working copy, after changing 1%, $M" \
	"$(cell2 "${RAW1[$S]}" "${RAW1[$B]}")" "info (the floor)" "–"
row "dm's overhead over the raw snapshot, after changing nothing (commit − snapshot, medians)" \
	"$(fms_s "$(calc "${C0[$S]} - ${RAW0[$S]}")")" "$(fms_s "$(calc "${C0[$B]} - ${RAW0[$B]}")")" "info" "–"
row "dm's overhead over the raw snapshot, after changing 1% (commit − snapshot, medians)" \
	"$(fms_s "$(calc "${C1[$S]} - ${RAW1[$S]}")")" "$(fms_s "$(calc "${C1[$B]} - ${RAW1[$B]}")")" "info" "–"
row "indexing after changing nothing, from the commit's start, $M" \
	"$(fsec "${I0[$S]}")$(eng "${E0[$S]}")" "$(fsec "${I0[$B]}")$(eng "${E0[$B]}")" "info" "–"
# prop DOT: indexing after 1% over indexing after nothing is at most twice
# the changed bytes' share of the first commit's indexing, plus 20 ms.
prop() {
	local d=$1 extra bound
	extra=$(calc "${I1[$d]} - ${I0[$d]}")
	bound=$(calc "2 * ${CH_BYTES[$d]} / ${BYTES[$d]} * ${FIRST_I[$d]} + 0.02")
	echo "$(yesno "$extra <= $bound") ($(fsec "$(calc "$extra > 0 ? $extra : 0")") over the unchanged commit's; bound $(fsec "$bound"))"
}
idx() { echo "$(fsec "${I1[$1]}"): $(fmb "$(calc "${CH_BYTES[$1]} / ${I1[$1]}")")/s of changed bytes, $(fmb "$(calc "${BYTES[$1]} / ${I1[$1]}")")/s of the dot$(eng "${E1[$1]}" "${CH_BYTES[$1]}")"; }
row "indexing after changing 1% ($((CH_K[$S])) and $((CH_K[$B])) files, $(fmb "${CH_BYTES[$S]}") and $(fmb "${CH_BYTES[$B]}") in place), from the commit's start, median of $HIST (history)" \
	"$(idx "$S")" "$(idx "$B")" \
	"∝ changed bytes: time over the unchanged commit's indexing ≤ 2× the changed share of the first commit's indexing + 20 ms" \
	"small: $(prop "$S"); big: $(prop "$B")"
fpc() { echo "$(fmb "$1") ($(fx "$(calc "$1 / ${BYTES[$2]}")") the dot's bytes; $(fmb "${FP_FIRST[$2]}") after the first commit)"; }
row "space on the pool of the dot's subvolumes and snapshots after the first commit and $HIST 1% commits (btrfs filesystem du: exclusive + set shared)" \
	"$(fpc "${FP_HIST[$S]}" "$S")" "$(fpc "${FP_HIST[$B]}" "$B")" "about 1.1× the dot's bytes (11 GiB for 10 GiB): ≤ 1.2×" \
	"$(yesno "${FP_HIST[$B]} <= 1.2 * ${BYTES[$B]}") (big)"
BT_ALL=$((FP_HIST[$B] + STORE_BT))
DIR_ALL=$((STORE_DIR + WC_DIR))
row "the same history, big dot: btrfs (its pool space + dm's whole store, $(fmb "$STORE_BT"), both dots' index) vs dir engine (store $(fmb "$STORE_DIR") + working copy $(fmb "$WC_DIR"), du -sb)" \
	"–" "btrfs $(fmb "$BT_ALL"), dir $(fmb "$DIR_ALL") ($(fx "$(calc "$BT_ALL / $DIR_ALL")") of dir's)" "info" "–"
row "pool in use after the history (df: both dots, metadata)" "–" "$(fmb "$POOL_USED")" "info" "–"
median_step dir-hist "" "$HIST"
row "dir engine, same data: first commit + sync; commit after changing 1% (median of $HIST)" "–" \
	"$(fsec "$DIR_FIRST"); $(fsec "$MED")" "info" "–"
CL_ALL=$((FP_CLONE + STORE_CL))
row "received: dm clone of the big dot's history (first + $HIST 1% commits) from the dir-engine dmd onto a fresh btrfs dmd ($(fsec "$CLONE_SECS")): its pool space (btrfs filesystem du) + its store (du -sb), vs the dot's bytes and the sender's store ($(fmb "$STORE_DIR"))" \
	"–" "$(fmb "$CL_ALL") (pool $(fmb "$FP_CLONE") + store $(fmb "$STORE_CL")): $(fx "$(calc "$CL_ALL / ${BYTES[$B]}")") the dot's bytes, $(fx "$(calc "$CL_ALL / $STORE_DIR")") the sender's store" \
	"kept once: ≤ 1.2× the sender's store (what arrived)" "$(yesno "$CL_ALL <= 1.2 * $STORE_DIR")"

if cmp -s "$LOGS/manifest-btrfs.txt" "$LOGS/manifest-dir.txt" && cmp -s "$LOGS/manifest-dir.txt" "$LOGS/manifest-clone.txt"; then
	TREECHECK="both engines' working copies, and the clone's, held the same bytes after the history (a CRC of every file, untimed)"
else
	TREECHECK="**the engines' working copies (btrfs, dir, the clone) differ after the history** (see ${LOGS#"$REPO"/}/manifest-*.txt)"
	say "WARNING: the big dot's files differ between the engines after the history (${LOGS}/manifest-*.txt)"
fi

if [ "$HAVE_INDEXING" = 1 ]; then
	note "Indexing is timed from the commit's start until \`dm dot show --json\` reports \`\"indexing\": 0\` (polled from the moment the commit returns, each poll one dm process, about 15 ms a poll: that is the resolution); it includes the commit. \"engine\" is the index's own time in dmd's debug log (\`index of snapshot\`), with the changed bytes' rate."
else
	note "dmd reported no \`indexing\` field in \`dm dot show --json\`: commits were indexed before \`dm commit\` returned, so the indexing rows are the commit's own time."
fi
note "Each 1% change overwrites ${CH_K[$S]} (small) and ${CH_K[$B]} (big) files in place, one run of $(fmb "${CH_LEN[$S]}") and $(fmb "${CH_LEN[$B]}") of new random bytes at a random 4 KiB-aligned offset in each (about a tenth of the files; picked by seed and round), right before the timed step; nothing is synced in between, so a snapshot also writes out what the change left dirty. Every 1% change is new (a new round)."
note "The history: the first commit, then $HIST commits each after a 1% change. The latency rows follow it: each commit is followed by reset --hard HEAD^ back across it, so every run starts from the same tree; every commit's indexing is awaited before the next step."
note "The raw snapshots are \`btrfs subvolume snapshot -r\` of dm's own working copies into a directory of the pool outside dm's, as a command (a process, like dm), after dm's runs; they are deleted afterwards."
note "Space: $TREECHECK. The dir engine's copy is generated with the same bytes and changed by the same rounds on a dir-engine dmd; its store compresses and deduplicates in chunks of 64 KiB on average, so each changed run costs its surrounding chunks. All data is random (incompressible)."
note "Received: a second btrfs dmd with a fresh pool of its own clones the dir engine's big dot with its whole history (the first commit and the $HIST 1% commits) while the dir dmd serves it; the head commit's data stays in the read-only snapshot the clone ends with (the store's index points into it), the chunks only older commits use stay in packs; the manifest check above includes the clone's working copy."
note "Times are wall clock of the whole command, process start-up included; dm's include the call to dmd over its unix socket."

# ---------------------------------------------------------------- results

ELAPSED=$(($(date +%s) - START))
say "done in ${ELAPSED} s (btrfs part ${BTRFS_T} s, dir engine part ${DIR_T} s, clone ${CLONE_T} s); writing $RESULTS"
machine_line
BTRFSV=$(btrfs --version | awk '{ print $2 }')
REPRO="bench/commit.sh --engine btrfs"
[ ${#ARGS[@]} -gt 0 ] && REPRO="$REPRO ${ARGS[*]}"

for step in "first-$S" "first-$B"; do where "first commit, with its indexing (${step#first-} dot)" "$step"; done
for d in "${DOTS[@]}"; do
	median_step none "-$d"
	where "commit after changing nothing ($d dot, median run)" "$MEDSTEP"
	median_step bytes "-$d"
	where "commit after changing 1% ($d dot, median run)" "$MEDSTEP"
	median_step hist "-$d-index" "$HIST"
	where "commit after changing 1% in the history, with its indexing ($d dot, median run)" "${MEDSTEP%-index}"
	median_step reset-none "-$d"
	where "reset --hard HEAD^ after changing nothing ($d dot, median run)" "$MEDSTEP"
	median_step reset-bytes "-$d"
	where "reset --hard HEAD^ after changing 1% ($d dot, median run)" "$MEDSTEP"
done

SECTION=$(mktemp)
{
	echo "<!-- commit-btrfs:begin -->"
	echo "## commit, btrfs engine"
	echo
	echo "Run $NOW, dm $REV, dm and dmd $BUILDTYPE build, btrfs-progs $BTRFSV; $MACHINE;"
	echo "pool: $POOLDESC; load average (1 min) $LOAD0 at the start, $LOAD1 at the end."
	echo "Scale $SCALE, seed $SEED: two dots of $NF files each, all random bytes: 'small', $(fmb "${BYTES[$S]}")"
	echo "(files of $(fmb "${FS[$S]}")), and 'big', $(fmb "${BYTES[$B]}") (files of $(fmb "${FS[$B]}"))."
	echo "The whole run took $ELAPSED s (btrfs engine $BTRFS_T s, the dir engine's history $DIR_T s, the clone onto btrfs $CLONE_T s)."
	echo
	echo "Warm page cache throughout. MB = 10^6 bytes, MiB = 2^20. \"The same within noise\": the two"
	echo "medians differ by at most 10 ms or 20% of the smaller."
	echo
	echo "| measurement | small dot, $(fmb "${BYTES[$S]}") | big dot, $(fmb "${BYTES[$B]}") | target | met? |"
	echo "| --- | --- | --- | --- | --- |"
	printf '%s\n' "${ROWS[@]}"
	echo
	for n in "${NOTES[@]}"; do echo "* $n"; done
	echo
	if [ "$SCALE" != 1 ]; then
		echo "This is a **reduced-scale** run (scale $SCALE): the targets are for 100 MiB and 10 GiB,"
		echo "so read the met? column as indicative only."
		echo
	fi
	echo "Where dm's time goes (dmd's debug log: each call's duration inside dmd, and the"
	echo "engine's statistics of the index; wall is the dm command):"
	echo
	echo "| dm step | wall | dmd calls | engine |"
	echo "| --- | --- | --- | --- |"
	printf '%s\n' "${WHERE[@]}"
	echo
	echo "Reproduce (as root, on a quiet machine; logs of each step, dmd's log lines included, in ${LOGS#"$REPO"/}/):"
	echo
	echo '```'
	echo "$REPRO"
	echo '```'
	echo "<!-- commit-btrfs:end -->"
} >"$SECTION"
write_section commit-btrfs "$SECTION"
rm -f "$SECTION"
say "results written to $RESULTS"
