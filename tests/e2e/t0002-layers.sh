#!/usr/bin/env bash
test_description='layers: includes point one way (docs/internals/layout.md)'
. "$(dirname "$0")/test-lib.sh"

check=$DM_SOURCE_DIR/scripts/check-layers.sh

# A tiny tree with one file in each of two layers, each including only
# what it may.
make_tree() {
	rm -rf tree &&
	mkdir -p tree/src/util tree/src/store tree/src/server/dots tree/src/server/api tree/src/cli &&
	printf "#include <stdio.h>\n" >tree/src/util/u.h &&
	printf "#include \"util/u.h\"\n" >tree/src/store/s.c &&
	printf "#include \"store/s.h\"\n#include \"server/dots/d.h\"\n" >tree/src/server/api/a.c &&
	printf "#include \"kv/kv.h\"\n" >tree/src/server/dots/d.c &&
	printf "#include \"server/api/api.h\"\n#include \"server/dots/dot.h\"\n" >tree/src/server/main.c &&
	printf "#include \"client/client.h\"\n" >tree/src/cli/c.c
}

test_expect_success 'the source tree keeps its layers' '
	"$check" "$DM_SOURCE_DIR"
'

test_expect_success 'a tree whose includes point down passes' '
	make_tree &&
	"$check" tree
'

test_expect_success 'the store including the server fails' '
	make_tree &&
	printf "#include \"util/u.h\"\n#include \"server/api/rpc.h\"\n" >tree/src/store/s.c &&
	test_must_fail "$check" tree 2>err &&
	grep "src/store/s.c:2: layer .store. may not include .server/api/rpc.h." err
'

test_expect_success 'a lower subsystem of dmd including a higher one fails' '
	make_tree &&
	printf "#include \"server/cluster/cluster.h\"\n" >tree/src/server/dots/d.c &&
	test_must_fail "$check" tree 2>err &&
	grep "src/server/dots/d.c:1: layer .server/dots. may not include .server/cluster/cluster.h." err
'

test_expect_success 'a subsystem including the process fails' '
	make_tree &&
	printf "#include \"server/server.h\"\n" >tree/src/server/api/a.c &&
	test_must_fail "$check" tree 2>err &&
	grep "src/server/api/a.c:1: layer .server/api. may not include .server/server.h. (layer .server.)" err
'

test_expect_success 'a subsystem naming struct dm_server fails' '
	make_tree &&
	printf "struct dm_server;\nint f(struct dm_server *s);\n" >>tree/src/server/dots/d.c &&
	test_must_fail "$check" tree 2>err &&
	grep "src/server/dots/d.c:2: layer .server/dots. may not use struct dm_server" err &&
	grep "src/server/dots/d.c:3: layer .server/dots. may not use struct dm_server" err
'

test_expect_success 'the CLI including the server fails' '
	make_tree &&
	printf "#include \"server/dots/dot.h\"\n" >tree/src/cli/c.c &&
	test_must_fail "$check" tree 2>err &&
	grep "src/cli/c.c:1: layer .cli. may not include" err
'

test_expect_success 'a folder the table does not know fails' '
	make_tree &&
	mkdir -p tree/src/newthing &&
	printf "int x;\n" >tree/src/newthing/n.c &&
	test_must_fail "$check" tree 2>err &&
	grep "src/newthing/n.c:1: is in no layer" err
'

test_done
