#!/usr/bin/env bash
test_description='a commit of a running PostgreSQL is one instant, on every engine: pgbench writes in a Docker container on a dm volume while dm commit runs every second; every commit restored starts, passes amcheck and keeps pgbench'\''s balances'
. "$(dirname "$0")/test-lib.sh"

# What this proves: a `dm commit` taken while a database writes is a state
# the database could have crashed in, on the dir engine as on btrfs, so that
# every commit is a backup it recovers from. PostgreSQL 15 runs in a real
# Docker container (the private dockerd of shared/containers/docker.sh) on a
# dm volume; `pgbench -c 4` writes, a loop forces a CHECKPOINT every 0.2 s
# (with max_wal_size 32MB, so WAL is recycled too) and `dm commit` runs
# about every second. Then a branch `restore` is reset to each commit in
# turn and PostgreSQL (the host's, the version of the image) starts on it:
#   - it must start (crash recovery from the commit's WAL);
#   - amcheck's bt_index_check(index, heapallindexed) passes on every btree
#     index: no index page torn from its table;
#   - pgbench's invariant holds: every transaction adds the same delta to
#     one account, one teller, one branch and a new history row, so
#     sum(abalance) = sum(tbalance) = sum(bbalance) = sum(delta), and no
#     row of the initial tables is lost.
# A commit read file by file while PostgreSQL writes breaks the invariant:
# a data file read before a checkpoint and pg_control read after it make
# recovery start past changes the data file never got. A commit is torn
# when any check fails; the script fails when any commit is torn, and
# prints, per commit, what it found (as TAP comments).
#
# The container runs as the postgres user whose ids the image shares with
# the host (docker.sh builds it so), so the host's PostgreSQL reads the
# restored files as they are. postmaster.pid of the running container is
# in every commit; it names a PID of the container's namespace, so it is
# removed before the start, as a new container would not see it.
#
# Needs root, Docker (docker.sh; in CI a Docker that cannot be set up fails
# the script), PostgreSQL with amcheck on the host; the btrfs half needs
# btrfs, loop devices and btrfs-progs (skipped otherwise, as in t0700).

docker_sh_args=(--postgres)
. "$TEST_DIRECTORY/lib-docker.sh"
. "$TEST_DIRECTORY/lib-postgres.sh"

PATH=$PATH:/usr/sbin:/sbin
if grep -qw btrfs /proc/filesystems && [ -c /dev/loop-control ] &&
	command -v mkfs.btrfs >/dev/null 2>&1 && command -v btrfs >/dev/null 2>&1; then
	test_set_prereq BTRFS
fi

# The load: pgbench's scale (100,000 accounts each, ~15 MB), the commits
# taken under it on each engine and the pause after each commit.
scale=4
commits=20
commit_pause=0.5
# PostgreSQL in the container: little WAL and frequent checkpoints (the loop
# adds one every 0.2 s), few buffers, so data files and WAL change all the
# time.
pg_opts="-c listen_addresses= -c max_wal_size=32MB -c min_wal_size=32MB -c checkpoint_timeout=30s -c shared_buffers=16MB"
pg_uid=$(id -u postgres)
pg_gid=$(id -g postgres)

# Whatever a failed test leaves mounted under the trash directory (a btrfs
# pool) goes, and its loop device with it, so that the trash can go too.
unmount_all() {
	local m d

	awk -v t="$TRASH_DIRECTORY" 'index($2, t) == 1 { print $2 }' /proc/self/mounts |
		sort -r | while read -r m; do umount -l "$m"; done
	for d in "$HOME"/data-*/pool.img; do
		[ -e "$d" ] || continue
		losetup -j "$d" | cut -d: -f1 | while read -r m; do losetup -d "$m"; done
	done
}
test_atexit unmount_all
test_atexit "dmd stop --data-dir '$HOME/data-dir' >/dev/null 2>&1; dmd stop --data-dir '$HOME/data-btrfs' >/dev/null 2>&1"
docker_cleanup_at_exit
pg_cleanup_at_exit

mkdir pglog && chown "$pg_user:" pglog "$pg_sock" || exit 1

# ms START END: the milliseconds between two $EPOCHREALTIME values.
ms() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'
}

# psql_in CONTAINER SQL: one statement in the container's database.
psql_in() {
	dk exec "$1" psql -X -q -A -t -v ON_ERROR_STOP=1 -h /tmp -d postgres -c "$2"
}

# first_error TEXT: the first ERROR, FATAL or PANIC line of TEXT (psql's
# output, a server log), else its last line.
first_error() {
	grep -m 1 -E 'ERROR|FATAL|PANIC' <<<"$1" || tail -n 1 <<<"$1"
}

# captures DOT: "ID HOW [FREEZE_MS]" for each commit of DOT that records
# how it was taken (the COMMIT object's capture): a snapshot, frozen (and
# for how long), quiet, not-instant.
captures() {
	dm log --json --dot "$1" | python3 -c 'import json, sys
for c in json.load(sys.stdin)["commits"]:
    cap = c.get("capture") or {}
    how, ms = cap.get("how"), cap.get("freeze_ms")
    if how is not None:
        print(c["id"], how, "" if ms is None else ms)'
}

# check_commit N ID: resets branch restore of $vol to commit ID, starts
# PostgreSQL on it and prints one line of what it found; fails when the
# commit is torn (or could not be restored).
check_commit() {
	local n=$1 id=$2 out a t b h rows na nt nb idx why=""

	if ! dm reset --hard "$id" --dot "$vol" >reset.out 2>&1; then
		echo "cannot restore: $(tail -n 1 reset.out)"
		return 1
	fi
	rm -f "$pgdata/postmaster.pid"
	pg_log=$HOME/pglog/$engine-$n.log
	if ! pg_start >/dev/null 2>&1; then
		pg_stop_immediate >/dev/null 2>&1
		echo "TORN: PostgreSQL does not start: $(first_error "$(cat "$pg_log")")"
		return 1
	fi
	if ! out=$(sql "SELECT (SELECT sum(abalance) FROM pgbench_accounts),
			(SELECT sum(tbalance) FROM pgbench_tellers),
			(SELECT sum(bbalance) FROM pgbench_branches),
			(SELECT coalesce(sum(delta), 0) FROM pgbench_history),
			(SELECT count(*) FROM pgbench_history),
			(SELECT count(*) FROM pgbench_accounts),
			(SELECT count(*) FROM pgbench_tellers),
			(SELECT count(*) FROM pgbench_branches)" 2>&1); then
		why="the balances cannot be read: $(first_error "$out")"
	else
		IFS='|' read -r a t b h rows na nt nb <<<"$out"
		if [ "$a" != "$t" ] || [ "$a" != "$b" ] || [ "$a" != "$h" ]; then
			why="balances differ: accounts $a, tellers $t, branches $b, history $h"
		elif [ "$na" != $((scale * 100000)) ] || [ "$nt" != $((scale * 10)) ] || [ "$nb" != "$scale" ]; then
			why="rows lost: $na accounts, $nt tellers, $nb branches"
		fi
	fi
	if ! idx=$(sql "CREATE EXTENSION IF NOT EXISTS amcheck;
			SELECT count(bt_index_check(c.oid, true))
			FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			JOIN pg_am am ON am.oid = c.relam
			WHERE am.amname = 'btree' AND c.relpersistence <> 't'
			AND i.indisready AND i.indisvalid" 2>&1); then
		why="${why:+$why; }amcheck: $(first_error "$idx")"
		idx=
	fi
	pg_stop_immediate >/dev/null 2>&1
	if [ -n "$why" ]; then
		echo "TORN: $why${rows:+ ($rows history rows)}"
		return 1
	fi
	echo "consistent: balance $a everywhere, $rows history rows, $idx btree indexes pass amcheck"
}

for engine in dir btrfs; do
	prereq=
	engine_args=()
	if [ "$engine" = btrfs ]; then
		prereq=BTRFS
		engine_args=(--engine btrfs --pool-size 2G)
	fi
	export DM_CONFIG=$HOME/conf-$engine/config
	vol=$dk_prefix-$engine
	pgc=$dk_prefix-pg-$engine
	pgdata=$HOME/wc-$engine/__default__/pg

	test_expect_success "$prereq" "$engine: dmd serves the volume plugin $DM_DOCKER_PLUGIN with the Docker API" '
		dm cluster init --data-dir "$HOME/data-$engine" --port "$(test_free_port)" \
			--plugin-socket "$DM_PLUGIN_SOCK" --docker-socket "$DM_API_SOCK" \
			"${engine_args[@]}" >out &&
		grep "^dmd is running" out &&
		test -S "$DM_PLUGIN_SOCK"
	'

	test_expect_success "$prereq" "$engine: PostgreSQL in a container on the dm volume $vol, pgbench -i -s $scale" '
		dk_volume_made "$vol" &&
		dk_run --rm --volume-driver "$DM_DOCKER_PLUGIN" -v "$vol:/data" localhost/busybox \
			chown "$pg_uid:$pg_gid" /data &&
		dk_run -d --name "$pgc" --user postgres --volume-driver "$DM_DOCKER_PLUGIN" \
			-v "$vol:/var/lib/postgresql/data" localhost/postgres:15 sh -c \
			"initdb -D /var/lib/postgresql/data/pg -A trust --no-sync >/dev/null &&
			exec postgres -D /var/lib/postgresql/data/pg -k /tmp $pg_opts" >/dev/null &&
		wait_for "PostgreSQL in $pgc" dk exec "$pgc" pg_isready -q -h /tmp &&
		dk exec "$pgc" pgbench -h /tmp -i -q -s "$scale" postgres &&
		wait_for "dmd to name $pgc" sh -c "dm dot show $vol | grep \"^containers: *$pgc\$\""
	'

	test_expect_success "$prereq" "$engine: $commits commits while pgbench -c 4 writes and a CHECKPOINT runs every 0.2 s" '
		dk exec -d "$pgc" sh -c "while :; do psql -X -q -h /tmp -d postgres -c CHECKPOINT; sleep 0.2; done" &&
		{ dk exec "$pgc" pgbench -h /tmp -c 4 -j 2 -T 900 postgres >"pgbench-$engine.out" 2>&1 & } &&
		pgbench_pid=$! &&
		wait_for "pgbench to write" sh -c "test \"\$(docker exec $pgc psql -X -A -t -h /tmp -d postgres -c \"SELECT count(*) > 0 FROM pgbench_history\")\" = t" &&
		: >"commits-$engine" &&
		start=$EPOCHREALTIME &&
		for i in $(seq "$commits"); do
			if ! kill -0 "$pgbench_pid" 2>/dev/null; then
				echo "pgbench stopped before commit $i:" && cat "pgbench-$engine.out"
				return 1
			fi
			t0=$EPOCHREALTIME &&
			id=$(dm commit -m "under load $i" --dot "$vol") &&
			echo "$id $(ms "$t0" "$EPOCHREALTIME")" >>"commits-$engine" &&
			sleep "$commit_pause" || return 1
		done &&
		echo "$commits commits in $(ms "$start" "$EPOCHREALTIME") ms" &&
		kill -0 "$pgbench_pid" &&
		psql_in "$pgc" "SELECT count(*) FROM pgbench_history" >transactions &&
		psql_in "$pgc" "SELECT checkpoints_req FROM pg_stat_bgwriter" >checkpoints &&
		echo "pgbench: $(cat transactions) transactions; $(cat checkpoints) checkpoints asked for" &&
		test "$(cat transactions)" -gt "$commits" &&
		test "$(cat checkpoints)" -ge $((commits / 2)) &&
		dk rm -f "$pgc" >/dev/null &&
		{ wait "$pgbench_pid" || :; } &&
		dk_volume_rm "$vol"
	'

	test_expect_success "$prereq" "$engine: every commit restored starts, passes amcheck and keeps pgbench's balances" '
		dm checkout -b restore --dot "$vol" &&
		dm mount "$vol@restore" "wc-$engine" &&
		captures "$vol" >"captures-$engine" &&
		: >"report-$engine" &&
		n=0 torn=0 start=$EPOCHREALTIME &&
		while read -r id cms; do
			n=$((n + 1))
			f=$(awk -v id="$id" '\''$1 == id { print ", " $2 ($3 == "" ? "" : " for " $3 " ms") }'\'' "captures-$engine")
			line=$(check_commit "$n" "$id") || torn=$((torn + 1))
			echo "$engine $n/$commits $id (commit $cms ms$f): $line" >>"report-$engine"
		done <"commits-$engine" &&
		echo "$torn of $n commits torn on the $engine engine (restored in $(ms "$start" "$EPOCHREALTIME") ms)" |
			tee -a "report-$engine" &&
		test "$n" = "$commits" &&
		test "$torn" = 0 &&
		if [ "$engine" = dir ]; then how=frozen; else how=snapshot; fi &&
		while read -r id cms; do
			grep -q "^$id $how" "captures-$engine" ||
				{ echo "commit $id was not taken $how"; return 1; }
		done <"commits-$engine"
	'
	if [ -s "report-$engine" ]; then
		sed 's/^/# /' "report-$engine"
	fi

	test_expect_success "$prereq" "$engine: dm cluster stop" '
		dm cluster stop --data-dir "$HOME/data-$engine" >/dev/null &&
		if [ "$engine" = btrfs ]; then
			test -z "$(losetup -j "$HOME/data-btrfs/pool.img")"
		fi
	'
done

test_done
