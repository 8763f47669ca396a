#!/usr/bin/env bash
test_description='dm cluster reset: stops dmd, lets go of its mounts, deletes its data directory and forgets its remotes; refused without confirmation and for a directory that is not dm'\''s'
. "$(dirname "$0")/test-lib.sh"

data="$HOME/node"
port=$(test_free_port)
export DM_CONFIG="$HOME/config"

test_atexit 'dmd stop --data-dir "$data" >/dev/null 2>&1
	grep -o " $data/[^ ]*" /proc/mounts | while read -r m; do umount -l "$m"; done 2>/dev/null || :'

test_expect_success 'setup: a node with a dot, a commit and a read-only copy of it mounted' '
	dm cluster init --data-dir "$data" --port "$port" --no-plugin --docker-socket none >/dev/null &&
	dm init shop && dm mount shop shop-link &&
	echo apples >shop-link/stock.txt && dm commit -m first >/dev/null &&
	dm mount shop@HEAD then --read-only >/dev/null &&
	grep -q " $data/" /proc/mounts &&
	cat "$data/dmd.pid" >pid && kill -0 "$(cat pid)"
'

test_expect_success 'without a terminal and without --yes it deletes nothing' '
	test_must_fail dm cluster reset </dev/null 2>err &&
	grep "refusing to delete .*$data.* without --yes" err &&
	test -s "$data/config.json" && kill -0 "$(cat pid)" && dm list >/dev/null
'

test_expect_success 'a directory that is not a dm data directory is refused, its files kept' '
	mkdir other && echo keep >other/file &&
	test_must_fail dm cluster reset --data-dir other --yes 2>err &&
	grep "is not a dm data directory" err &&
	test "$(cat other/file)" = keep
'

test_expect_success 'dm cluster reset --yes stops dmd, unmounts, deletes the directory and its remote' '
	dm cluster reset --yes >out &&
	grep "^Deleted the dm data directory $data$" out &&
	grep "^Removed remote .local.$" out &&
	! test -e "$data" &&
	! kill -0 "$(cat pid)" 2>/dev/null &&
	! grep -q " $data/" /proc/mounts &&
	test_must_fail dm list 2>err && grep "no remote" err
'

test_expect_success 'the same directory can be made a node again' '
	dm cluster init --data-dir "$data" --port "$port" --no-plugin --docker-socket none >/dev/null &&
	dm list -H >list && ! test -s list
'

test_done
