#!/usr/bin/env bash
test_description='a PostgreSQL data directory committed on one server, cloned to another and started there with the same rows; changes made there pulled back'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-postgres.sh"

# What this proves: a clone carries a database's data directory whole,
# with the owners and modes PostgreSQL checks at every start: PostgreSQL
# starts on B's clone and finds exactly the rows committed on A; rows added
# on B, committed and pulled back, are found by PostgreSQL on A.
#
# One PostgreSQL runs at a time (one private socket and port): the one on
# A's working copy is stopped before B's starts, and the other way round.

unset DM_API_KEY
pgA=$HOME/mntA/pgdata
pgB=$HOME/mntB/pgdata
pg_log=$HOME/pglog/postgres.log

test_expect_success 'setup: dmds A and B; PostgreSQL stops before them at exit' '
	servers_init A B &&
	pg_cleanup_at_exit
'

test_expect_success 'on A: initdb into a dot, 3 rows, a clean stop, a commit' '
	pgdata=$pgA &&
	dmA init pg &&
	dmA mount pg mntA &&
	mkdir -m 700 mntA/pgdata &&
	mkdir pglog &&
	if test_have_root; then
		chown "$pg_user:" mntA/pgdata pglog "$pg_sock"
	fi &&
	pg initdb -D "$pgdata" -U "$pg_user" --auth=trust -E UTF8 --locale=C --no-sync >initdb.out &&
	pg_start &&
	sql "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL);
		INSERT INTO t VALUES (1, '\''one'\''), (2, '\''two'\''), (3, '\''three'\'')" &&
	expect_rows 3 &&
	pg_stop &&
	dmA commit --dot pg -m "3 rows" >/dev/null
'

test_expect_success 'dm clone to B copies the data directory with its owners and modes' '
	dmB clone a pg >out &&
	log_ids dmA log --dot pg >expect && log_ids dmB log --dot pg >actual &&
	test_cmp expect actual &&
	dmB mount pg mntB &&
	pgdata=$pgB && expect_pg_owner &&
	diff -r mntA/ mntB/
'

test_expect_success 'PostgreSQL starts on B'\''s clone and finds exactly the 3 rows' '
	pgdata=$pgB &&
	pg_start &&
	expect_rows 3 &&
	sql "INSERT INTO t VALUES (4, '\''four'\''), (5, '\''five'\'')" &&
	expect_rows 5 &&
	pg_stop &&
	dmB commit --dot pg -m "5 rows" >/dev/null
'

test_expect_success 'A pulls the 5 rows back, and its PostgreSQL finds them' '
	dmA pull b pg >out &&
	grep "pulled 1 commit" out &&
	pgdata=$pgA && expect_pg_owner &&
	pg_start &&
	expect_rows 5 &&
	pg_stop
'

test_done
