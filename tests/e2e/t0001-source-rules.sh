#!/usr/bin/env bash
test_description='source rules: opening comment, banned.h last, no banned calls; includes point one way; CI runs the README test command'
. "$(dirname "$0")/test-lib.sh"

check=$DM_SOURCE_DIR/scripts/check-source.sh

# A tiny tree with the real banned.h and one good file in it.
make_tree() {
	rm -rf tree &&
	mkdir -p tree/src/util tree/src/store tree/tests/unit tree/tests/e2e &&
	cp "$DM_SOURCE_DIR/src/util/banned.h" tree/src/util/ &&
	cat >tree/src/store/good.c <<-\EOF
	/*
	 * good.c - follows every rule.
	 */
	#include <stdio.h>

	#include "util/banned.h"

	int good(char *out, size_t n);
	int good(char *out, size_t n)
	{
		return snprintf(out, n, "%s", "ok");
	}
	EOF
}

test_expect_success 'the source tree follows the rules' '
	"$check" "$DM_SOURCE_DIR"
'

test_expect_success 'a tree that follows the rules passes' '
	make_tree &&
	echo "int x;" >tree/tests/e2e/ignored.c &&
	"$check" tree
'

test_expect_success 'a .c file without an opening comment fails' '
	make_tree &&
	sed 1d tree/src/store/good.c >tree/tests/unit/test_nocomment.c &&
	test_must_fail "$check" tree 2>err &&
	grep "tests/unit/test_nocomment.c:1: does not open with a /\* comment" err
'

test_expect_success 'banned.h not included last fails' '
	make_tree &&
	sed "s|#include \"util/banned.h\"|#include \"util/banned.h\"\n#include <string.h>|" \
		tree/src/store/good.c >tree/src/store/late.c &&
	test_must_fail "$check" tree 2>err &&
	grep "src/store/late.c:[0-9]*: last #include is not" err &&
	test_must_fail grep -v "^src/store/late.c" err
'

test_expect_success 'banned.h missing fails' '
	make_tree &&
	grep -v banned.h tree/src/store/good.c >tree/src/store/none.c &&
	test_must_fail "$check" tree 2>err &&
	grep "src/store/none.c:1: does not #include \"util/banned.h\"" err
'

test_expect_success 'a banned call in src fails, a mere mention does not' '
	make_tree &&
	cat >tree/src/store/util.h <<-\EOF &&
	/* we use snprintf, never sprintf or strcpy: see banned.h */
	#define COPY(d, s) strcpy(d, s)
	EOF
	test_must_fail "$check" tree 2>err &&
	grep "src/store/util.h:2: calls a function banned" err &&
	test_must_fail grep "util.h:1:" err &&
	sed "s/snprintf(out, n, /sprintf(out, /" tree/src/store/good.c >tree/src/store/bad.c &&
	rm tree/src/store/util.h &&
	test_must_fail "$check" tree 2>err &&
	grep "src/store/bad.c:[0-9]*: calls a function banned" err
'

ci_check=$DM_SOURCE_DIR/scripts/check-ci.sh

# A copy of the README and of .ci/run, for the check to read.
make_ci_tree() {
	rm -rf citree &&
	mkdir -p citree/.ci &&
	cp "$DM_SOURCE_DIR/README.md" citree/ &&
	cp "$DM_SOURCE_DIR/.ci/run" citree/.ci/
}

test_expect_success '.ci/run runs exactly the test command the README names' '
	"$ci_check" "$DM_SOURCE_DIR" &&
	sed -n "/^## Run the tests$/,/^## /p" "$DM_SOURCE_DIR/README.md" >section &&
	grep -x "make test" section &&
	grep -x "make test" "$DM_SOURCE_DIR/.ci/run"
'

test_expect_success 'a .ci/run that runs another command fails the check' '
	make_ci_tree &&
	"$ci_check" citree &&
	sed -i "s/^make test$/make unit/" citree/.ci/run &&
	test_must_fail "$ci_check" citree 2>err &&
	grep "runs '\''make unit'\'', the README'\''s test command is '\''make test'\''" err
'

test_expect_success 'a README that names another command fails the check' '
	make_ci_tree &&
	sed -i "/^## Run the tests$/,/^## /s/^make test$/make e2e/" citree/README.md &&
	test_must_fail "$ci_check" citree 2>err &&
	grep "the README'\''s test command is '\''make e2e'\''" err
'

test_expect_success 'a second command in .ci/run, or no README section, fails the check' '
	make_ci_tree &&
	echo "make bench" >>citree/.ci/run &&
	test_must_fail "$ci_check" citree 2>err &&
	grep "2 command lines, not one" err &&
	make_ci_tree &&
	sed -i "s/^## Run the tests$/## Testing/" citree/README.md &&
	test_must_fail "$ci_check" citree 2>err &&
	grep "no command under" err
'

layers_check=$DM_SOURCE_DIR/scripts/check-layers.sh

# Layers (scripts/check-layers.sh, docs/internals/layout.md): a tiny tree
# with one file in each of a few layers, each including only
# what it may.
make_layers_tree() {
	rm -rf ltree &&
	mkdir -p ltree/src/util ltree/src/store ltree/src/server/dots ltree/src/server/api ltree/src/cli &&
	printf "#include <stdio.h>\n" >ltree/src/util/u.h &&
	printf "#include \"util/u.h\"\n" >ltree/src/store/s.c &&
	printf "#include \"store/s.h\"\n#include \"server/dots/d.h\"\n" >ltree/src/server/api/a.c &&
	printf "#include \"kv/kv.h\"\n" >ltree/src/server/dots/d.c &&
	printf "#include \"server/api/api.h\"\n#include \"server/dots/dot.h\"\n" >ltree/src/server/main.c &&
	printf "#include \"client/client.h\"\n" >ltree/src/cli/c.c
}

test_expect_success 'the source tree keeps its layers' '
	"$layers_check" "$DM_SOURCE_DIR"
'

test_expect_success 'a tree whose includes point down passes' '
	make_layers_tree &&
	"$layers_check" ltree
'

test_expect_success 'the store including the server fails' '
	make_layers_tree &&
	printf "#include \"util/u.h\"\n#include \"server/api/rpc.h\"\n" >ltree/src/store/s.c &&
	test_must_fail "$layers_check" ltree 2>err &&
	grep "src/store/s.c:2: layer .store. may not include .server/api/rpc.h." err
'

test_expect_success 'a lower subsystem of dmd including a higher one fails' '
	make_layers_tree &&
	printf "#include \"server/cluster/cluster.h\"\n" >ltree/src/server/dots/d.c &&
	test_must_fail "$layers_check" ltree 2>err &&
	grep "src/server/dots/d.c:1: layer .server/dots. may not include .server/cluster/cluster.h." err
'

test_expect_success 'a subsystem including the process fails' '
	make_layers_tree &&
	printf "#include \"server/server.h\"\n" >ltree/src/server/api/a.c &&
	test_must_fail "$layers_check" ltree 2>err &&
	grep "src/server/api/a.c:1: layer .server/api. may not include .server/server.h. (layer .server.)" err
'

test_expect_success 'a subsystem naming struct dm_server fails' '
	make_layers_tree &&
	printf "struct dm_server;\nint f(struct dm_server *s);\n" >>ltree/src/server/dots/d.c &&
	test_must_fail "$layers_check" ltree 2>err &&
	grep "src/server/dots/d.c:2: layer .server/dots. may not use struct dm_server" err &&
	grep "src/server/dots/d.c:3: layer .server/dots. may not use struct dm_server" err
'

test_expect_success 'the CLI including the server fails' '
	make_layers_tree &&
	printf "#include \"server/dots/dot.h\"\n" >ltree/src/cli/c.c &&
	test_must_fail "$layers_check" ltree 2>err &&
	grep "src/cli/c.c:1: layer .cli. may not include" err
'

test_expect_success 'a folder the table does not know fails' '
	make_layers_tree &&
	mkdir -p ltree/src/newthing &&
	printf "int x;\n" >ltree/src/newthing/n.c &&
	test_must_fail "$layers_check" ltree 2>err &&
	grep "src/newthing/n.c:1: is in no layer" err
'

test_done
