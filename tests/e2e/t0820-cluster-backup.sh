#!/usr/bin/env bash
test_description='dm cluster backup FILE and dm cluster restore FILE: the cluster state (users and their keys, dots'\''s names, records, branches, forks) on the embedded KV and on etcd, restored after the KV is lost (etcd'\''s data wiped), into a new cluster after the dots were pushed there (dotmesh'\''s way), and across KV backends'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"
. "$TEST_DIRECTORY/lib-etcd.sh"

# What this proves: a backup is one document of the cluster's state, for
# admins only, mode 0600; a restore refuses a running node; after the KV
# is gone (lmdb's directory moved away, etcd's data directory wiped), the
# same data directory restored gets every user back with its key, every
# dot with its branches, owner, collaborators and fork origin, and goes on
# (commits, pushes); a new cluster the dots were pushed to gets their
# records back and the users; a dot whose commits are not on the node is
# left out and said; a backup of the embedded KV restores into etcd.

unset DM_API_KEY

test_expect_success 'setup: dmd A (embedded KV) with users, dots, a collaborator, a fork' '
	servers_init A B &&
	dmA user add bob >bob.key 2>/dev/null &&
	dmA user add alice --expires 30d >alice.key 2>/dev/null &&
	user_remote A bob bob A bob.key &&
	dmA init shop && dmA mount shop shopA && echo apples >shopA/stock &&
	dmA commit -m one >/dev/null && echo pears >>shopA/stock && dmA commit -m two >/dev/null &&
	dmA checkout -b b1 && echo kiwis >>shopA/stock && dmA commit -m three >/dev/null &&
	dmA checkout master &&
	dmA dot add-collaborator shop bob --role read &&
	dmA --remote bob init bob/tools && dmA --remote bob mount bob/tools toolsA &&
	echo hammer >toolsA/list && dmA --remote bob commit --dot bob/tools -m tools >/dev/null &&
	dmA --remote bob dot fork shop myshop >/dev/null &&
	log_ids dmA log --dot shop >shop.ids &&
	dot_id dmA dot show shop >shop.id
'

test_expect_success 'dm cluster backup: admins only; one document, mode 0600, the same on stdout' '
	test_must_fail dmA --remote bob cluster backup nope.json 2>err &&
	grep "needs an admin" err && ! test -e nope.json &&
	dmA cluster backup backup.json 2>out &&
	grep "^Backed up cluster .* (lmdb, revision [0-9]*): 3 users, 3 dots, to backup.json$" out &&
	test "$(stat -c %a backup.json)" = 600 &&
	python3 -c "import json; b = json.load(open(\"backup.json\"))
assert b[\"format\"] == \"dm-cluster-backup\" and b[\"version\"] == 1, b
assert sorted(u[\"name\"] for u in b[\"users\"]) == [\"admin\", \"alice\", \"bob\"]
assert sorted(d[\"namespace\"] + \"/\" + d[\"name\"] for d in b[\"dots\"]) == [\"admin/shop\", \"bob/myshop\", \"bob/tools\"]
shop = [d for d in b[\"dots\"] if d[\"name\"] == \"shop\"][0]
assert sorted(shop[\"branches\"]) == [\"b1\", \"master\"], shop
assert shop[\"record\"][\"collaborators\"] == [{\"user\": \"bob\", \"role\": \"read\"}], shop" &&
	dmA cluster backup - >stdout.json &&
	python3 -c "import json; a = json.load(open(\"backup.json\")); b = json.load(open(\"stdout.json\"))
del a[\"created\"], b[\"created\"]
assert a == b"
'

test_expect_success 'a restore refuses a running node' '
	test_must_fail dmA cluster restore backup.json 2>err &&
	grep "dmd is already running" err
'

test_expect_success 'the embedded KV lost: restored into the same data directory, everything is back' '
	dmA cluster stop >/dev/null &&
	mv A/kv kv.lost &&
	dmA cluster restore backup.json >out &&
	grep "^Restored 3 users (0 there already, kept), 3 dots, the records of 0 dots here already, 0 volume aliases$" out &&
	dmA cluster start >/dev/null &&
	dmA --remote bob list -H | cut -f 1 >names &&
	printf "shop\nbob/myshop\nbob/tools\n" | sort >expect && sort names >got && test_cmp expect got &&
	test "$(log_ids dmA log --dot shop)" = "$(cat shop.ids)" &&
	test "$(dot_id dmA dot show shop)" = "$(cat shop.id)" &&
	dmA branch --dot shop | grep b1 &&
	dmA dot show shop | grep "^collaborators: *bob (read)$" &&
	dmA dot show bob/myshop | grep "^forked from: *admin/shop at " &&
	dmA user list >users && grep "^alice  *no  *20" users &&
	echo more >>shopA/stock && dmA commit -m four >/dev/null &&
	dmA push b shop >/dev/null
'

test_expect_success 'a new cluster the dots were pushed to: their records and the users come back; a dot not there is left out' '
	dmA push b bob/tools --remote-name bob/tools >/dev/null &&
	dmB dot show shop | grep "^collaborators: *none$" &&
	dmA cluster backup backup2.json 2>/dev/null &&
	dmB cluster stop >/dev/null &&
	dmB cluster restore backup2.json >out &&
	grep "^Restored 2 users (1 there already, kept), 0 dots, the records of 2 dots here already" out &&
	grep "^Left out dot .bob/myshop.: the head of its branch .[a-z0-9]*. (.*) is not in this node.s store: push the dot here" out &&
	dmB cluster start >/dev/null &&
	dmB dot show shop | grep "^collaborators: *bob (read)$" &&
	user_remote B bobB bob B bob.key &&
	dmB --remote bobB list -H | cut -f 1 | sort >got &&
	printf "bob/tools\nshop\n" >expect && test_cmp expect got &&
	dmB list -H | cut -f 1 | grep -x shop
'

test_expect_success 'etcd: a node on etcd, its state backed up; etcd'\''s data wiped, the node cannot start; restored, it goes on' '
	etcd_cluster_start "$HOME/etcd" 1 &&
	port_E=$(test_free_port) &&
	dmE() { DM_CONFIG=$HOME/confE dm "$@"; } &&
	test_atexit "dmd stop --data-dir '\''$HOME/E'\'' >/dev/null 2>&1" &&
	dmE cluster init --kv etcd --etcd-endpoints "$ETCD_ENDPOINTS" --data-dir "$HOME/E" \
		--port "$port_E" --no-plugin >/dev/null 2>&1 &&
	dmE user add carol >carol.key 2>/dev/null &&
	dmE init lab && dmE mount lab labE &&
	echo sample >labE/s && dmE commit -m s1 >/dev/null &&
	dmE checkout -b exp && echo x >>labE/s && dmE commit -m s2 >/dev/null && dmE checkout master &&
	dmE dot add-collaborator lab carol &&
	log_ids dmE log --dot lab >lab.ids &&
	dmE cluster backup etcd.json 2>out && grep "(etcd, revision" out &&
	dmE cluster stop >/dev/null &&
	etcd_member_kill 0 && rm -rf "$HOME/etcd/m0" && etcd_member_restart 0 &&
	test_must_fail dmE cluster start 2>err && grep "holds no dm cluster" err &&
	dmE cluster restore etcd.json >out &&
	grep "^Restored 2 users (0 there already, kept), 1 dots" out &&
	dmE cluster start >/dev/null &&
	test "$(log_ids dmE log --dot lab)" = "$(cat lab.ids)" &&
	dmE branch --dot lab | grep exp &&
	dmE dot show lab | grep "^collaborators: *carol (write)$" &&
	DM_API_KEY=$(cat carol.key) dmE remote add carol "carol@127.0.0.1:$port_E" --ca-file "$HOME/E/ca.pem" >/dev/null &&
	echo by-carol >>labE/s && dmE --remote carol commit --dot lab -m by-carol >/dev/null &&
	dmE log --dot lab | grep by-carol &&
	dmE cluster status -H | grep "	up	"
'

test_expect_success 'across backends: the embedded KV'\''s backup restores into the node on etcd (users, and the records of the dots pushed there)' '
	DM_API_KEY=$(cat "$HOME/E/admin-api-key") dmA remote add e "admin@127.0.0.1:$port_E" --ca-file "$HOME/E/ca.pem" >/dev/null &&
	dmA push e shop >/dev/null &&
	dmE cluster stop >/dev/null &&
	dmE cluster restore backup.json >out &&
	grep "^Restored 2 users (1 there already, kept), 0 dots, the records of 1 dots here already" out &&
	dmE cluster start >/dev/null &&
	dmE dot show shop | grep "^collaborators: *bob (read)$" &&
	user_remote A bobE bob E bob.key &&
	dmA --remote bobE list -H | cut -f 1 | grep -x shop
'

test_done
