#!/usr/bin/env bash
# bench/tls.sh - what TLS costs on loopback: the same clone, incremental
# push and JSON-RPC calls against a dmd that speaks HTTPS (the default) and
# one started with --insecure-http, in one run, on the same data. Writes
# the "## tls" section of bench/RESULTS.md (between <!-- tls:begin --> and
# <!-- tls:end -->). See bench/README.md.
set -euo pipefail
BENCH=tls.sh
TAG=tls
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<'EOF'
usage: bench/tls.sh [options]

Runs two pairs of private dmds on 127.0.0.1: S and its clone target C
speak HTTPS; P and Q speak plain HTTP (dmd init --insecure-http). S and P
hold the same dot (one file of 512 MiB and 2,000 files of 16 KiB at scale
1, the same seed). Measures, in one run, HTTPS beside HTTP:
  clone      a fresh C from S, a fresh Q from P (median of --runs, the
             order alternating)
  push 1%    after rewriting 1% of the bytes the same way on S and P,
             S to C and P to Q (median of --runs)
  calls      over one kept-alive connection (python3's http.client),
             requests per second, median of --runs of at most 2,000 calls
             or 20 s: dots.list; dots.list with one 16 KiB file of the dot
             rewritten before each call; server.ping
With --before DIR, the calls are measured first with the dmd of another
build (an earlier commit's, same data format) on the same servers.

options: --work DIR (default bench/work/tls), --scale F, --seed N,
--runs N (default 3), --build DIR, --no-build, --before DIR, --port N
(where the search for free ports starts, default 39800), --results FILE,
--keep, -h
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$REPO/bench/work/tls
SCALE=1
SEED=1
RUNS=3
BUILD=$REPO/build-bench
DOBUILD=1
PORT=""
RESULTS=$REPO/bench/RESULTS.md
KEEP=0
PORT0=39800
BEFORE=""

while [ $# -gt 0 ]; do
	common_opt "$@"
	if [ "$SHIFT" -gt 0 ]; then
		shift "$SHIFT"
		continue
	fi
	case $1 in
	-h | --help) usage; exit 0 ;;
	--before) BEFORE=${2:?--before needs a build directory}; shift 2 ;;
	*) usage >&2; die "unknown argument '$1'" ;;
	esac
done
[ -z "$PORT" ] || PORT0=$PORT
check_common python3 awk
if [ -n "$BEFORE" ]; then
	BEFORE=$(cd "$BEFORE" && pwd) || die "no build directory '$BEFORE'"
	[ -x "$BEFORE/src/server/dmd" ] || die "no dmd in '$BEFORE' (src/server/dmd)"
	# the commit its source directory is at (meson-info says which)
	BEFORE_SRC=$(python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["directories"]["source"])' "$BEFORE/meson-info/meson-info.json" 2>/dev/null || true)
	BEFORE_REV=$(git -C "${BEFORE_SRC:-/nonexistent}" rev-parse --short HEAD 2>/dev/null || echo unknown)
fi
LOGS=$WORK/logs
BIG=("$WORK/S" "$WORK/P" "$WORK/C" "$WORK/Q" "$WORK/wcS" "$WORK/wcP" "$WORK/conf")
bench_start
build_dm
export DM_CONFIG=$WORK/conf/config
unset DM_API_KEY

NFILES=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 2000 * s }')
BIGMB=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 512 * s + 1 }')
need_space "$WORK" $((BIGMB * 8 + NFILES / 8 + 200)) "the TLS benchmark"

# The ports are in the kernel's range for outgoing connections (32768 and
# up), so one free now may be some connection's own end a moment later
# (a transfer's): each dmd takes a port free when it starts, and tries
# another when it lost the race.
serve() { # NAME [--insecure-http]: a fresh dmd in WORK/NAME, a remote name (lower case) for it
	local name=$1 lc log p=""
	shift
	stop_dmd "$WORK/$name"
	log=$LOGS/init-$name.log
	for _ in 1 2 3 4 5; do
		rm -rf "${WORK:?}/$name"
		p=""
		for p in $(seq "$PORT0" $((PORT0 + 99))); do
			if port_free "$p"; then break; fi
			p=""
		done
		[ -n "$p" ] || die "no free TCP port in $PORT0..$((PORT0 + 99))"
		if "$DM" cluster init --data-dir "$WORK/$name" --port "$p" --no-plugin "$@" >"$log" 2>&1; then
			RUNNING+=("$WORK/$name")
			break
		fi
		grep -q "Address already in use" "$log" || { cat "$log" >&2; die "dm cluster init failed"; }
		say "port $p was taken as $name started; another"
		stop_dmd "$WORK/$name"
		p=""
	done
	[ -n "$p" ] || die "$name found no port to listen on"
	printf -v "PORT_$name" '%s' "$p"
	lc=$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]')
	"$DM" remote rm "$lc" >/dev/null 2>&1 || true
	if [ -f "$WORK/$name/ca.pem" ]; then
		DM_API_KEY=$(cat "$WORK/$name/admin-api-key") "$DM" remote add "$lc" \
			"admin@127.0.0.1:$p" --ca-file "$WORK/$name/ca.pem" >/dev/null
	else
		DM_API_KEY=$(cat "$WORK/$name/admin-api-key") "$DM" remote add "$lc" \
			"admin@127.0.0.1:$p" </dev/null >/dev/null 2>&1
	fi
}

gen() { # WC SEED: the dot's files
	python3 - "$1" "$NFILES" "$BIGMB" "$2" <<'EOF'
import os, random, sys
root, n, big, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 50))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(rng.randbytes(16384))
with open(os.path.join(root, "big"), "wb") as f:
    for _ in range(big):
        f.write(rng.randbytes(1 << 20))
EOF
}

mutate() { # WC SEED: rewrite 1% of the big file's bytes in place, the same way
	python3 - "$1" "$2" <<'EOF'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
path = os.path.join(root, "big")
size = os.path.getsize(path)
with open(path, "r+b") as f:
    for _ in range(max(1, size // 100 // 65536)):
        f.seek(rng.randrange(0, size - 65536))
        f.write(rng.randbytes(65536))
EOF
}

serve S
serve P --insecure-http
say "S (HTTPS) on port $PORT_S, P (plain HTTP) on $PORT_P"
say "making $NFILES files of 16 KiB and one of $BIGMB MiB on S and on P"
for n in s p; do
	"$DM" --remote "$n" init data >/dev/null
	"$DM" --remote "$n" mount data "$WORK/wc$(printf '%s' "$n" | tr '[:lower:]' '[:upper:]')" >/dev/null
done
gen "$WORK/wcS" "$SEED"
gen "$WORK/wcP" "$SEED"
tm commit-S "$DM" --remote s commit --dot data -m first
tm commit-P "$DM" --remote p commit --dot data -m first

clone_into() { # STEP TARGET SOURCE [--insecure-http]
	local step=$1 target=$2 source=$3
	shift 3
	serve "$target" "$@"
	tm "$step" "$DM" --remote "$(printf '%s' "$target" | tr '[:upper:]' '[:lower:]')" \
		clone "$source" data --local-name data
}

for i in $(seq 1 "$RUNS"); do
	say "clone ($i/$RUNS)"
	if [ $((i % 2)) = 1 ]; then
		clone_into "clone-$i-https" C s
		clone_into "clone-$i-http" Q p --insecure-http
	else
		clone_into "clone-$i-http" Q p --insecure-http
		clone_into "clone-$i-https" C s
	fi
done
for i in $(seq 1 "$RUNS"); do
	say "push 1% ($i/$RUNS)"
	# each commit right after its change, the same way on both (a file
	# written within 2 s before a commit is one the commit cannot trust)
	mutate "$WORK/wcS" "$((SEED * 100 + i))"
	tm "commit-S-$i" "$DM" --remote s commit --dot data -m more
	mutate "$WORK/wcP" "$((SEED * 100 + i))"
	tm "commit-P-$i" "$DM" --remote p commit --dot data -m more
	tm "push-$i-https" "$DM" --remote s push c data
	tm "push-$i-http" "$DM" --remote p push q data
done

# calls NAME METHOD [FILE]: "RATE N", requests per second of METHOD on one
# kept-alive connection to dmd NAME (S or P), over at most 2,000 calls or
# 10 s; with FILE (in NAME's working copy), 16 KiB of it rewritten before
# each call.
calls() {
	local name=$1 port url
	port=PORT_$name
	url=https://127.0.0.1:${!port}
	[ -f "$WORK/$name/ca.pem" ] || url=http://127.0.0.1:${!port}
	python3 - "$url" "$WORK/$name/admin-api-key" "$WORK/$name/ca.pem" "$2" "${3:-}" "$SEED" <<'EOF'
import base64, http.client, json, random, ssl, sys, time
url, keyfile, ca, method, path, seed = sys.argv[1:7]
host, port = url.split("://")[1].split(":")
auth = base64.b64encode(("admin:" + open(keyfile).read().strip()).encode()).decode()
if url.startswith("https"):
    conn = http.client.HTTPSConnection(host, int(port), context=ssl.create_default_context(cafile=ca))
else:
    conn = http.client.HTTPConnection(host, int(port))
# bytes: headers and body leave in one send (no Nagle and delayed-ACK stall)
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}).encode()
hdr = {"Authorization": "Basic " + auth, "Content-Type": "application/json"}
rng = random.Random(int(seed))
n, limit, budget = 0, 2000, 10.0
t0 = time.monotonic()
while n < limit and time.monotonic() - t0 < budget:
    if path:
        with open(path, "r+b") as f:
            f.write(rng.randbytes(16384))
    conn.request("POST", "/rpc", body, hdr)
    r = conn.getresponse()
    data = r.read()
    if r.status != 200 or b'"result"' not in data:
        sys.exit("%s: HTTP %d: %s" % (method, r.status, data[:300]))
    n += 1
print("%.1f %d" % (n / (time.monotonic() - t0), n))
EOF
}

# calls_all ROUND TAG: each kind of call on S and on P, appended to
# LOGS/calls.txt as "ROUND TAG KIND SERVER RATE N".
calls_all() {
	local round=$1 tag=$2 kind server out
	for kind in list write ping; do
		for server in S P; do
			case $kind in
			list) out=$(calls "$server" dots.list) ;;
			write) out=$(calls "$server" dots.list "$WORK/wc$server/d07/f00007") ;;
			ping) out=$(calls "$server" server.ping) ;;
			esac
			[ -n "$out" ] || die "the $kind calls to $server failed"
			echo "$round $tag $kind $server $out" >>"$LOGS/calls.txt"
		done
	done
}

# restart NAME DMD: dmd NAME's data directory served by the program DMD
restart() {
	"$DM" cluster stop --data-dir "$WORK/$1" >>"$LOGS/dmd-stop.log" 2>&1 || die "cannot stop $1"
	"$2" start --data-dir "$WORK/$1" >>"$LOGS/init-$1.log" 2>&1 || die "'$2 start' of $1 failed"
}

: >"$LOGS/calls.txt"
if [ -n "$BEFORE" ]; then
	# first, while the big file is as the last commit left it
	restart S "$BEFORE/src/server/dmd"
	restart P "$BEFORE/src/server/dmd"
	for i in $(seq 1 "$RUNS"); do
		say "calls with the dmd of ${BEFORE#"$REPO"/} ($i/$RUNS)"
		calls_all "$i" before
	done
	restart S "$DMD"
	restart P "$DMD"
fi
for i in $(seq 1 "$RUNS"); do
	say "calls ($i/$RUNS)"
	calls_all "$i" now
done

# ---------------------------------------------------------------- results

ratio() { fx "$(calc "$2 / $1")"; } # HTTP_T HTTPS_T: HTTPS's time over HTTP's
median_step clone -https
M_CS=$MED R_CS=$(runs "${RUNVALS[@]}")
median_step clone -http
M_CP=$MED R_CP=$(runs "${RUNVALS[@]}")
median_step push -https
M_PS=$MED R_PS=$(runs "${RUNVALS[@]}")
median_step push -http
M_PP=$MED R_PP=$(runs "${RUNVALS[@]}")
rates() { awk -v t="$1" -v k="$2" -v s="$3" '$2 == t && $3 == k && $4 == s { print $5 }' "$LOGS/calls.txt"; }
rate() { # TAG KIND SERVER: the median rate
	local v
	mapfile -t v < <(rates "$@")
	median "${v[@]}"
}
allrates() { rates "$@" | paste -sd ' ' | sed 's/ /, /g'; }
rx() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
machine_line
DATA_MB=$(du -sm --apparent-size "$WORK/wcS/" | cut -f1)

row_calls() { # LABEL TAG KIND
	local s p
	s=$(rate "$2" "$3" S)
	p=$(rate "$2" "$3" P)
	echo "| $1 | $s | $p | $(rx "$s" "$p") |"
}

out=$LOGS/section.md
{
	echo "<!-- tls:begin -->"
	echo "## tls: HTTPS beside plain HTTP on loopback"
	echo
	echo "\`bench/tls.sh$( [ "$SCALE" = 1 ] || echo " --scale $SCALE")$( [ "$RUNS" = 3 ] || echo " --runs $RUNS")$( [ -z "$BEFORE" ] || echo " --before BUILD")\` at $REV ($BUILDTYPE build), $NOW."
	echo "$MACHINE; load average $LOAD0 at the start, $LOAD1 at the end."
	echo "Data: one file of $BIGMB MiB and $NFILES files of 16 KiB ($DATA_MB MB), the same on both servers."
	echo "Each step is the wall time of the \`dm\` command; calls are over one kept-alive connection (python3's http.client), at most 2,000 or 10 s a run."
	echo
	echo "| step | HTTPS | plain HTTP | HTTPS / HTTP |"
	echo "| --- | --- | --- | --- |"
	echo "| clone into an empty server, median of $RUNS | $(fsec "$M_CS") | $(fsec "$M_CP") | $(ratio "$M_CP" "$M_CS") |"
	echo "| push after rewriting 1% of the big file in place, median of $RUNS | $(fsec "$M_PS") | $(fsec "$M_PP") | $(ratio "$M_PP" "$M_PS") |"
	echo
	echo "| requests per second, median of $RUNS | HTTPS | plain HTTP | HTTPS / HTTP |"
	echo "| --- | --- | --- | --- |"
	row_calls "dots.list" now list
	row_calls "dots.list, one 16 KiB file of the dot rewritten before each call" now write
	row_calls "server.ping" now ping
	if [ -n "$BEFORE" ]; then
		row_calls "dots.list, dmd of $BEFORE_REV (before)" before list
		row_calls "dots.list, a file rewritten before each call, dmd of $BEFORE_REV (before)" before write
		row_calls "server.ping, dmd of $BEFORE_REV (before)" before ping
	fi
	echo
	echo "A dot measures its dirty bytes when its working copy changed since it last did (an inotify watch on each directory says so) or that measure is 10 s old; otherwise dots.list answers the figure it keeps. With a file rewritten before each call, every call measures again: a walk of the $NFILES files' stat and a read of the one rewritten. server.ping is the HTTP, TLS and JSON-RPC path alone."
	if [ -n "$BEFORE" ]; then
		echo "The \"before\" rows are the same servers, data and calls, served by the dmd of $BEFORE_REV (measured first, right after the pushes), which measured every dot on every call and read again, each time, every file the last commit could not trust (written within 2 s before it: here the $BIGMB MiB file)."
	fi
	echo
	echo "Runs: clone over HTTPS $R_CS, over HTTP $R_CP; push over HTTPS $R_PS, over HTTP $R_PP; dots.list per second over HTTPS $(allrates now list S), over HTTP $(allrates now list P)."
	echo "<!-- tls:end -->"
} >"$out"
write_section tls "$out"
cat "$out"
