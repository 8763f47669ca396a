# bench/lib.sh - helpers shared by bench/commit.sh and bench/commit_btrfs.sh.
# Sourced, never run. Before sourcing, the script sets BENCH (its name in
# messages, e.g. "commit.sh") and TAG (the tag of its progress lines), and
# its option defaults (see common_opt); after parsing options it calls
# check_common, bench_start and build_dm.
#
# Always true here: no helper changes the working directory or the caller's
# options; every dmd started with start_dmd is in RUNNING until stop_dmd,
# and the EXIT trap stops the ones left; the EXIT trap removes BIG (the big
# work paths) unless KEEP=1; T is the wall time (seconds) of the last tm;
# every timed step's name and time are appended to LOGS/times.txt.
# shellcheck shell=bash disable=SC2034 # globals the sourcing scripts read

die() {
	printf '%s: %s\n' "$BENCH" "$*" >&2
	exit 1
}

# ---------------------------------------------------------------- options

# common_opt ARGS...: takes the option at the front of ARGS when it is one
# every script shares (--work, --scale, --seed, --runs, --build, --no-build,
# --port, --results, --keep); SHIFT is the number of words it used (0: not
# one of them).
common_opt() {
	SHIFT=2
	case $1 in
	--work) WORK=${2:?--work needs a directory} ;;
	--scale) SCALE=${2:?--scale needs a number} ;;
	--seed) SEED=${2:?--seed needs a number} ;;
	--runs) RUNS=${2:?--runs needs a number} ;;
	--build) BUILD=${2:?--build needs a directory} ;;
	--port) PORT=${2:?--port needs a number} ;;
	--results) RESULTS=${2:?--results needs a file} ;;
	--no-build) DOBUILD=0 SHIFT=1 ;;
	--keep) KEEP=1 SHIFT=1 ;;
	*) SHIFT=0 ;;
	esac
}

# check_common CMD...: validates the shared options, makes WORK and BUILD
# absolute (creating them) and checks that the commands CMD are installed.
check_common() {
	local c
	[[ $SCALE =~ ^[0-9]*\.?[0-9]+$ ]] && awk -v s="$SCALE" 'BEGIN { exit !(s > 0 && s <= 16) }' ||
		die "--scale must be a number in (0, 16], not '$SCALE'"
	[[ $SEED =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, not '$SEED'"
	[[ $RUNS =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] && [ "$RUNS" -le 99 ] || die "--runs must be an integer in 1..99"
	[ -z "$PORT" ] || { [[ $PORT =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ]; } ||
		die "--port must be a TCP port number"
	for c in "$@"; do
		command -v "$c" >/dev/null || die "'$c' is needed and not installed"
	done
	mkdir -p "$WORK"
	WORK=$(cd "$WORK" && pwd)
	[ "$WORK" != / ] || die "refusing to use / as the work directory"
	BUILD=$(mkdir -p "$BUILD" && cd "$BUILD" && pwd)
}

# need_space DIR MIB WHAT: dies unless DIR's file system has MIB MiB free.
need_space() {
	local avail
	avail=$(df -Pm "$1" | awk 'NR == 2 { print $4 }')
	[ "$avail" -ge "$2" ] ||
		die "not enough disk space: $3 needs about $2 MiB free in $1, which has $avail MiB (try a smaller --scale or another --work)"
}

# ---------------------------------------------------------------- run state

# bench_start: the start time, traps, an empty LOGS and no BIG paths.
bench_start() {
	START=$(date +%s)
	LOAD0=$(cut -d' ' -f1 /proc/loadavg)
	RUNNING=()
	ROWS=()
	NOTES=()
	WHERE=()
	DMDLOG=""
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	rm -rf "${BIG[@]}" "$LOGS"
	mkdir -p "$LOGS"
}

say() { printf '[%s %4ds] %s\n' "$TAG" $(($(date +%s) - START)) "$*" >&2; }

stop_dmd() { # DATA_DIR
	"$DM" cluster stop --data-dir "$1" >>"$LOGS/dmd-stop.log" 2>&1 || true
	local keep=() d
	for d in "${RUNNING[@]+"${RUNNING[@]}"}"; do [ "$d" = "$1" ] || keep+=("$d"); done
	RUNNING=("${keep[@]+"${keep[@]}"}")
}

# The EXIT trap: stops the dmds left, runs the script's cleanup_hook when it
# defines one (before BIG is removed), removes BIG unless KEEP=1.
cleanup() {
	local rc=$? d
	for d in "${RUNNING[@]+"${RUNNING[@]}"}"; do stop_dmd "$d"; done
	if declare -F cleanup_hook >/dev/null; then cleanup_hook || true; fi
	if [ "$KEEP" = 0 ]; then
		rm -rf "${BIG[@]}"
	fi
	if [ $rc != 0 ]; then
		echo "$BENCH: failed; logs of each step are in $LOGS" >&2
	fi
}

# ---------------------------------------------------------------- numbers

calc() { awk "BEGIN { printf \"%.6f\", ($1) }"; }
fsec() { awk -v t="$1" 'BEGIN { if (t < 1) printf "%.3f s", t; else if (t < 100) printf "%.2f s", t; else printf "%.1f s", t }'; }
fms() { awk -v t="$1" 'BEGIN { if (t < 10) printf "%.2f ms", t; else printf "%.0f ms", t }'; }
fx() { awk -v r="$1" 'BEGIN { if (r >= 10) printf "%.0f×", r; else printf "%.2f×", r }'; }
fmb() { awk -v b="$1" 'BEGIN { if (b >= 1e9) printf "%.2f GB", b / 1e9; else if (b >= 1e6) printf "%.1f MB", b / 1e6; else printf "%.0f kB", b / 1e3 }'; }
fmib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; } # from KiB
yesno() { awk "BEGIN { exit !($1) }" && echo yes || echo "**no**"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
runs() { # the values, comma-separated, for "runs: ..." notes
	local v out=""
	for v in "$@"; do out="$out${out:+, }$(fsec "$v")"; done
	echo "$out"
}
# proc_kib PID FIELD: VmRSS or VmHWM of PID in KiB.
proc_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
dmd_pid() { cat "$1/dmd.pid"; }

# ---------------------------------------------------------------- timing

# DMDLOG: the log of the dmd whose lines the timed steps collect ("": none).
logsize() { if [ -n "$DMDLOG" ] && [ -f "$DMDLOG" ]; then stat -c %s "$DMDLOG"; else echo 0; fi; }

# tm NAME CMD...: runs CMD (stdout, stderr in LOGS/NAME.out, .err); T is its
# wall time in seconds, T_START its start (date +%s%N) and T_OFF the size
# of DMDLOG then. The dmd log lines written meanwhile go to LOGS/NAME.dmd.
tm() {
	local name=$1 t1
	shift
	T_OFF=$(logsize)
	T_START=$(date +%s%N)
	if ! "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err"; then
		tail -n 5 "$LOGS/$name.err" >&2
		die "'$*' failed (step $name)"
	fi
	t1=$(date +%s%N)
	T=$(calc "($t1 - $T_START) / 1e9")
	if [ -n "$DMDLOG" ]; then
		sleep 0.05 # the log line of a call may follow its answer by a moment
		tail -c +"$((T_OFF + 1))" "$DMDLOG" >"$LOGS/$name.dmd" 2>/dev/null || true
	fi
	printf '%s %s\n' "$name" "$T" >>"$LOGS/times.txt"
}
# tm_sync NAME CMD...: tm, then a timed sync; T is the sum, T_CMD CMD alone.
tm_sync() {
	local name=$1
	shift
	tm "$name" "$@"
	T_CMD=$T
	tm "$name-sync" sync
	T=$(calc "$T_CMD + $T")
}
# step_time NAME: the time LOGS/times.txt holds for step NAME (its last).
step_time() { awk -v n="$1" '$1 == n { print $2 }' "$LOGS/times.txt" | tail -n 1; }

# median_step PREFIX SUFFIX [N]: over the runs PREFIX-1SUFFIX ..
# PREFIX-NSUFFIX (N: default RUNS), MED is the median time, MEDSTEP the
# name of the run that took it and RUNVALS every run's time.
median_step() {
	local i n=${3:-$RUNS}
	local vals=()
	for i in $(seq 1 "$n"); do vals+=("$(step_time "$1-$i$2")"); done
	MED=$(median "${vals[@]}")
	MEDSTEP=""
	for i in $(seq 1 "$n"); do
		if [ -z "$MEDSTEP" ] && [ "${vals[$((i - 1))]}" = "$MED" ]; then MEDSTEP="$1-$i$2"; fi
	done
	RUNVALS=("${vals[@]}")
}

# ---------------------------------------------------------------- tables

row() { # CELL...: a row of the results table
	local s="|" c
	for c in "$@"; do s="$s $c |"; done
	ROWS+=("$s")
}
note() { NOTES+=("$*"); }

# where LABEL NAME: a row of the "where dm's time goes" table from the
# step's wall time and the dmd log lines it collected (LOGS/NAME.dmd): each
# call's duration inside dmd, and the engine's statistics.
where() {
	local label=$1 name=$2 rpc eng t
	t=$(step_time "$name")
	rpc=$(sed -nE "s/.* debug rpc ([a-z.]+) by '[^']*': [a-z_]+ in ([0-9.]+) ms.*/\1 \2 ms/p" "$LOGS/$name.dmd" |
		paste -sd ';' | sed 's/;/; /g')
	eng=$(sed -nE -e "s/.* debug (commit|checkout) of '[^']*': (.*)/\1: \2/p" \
		-e "s/.* debug index of snapshot '[^']*' of dot '[^']*': (.*)/index: \1/p" \
		-e "s/.* debug materialised into '[^']*': (.*)/materialise: \1/p" "$LOGS/$name.dmd" |
		paste -sd ';' | sed 's/;/; /g')
	WHERE+=("| $label | $(fsec "$t") | ${rpc:-–} | ${eng:-–} |")
}

# ---------------------------------------------------------------- dm and dmd

# build_dm: builds dm and dmd in BUILD (unless DOBUILD=0) and sets DM, DMD,
# DM_DMD, BUILDTYPE and REV (the repository's commit, +changes when dirty).
build_dm() {
	if [ "$DOBUILD" = 1 ]; then
		say "building dm and dmd in ${BUILD#"$REPO"/}/"
		if [ ! -f "$BUILD/build.ninja" ]; then
			meson setup "$BUILD" "$REPO" -Dbuildtype=release >"$LOGS/build.log" 2>&1 ||
				{ tail -n 20 "$LOGS/build.log" >&2; die "meson setup failed"; }
		fi
		ninja -C "$BUILD" src/server/dmd src/cli/dm >>"$LOGS/build.log" 2>&1 ||
			{ tail -n 20 "$LOGS/build.log" >&2; die "building dm and dmd failed"; }
	fi
	DM=$BUILD/src/cli/dm
	DMD=$BUILD/src/server/dmd
	[ -x "$DM" ] && [ -x "$DMD" ] || die "no dm and dmd in '$BUILD' (src/cli/dm, src/server/dmd)"
	export DM_DMD=$DMD
	BUILDTYPE=unknown
	if [ -f "$BUILD/meson-info/intro-buildoptions.json" ]; then
		BUILDTYPE=$(python3 -c 'import json, sys
for o in json.load(open(sys.argv[1])):
    if o["name"] == "buildtype": print(o["value"])' "$BUILD/meson-info/intro-buildoptions.json")
	fi
	[ "$BUILDTYPE" = release ] || say "WARNING: dm and dmd are a '$BUILDTYPE' build, not release"
	REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [ -n "$(git -C "$REPO" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null)" ]; then
		REV="$REV+changes"
	fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port FIRST: PORT becomes the first free TCP port of FIRST..FIRST+99
# unless --port named one; dies when it is taken.
pick_port() {
	local p
	if [ -z "$PORT" ]; then
		for p in $(seq "$1" $(($1 + 99))); do
			if port_free "$p"; then PORT=$p; break; fi
		done
		[ -n "$PORT" ] || die "no free TCP port in $1..$(($1 + 99)); name one with --port"
	fi
	port_free "$PORT" || die "TCP port $PORT is in use"
}

# start_dmd DIR DEBUG [INIT_ARGS...]: dm cluster init DIR INIT_ARGS (which
# starts dmd); with DEBUG=1 it is restarted with --log-level debug so that
# the log has each call's duration and the engine's statistics. Sets PID.
start_dmd() {
	local dir=$1 debug=$2 log
	shift 2
	log=$LOGS/init-$(basename "$dir").log
	"$DM" cluster init --data-dir "$dir" --port "$PORT" "$@" >"$log" 2>&1 ||
		{ cat "$log" >&2; die "dm cluster init failed"; }
	RUNNING+=("$dir")
	if [ "$debug" = 1 ]; then
		"$DM" cluster stop --data-dir "$dir" >>"$LOGS/dmd-stop.log" 2>&1 || die "dm cluster stop failed"
		"$DMD" start --data-dir "$dir" --port "$PORT" --log-level debug >>"$log" 2>&1 ||
			{ tail -n 5 "$log" >&2; die "dmd start --log-level debug failed"; }
	fi
	PID=$(dmd_pid "$dir")
}

# ---------------------------------------------------------------- results

# machine_line: MACHINE, a one-line description of this machine and WORK's
# file system; NOW, the time in UTC; LOAD1, the load average now.
machine_line() {
	local model mem fstype realfs
	model=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
	mem=$(free -g | awk '/^Mem:/ { print $2 }')
	fstype=$(stat -f -c %T "$WORK")
	realfs=$(findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null || true)
	[ -n "$realfs" ] && fstype="$fstype ($realfs per findmnt)"
	MACHINE="$(nproc) CPUs ($model), $mem GiB RAM (free -g), Linux $(uname -r), work directory on $fstype"
	NOW=$(date -u '+%Y-%m-%d %H:%M UTC')
	LOAD1=$(cut -d' ' -f1 /proc/loadavg)
}

# write_section MARKER FILE: puts FILE, which starts with <!-- MARKER:begin -->
# and ends with <!-- MARKER:end -->, into RESULTS in place of the section
# with those markers, or at the end when there is none; the rest of RESULTS
# is left as it is.
write_section() {
	if [ ! -f "$RESULTS" ]; then
		cat >"$RESULTS" <<EOF
# dm benchmarks

Results of the scripts in \`bench/\` (what each one measures: \`bench/README.md\`).
The numbers hold for the machine and the moment they were taken on; compare
rows of one run with each other, not runs of different machines.

EOF
	fi
	python3 - "$RESULTS" "$2" "$1" <<'EOF'
import re, sys
path, sect, marker = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
new = open(sect).read().rstrip("\n") + "\n"
pat = re.compile(r"<!-- %s:begin -->.*?<!-- %s:end -->\n?" % (re.escape(marker), re.escape(marker)), re.S)
if pat.search(text):
    text = pat.sub(lambda m: new, text, count=1)
else:
    text = text.rstrip("\n") + "\n\n" + new
open(path, "w").write(text)
EOF
}
