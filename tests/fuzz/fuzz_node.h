/*
 * fuzz_node.h - one dmd's worth of real parts for the fuzz targets that
 * need them (an LMDB KV, a store, the dir engine, a scheduler and an empty
 * registry, under a fresh directory in /tmp, no HTTP): the unit tests'
 * tests/unit/node_fixture.h, with a failure to open a part aborting
 * instead of failing a cmocka test.
 *
 * Always true: fuzz_node() opens the node on its first call and returns
 * the same one after; it is closed and its directory removed at exit.
 */
#ifndef DM_TESTS_FUZZ_NODE_H
#define DM_TESTS_FUZZ_NODE_H

#include <stdio.h>
#include <stdlib.h>

#include "util/log.h"

#define fail_msg(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), abort())
#include "../unit/node_fixture.h"
#undef fail_msg

static struct test_node fuzz_node_parts;

static void fuzz_node_close(void)
{
	test_node_close(&fuzz_node_parts);
}

static inline struct test_node *fuzz_node(void)
{
	if (!fuzz_node_parts.kv) {
		struct dm_sched_opts so = {0, 0, 2, 2};

		/* refusals are logged; they are not what is fuzzed */
		FILE *null = fopen("/dev/null", "w");

		dm_log_setup(null, DM_LOG_ERROR);
		test_node_open(&fuzz_node_parts, "fuzz", &so, 64u << 20);
		atexit(fuzz_node_close);
	}
	return &fuzz_node_parts;
}

#endif
