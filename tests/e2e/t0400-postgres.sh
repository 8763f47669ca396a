#!/usr/bin/env bash
test_description='a real PostgreSQL data directory in a dot: commit, reset --hard, time travel both ways'
. "$(dirname "$0")/test-lib.sh"

# What this proves: a database that refuses a data directory with the wrong
# owner or mode (PostgreSQL checks both at every start) starts again on what
# `dm reset --hard` restored, and finds exactly the rows of that commit.
#
# PostgreSQL refuses to run as root, so when this script runs as root (and
# dmd with it) the database runs as the `postgres` system user that Debian's
# package creates; otherwise it runs as the user running this script.
# Only our own initdb and pg_ctl are used, on a private unix socket and
# with no TCP listener, never the system's cluster (Debian's package may
# start a default one; it does not matter here).

. "$TEST_DIRECTORY/lib-postgres.sh"

port=$(test_free_port)
data=$HOME/data
export DM_CONFIG=$HOME/dmconf/config
# PostgreSQL's data directory is a subdirectory of the working copy, not the
# working copy itself: PostgreSQL wants to own its directory with mode 0700,
# while the working copy root is made by dmd (its owner, mode 0755) and its
# own owner and mode are not versioned (a commit records what is below it).
# pgdata's owner and mode are recorded, and reset must restore them.
pgdata=$HOME/mnt/pgdata
pg_log=$HOME/pglog/postgres.log

# Runs last: PostgreSQL first (it has files open in the working copy), then dmd.
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1"
pg_cleanup_at_exit

test_expect_success 'dm cluster init starts a private dmd' '
	dm cluster init --data-dir data --port "$port" >out &&
	grep "^dmd is running" out
'

test_expect_success 'dm init pg; dm mount links mnt to its working copy' '
	dm init pg &&
	dm mount pg mnt &&
	test -L mnt && test -d mnt/
'

test_expect_success 'the database user can reach the working copy, not list dmd dirs' '
	wc=$(readlink mnt) &&
	d=$wc && while [ "$d" != "$data" ]; do
		d=$(dirname "$d") &&
		case $d in "$data"/*) test "$(stat -c %a "$d")" = 711 ;; esac || return 1
	done &&
	test "$(stat -c %a "$data")" = 711 &&
	test "$(stat -c %a "$data/store")" = 700 &&
	test "$(stat -c %a "$data/kv")" = 700 &&
	test "$(stat -c %a "$data/admin-api-key")" = 400 &&
	"${as_pg[@]}" test -x "$wc" &&
	if test_have_root; then
		test_must_fail "${as_pg[@]}" ls "$data/dots" &&
		test_must_fail "${as_pg[@]}" ls "$data/store"
	fi
'

test_expect_success 'initdb into mnt/pgdata, owned by the database user, mode 0700' '
	mkdir -m 700 mnt/pgdata &&
	mkdir pglog &&
	if test_have_root; then
		chown "$pg_user:" mnt/pgdata pglog "$pg_sock"
	fi &&
	pg initdb -D "$pgdata" -U "$pg_user" --auth=trust -E UTF8 --locale=C --no-sync >initdb.out &&
	test -f mnt/pgdata/PG_VERSION &&
	expect_pg_owner
'

test_expect_success 'PostgreSQL starts on the working copy' '
	pg_start &&
	test -S "$pg_sock/.s.PGSQL.$pg_port" &&
	sql "SELECT 1" >out && echo 1 >expect && test_cmp expect out
'

test_expect_success 'create a table and insert 3 rows' '
	sql "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL);
		INSERT INTO t VALUES (1, '\''one'\''), (2, '\''two'\''), (3, '\''three'\'')" &&
	expect_rows 3
'

test_expect_success 'a fast shutdown stops PostgreSQL' '
	pg_stop &&
	test ! -e mnt/pgdata/postmaster.pid
'

test_expect_success 'dm commit -m "3 rows"' '
	dm commit -m "3 rows" >id3 &&
	grep -E "^[0-9a-f-]{8,}$" id3 &&
	dm log >out && grep "^    3 rows$" out
'

test_expect_success 'start, insert 2 more rows, stop: 5 rows, uncommitted' '
	pg_start &&
	sql "INSERT INTO t VALUES (4, '\''four'\''), (5, '\''five'\'')" &&
	expect_rows 5 &&
	pg_stop &&
	dm diff >out &&
	test -s out
'

test_expect_success 'dm reset --hard HEAD brings back the committed files, owners and modes' '
	dm reset --hard HEAD &&
	expect_pg_owner &&
	dm diff >out &&
	test_cmp /dev/null out
'

test_expect_success 'PostgreSQL starts on the reset copy and finds exactly the 3 committed rows' '
	pg_start &&
	expect_rows 3 &&
	pg_stop
'

test_expect_success 'insert 2 rows again and commit them as "5 rows"' '
	pg_start &&
	sql "INSERT INTO t VALUES (4, '\''four'\''), (5, '\''five'\'')" &&
	expect_rows 5 &&
	pg_stop &&
	dm commit -m "5 rows" >id5 &&
	dm log >out &&
	grep "^commit " out >ids &&
	printf "commit %s\ncommit %s\n" "$(cat id5)" "$(cat id3)" >expect &&
	test_cmp expect ids
'

test_expect_success 'dm reset --hard HEAD^ goes back to 3 rows' '
	dm reset --hard HEAD^ &&
	expect_pg_owner &&
	pg_start &&
	expect_rows 3 &&
	pg_stop &&
	dm log >out &&
	grep "^commit " out >ids &&
	echo "commit $(cat id3)" >expect &&
	test_cmp expect ids
'

test_expect_success 'dm reset --hard to the "5 rows" commit id goes forward to 5 rows' '
	dm reset --hard "$(cat id5)" &&
	expect_pg_owner &&
	pg_start &&
	expect_rows 5 &&
	sql "INSERT INTO t VALUES (6, '\''six'\'')" &&
	sql "SELECT count(*) FROM t" >out &&
	echo 6 >expect && test_cmp expect out &&
	pg_stop
'

test_expect_success 'dm cluster stop stops dmd' '
	dm cluster stop --data-dir data &&
	test ! -e data/dmd.pid
'

test_done
