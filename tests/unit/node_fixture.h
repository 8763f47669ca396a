/*
 * node_fixture.h - one dmd's worth of real parts for unit tests that run
 * dots: an LMDB KV, a store, the dir engine, a scheduler and the registry,
 * all under a fresh directory in /tmp, without HTTP. test_dot and
 * test_plugin include it; it fails the running cmocka test when a part
 * cannot be opened.
 *
 * Always true after test_node_open: every field is set; test_node_close
 * frees them in the reverse order and removes the directory.
 */
#ifndef DM_TESTS_NODE_FIXTURE_H
#define DM_TESTS_NODE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "engine/engine.h"
#include "kv/kv.h"
#include "server/dots/dot.h"
#include "server/dots/registry.h"
#include "store/store.h"
#include "util/fsutil.h"

struct test_node {
	char dir[64];
	struct dm_kv *kv;
	struct dm_store *store;
	struct dm_engine *engine;
	struct dm_sched *sched;
	struct dm_registry *reg;
};

/* (Re)opens n's registry over its KV, store, engine and scheduler, as a
 * dmd does when it starts. */
static inline void test_node_open_registry(struct test_node *n)
{
	struct dm_dot_env env = {.kv = n->kv,
				 .store = n->store,
				 .engine = n->engine,
				 .sched = n->sched,
				 .server = "test"};
	struct dm_err err;

	if (dm_registry_open(&n->reg, &env, &err))
		fail_msg("registry: %s", err.msg);
}

/* Opens a node in a new directory /tmp/dm-test-NAME-XXXXXX, its scheduler
 * made with so and its KV's map starting at kv_map_size bytes (no fsync:
 * tests do not crash the machine). */
static inline void test_node_open(struct test_node *n, const char *name,
				  const struct dm_sched_opts *so, size_t kv_map_size)
{
	struct dm_kv_lmdb_opts ko;
	struct dm_store_opts sto;
	struct dm_err err;
	char path[128];

	memset(n, 0, sizeof(*n));
	snprintf(n->dir, sizeof(n->dir), "/tmp/dm-test-%s-XXXXXX", name);
	if (!mkdtemp(n->dir))
		fail_msg("cannot make a directory for the node");
	dm_kv_lmdb_opts_default(&ko);
	ko.sync = false;
	ko.map_size = kv_map_size;
	snprintf(path, sizeof(path), "%s/kv", n->dir);
	if (dm_kv_open_lmdb_opts(&n->kv, path, &ko, &err))
		fail_msg("kv: %s", err.msg);
	dm_store_opts_default(&sto);
	sto.sync = false;
	snprintf(path, sizeof(path), "%s/store", n->dir);
	if (dm_store_open(&n->store, path, &sto, &err))
		fail_msg("store: %s", err.msg);
	snprintf(path, sizeof(path), "%s/dots", n->dir);
	if (dm_engine_open(&n->engine, "dir", path, n->store, &err))
		fail_msg("engine: %s", err.msg);
	if (dm_sched_new(&n->sched, so, &err))
		fail_msg("sched: %s", err.msg);
	test_node_open_registry(n);
}

static inline void test_node_close(struct test_node *n)
{
	dm_registry_free(n->reg);
	dm_sched_free(n->sched);
	dm_engine_free(n->engine);
	dm_store_free(n->store);
	dm_kv_free(n->kv);
	dm_remove_tree(n->dir, NULL);
}

#endif
