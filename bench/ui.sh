#!/usr/bin/env bash
# bench/ui.sh - how fast the web page at /ui/ shows a big server: a dmd
# with 1,000 dots, one of them with a branch of 10,000 commits, and
# headless Chromium (playwright-core, as the browser test drives it)
# opening the dot list and that dot's page. Writes the "## ui" section of
# bench/RESULTS.md (between <!-- ui:begin --> and <!-- ui:end -->). See
# bench/README.md.
set -euo pipefail
BENCH=ui.sh
TAG=ui
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<'EOF'
usage: bench/ui.sh [options]

Runs a private dmd on 127.0.0.1 with 1,000 dots (at scale 1): `big`,
whose master branch has 10,000 commits (empty ones, made through the
API over one connection), and 999 with one commit each. Then, in Debian's
chromium driven by playwright-core (tests/browser/node_modules: run
scripts/deps.sh), logged in once, --runs times from about:blank:
  list   navigation start to the 1,000 rows of the dot list drawn
  dot    navigation start to big's page with its first 100 commits
  more   a click on More to the next 100 drawn below them
each with the time the page's RPC calls took (request to last byte).
The figure the web page must meet is 300 ms for list and dot.

options: --work DIR (default bench/work/ui), --scale F (dots and commits
scale with it), --runs N (default 5), --build DIR, --no-build, --port N,
--results FILE, --keep, -h
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$REPO/bench/work/ui
SCALE=1
SEED=1
RUNS=5
BUILD=$REPO/build-bench
DOBUILD=1
PORT=""
RESULTS=$REPO/bench/RESULTS.md
KEEP=0
GOAL_MS=300

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
check_common python3 node awk
[ -x /usr/bin/chromium ] || die "Debian's chromium is needed (scripts/deps.sh installs it)"
[ -d "$REPO/tests/browser/node_modules/playwright-core" ] ||
	die "playwright-core is needed: scripts/deps.sh (npm ci in tests/browser)"
LOGS=$WORK/logs
BIG=("$WORK/S" "$WORK/conf")
bench_start
build_dm
export DM_CONFIG=$WORK/conf/config
unset DM_API_KEY
NDOTS=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 1000 * s }')
NCOMMITS=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 10000 * s }')
if [ "$NDOTS" -lt 2 ] || [ "$NCOMMITS" -lt 200 ]; then
	die "--scale is too small: at least 2 dots and 200 commits"
fi
need_space "$WORK" 500 "the web page benchmark"

pick_port 39900
start_dmd "$WORK/S" 0 --no-plugin
URL=https://127.0.0.1:$PORT
KEY=$(cat "$WORK/S/admin-api-key")
say "dmd on port $PORT; making $NDOTS dots and $NCOMMITS commits on big"

# fill: the dots and commits, through the API over one kept-alive
# connection; prints the seconds each kind took
fill() {
	python3 - "$PORT" "$WORK/S/ca.pem" "$WORK/S/admin-api-key" "$NDOTS" "$NCOMMITS" <<'PY'
import base64, http.client, json, ssl, sys, time
port, ca, keyfile, ndots, ncommits = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
conn = http.client.HTTPSConnection("127.0.0.1", int(port), context=ssl.create_default_context(cafile=ca))
hdr = {"Authorization": "Basic " + base64.b64encode(("admin:" + open(keyfile).read().strip()).encode()).decode(),
       "Content-Type": "application/json"}
def call(method, params):
    conn.request("POST", "/rpc", json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode(), hdr)
    r = json.loads(conn.getresponse().read())
    if "result" not in r:
        sys.exit("%s %s: %s" % (method, params, r))
t0 = time.monotonic()
call("dots.create", {"dot": "big"})
for i in range(1, ndots):
    call("dots.create", {"dot": "d%04d" % i})
    call("dots.commit", {"dot": "d%04d" % i, "message": "first"})
t1 = time.monotonic()
for i in range(1, ncommits + 1):
    call("dots.commit", {"dot": "big", "message": "commit %d" % i, "metadata": {"n": str(i)}})
print("%.1f %.1f" % (t1 - t0, time.monotonic() - t1))
PY
}
fill >"$LOGS/fill.txt" || die "making the dots and commits failed"
read -r T_DOTS T_COMMITS <"$LOGS/fill.txt"
say "dots in $T_DOTS s, commits in $T_COMMITS s"
# dm log pages through dots.log (1,000 a call): every commit, once
N_LOG=$("$DM" --remote local log --dot big --json | python3 -c 'import json, sys
c = json.load(sys.stdin)["commits"]
print(len(c) if len({x["id"] for x in c}) == len(c) else "duplicates")')
[ "$N_LOG" = "$NCOMMITS" ] || die "dm log showed $N_LOG commits, not $NCOMMITS"

say "browser: $RUNS runs"
NODE_PATH=$REPO/tests/browser/node_modules node "$REPO/bench/ui_page.js" "$URL" admin "$KEY" big \
	"$NDOTS" "$RUNS" >"$LOGS/page.txt" 2>"$LOGS/page.err" ||
	{ cat "$LOGS/page.err" >&2; die "the browser runs failed"; }
cat "$LOGS/page.txt" >&2

# ---------------------------------------------------------------- results

# VIEW COLUMN: a column of the view's runs; column 0: what is left of the
# time once loading and the RPC calls are taken out (the /ui/session check,
# the script's work and the browser's drawing)
col() { awk -v v="$1" -v c="$2" '$1 == v { print c ? $c : $3 - $6 - $4 }' "$LOGS/page.txt"; }
med() { # VIEW COLUMN: the median over the runs
	local v
	mapfile -t v < <(col "$1" "$2")
	median "${v[@]}"
}
allruns() { col "$1" 3 | paste -sd ' ' | sed 's/ /, /g'; }
machine_line
M_LIST=$(med list 3) R_LIST=$(med list 4) N_LIST=$(med list 5) D_LIST=$(med list 6) O_LIST=$(med list 0)
M_DOT=$(med dot 3) R_DOT=$(med dot 4) N_DOT=$(med dot 5) D_DOT=$(med dot 6) O_DOT=$(med dot 0)
M_MORE=$(med more 3) R_MORE=$(med more 4)
out=$LOGS/section.md
{
	echo "<!-- ui:begin -->"
	echo "## ui: the web page on a server with $NDOTS dots and a branch of $NCOMMITS commits"
	echo
	echo "\`bench/ui.sh$( [ "$SCALE" = 1 ] || echo " --scale $SCALE")$( [ "$RUNS" = 5 ] || echo " --runs $RUNS")\` at $REV ($BUILDTYPE build), $NOW."
	echo "$MACHINE; load average $LOAD0 at the start, $LOAD1 at the end. Browser: $(/usr/bin/chromium --version 2>/dev/null | head -n 1), headless, driven by playwright-core, on the same machine."
	echo "Data: $NDOTS dots made through the API (\`dots.create\`, and one commit each but \`big\`: $(fsec "$T_DOTS")); \`big\`'s master has $NCOMMITS commits, each with a message and one metadata entry ($(fsec "$T_COMMITS") over one connection). \`dm log\` shows all $N_LOG of them, each once, paging through \`dots.log\` 1,000 at a time."
	echo
	echo "Each run opens the page from about:blank, logged in; the time is from navigation start to the first frame where the view is there. RPC is the summed time of the page's \`/ui/rpc\` calls meanwhile (request sent to last byte, the browser's resource timing); loaded is when the page's HTML, script and style were loaded and run (DOMContentLoaded's end), before its first call; the rest is the time less those two: the page's session check (\`GET /ui/session\`), its script building the view and the browser drawing it. Each column is its own median; the first run is the first time dmd reads \`big\`'s commits and the browser runs the page."
	echo
	echo "| view, median of $RUNS | time | under ${GOAL_MS} ms | loaded | RPC calls | RPC time | the rest |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	echo "| the dot list: $NDOTS rows | $(fms "$M_LIST") | $(yesno "$M_LIST < $GOAL_MS") | $(fms "$D_LIST") | $N_LIST | $(fms "$R_LIST") | $(fms "$O_LIST") |"
	echo "| \`big\`'s page: branches and the first 100 commits | $(fms "$M_DOT") | $(yesno "$M_DOT < $GOAL_MS") | $(fms "$D_DOT") | $N_DOT | $(fms "$R_DOT") | $(fms "$O_DOT") |"
	echo "| More: the next 100 commits (from the click) | $(fms "$M_MORE") | | | | $(fms "$R_MORE") | |"
	echo
	echo "Runs (ms): list $(allruns list); dot $(allruns dot); more $(allruns more)."
	echo "<!-- ui:end -->"
} >"$out"
write_section ui "$out"
cat "$out"
