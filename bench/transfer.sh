#!/usr/bin/env bash
# bench/transfer.sh - dm clone and dm push between two dmds on loopback,
# against rsync -a to an rsync daemon, on the same data in the same run:
# the first copy of a 2 GiB dot, then an incremental copy after rewriting
# 1% of its bytes. Wall time and bytes on the wire. Writes the "## transfer"
# section of bench/RESULTS.md (between <!-- transfer:begin --> and
# <!-- transfer:end -->). See bench/README.md.
set -euo pipefail
# write_section and the number and table helpers come from bench/lib.sh;
# the helpers this script defines below take precedence over lib.sh's.
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<'EOF'
usage: bench/transfer.sh [options]

Runs two private dmds (A holds the data, B receives it) and an rsync daemon
on 127.0.0.1, and measures on generated data, in one run, and writes the
"transfer" section of bench/RESULTS.md:
  first copy   dm clone of the dot from A into B vs rsync -a of A's working
               copy (the same directory) to the rsync daemon's module
  incremental  after rewriting 1% of the bytes as whole files: dm push from
               A to B vs rsync -a of the same directory again
  each with its wall time (+ sync) and its bytes on the wire (dm: the
  transfer's wire_bytes; rsync: --stats "Total bytes sent" + "received")
  in place     a second dot holding one 1 GB file: after rewriting 12 MB
               inside it, dm pull into B vs rsync -a of the file again; and
               on A, dm reset across 1% of the first dot overwritten in
               place as 64 KiB blocks, against a full checkout of the dot
               (dm checkout -b into an empty working copy)

options:
  --work DIR      work directory (default bench/work/transfer; gitignored).
                  Needs about 8x the data size free.
  --scale F       data size factor (default 1 = 2 GiB; 0.05 for a quick
                  test)
  --seed N        data seed (default 1); same seed, same bytes
  --build DIR     meson build directory with src/cli/dm and src/server/dmd
                  (default build-bench/, set up with -Dbuildtype=release
                  if missing); brought up to date with ninja
  --no-build      use --build DIR as it is, without running ninja
  --port N        first TCP port to try for the two dmds and rsync (default
                  39600; the first three free ones from there)
  --results FILE  results file (default bench/RESULTS.md)
  --keep          keep the data, dmd data directories and rsync's copy
  -h, --help      this text

No root needed (as root, rsync is installed when missing). Every
measurement is warm: the data was just written and is in the page cache.
Run it on a quiet machine; other load changes the numbers. The client
configs are WORK/confA and WORK/confB (DM_CONFIG); ~/.dm is not used.
EOF
}

die() {
	printf 'transfer.sh: %s\n' "$*" >&2
	exit 1
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$REPO/bench/work/transfer
SCALE=1
SEED=1
BUILD=$REPO/build-bench
DOBUILD=1
PORT0=39600
RESULTS=$REPO/bench/RESULTS.md
KEEP=0
ARGS=("$@")

while [ $# -gt 0 ]; do
	case $1 in
	--work) WORK=${2:?--work needs a directory}; shift 2 ;;
	--scale) SCALE=${2:?--scale needs a number}; shift 2 ;;
	--seed) SEED=${2:?--seed needs a number}; shift 2 ;;
	--build) BUILD=${2:?--build needs a directory}; shift 2 ;;
	--no-build) DOBUILD=0; shift ;;
	--port) PORT0=${2:?--port needs a number}; shift 2 ;;
	--results) RESULTS=${2:?--results needs a file}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument '$1'" ;;
	esac
done

[[ $SCALE =~ ^[0-9]*\.?[0-9]+$ ]] && awk -v s="$SCALE" 'BEGIN { exit !(s > 0 && s <= 16) }' ||
	die "--scale must be a number in (0, 16], not '$SCALE'"
[[ $SEED =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, not '$SEED'"
{ [[ $PORT0 =~ ^[0-9]+$ ]] && [ "$PORT0" -ge 1 ] && [ "$PORT0" -le 65000 ]; } ||
	die "--port must be a TCP port number up to 65000"
if ! command -v rsync >/dev/null && [ "$(id -u)" = 0 ]; then
	printf 'transfer.sh: installing rsync (Debian package)\n' >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rsync >/dev/null 2>&1 ||
		{ DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rsync >/dev/null 2>&1; } ||
		true
fi
for c in rsync python3 openssl meson ninja awk diff; do
	command -v "$c" >/dev/null || die "'$c' is needed and not installed"
done
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
[ "$WORK" != / ] || die "refusing to use / as the work directory"
BUILD=$(mkdir -p "$BUILD" && cd "$BUILD" && pwd)

DA=$WORK/dmdA        # dmd A's data directory: the dot is made here
DB=$WORK/dmdB        # dmd B's: it clones from A, A pushes to it
WCA=$WORK/wcA        # dm mount link to A's working copy (rsync's source too)
WCB=$WORK/wcB        # dm mount link to B's working copy
WCA2=$WORK/wcA-big   # dm mount link to A's working copy of the dot "big"
RDST=$WORK/rsync-dst # the rsync daemon's module
RCONF=$WORK/rsyncd.conf
LOGS=$WORK/logs
BIG=("$DA" "$DB" "$WCA" "$WCB" "$WCA2" "$RDST" "$WORK/confA" "$WORK/confB")

START=$(date +%s)
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
say() { printf '[transfer %4ds] %s\n' $(($(date +%s) - START)) "$*" >&2; }

RUNNING=()  # data directories of the dmds this script started
RSYNCD=""   # pid of the rsync daemon
cleanup() {
	local rc=$? d
	for d in "${RUNNING[@]+"${RUNNING[@]}"}"; do
		"$DM" cluster stop --data-dir "$d" >>"$LOGS/dmd-stop.log" 2>&1 || true
	done
	if [ -n "$RSYNCD" ]; then
		kill "$RSYNCD" 2>/dev/null || true
		wait "$RSYNCD" 2>/dev/null || true
	fi
	if [ "$KEEP" = 0 ]; then
		rm -rf "${BIG[@]}"
	fi
	if [ $rc != 0 ]; then
		echo "transfer.sh: failed; logs of each step are in $LOGS" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "${BIG[@]}" "$LOGS"
mkdir -p "$LOGS"

# ---------------------------------------------------------------- helpers

# calc, fsec, fx, fmb, yesno, port_free, row, note and build_dm: lib.sh's
frate() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f MB/s", b / t / 1e6 }'; }
fown() { if [ "$1" = "?" ]; then echo "?"; else fsec "$1"; fi; }

# tm NAME CMD...: runs CMD (stdout, stderr in LOGS/NAME.out, .err); T is its
# wall time in seconds.
tm() {
	local name=$1 t0 t1
	shift
	t0=$(date +%s%N)
	if ! "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err"; then
		tail -n 5 "$LOGS/$name.err" >&2
		die "'$*' failed (step $name)"
	fi
	t1=$(date +%s%N)
	T=$(calc "($t1 - $t0) / 1e9")
	printf '%s %s\n' "$name" "$T" >>"$LOGS/times.txt"
}
# tm_sync NAME CMD...: tm, then a timed sync; T is the sum, T_CMD CMD alone.
tm_sync() {
	local name=$1
	shift
	sync # so that the timed sync flushes only what the step wrote
	tm "$name" "$@"
	T_CMD=$T
	tm "$name-sync" sync
	T=$(calc "$T_CMD + $T")
}

ROWS=()
NOTES=()

# wire NAME: wire_bytes of the newest transfer dmd NAME (A or B) ran, after
# checking that it is done; WIRE_MSG is its message.
wire() {
	local dir port out
	if [ "$1" = A ]; then dir=$DA port=$PORT_A; else dir=$DB port=$PORT_B; fi
	out=$(python3 - "$port" "$dir/admin-api-key" "$dir/dmd.log" <<'EOF'
import base64, datetime, json, os, ssl, sys, urllib.request
port, keyfile, logfile = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=os.path.join(os.path.dirname(keyfile), "ca.pem"))
auth = base64.b64encode(("admin:" + open(keyfile).read().strip()).encode()).decode()
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "transfers.list", "params": {}}).encode()
req = urllib.request.Request("https://127.0.0.1:%s/rpc" % port, body,
                             {"Authorization": "Basic " + auth, "Content-Type": "application/json"})
t = json.load(urllib.request.urlopen(req, timeout=30, context=ctx))["result"]["transfers"][0]
if t["state"] != "done":
    sys.exit("the newest transfer is %s: %s" % (t["state"], t.get("error")))
# dmd's own time: from the transfer's id (a UUIDv7: its first 48 bits are
# the start in ms) to the log line that reports its end
start_ms = int(t["id"].replace("-", "")[:12], 16)
own = "?"
for line in open(logfile, errors="replace"):
    if (" transfer %s: " % t["id"]) in line:
        end = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
        end = end.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000
        own = "%.6f" % ((end - start_ms) / 1000)
print(t["wire_bytes"], t["bytes_total"], t["objects_total"], own)
print(t["message"])
EOF
) || die "cannot read dmd $1's transfer"
	read -r WIRE WIRE_BYTES_TOTAL WIRE_OBJECTS OWN <<<"$(head -n 1 <<<"$out")"
	WIRE_MSG=$(tail -n 1 <<<"$out")
}

# rsync_stats NAME: the bytes on the wire of rsync step NAME (sent +
# received, from --stats), into RWIRE.
rsync_stats() {
	local s r
	s=$(sed -nE 's/^Total bytes sent: ([0-9,]+).*/\1/p' "$LOGS/$1.out" | tr -d ,)
	r=$(sed -nE 's/^Total bytes received: ([0-9,]+).*/\1/p' "$LOGS/$1.out" | tr -d ,)
	[ -n "$s" ] && [ -n "$r" ] || die "no --stats totals in $LOGS/$1.out"
	RWIRE=$((s + r))
}

# ---------------------------------------------------------------- dm, dmd, rsyncd

build_dm
export DM_PLUGIN_SOCKET=none
RSYNCV=$(rsync --version | awk 'NR == 1 { print $3 }')

PORTS=()
for p in $(seq "$PORT0" $((PORT0 + 99))); do
	if port_free "$p"; then PORTS+=("$p"); fi
	[ ${#PORTS[@]} = 3 ] && break
done
[ ${#PORTS[@]} = 3 ] || die "no three free TCP ports in $PORT0..$((PORT0 + 99)); name another start with --port"
PORT_A=${PORTS[0]} PORT_B=${PORTS[1]} PORT_R=${PORTS[2]}

need=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 8 * 2 * 1024 * s + 200 }')
avail=$(df -Pm "$WORK" | awk 'NR == 2 { print $4 }')
[ "$avail" -ge "$need" ] || die "need about $need MiB free in $WORK, have $avail MiB"

dmA() { DM_CONFIG=$WORK/confA "$DM" "$@"; }
dmB() { DM_CONFIG=$WORK/confB "$DM" "$@"; }

say "starting dmds A (port $PORT_A) and B (port $PORT_B)"
dmA cluster init --data-dir "$DA" --port "$PORT_A" >"$LOGS/init-A.log" 2>&1 ||
	{ cat "$LOGS/init-A.log" >&2; die "dm cluster init of A failed"; }
RUNNING+=("$DA")
dmB cluster init --data-dir "$DB" --port "$PORT_B" >"$LOGS/init-B.log" 2>&1 ||
	{ cat "$LOGS/init-B.log" >&2; die "dm cluster init of B failed"; }
RUNNING+=("$DB")
# with --log-level debug: each checkout logs what it wrote and how long
# its write and its sync took ("where the time goes" below)
for d in "$DA" "$DB"; do
	p=$PORT_A
	[ "$d" = "$DB" ] && p=$PORT_B
	"$DMD" stop --data-dir "$d" >>"$LOGS/dmd-stop.log" 2>&1 || die "dmd stop failed"
	"$DMD" start --data-dir "$d" --port "$p" --log-level debug >>"$LOGS/dmd-start.log" 2>&1 ||
		{ tail -n 5 "$LOGS/dmd-start.log" >&2; die "dmd start --log-level debug failed"; }
done
DM_API_KEY=$(cat "$DB/admin-api-key") dmA remote add b "admin@127.0.0.1:$PORT_B" --ca-file "$DB/ca.pem" >>"$LOGS/init-A.log" 2>&1 ||
	die "dm remote add b (on A) failed"
DM_API_KEY=$(cat "$DA/admin-api-key") dmB remote add a "admin@127.0.0.1:$PORT_A" --ca-file "$DA/ca.pem" >>"$LOGS/init-B.log" 2>&1 ||
	die "dm remote add a (on B) failed"

say "starting an rsync daemon (port $PORT_R)"
mkdir -p "$RDST"
# as root, the daemon would run as nobody and could not keep owners: it
# runs as whoever runs this (not root: it cannot change user anyway)
cat >"$RCONF" <<EOF
use chroot = no
$([ "$(id -u)" = 0 ] && printf 'uid = 0\ngid = 0\n')
pid file = $WORK/rsyncd.pid
log file = $LOGS/rsyncd.log
[dst]
path = $RDST
read only = false
EOF
rsync --daemon --no-detach --address 127.0.0.1 --port "$PORT_R" --config "$RCONF" &
RSYNCD=$!
for _ in $(seq 100); do port_free "$PORT_R" || break; sleep 0.05; done
port_free "$PORT_R" && die "the rsync daemon does not listen on port $PORT_R (see $LOGS/rsyncd.log)"
RURL=rsync://127.0.0.1:$PORT_R/dst/

# ---------------------------------------------------------------- the data

dmA init bench >"$LOGS/init-bench.log" 2>&1 || { cat "$LOGS/init-bench.log" >&2; die "dm init bench failed"; }
dmA mount bench "$WCA" >>"$LOGS/init-bench.log" 2>&1 || { cat "$LOGS/init-bench.log" >&2; die "dm mount failed"; }
say "generating the mixed set (scale $SCALE, seed $SEED) in A's working copy"
read -r NF NB < <(python3 "$REPO/bench/store_data.py" mixed "$WCA/" --seed "$SEED" --scale "$SCALE" |
	sed -E 's/files=([0-9]+) bytes=([0-9]+).*/\1 \2/')
[ -n "$NB" ] || die "store_data.py mixed printed nothing"
SIZE=$(fmb "$NB")
say "  $NF files, $SIZE; committing them on A"
tm_sync commit-first dmA commit --dot bench -m first
COMMIT_FIRST=$T

# ---------------------------------------------------------------- first copy

say "first copy: dm clone (B from A), then rsync -a to the daemon (each + sync)"
tm_sync clone-dm dmB clone a bench
CLONE_DM=$T CLONE_DM_CMD=$T_CMD
wire B
CLONE_WIRE=$WIRE CLONE_TOTAL=$WIRE_BYTES_TOTAL CLONE_OBJECTS=$WIRE_OBJECTS CLONE_OWN=$OWN
tm_sync clone-rsync rsync -a --stats "$WCA/" "$RURL"
CLONE_RS=$T CLONE_RS_CMD=$T_CMD
rsync_stats clone-rsync
CLONE_RWIRE=$RWIRE

say "checking both copies against the source (untimed)"
dmB mount bench "$WCB" >>"$LOGS/init-bench.log" 2>&1 || die "dm mount on B failed"
diff -rq "$WCA/" "$WCB/" >"$LOGS/diff-clone-dm.out" 2>&1 ||
	{ head -n 5 "$LOGS/diff-clone-dm.out" >&2; die "B's clone differs from A's working copy"; }
diff -rq "$WCA/" "$RDST/" >"$LOGS/diff-clone-rsync.out" 2>&1 ||
	{ head -n 5 "$LOGS/diff-clone-rsync.out" >&2; die "rsync's copy differs from A's working copy"; }

# ---------------------------------------------------------------- incremental

ONEPCT=$((NB / 100))
say "rewriting 1% of the bytes ($(fmb "$ONEPCT")) as whole files, committing on A"
read -r MF MB < <(python3 "$REPO/bench/store_data.py" mutate-whole "$WCA/" --seed "$SEED" --bytes "$ONEPCT" |
	sed -E 's/files=([0-9]+) bytes=([0-9]+).*/\1 \2/')
[ -n "$MB" ] && [ "$MB" -gt 0 ] || die "store_data.py mutate-whole changed nothing"
tm_sync commit-change dmA commit --dot bench -m change
COMMIT_CHANGE=$T

say "incremental: dm push (A to B), then rsync -a again (each + sync)"
tm_sync push-dm dmA push b bench
PUSH_DM=$T PUSH_DM_CMD=$T_CMD
wire A
PUSH_WIRE=$WIRE PUSH_OBJECTS=$WIRE_OBJECTS PUSH_MSG=$WIRE_MSG PUSH_OWN=$OWN
tm_sync push-rsync rsync -a --stats "$WCA/" "$RURL"
PUSH_RS=$T PUSH_RS_CMD=$T_CMD
rsync_stats push-rsync
PUSH_RWIRE=$RWIRE
RS_FILES=$(sed -nE 's/^Number of regular files transferred: ([0-9,]+).*/\1/p' "$LOGS/push-rsync.out" | tr -d ,)

say "checking both copies against the source (untimed)"
diff -rq "$WCA/" "$WCB/" >"$LOGS/diff-push-dm.out" 2>&1 ||
	{ head -n 5 "$LOGS/diff-push-dm.out" >&2; die "B's working copy differs from A's after the push"; }
diff -rq "$WCA/" "$RDST/" >"$LOGS/diff-push-rsync.out" 2>&1 ||
	{ head -n 5 "$LOGS/diff-push-rsync.out" >&2; die "rsync's copy differs from A's after the second rsync"; }
case $PUSH_MSG in
"pushed 1 commit "*) ;;
*) note "dm push said: '$PUSH_MSG' (expected 'pushed 1 commit ...')." ;;
esac

# ---------------------------------------------------------------- in place

# checkout_ms LOG N: "WRITE SYNC" in ms of the Nth-last checkout dmd logged
# (1: the last).
checkout_ms() {
	grep " checkout of " "$1" | tail -n "$2" | head -n 1 |
		sed -nE 's/.* in ([0-9]+) ms, synced in ([0-9]+) ms.*/\1 \2/p'
}
# settle NAME: waits out the stat cache's racy window (2 s) and has dmd
# NAME measure its dots, which puts the files it last wrote into the cache
# (as any dm list would before the next change); untimed.
settle() {
	sleep 3
	"dm$1" list >>"$LOGS/settle.log" 2>&1 || die "dm list on $1 failed"
}

BIGN=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 1e9 * s }')
CHG=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 12e6 * s / 65536 }')
CHG=$((CHG * 65536))
say "in place: a $(fmb "$BIGN") file in a dot of its own on A; B clones it, rsync copies it (untimed)"
dmA init big >>"$LOGS/init-bench.log" 2>&1 || die "dm init big failed"
dmA mount big "$WCA2" >>"$LOGS/init-bench.log" 2>&1 || die "dm mount big failed"
python3 - "$WCA2/big.bin" "$BIGN" "$SEED" <<'EOF' || die "cannot write the 1 GB file"
import random, sys
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random("%d/inplace" % seed)
with open(path, "wb") as f:
    while n > 0:
        k = min(n, 64 << 20)
        f.write(rng.randbytes(k))
        n -= k
EOF
dmA commit --dot big -m first >>"$LOGS/init-bench.log" 2>&1 || die "dm commit big failed"
dmB clone a big >"$LOGS/clone-big.out" 2>&1 || die "dm clone big failed"
rsync -a "$WCA2/" "${RURL}big/" >"$LOGS/rsync-big-first.out" 2>&1 || die "rsync of big failed"
INO_BEFORE=$(stat -c %i "$DB"/dots/*/master/wc/big.bin | head -n 1)
say "rewriting $(fmb "$CHG") in the middle of it on A, committing (untimed)"
python3 - "$WCA2/big.bin" "$BIGN" "$CHG" "$SEED" <<'EOF' || die "cannot change the 1 GB file"
import os, random, sys
path, n, chg, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_WRONLY)
os.pwrite(fd, random.Random("%d/inplace-change" % seed).randbytes(chg), (n * 2 // 5) // 65536 * 65536)
os.close(fd)
EOF
dmA commit --dot big -m change >>"$LOGS/init-bench.log" 2>&1 || die "dm commit of the change failed"
settle B
PERFDATA=""
if command -v perf >/dev/null; then
	PERFDATA=$LOGS/pull-dmd.perf
	perf record -e cpu-clock -F 999 -g -p "$(cat "$DB/dmd.pid")" -o "$PERFDATA" >"$LOGS/perf-record.log" 2>&1 &
	PERFPID=$!
	sleep 0.5
fi
say "incremental pull of the change: dm pull (B from A), then rsync -a again (each + sync)"
tm_sync pull-dm dmB pull a big
PULL_DM=$T PULL_DM_CMD=$T_CMD
if [ -n "$PERFDATA" ]; then
	kill -INT "$PERFPID" 2>/dev/null || true
	wait "$PERFPID" 2>/dev/null || true
	perf report -i "$PERFDATA" --stdio --no-children --sort dso,symbol -g none 2>/dev/null |
		grep -E '^ +[0-9.]+%' | head -n 12 >"$LOGS/pull-dmd.perf.txt" || true
fi
wire B
PULL_WIRE=$WIRE PULL_OWN=$OWN
read -r PULL_WRITE_MS PULL_SYNC_MS <<<"$(checkout_ms "$DB/dmd.log" 1)"
tm_sync pull-rsync rsync -a --stats "$WCA2/" "${RURL}big/"
PULL_RS=$T PULL_RS_CMD=$T_CMD
rsync_stats pull-rsync
PULL_RWIRE=$RWIRE
INO_AFTER=$(stat -c %i "$DB"/dots/*/master/wc/big.bin | head -n 1)
cmp "$WCA2/big.bin" "$DB"/dots/*/master/wc/big.bin >/dev/null 2>&1 ||
	die "B's big.bin differs from A's after the pull"
cmp "$WCA2/big.bin" "$RDST/big/big.bin" >/dev/null 2>&1 || die "rsync's big.bin differs from A's"
[ "$INO_BEFORE" = "$INO_AFTER" ] || note "B's big.bin changed inode in the pull: it was not written in place."

say "reset across 1% of the first dot overwritten in place: a full checkout first (dm checkout -b + sync)"
HEAD_CHANGE=$(dmA log --dot bench --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["commits"][0]["id"])') ||
	die "dm log of bench failed"
tm_sync checkout-full dmA checkout -b full --dot bench
FULL=$T
read -r FULL_WRITE_MS FULL_SYNC_MS <<<"$(checkout_ms "$DA/dmd.log" 1)"
dmA checkout master --dot bench >>"$LOGS/init-bench.log" 2>&1 || die "dm checkout master failed"
read -r SF SB < <(python3 "$REPO/bench/store_data.py" mutate-spread "$WCA/" --seed "$SEED" --bytes "$ONEPCT" |
	sed -E 's/files=([0-9]+) bytes=([0-9]+).*/\1 \2/')
[ -n "$SB" ] && [ "$SB" -gt 0 ] || die "store_data.py mutate-spread changed nothing"
dmA commit --dot bench -m spread >>"$LOGS/init-bench.log" 2>&1 || die "dm commit of the spread change failed"
settle A
say "dm reset --hard back across the $(fmb "$SB") changed in place (+ sync)"
tm_sync reset-dm dmA reset --hard "$HEAD_CHANGE" --dot bench
RESET=$T RESET_CMD=$T_CMD
read -r RESET_WRITE_MS RESET_SYNC_MS <<<"$(checkout_ms "$DA/dmd.log" 1)"
read -r RESET_FILES RESET_BYTES <<<"$(grep " checkout of " "$DA/dmd.log" | tail -n 1 |
	sed -nE 's/.*: ([0-9]+) files written \([0-9]+ in place, ([0-9]+) bytes\).*/\1 \2/p')"
diff -rq "$WCA/" "$WCB/" >"$LOGS/diff-reset.out" 2>&1 ||
	{ head -n 5 "$LOGS/diff-reset.out" >&2; die "A's working copy after the reset differs from B's copy of the same commit"; }
cp "$DA/dmd.log" "$LOGS/dmdA.log" && cp "$DB/dmd.log" "$LOGS/dmdB.log" || true

# ---------------------------------------------------------------- rows

LABEL="$NF files, $SIZE"
CH="$MF whole files, $(fmb "$MB")"
speed() { fx "$(calc "$2 / $1")"; } # DM_T PEER_T: the peer's time over dm's

r=$(calc "$CLONE_RS / $CLONE_DM")
row "first copy of $LABEL, + sync: dm clone vs rsync -a to rsyncd (command alone: dm $(fsec "$CLONE_DM_CMD") of which dmd's transfer $(fown "$CLONE_OWN"), rsync $(fsec "$CLONE_RS_CMD"))" \
	"$(fsec "$CLONE_DM") ($(frate "$NB" "$CLONE_DM"))" "$(fsec "$CLONE_RS") ($(frate "$NB" "$CLONE_RS"))" \
	"$(speed "$CLONE_DM" "$CLONE_RS") rsync's speed" "at least as fast as rsync (≥ 1×)" "$(yesno "$r >= 1")"
row "bytes on the wire, first copy ($CLONE_OBJECTS objects, $(fmb "$CLONE_TOTAL") as stored)" \
	"$(fmb "$CLONE_WIRE")" "$(fmb "$CLONE_RWIRE")" \
	"$(fx "$(calc "$CLONE_WIRE / $CLONE_RWIRE")") rsync's bytes" "info" "–"
r=$(calc "$PUSH_RS / $PUSH_DM")
row "incremental copy after rewriting 1% of the bytes ($CH), + sync: dm push vs rsync -a (command alone: dm $(fsec "$PUSH_DM_CMD") of which dmd's transfer $(fown "$PUSH_OWN"), rsync $(fsec "$PUSH_RS_CMD"))" \
	"$(fsec "$PUSH_DM")" "$(fsec "$PUSH_RS")" "$(speed "$PUSH_DM" "$PUSH_RS") rsync's speed" \
	"≥ 2× faster than rsync" "$(yesno "$r >= 2")"
r=$(calc "$PUSH_WIRE / $MB")
row "bytes on the wire, incremental ($PUSH_OBJECTS objects for dm; ${RS_FILES:-?} files for rsync) vs the $(fmb "$MB") changed" \
	"$(fmb "$PUSH_WIRE") ($(fx "$r") the changed bytes)" \
	"$(fmb "$PUSH_RWIRE") ($(fx "$(calc "$PUSH_RWIRE / $MB")") the changed bytes)" \
	"$(fx "$(calc "$PUSH_WIRE / $PUSH_RWIRE")") rsync's bytes" "dm ≤ 1.2× the changed bytes" "$(yesno "$r <= 1.2")"
row "dm commit on A of the change before the push (not in the push row), + sync; commit + push vs rsync" \
	"$(fsec "$COMMIT_CHANGE") ($(fsec "$(calc "$COMMIT_CHANGE + $PUSH_DM")") with the push)" "$(fsec "$PUSH_RS")" \
	"$(speed "$(calc "$COMMIT_CHANGE + $PUSH_DM")" "$PUSH_RS") rsync's speed" "info" "–"
row "dm commit on A of the $SIZE before the first copy (not in the clone row), + sync" \
	"$(fsec "$COMMIT_FIRST") ($(frate "$NB" "$COMMIT_FIRST"))" "–" "–" "info" "–"

r=$(calc "$PULL_DM / $PULL_RS")
row "incremental pull after rewriting $(fmb "$CHG") inside a $(fmb "$BIGN") file, + sync: dm pull vs rsync -a (command alone: dm $(fsec "$PULL_DM_CMD") of which dmd's transfer $(fown "$PULL_OWN"), its checkout $(fms "${PULL_WRITE_MS:-0}") writing + $(fms "${PULL_SYNC_MS:-0}") syncing; rsync $(fsec "$PULL_RS_CMD"))" \
	"$(fsec "$PULL_DM") ($(fmb "$PULL_WIRE") on the wire)" "$(fsec "$PULL_RS") ($(fmb "$PULL_RWIRE") on the wire)" \
	"$(fx "$r") rsync's time" "≤ 0.2× rsync's time" "$(yesno "$r <= 0.2")"
SHARE=$(calc "$SB / $NB")
LIMIT=$(calc "2 * $SHARE * $FULL + 0.02")
row "dm reset --hard across 1% of the set overwritten in place ($(fmb "$SB") as 64 KiB blocks in $SF files), + sync (command alone $(fsec "$RESET_CMD"), its checkout $(fms "${RESET_WRITE_MS:-0}") writing + $(fms "${RESET_SYNC_MS:-0}") syncing) vs a full checkout of the $SIZE, + sync ($(fsec "$FULL"): $(fms "${FULL_WRITE_MS:-0}") writing + $(fms "${FULL_SYNC_MS:-0}") syncing)" \
	"$(fsec "$RESET")" "–" "$(fx "$(calc "$RESET / $FULL")") a full checkout's time" \
	"≤ 2× the changed bytes' share of a full checkout + 20 ms ($(fsec "$LIMIT"))" "$(yesno "$RESET <= $LIMIT")"

note "Both sides are on this machine: dmd A and dmd B talk over loopback HTTP (dm clone runs in B and pulls from A; dm push runs in A and sends to B), rsync $RSYNCV talks to its own daemon (\`rsync --daemon\`, module on the same disk) over loopback TCP. rsync runs as \`rsync -a --stats\`, without -z; its source is A's working copy, the same directory dm committed."
note "Every time is the wall time of the whole command plus a timed \`sync\` after it (dm fsyncs what it stores as it goes; rsync does not). dm clone and dm push include dm's polling of the transfer (every 200 ms; \"dmd's transfer\" is the time dmd itself took, from the transfer's start to its end in dmd's log), and the clone includes writing B's working copy; bytes on the wire are the HTTP bodies dm sent and received (\`wire_bytes\` of the transfer), and rsync's \"Total bytes sent\" + \"Total bytes received\"."
note "The 1% change rewrites whole files of at most 8 MiB with new random bytes (bench/store_data.py mutate-whole), so neither tool can reuse anything of them: rsync finds them by size and mtime and sends them whole (its delta finds no match), dm sends the new chunks its commit recorded. dm's incremental row does not include that commit (the row below it does): dm learns what changed when it commits, rsync at every run."
note "In place: the receiving side (dm pull, dm reset) changes only the chunks that differ inside the existing files, where they stand (same inode: $([ "$INO_BEFORE" = "$INO_AFTER" ] && echo yes || echo no) for the 1 GB file), and syncs once at the end (syncfs). rsync (no --inplace) reads the whole old file to find what matches and writes a new 1 GB file beside it, unsynced. Before each timed step dmd measured its dots once (dm list, untimed) more than 2 s after it last wrote the files: a file written within the stat cache's racy window (2 s) before a checkout or commit is not vouched for, and the receive's check for uncommitted changes (or the reset) then rereads it whole, ~1 s per GB here."
note "Where the reset's time goes (dmd's log): its checkout wrote $(fmb "${RESET_BYTES:-0}") (the blocks that differ) into ${RESET_FILES:-?} files in place and kept the others by their stat, in ${RESET_WRITE_MS:-?} ms (the walk of all $NF files, the changed files' file objects and chunks read from the store, each changed chunk's range read and compared block by block), then synced once in ${RESET_SYNC_MS:-?} ms; the remaining $(fms "$(calc "($RESET - (${RESET_WRITE_MS:-0} + ${RESET_SYNC_MS:-0}) / 1000) * 1000")") of the timed step are the RPC, resolving the commit, stopping no containers, saving the stat cache, dm itself and the timed sync after it. The full checkout it is held against spent $(fms "${FULL_SYNC_MS:-0}") of its $(fsec "$FULL") in its one syncfs."
[ -n "$PERFDATA" ] && [ -s "$LOGS/pull-dmd.perf.txt" ] &&
	note "Where dmd B's time went during the pull (perf record -g, self time, top symbols): $(awk '{ printf "%s%s %s (%s)", (NR > 1 ? "; " : ""), $1, $4, $2 }' "$LOGS/pull-dmd.perf.txt" | head -c 700); $(perf report -i "$PERFDATA" --stdio 2>/dev/null | sed -nE 's/^# Samples: ([0-9]+).*/\1/p' | head -n 1) CPU samples at 999 Hz over the $(fsec "$PULL_DM_CMD") of the pull, i.e. dmd kept $(calc "$(perf report -i "$PERFDATA" --stdio 2>/dev/null | sed -nE 's/^# Samples: ([0-9]+).*/\1/p' | head -n 1) / 999 / $PULL_DM_CMD * 100" | cut -d. -f1)% of one CPU busy."

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
REPRO="bench/transfer.sh"
[ ${#ARGS[@]} -gt 0 ] && REPRO="bench/transfer.sh ${ARGS[*]}"

SECTION=$(mktemp)
{
	echo "<!-- transfer:begin -->"
	echo "## transfer"
	echo
	echo "Run $NOW, dm $REV, dm and dmd $BUILDTYPE build, rsync $RSYNCV; $MACHINE;"
	echo "load average (1 min) $LOAD0 at the start, $LOAD1 at the end."
	echo "Scale $SCALE, seed $SEED: one dot holding the mixed set of bench/store_data.py, $NF files, $SIZE"
	echo "(40% random, 40% text that compresses about 3×, 20% duplicated files). The whole run took $ELAPSED s."
	echo
	echo "Warm page cache throughout, loopback only. MB = 10^6 bytes. The ratio is rsync's time over"
	echo "dm's (> 1: dm is faster), or dm's bytes over rsync's."
	echo
	echo "| measurement | dm | rsync | ratio | target | met? |"
	echo "| --- | --- | --- | --- | --- | --- |"
	printf '%s\n' "${ROWS[@]}"
	echo
	for n in "${NOTES[@]}"; do echo "* $n"; done
	echo
	if [ "$SCALE" != 1 ]; then
		echo "This is a **reduced-scale** run: the targets are for 2 GiB, and at a small size the fixed"
		echo "costs (process start-up, negotiation, dm's 200 ms polling) weigh more, so read the met?"
		echo "column as indicative only."
		echo
	fi
	echo "Reproduce (on a quiet machine; logs of each step in ${LOGS#"$REPO"/}/):"
	echo
	echo '```'
	echo "$REPRO"
	echo '```'
	echo "<!-- transfer:end -->"
} >"$SECTION"

if [ ! -f "$RESULTS" ]; then
	cat >"$RESULTS" <<EOF
# dm benchmarks

Results of the scripts in \`bench/\` (what each one measures: \`bench/README.md\`).
The numbers hold for the machine and the moment they were taken on; compare
rows of one run with each other, not runs of different machines.

EOF
fi
write_section transfer "$SECTION"
rm -f "$SECTION"
say "results written to $RESULTS"
