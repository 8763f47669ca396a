# shellcheck shell=bash
# lib-postgres.sh - a real PostgreSQL for the scripts that keep its data
# directory in a dot (t0400, t0524). Source it after test-lib.sh.
#
# Always true once sourced (or the script was skipped, with the reason):
#   - $pg_bin holds initdb, pg_ctl and psql of the newest PostgreSQL that
#     Debian's package installed (installed here when missing and root).
#   - the database runs as $pg_user: the `postgres` system user when the
#     script runs as root (PostgreSQL refuses to run as root), else the
#     user running the script; `pg PROGRAM ARGS` runs one of its programs
#     as that user.
#   - it listens on no TCP port, only on a private unix socket in $pg_sock
#     (short: a socket path has ~107 bytes at most), port number $pg_port;
#     never the system's cluster. $pg_sock is removed at exit.
#   - the umask is 022: dmd's directories are 0711 and working copies 0755
#     only when the umask lets them be, and a database that runs as another
#     user must reach its data directory.
#
# The script sets $pgdata (the data directory, inside a working copy: the
# working copy root is dmd's, while PostgreSQL wants its own directory with
# mode 0700) and $pg_log (a log file in an existing directory) before it
# calls pg_start, pg_stop, pg_stop_immediate, expect_pg_owner. It calls
# pg_cleanup_at_exit after registering its dmd's stop with test_atexit, so
# that at exit PostgreSQL (which has files open in the working copy) stops
# first (test_atexit runs the latest registered first).
#
# Helpers: pg_start, pg_stop (fast), pg_stop_immediate (when running), sql
# 'STATEMENTS' (rows unaligned, '|'-separated), expect_rows N (table t holds
# exactly the first N of (1,one) .. (5,five)), expect_pg_owner (the owner
# and modes PostgreSQL checks at start).

umask 022

pg_bin_dir() {
	local d
	d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	[ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/psql" ] &&
		echo "$d"
}

if ! pg_bin_dir >/dev/null; then
	if ! test_have_root; then
		test_skip_all 'needs PostgreSQL (Debian package postgresql), and root to install it'
	fi
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		postgresql >apt.log 2>&1; then
		DEBIAN_FRONTEND=noninteractive apt-get update -q >>apt.log 2>&1
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			postgresql >>apt.log 2>&1
	fi
	pg_bin_dir >/dev/null ||
		test_skip_all "cannot install PostgreSQL: $(tail -n 1 apt.log)"
fi
pg_bin=$(pg_bin_dir)

if test_have_root; then
	id -u postgres >/dev/null 2>&1 ||
		test_skip_all 'needs the postgres system user (Debian package postgresql)'
	command -v runuser >/dev/null 2>&1 || test_skip_all 'needs runuser (util-linux)'
	pg_user=postgres
	as_pg=(runuser -u postgres --)
else
	pg_user=$(id -un)
	as_pg=()
fi

pg_port=$(test_free_port)
pg_sock=$(mktemp -d "/tmp/dm-${TEST_NAME%%-*}.XXXXXX") || exit 1
test_atexit "rm -rf '$pg_sock'"

pg_cleanup_at_exit() {
	test_atexit "pg_stop_immediate"
}

pg() {
	"${as_pg[@]}" "$pg_bin/$1" "${@:2}"
}

pg_start() {
	pg pg_ctl -D "$pgdata" -l "$pg_log" -w -t 60 \
		-o "-c listen_addresses='' -p $pg_port -k $pg_sock" start
}

pg_stop() {
	pg pg_ctl -D "$pgdata" -m fast -w -t 60 stop
}

pg_stop_immediate() {
	if [ -e "$pgdata/postmaster.pid" ] && pg pg_ctl -D "$pgdata" status >/dev/null 2>&1; then
		pg pg_ctl -D "$pgdata" -m immediate -w -t 30 stop
	fi
}

# sql 'STATEMENTS': runs them in one psql session, fails on the first error;
# prints the rows unaligned, without headers, fields separated by '|'.
sql() {
	pg psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$pg_sock" -p "$pg_port" -U "$pg_user" \
		-d postgres -c "$1"
}

# expect_rows N: table t holds exactly the first N of the rows the scripts
# insert: (1, 'one') .. (5, 'five').
expect_rows() {
	sql "SELECT count(*) FROM t" >count &&
		echo "$1" >expect && test_cmp expect count &&
		sql "SELECT id, name FROM t ORDER BY id" >rows &&
		printf '%s\n' 1\|one 2\|two 3\|three 4\|four 5\|five | head -n "$1" >expect &&
		test_cmp expect rows
}

# The owner and modes PostgreSQL checks at start, as "user mode" lines.
expect_pg_owner() {
	stat -c "%U %a" "$pgdata" "$pgdata/PG_VERSION" "$pgdata/global/pg_control" >owners &&
		printf '%s 700\n%s 600\n%s 600\n' "$pg_user" "$pg_user" "$pg_user" >expect &&
		test_cmp expect owners
}
