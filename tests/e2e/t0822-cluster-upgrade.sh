#!/usr/bin/env bash
test_description='dm cluster upgrade: every node'\''s version beside this dm'\''s, what to do, and a failing status while they differ'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-etcd.sh"
. "$TEST_DIRECTORY/lib-cluster.sh"

version=$(dmd --version | cut -d" " -f2)

test_expect_success 'setup: two nodes on etcd' '
	etcd_cluster_start "$HOME/etcd" 1 &&
	nodes_init N1 N2
'

test_expect_success 'all nodes run this version: nothing to do, status 0' '
	dmN1 cluster upgrade >out &&
	test $(grep -c " up  *$version  *none$" out) = 2 &&
	grep "^All 2 nodes run dm $version, as this dm: nothing to do.$" out
'

test_expect_success 'a node recorded with an older version is to be upgraded, and the status says so' '
	n2=$(dmN2 cluster status -H | awk "\$1 == \"*\" { print \$2 }") && test -n "$n2" &&
	etcdctl --endpoints "$ETCD_ENDPOINTS" get --print-value-only "/dm/nodes/$n2" >rec &&
	python3 -c "import json, sys; d = json.load(open(\"rec\")); d[\"version\"] = \"0.0.9\"; print(json.dumps(d))" >old &&
	etcdctl --endpoints "$ETCD_ENDPOINTS" put "/dm/nodes/$n2" "$(cat old)" >/dev/null &&
	test_status 11 dmN1 cluster upgrade >out &&
	grep "^$n2 .* 0\.0\.9 *upgrade: install this version there" out &&
	grep "1 of 2 nodes run an older dm than this one ($version), 0 a newer one" err &&
	grep "one node at a time" out
'

test_expect_success 'and one recorded with a newer version says to upgrade dm here' '
	sed "s/\"0\.0\.9\"/\"99.0.0\"/" old >new &&
	etcdctl --endpoints "$ETCD_ENDPOINTS" put "/dm/nodes/$n2" "$(cat new)" >/dev/null &&
	test_status 11 dmN1 cluster upgrade >out &&
	grep "^$n2 .* 99\.0\.0 *newer than this dm" out &&
	grep "0 of 2 nodes run an older dm than this one ($version), 1 a newer one" err
'

test_expect_success 'a data directory of a newer format is refused, not misread, and opens again as it was' '
	dmN2 cluster stop >/dev/null &&
	cp "$HOME/N2/config.json" config.saved &&
	python3 -c "import json; p = \"$HOME/N2/config.json\"; d = json.load(open(p)); d[\"format\"] = 2; json.dump(d, open(p, \"w\"))" &&
	test_must_fail dmN2 cluster start 2>err &&
	grep "has format 2, newer than this dm reads (1): run a newer dm" err &&
	cp config.saved "$HOME/N2/config.json" &&
	dmN2 cluster start >/dev/null && dmN2 list >/dev/null
'

test_done
