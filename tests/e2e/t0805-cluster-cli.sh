#!/usr/bin/env bash
test_description='dm cluster status, join-token and join on one node: what they show and what a user can get wrong'
. "$(dirname "$0")/test-lib.sh"

data="$TRASH_DIRECTORY/data"
port=$(test_free_port)
export DM_CONFIG="$TRASH_DIRECTORY/config"

test_atexit 'dm cluster stop --data-dir "$data" >/dev/null 2>&1'

test_expect_success 'a single node is a cluster of one on the embedded KV, and is up' '
	dm cluster init --data-dir "$data" --port "$port" >out &&
	! grep "join" out &&
	dm cluster status >out &&
	grep "^Cluster [0-9a-f-]\{36\} (kv lmdb)" out &&
	grep "^\* *[0-9a-f-]\{36\} *https://127.0.0.1:$port *up " out &&
	dm cluster status -H >raw &&
	test $(wc -l <raw) = 1 &&
	dm cluster status --json >json &&
	python3 -c "import json,sys; d=json.load(open(\"json\")); n=d[\"nodes\"]; assert len(n)==1 and n[0][\"alive\"] and n[0][\"self\"] and d[\"kv\"]==\"lmdb\""
'

test_expect_success 'the cluster id stays across a restart' '
	id=$(dm cluster status --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"cluster\"])") &&
	dm cluster stop --data-dir "$data" >/dev/null &&
	dm cluster start --data-dir "$data" >/dev/null &&
	dm cluster status >out &&
	grep "^Cluster $id " out &&
	grep " up " out
'

test_expect_success 'an embedded-KV node takes no other nodes: join-token says why' '
	test_must_fail dm cluster join-token 2>err &&
	one_error "embedded KV.*--kv etcd"
'

test_expect_success 'join refuses what is not a token, before touching anything' '
	test_must_fail dm cluster join hello --data-dir "$TRASH_DIRECTORY/n2" 2>err &&
	one_error "not a join token.*dm cluster join-token" &&
	test ! -e "$TRASH_DIRECTORY/n2" &&
	test_must_fail dm cluster join "dmj1.@@@" --data-dir "$TRASH_DIRECTORY/n2" --port $(test_free_port) 2>err &&
	one_error "damaged" &&
	test ! -e "$TRASH_DIRECTORY/n2/config.json" &&
	test_must_fail dm cluster join --data-dir "$TRASH_DIRECTORY/n2" 2>err &&
	one_error "needs TOKEN" &&
	echo "dmj1.@@@" | test_must_fail dm cluster join - --data-dir "$TRASH_DIRECTORY/n2" --port $(test_free_port) 2>err &&
	one_error "damaged" &&
	test_must_fail dm cluster join - --data-dir "$TRASH_DIRECTORY/n2" </dev/null 2>err &&
	one_error "no join token on standard input" &&
	test ! -e "$TRASH_DIRECTORY/n2/config.json"
'

test_expect_success 'kv options that do not fit are refused with the fix' '
	test_must_fail dm cluster init --kv zookeeper --data-dir "$TRASH_DIRECTORY/n3" 2>err &&
	one_error "unknown kv .zookeeper.: use lmdb or etcd" &&
	test_must_fail dm cluster init --etcd-endpoints http://127.0.0.1:1 --data-dir "$TRASH_DIRECTORY/n3" --port $(test_free_port) 2>err &&
	one_error "is for --kv etcd" &&
	test_must_fail dm cluster init --advertise 10.0.0.1 --data-dir "$TRASH_DIRECTORY/n3" --port $(test_free_port) 2>err &&
	one_error "invalid --advertise.*https://" &&
	test_must_fail dm cluster status --kv etcd 2>err &&
	one_error "unknown option" &&
	test_must_fail dm cluster join-token extra 2>err &&
	one_error "too many arguments"
'

test_expect_success 'etcd that does not answer: init says so and leaves nothing' '
	dead=$(test_free_port) &&
	test_must_fail dm cluster init --kv etcd --etcd-endpoints "http://127.0.0.1:$dead" \
		--data-dir "$TRASH_DIRECTORY/n4" --port $(test_free_port) 2>err &&
	one_error "etcd" &&
	test ! -e "$TRASH_DIRECTORY/n4/config.json"
'

test_done
