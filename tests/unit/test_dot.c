/*
 * test_dot.c - the dot actor under thousands of seeded interleavings.
 *
 * Each round uses a fresh node (real KV, store and dir engine in a temp
 * dir) and the deterministic scheduler with the round's seed. It creates
 * one dot, then fires a random batch of commit, branch, checkout, reset,
 * diff, refresh (what `list` sends), expire, delete-branch, prune and
 * delete requests, interleaved with
 * a random number of scheduler steps between them and with garbage
 * collections (the space actor's job, which lets the others run while it
 * waits for their holds and while it marks), and runs until idle.
 *
 * Invariants checked every round:
 *   - every request is answered exactly once, with a real answer (never
 *     "dropped without an answer" or an internal error);
 *   - once deleted, nothing of the dot remains (no working copy, no KV
 *     record, no commit index entry): no operation acted on the deleted dot;
 *   - a dot that was not deleted is consistent: its branch heads in the KV
 *     are its view's heads, each head's commit is in the store and never
 *     pruned, and so is every commit record of its history;
 *   - a collection never freed what a commit, branch or reset of the dot
 *     wrote or needed meanwhile: the store verifies (every indexed commit
 *     has all it names);
 *   - nothing leaks (the test runs under ASan in CI).
 * A failing round prints its seed, which replays it exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actor/actor.h"
#include "engine/engine.h"
#include "kv/kv.h"
#include "server/dots/access.h"
#include "server/dots/dot.h"
#include "server/dots/registry.h"
#include "server/space/space.h"
#include "store/object.h"
#include "store/store.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "node_fixture.h"

#include "util/banned.h"

#define MAX_REQS 12

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void node_open(struct test_node *n, uint64_t seed)
{
	struct dm_sched_opts so = {1, seed, 0, 0};

	test_node_open(n, "dot", &so, 1u << 20);
}

/* Waits (by stepping) for a ticket's answer; returns its status. */
static int settle(struct test_node *n, struct dm_ticket *t, struct dm_msg **reply)
{
	struct dm_err err;

	assert_int_equal(dm_sched_run_until_idle(n->sched, -1), 0);
	return dm_ticket_wait(reply, t, 0, &err);
}

static struct dm_dot_handle *create_dot(struct test_node *n, const char *name)
{
	struct dm_dot_name dn;
	struct dm_ticket *t = NULL;
	struct dm_msg *reply = NULL;
	struct dm_registry_snap *snap;
	const struct dm_registry_entry *e;
	struct dm_dot_handle *h;
	int rc;

	assert_int_equal(dm_dot_name_parse(&dn, name, NULL), 0);
	dm_registry_create_send(n->reg, &t, &dn, NULL);
	rc = settle(n, t, &reply);
	if (rc)
		fail_msg("create: %d %s", rc, reply && reply->detail ? reply->detail : "");
	dm_msg_free(reply);
	dm_ticket_free(t);
	snap = dm_registry_snapshot(n->reg);
	e = dm_registry_find(snap, &dn);
	assert_non_null(e);
	h = e->dot;
	dm_dot_handle_ref(h);
	dm_registry_snap_unref(snap);
	return h;
}

static void write_file(struct test_node *n, const char *dot_id, const char *branch, const char *name,
		       const char *content)
{
	struct dm_buf path = DM_BUF_INIT;
	struct dm_err err;
	char file[512];
	int fd;

	if (dm_engine_path(n->engine, dot_id, branch, &path, &err))
		return; /* the branch may be gone: that is fine */
	snprintf(file, sizeof(file), "%s/%s", (const char *)path.data, name);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		assert_int_equal(dm_write_all(fd, content, strlen(content)), 0);
		close(fd);
	}
	dm_buf_release(&path);
}

static struct dm_dot_req *random_req(int *is_delete)
{
	static const char *branches[] = {"b1", "b2", "master"};
	static const char *refs[] = {"HEAD", "HEAD^", "HEAD~2", "zzzz"};
	int kind = (int)(rnd() % 11);
	struct dm_dot_req *r;

	*is_delete = 0;
	switch (kind) {
	case 0:
	case 1:
		r = dm_dot_req_new(DM_DOT_OP_COMMIT);
		r->message = dm_xstrdup("a commit");
		r->author = dm_xstrdup("test");
		return r;
	case 2:
		r = dm_dot_req_new(DM_DOT_OP_BRANCH);
		r->branch = dm_xstrdup(branches[rnd() % 2]);
		return r;
	case 3:
		r = dm_dot_req_new(DM_DOT_OP_CHECKOUT);
		r->branch = dm_xstrdup(branches[rnd() % 3]);
		r->create = rnd() % 2;
		return r;
	case 4:
		r = dm_dot_req_new(DM_DOT_OP_RESET);
		r->from = dm_xstrdup(refs[rnd() % 4]);
		return r;
	case 5:
		r = dm_dot_req_new(DM_DOT_OP_DIFF);
		return r;
	case 6:
		return dm_dot_req_new(DM_DOT_OP_REFRESH);
	case 7:
		/* forgets every commit no branch reaches, whatever resets dropped */
		r = dm_dot_req_new(DM_DOT_OP_EXPIRE);
		r->expire_before_ns = INT64_MAX;
		return r;
	case 8:
		r = dm_dot_req_new(DM_DOT_OP_DELETE_BRANCH);
		r->branch = dm_xstrdup(branches[rnd() % 3]);
		r->force = rnd() % 2;
		return r;
	case 9:
		/* keeps each branch's last one or two commits: the rest pruned */
		r = dm_dot_req_new(DM_DOT_OP_PRUNE);
		r->keep.n[DM_KEEP_LAST] = 1 + (int64_t)(rnd() % 2);
		r->dry_run = rnd() % 4 == 0;
		return r;
	default:
		*is_delete = 1;
		return dm_dot_req_new(DM_DOT_OP_DELETE);
	}
}

static int count_keys(struct dm_kv *kv, const char *prefix)
{
	struct dm_kv_kvs l;
	int n;

	dm_kv_kvs_init(&l);
	assert_int_equal(dm_kv_range(kv, &l, prefix, 0, NULL), 0);
	n = (int)l.len;
	dm_kv_kvs_release(&l);
	return n;
}

static void check_deleted(struct test_node *n, const char *id, uint64_t seed)
{
	char path[256], prefix[128];
	struct stat st;
	char **ids = NULL;
	size_t nids = 0;

	snprintf(path, sizeof(path), "%s/dots/%s", n->dir, id);
	if (stat(path, &st) == 0)
		fail_msg("seed %llu: working copies of the deleted dot remain",
			 (unsigned long long)seed);
	snprintf(prefix, sizeof(prefix), DM_KV_DOTS "%s", id);
	if (count_keys(n->kv, prefix) || count_keys(n->kv, DM_KV_NAMES))
		fail_msg("seed %llu: KV records of the deleted dot remain",
			 (unsigned long long)seed);
	assert_int_equal(dm_store_commit_find(n->store, id, "", 10, &ids, &nids, NULL), 0);
	for (size_t i = 0; i < nids; i++)
		free(ids[i]);
	free(ids);
	if (nids)
		fail_msg("seed %llu: %zu commits of the deleted dot remain in the index",
			 (unsigned long long)seed, nids);
}

/* Every commit on head's first-parent line is indexed and stored (an
 * EXPIRE forgot none that a branch reaches). */
static void check_history(struct test_node *n, const char *dot, const char *head, uint64_t seed)
{
	char id[DM_COMMIT_ID_LEN_MAX + 1];

	snprintf(id, sizeof(id), "%s", head);
	while (id[0]) {
		struct dm_buf b = DM_BUF_INIT;
		struct dm_commit c;
		dm_oid oid;

		if (dm_store_commit_get(n->store, dot, id, &oid, NULL) ||
		    dm_store_get(n->store, &oid, &b, NULL, NULL) ||
		    dm_commit_decode(&c, b.data, b.len, NULL))
			fail_msg("seed %llu: commit %s of a branch is not in the store",
				 (unsigned long long)seed, id);
		snprintf(id, sizeof(id), "%s", c.nparents ? c.parents[0] : "");
		dm_commit_release(&c);
		dm_buf_release(&b);
	}
}

static void check_consistent(struct test_node *n, struct dm_dot_handle *h, uint64_t seed)
{
	struct dm_dot_view *v = dm_dot_handle_view(h);
	char key[256];

	assert_int_equal(v->state, DM_DOT_READY);
	assert_non_null(dm_dot_view_branch(v, v->current));
	for (size_t i = 0; i < v->nbranches; i++) {
		struct dm_kv_kv kv;
		char want[256];
		dm_oid oid;

		snprintf(key, sizeof(key), DM_KV_DOTS "%s/branches/%s", v->id, v->branches[i].name);
		dm_kv_kv_init(&kv);
		if (dm_kv_get(n->kv, &kv, key, NULL))
			fail_msg("seed %llu: branch %s not in the KV", (unsigned long long)seed,
				 v->branches[i].name);
		snprintf(want, sizeof(want), "\"head\":\"%s\"", v->branches[i].head);
		if (!strstr(kv.value, want))
			fail_msg("seed %llu: KV %s says %s, view says head %s",
				 (unsigned long long)seed, key, kv.value, v->branches[i].head);
		dm_kv_kv_release(&kv);
		if (v->branches[i].head[0] &&
		    dm_store_commit_get(n->store, v->id, v->branches[i].head, &oid, NULL))
			fail_msg("seed %llu: head %s not in the store", (unsigned long long)seed,
				 v->branches[i].head);
		if (v->branches[i].head[0]) {
			unsigned flags = 0;

			dm_store_commit_info(n->store, v->id, v->branches[i].head, NULL, &flags,
					     NULL);
			if (flags & DM_COMMIT_PRUNED)
				fail_msg("seed %llu: head %s was pruned", (unsigned long long)seed,
					 v->branches[i].head);
		}
		check_history(n, v->id, v->branches[i].head, seed);
	}
	dm_dot_view_unref(v);
}

/* Every collection asked for was answered: done, or refused because one
 * was running. */
static void check_collections(struct dm_ticket **t, int n, uint64_t seed)
{
	for (int i = 0; i < n; i++) {
		struct dm_msg *reply = NULL;
		struct dm_err err;
		int rc = dm_ticket_wait(&reply, t[i], 0, &err);

		if (rc && rc != DM_EBUSY)
			fail_msg("seed %llu: collection %d answered %s: %s",
				 (unsigned long long)seed, i, dm_err_name(rc), err.msg);
		dm_msg_free(reply);
		dm_ticket_free(t[i]);
	}
}

static void one_round(uint64_t seed)
{
	struct test_node n;
	struct dm_dot_handle *h;
	struct dm_ticket *tickets[MAX_REQS], *gcs[MAX_REQS];
	struct dm_space *space = NULL;
	struct dm_verify_report report = {0};
	struct dm_err err;
	char id[DM_DOT_ID_MAX + 1];
	int nreq, ngc = 0, deletes = 0;

	rng_state = seed;
	node_open(&n, seed);
	assert_int_equal(dm_space_open(&space, &(struct dm_space_env){n.store, n.sched, 0}, &err),
			 0);
	h = create_dot(&n, "shop");
	snprintf(id, sizeof(id), "%s", dm_dot_handle_id(h));
	write_file(&n, id, "master", "a.txt", "first");
	nreq = 3 + (int)(rnd() % (MAX_REQS - 3));
	for (int i = 0; i < nreq; i++) {
		int is_delete;
		struct dm_dot_req *r = random_req(&is_delete);
		unsigned steps = (unsigned)(rnd() % 6);

		deletes += is_delete;
		dm_actor_send_request(&tickets[i], dm_dot_handle_actor(h), dm_msg_new(0, r,
										      dm_dot_req_free));
		if (rnd() % 3 == 0)
			assert_int_equal(dm_space_gc_send(space, false, &gcs[ngc++]), 0);
		for (unsigned s = 0; s < steps; s++)
			dm_sched_step(n.sched);
		if (rnd() % 3 == 0)
			write_file(&n, id, "master", "b.txt", i % 2 ? "x" : "yy");
	}
	assert_int_equal(dm_sched_run_until_idle(n.sched, -1), 0);
	check_collections(gcs, ngc, seed);
	if (dm_store_verify(n.store, &report, &err))
		fail_msg("seed %llu: after %d collections: %s", (unsigned long long)seed, ngc,
			 err.msg);
	for (int i = 0; i < nreq; i++) {
		struct dm_msg *reply = NULL;
		int rc = dm_ticket_wait(&reply, tickets[i], 0, &err);

		if (rc == DM_ETIMEOUT)
			fail_msg("seed %llu: request %d was never answered", (unsigned long long)seed,
				 i);
		if (rc == DM_ECANCELED || rc == DM_EINTERNAL || rc == DM_EINVAL)
			fail_msg("seed %llu: request %d answered %s: %s", (unsigned long long)seed, i,
				 dm_err_name(rc), err.msg);
		dm_msg_free(reply);
		/* a second wait finds the answer already taken: answered once */
		reply = NULL;
		assert_int_equal(dm_ticket_wait(&reply, tickets[i], 0, &err), DM_EINVAL);
		assert_null(reply);
		dm_ticket_free(tickets[i]);
	}
	if (deletes) {
		struct dm_registry_snap *snap = dm_registry_snapshot(n.reg);

		if (dm_registry_find_id(snap, id))
			fail_msg("seed %llu: deleted dot still registered", (unsigned long long)seed);
		assert_true(dm_registry_was_deleted(snap, id));
		dm_registry_snap_unref(snap);
		check_deleted(&n, id, seed);
	} else {
		check_consistent(&n, h, seed);
	}
	dm_dot_handle_unref(h);
	test_node_close(&n);
	dm_space_free(space);
}

static void test_seeded_interleavings(void **state)
{
	const char *env = getenv("DM_TEST_ROUNDS");
	long rounds = env ? strtol(env, NULL, 10) : 2000;

	(void)state;
	dm_log_setup(NULL, DM_LOG_ERROR + 1);
	for (long seed = 1; seed <= rounds; seed++)
		one_round((uint64_t)seed);
	dm_log_setup(NULL, DM_LOG_INFO);
}

/* A dot survives a restart of its node: branches and heads come back. */
static void test_restart_finds_dot(void **state)
{
	struct test_node n;
	struct dm_dot_handle *h;
	struct dm_ticket *t = NULL;
	struct dm_msg *reply = NULL;
	struct dm_dot_req *r;
	struct dm_registry_snap *snap;
	struct dm_dot_view *v;
	struct dm_dot_name dn;
	char head[DM_COMMIT_ID_LEN_MAX + 1];

	(void)state;
	node_open(&n, 7);
	h = create_dot(&n, "ns1/db");
	write_file(&n, dm_dot_handle_id(h), "master", "f", "data");
	r = dm_dot_req_new(DM_DOT_OP_COMMIT);
	r->message = dm_xstrdup("one");
	dm_actor_send_request(&t, dm_dot_handle_actor(h), dm_msg_new(0, r, dm_dot_req_free));
	assert_int_equal(settle(&n, t, &reply), 0);
	dm_msg_free(reply);
	dm_ticket_free(t);
	v = dm_dot_handle_view(h);
	snprintf(head, sizeof(head), "%s", dm_dot_view_branch(v, "master")->head);
	assert_true(head[0] != '\0');
	dm_dot_view_unref(v);
	dm_dot_handle_unref(h);
	/* restart: a new registry over the same KV and store */
	dm_registry_free(n.reg);
	test_node_open_registry(&n);
	snap = dm_registry_snapshot(n.reg);
	assert_int_equal(dm_dot_name_parse(&dn, "ns1/db", NULL), 0);
	assert_non_null(dm_registry_find(snap, &dn));
	v = dm_dot_handle_view(dm_registry_find(snap, &dn)->dot);
	assert_string_equal(dm_dot_view_branch(v, "master")->head, head);
	assert_int_equal(dm_dot_view_branch(v, "master")->commits, 1);
	dm_dot_view_unref(v);
	dm_registry_snap_unref(snap);
	test_node_close(&n);
}

/* Stores a commit object for dot_id and returns its ref. */
static struct dm_dot_commit_ref make_commit(struct test_node *n, const char *dot_id, const char *id,
					    const char *parent, const dm_oid *tree)
{
	struct dm_dot_commit_ref ref;
	char dot[64], cid[64], author[] = "remote", msg[] = "received", par[64];
	char *parents[1] = {par};
	struct dm_commit c = {dot, cid, parent ? 1 : 0, parents, *tree, author, 1, msg, 0, NULL};
	struct dm_buf enc = DM_BUF_INIT;

	snprintf(dot, sizeof(dot), "%s", dot_id);
	snprintf(cid, sizeof(cid), "%s", id);
	snprintf(par, sizeof(par), "%s", parent ? parent : "");
	assert_int_equal(dm_commit_encode(&enc, &c, NULL), 0);
	assert_int_equal(dm_store_put(n->store, &ref.oid, DM_OBJ_COMMIT, enc.data, enc.len, NULL),
			 0);
	snprintf(ref.id, sizeof(ref.id), "%s", id);
	dm_buf_release(&enc);
	return ref;
}

static int receive(struct test_node *n, struct dm_dot_handle *h, const char *branch, const char *old,
		   struct dm_dot_commit_ref *refs, size_t nrefs, bool stash, char *detail)
{
	struct dm_dot_req *r = dm_dot_req_new(DM_DOT_OP_RECEIVE);
	struct dm_ticket *t = NULL;
	struct dm_msg *reply = NULL;
	int rc;

	r->branch = dm_xstrdup(branch);
	r->old_head = dm_xstrdup(old);
	r->commits = dm_xcalloc(nrefs, sizeof(*refs));
	memcpy(r->commits, refs, nrefs * sizeof(*refs));
	r->ncommits = nrefs;
	r->stash = stash;
	dm_actor_send_request(&t, dm_dot_handle_actor(h), dm_msg_new(0, r, dm_dot_req_free));
	rc = settle(n, t, &reply);
	if (detail)
		snprintf(detail, 256, "%s", reply && reply->detail ? reply->detail : "");
	dm_msg_free(reply);
	dm_ticket_free(t);
	return rc;
}

static const char *head_of(struct dm_dot_handle *h, const char *branch, char *out)
{
	struct dm_dot_view *v = dm_dot_handle_view(h);
	const struct dm_branch_view *b = dm_dot_view_branch(v, branch);

	snprintf(out, DM_COMMIT_ID_LEN_MAX + 1, "%s", b ? b->head : "(none)");
	dm_dot_view_unref(v);
	return out;
}

/* A dot takes commits from a transfer: fast-forward, and every refusal. */
static void test_receive(void **state)
{
	struct test_node n;
	struct dm_dot_handle *h;
	struct dm_buf empty = DM_BUF_INIT;
	struct dm_tree none = {0, NULL};
	struct dm_dot_commit_ref c1, c2, c3, foreign, root;
	char detail[256], head[DM_COMMIT_ID_LEN_MAX + 1], id[DM_DOT_ID_MAX + 1];
	struct dm_dot_view *v;
	dm_oid tree;
	bool stashed = false;

	(void)state;
	node_open(&n, 11);
	h = create_dot(&n, "shop");
	snprintf(id, sizeof(id), "%s", dm_dot_handle_id(h));
	assert_int_equal(dm_tree_encode(&empty, &none, NULL), 0);
	assert_int_equal(dm_store_put(n.store, &tree, DM_OBJ_TREE, empty.data, empty.len, NULL), 0);
	dm_buf_release(&empty);

	/* fast-forward from nothing: c1 then c2 */
	c1 = make_commit(&n, id, "c1-0001", NULL, &tree);
	c2 = make_commit(&n, id, "c2-0002", "c1-0001", &tree);
	{
		struct dm_dot_commit_ref line[2] = {c2, c1};

		assert_int_equal(receive(&n, h, "master", "", line, 2, false, detail), 0);
	}
	assert_string_equal(head_of(h, "master", head), "c2-0002");
	/* the branch moved meanwhile: conflict */
	c3 = make_commit(&n, id, "c3-0003", "c2-0002", &tree);
	assert_int_equal(receive(&n, h, "master", "c1-0001", &c3, 1, false, detail), DM_ECONFLICT);
	assert_non_null(strstr(detail, "moved while the transfer ran"));
	/* both sides committed since c1: diverged, unless stashed */
	{
		struct dm_dot_commit_ref other = make_commit(&n, id, "c9-0009", "c1-0001", &tree);

		assert_int_equal(receive(&n, h, "master", "c2-0002", &other, 1, false, detail),
				 DM_EDIVERGED);
		assert_non_null(strstr(detail, "--stash-on-divergence"));
		assert_string_equal(head_of(h, "master", head), "c2-0002");
		assert_int_equal(receive(&n, h, "master", "c2-0002", &other, 1, true, detail), 0);
		assert_string_equal(head_of(h, "master", head), "c9-0009");
	}
	v = dm_dot_handle_view(h);
	for (size_t i = 0; i < v->nbranches; i++)
		if (strstr(v->branches[i].name, "master-DIVERGED-") &&
		    !strcmp(v->branches[i].head, "c2-0002"))
			stashed = true;
	dm_dot_view_unref(v);
	assert_true(stashed);
	/* uncommitted changes on the receiving branch are refused */
	write_file(&n, id, "master", "dirty.txt", "x");
	assert_int_equal(receive(&n, h, "master", "c9-0009", &c3, 1, false, detail),
			 DM_EUNCOMMITTED);
	assert_non_null(strstr(detail, "uncommitted changes"));
	/* a new branch from a root commit */
	root = make_commit(&n, id, "r1-0001", NULL, &tree);
	assert_int_equal(receive(&n, h, "fromremote", "", &root, 1, false, detail), 0);
	assert_string_equal(head_of(h, "fromremote", head), "r1-0001");
	/* a commit of another dot is refused */
	foreign = make_commit(&n, "another-dot", "f1-0001", "r1-0001", &tree);
	assert_int_equal(receive(&n, h, "fromremote", "r1-0001", &foreign, 1, false, detail),
			 DM_ECORRUPT);
	assert_string_equal(head_of(h, "fromremote", head), "r1-0001");
	dm_dot_handle_unref(h);
	test_node_close(&n);
}

static int send_op(struct test_node *n, struct dm_dot_handle *h, struct dm_dot_req *r,
		   json_t **result, char *detail)
{
	struct dm_ticket *t = NULL;
	struct dm_msg *reply = NULL;
	int rc;

	dm_actor_send_request(&t, dm_dot_handle_actor(h), dm_msg_new(0, r, dm_dot_req_free));
	rc = settle(n, t, &reply);
	if (detail)
		snprintf(detail, 256, "%s", reply && reply->detail ? reply->detail : "");
	if (result && !rc) {
		*result = reply->payload;
		reply->payload = NULL;
	}
	dm_msg_free(reply);
	dm_ticket_free(t);
	return rc;
}

/* A copy of a branch that its master made empty (the replicator's BRANCH
 * with copy) is empty, whatever this copy's current branch holds; a
 * branch of this node's own starts at the current head. */
static void test_copied_empty_branch_is_empty(void **state)
{
	struct test_node n;
	struct dm_dot_handle *h;
	struct dm_dot_req *r;
	char head[DM_COMMIT_ID_LEN_MAX + 1], cur[DM_COMMIT_ID_LEN_MAX + 1];
	char detail[512];

	(void)state;
	node_open(&n, 11);
	h = create_dot(&n, "shop");
	write_file(&n, dm_dot_handle_id(h), "master", "f", "data");
	r = dm_dot_req_new(DM_DOT_OP_COMMIT);
	r->message = dm_xstrdup("one");
	assert_int_equal(send_op(&n, h, r, NULL, detail), 0);
	head_of(h, "master", cur);
	assert_true(cur[0] != '\0');
	r = dm_dot_req_new(DM_DOT_OP_BRANCH);
	r->branch = dm_xstrdup("copied");
	r->copy = true;
	assert_int_equal(send_op(&n, h, r, NULL, detail), 0);
	assert_string_equal(head_of(h, "copied", head), "");
	r = dm_dot_req_new(DM_DOT_OP_BRANCH);
	r->branch = dm_xstrdup("own");
	assert_int_equal(send_op(&n, h, r, NULL, detail), 0);
	assert_string_equal(head_of(h, "own", head), cur);
	dm_dot_handle_unref(h);
	test_node_close(&n);
}

static struct dm_dot_req *mount_req(int op, const char *id, const char *subdot)
{
	struct dm_dot_req *r = dm_dot_req_new(op);

	r->mount = dm_xcalloc(1, sizeof(*r->mount));
	snprintf(r->mount->mount_id, sizeof(r->mount->mount_id), "%s", id);
	snprintf(r->mount->container_id, sizeof(r->mount->container_id), "c-%s", id);
	snprintf(r->mount->container, sizeof(r->mount->container), "web-%s", id);
	snprintf(r->mount->volume, sizeof(r->mount->volume), "shop.%s", subdot);
	snprintf(r->mount->subdot, sizeof(r->mount->subdot), "%s", subdot);
	if (op == DM_DOT_OP_MOUNT) {
		/* a new mount of the runtime, its container known at once */
		snprintf(r->mount->of, sizeof(r->mount->of), "%s", id);
		r->volume_name = dm_xstrdup(r->mount->volume);
	}
	return r;
}

/* Containers mount subdots; a dot in use is not deleted. */
static void test_mounts(void **state)
{
	struct test_node n;
	struct dm_dot_handle *h;
	struct dm_dot_view *v;
	json_t *res = NULL;
	char detail[256];
	struct stat st;

	(void)state;
	node_open(&n, 5);
	h = create_dot(&n, "shop");
	assert_int_equal(send_op(&n, h, mount_req(DM_DOT_OP_MOUNT, "m1", "db"), &res, NULL), 0);
	assert_non_null(strstr(json_string_value(json_object_get(res, "path")), "/.current/db"));
	assert_int_equal(stat(json_string_value(json_object_get(res, "path")), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	json_decref(res);
	assert_int_equal(send_op(&n, h, mount_req(DM_DOT_OP_MOUNT, "m2", "bad.name"), NULL,
				 detail),
			 DM_EINVAL);
	assert_non_null(strstr(detail, "invalid subdot"));
	v = dm_dot_handle_view(h);
	assert_int_equal(v->nmounts, 1);
	assert_string_equal(v->mounts[0].container, "web-m1");
	dm_dot_view_unref(v);
	assert_int_equal(send_op(&n, h, dm_dot_req_new(DM_DOT_OP_DELETE), NULL, detail), DM_EBUSY);
	assert_non_null(strstr(detail, "in use by container web-m1"));
	assert_int_equal(send_op(&n, h, mount_req(DM_DOT_OP_UNMOUNT, "m1", "db"), NULL, NULL), 0);
	assert_int_equal(send_op(&n, h, dm_dot_req_new(DM_DOT_OP_DELETE), NULL, NULL), 0);
	dm_dot_handle_unref(h);
	test_node_close(&n);
}

static struct dm_dot_req *limit_req(const char *branch, uint64_t bytes)
{
	struct dm_dot_req *r = dm_dot_req_new(DM_DOT_OP_LIMIT);

	r->branch = dm_xstrdup(branch);
	r->limit = bytes;
	return r;
}

/* LIMIT on the dir engine: answered at once, not enforced; a branch the
 * dot does not have is not found. */
static void test_limit_not_enforced(void **state)
{
	char detail[256];
	json_t *res = NULL;
	struct test_node n;
	struct dm_dot_handle *h;

	(void)state;
	node_open(&n, 6);
	h = create_dot(&n, "sized");
	assert_int_equal(send_op(&n, h, limit_req("master", 1u << 20), &res, NULL), 0);
	assert_true(json_is_false(json_object_get(res, "enforced")));
	json_decref(res);
	assert_int_equal(send_op(&n, h, limit_req("nope", 1u << 20), NULL, detail), DM_ENOTFOUND);
	assert_non_null(strstr(detail, "no branch 'nope'"));
	dm_dot_handle_unref(h);
	test_node_close(&n);
}

/* A container record of a runtime mount, for the mount `of`. */
static struct dm_dot_req *container_req(int op, const char *id, const char *of)
{
	struct dm_dot_req *r = mount_req(op, id, "db");

	snprintf(r->mount->of, sizeof(r->mount->of), "%s", of);
	free(r->volume_name);
	r->volume_name = NULL;
	return r;
}

static void count_mounts(struct dm_dot_handle *h, size_t runtime, size_t containers)
{
	struct dm_dot_view *v = dm_dot_handle_view(h);

	assert_int_equal(v->nruntime_mounts, runtime);
	assert_int_equal(v->nmounts, containers);
	dm_dot_view_unref(v);
}

/* The dot is the one record of who mounts it: a runtime mount answers the
 * same path again, owns its containers' records, and a record for a mount
 * that ended is refused, so none can outlive its Unmount. */
static void test_runtime_mounts(void **state)
{
	struct test_node n;
	struct dm_dot_handle *h;
	struct dm_dot_view *v;
	json_t *res = NULL;
	char path[512];

	(void)state;
	node_open(&n, 6);
	h = create_dot(&n, "shop");
	assert_int_equal(send_op(&n, h, mount_req(DM_DOT_OP_MOUNT, "k1", "db"), &res, NULL), 0);
	snprintf(path, sizeof(path), "%s", json_string_value(json_object_get(res, "path")));
	json_decref(res);
	/* the same mount again: its path, nothing new */
	assert_int_equal(send_op(&n, h, mount_req(DM_DOT_OP_MOUNT, "k1", "db"), &res, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(res, "path")), path);
	json_decref(res);
	count_mounts(h, 1, 1);
	v = dm_dot_handle_view(h);
	assert_string_equal(v->runtime_mounts[0].key, "k1");
	assert_string_equal(v->runtime_mounts[0].name, "shop.db");
	assert_string_equal(v->runtime_mounts[0].path, path);
	dm_dot_view_unref(v);
	/* two more containers of it; then the record that waited goes alone */
	assert_int_equal(send_op(&n, h, container_req(DM_DOT_OP_MOUNT, "k1:a", "k1"), NULL, NULL),
			 0);
	assert_int_equal(send_op(&n, h, container_req(DM_DOT_OP_MOUNT, "k1:b", "k1"), NULL, NULL),
			 0);
	count_mounts(h, 1, 3);
	assert_int_equal(send_op(&n, h, container_req(DM_DOT_OP_UNMOUNT, "k1", "k1"), NULL, NULL),
			 0);
	count_mounts(h, 1, 2);
	/* the runtime's Unmount ends the mount and every record of it */
	assert_int_equal(send_op(&n, h, mount_req(DM_DOT_OP_UNMOUNT, "k1", "db"), NULL, NULL), 0);
	count_mounts(h, 0, 0);
	/* a container found late, for the mount that ended: refused */
	assert_int_equal(send_op(&n, h, container_req(DM_DOT_OP_MOUNT, "k1:c", "k1"), NULL, NULL),
			 DM_ENOTFOUND);
	count_mounts(h, 0, 0);
	assert_int_equal(send_op(&n, h, dm_dot_req_new(DM_DOT_OP_DELETE), NULL, NULL), 0);
	dm_dot_handle_unref(h);
	test_node_close(&n);
}

/* Sends a collaborator or owner request to h; its status. */
static int share(struct test_node *n, struct dm_dot_handle *h, int op, const char *user, int role)
{
	struct dm_dot_req *r = dm_dot_req_new(op);
	struct dm_ticket *t = NULL;
	struct dm_msg *reply = NULL;
	int rc;

	r->user = dm_xstrdup(user);
	r->role = role;
	dm_actor_send_request(&t, dm_dot_handle_actor(h), dm_msg_new(0, r, dm_dot_req_free));
	rc = settle(n, t, &reply);
	dm_msg_free(reply);
	dm_ticket_free(t);
	return rc;
}

/* The role of user (not an admin) in dot name of n's registry. */
static int role_in(struct test_node *n, const char *name, const char *user)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(n->reg);
	struct dm_caller c = {.admin = false};
	struct dm_dot_name dn;
	struct dm_dot_view *v;
	int role;

	snprintf(c.user, sizeof(c.user), "%s", user);
	assert_int_equal(dm_dot_name_parse(&dn, name, NULL), 0);
	assert_non_null(dm_registry_find(snap, &dn));
	v = dm_dot_handle_view(dm_registry_find(snap, &dn)->dot);
	role = dm_dot_role_of(v, &c);
	dm_dot_view_unref(v);
	dm_registry_snap_unref(snap);
	return role;
}

/* Collaborators keep their roles and a dot its owner across a restart; a
 * record from before roles (a plain list of names) reads as role write. */
static void test_roles_persist(void **state)
{
	struct test_node n;
	struct dm_dot_handle *h;
	struct dm_kv_kv rec;
	struct dm_err err;
	char key[256], id[DM_DOT_ID_MAX + 1];
	json_t *doc;
	char *text;

	(void)state;
	node_open(&n, 11);
	h = create_dot(&n, "alice/shop");
	snprintf(id, sizeof(id), "%s", dm_dot_handle_id(h));
	assert_int_equal(share(&n, h, DM_DOT_OP_ADD_COLLABORATOR, "bob", DM_ROLE_READ), 0);
	assert_int_equal(share(&n, h, DM_DOT_OP_ADD_COLLABORATOR, "carol", DM_ROLE_WRITE), 0);
	assert_int_equal(share(&n, h, DM_DOT_OP_ADD_COLLABORATOR, "alice", DM_ROLE_READ),
			 DM_EINVAL);
	assert_int_equal(share(&n, h, DM_DOT_OP_REMOVE_COLLABORATOR, "carol", 0), 0);
	assert_int_equal(share(&n, h, DM_DOT_OP_REMOVE_COLLABORATOR, "carol", 0), DM_ENOTFOUND);
	assert_int_equal(role_in(&n, "alice/shop", "alice"), DM_ROLE_OWNER);
	assert_int_equal(share(&n, h, DM_DOT_OP_SET_OWNER, "admin", 0), 0);
	dm_dot_handle_unref(h);

	dm_registry_free(n.reg);
	test_node_open_registry(&n);
	assert_int_equal(role_in(&n, "alice/shop", "alice"), DM_ROLE_NONE);
	assert_int_equal(role_in(&n, "alice/shop", "admin"), DM_ROLE_OWNER);
	assert_int_equal(role_in(&n, "alice/shop", "bob"), DM_ROLE_READ);
	assert_int_equal(role_in(&n, "alice/shop", "carol"), DM_ROLE_NONE);

	/* the record as dm wrote it before roles */
	dm_registry_free(n.reg);
	snprintf(key, sizeof(key), DM_KV_DOTS "%s", id);
	dm_kv_kv_init(&rec);
	assert_int_equal(dm_kv_get(n.kv, &rec, key, &err), 0);
	doc = json_loads(rec.value, 0, NULL);
	assert_non_null(doc);
	dm_kv_kv_release(&rec);
	json_object_del(doc, "owner");
	json_object_set_new(doc, "collaborators", json_pack("[s]", "dave"));
	text = json_dumps(doc, JSON_COMPACT);
	assert_int_equal(dm_kv_put(n.kv, NULL, key, text, strlen(text), 0, &err), 0);
	free(text);
	json_decref(doc);
	test_node_open_registry(&n);
	assert_int_equal(role_in(&n, "alice/shop", "dave"), DM_ROLE_WRITE);
	assert_int_equal(role_in(&n, "alice/shop", "alice"), DM_ROLE_OWNER);
	assert_int_equal(role_in(&n, "alice/shop", "bob"), DM_ROLE_NONE);
	test_node_close(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_restart_finds_dot),
		cmocka_unit_test(test_copied_empty_branch_is_empty),
		cmocka_unit_test(test_roles_persist),
		cmocka_unit_test(test_receive),
		cmocka_unit_test(test_mounts),
		cmocka_unit_test(test_limit_not_enforced),
		cmocka_unit_test(test_runtime_mounts),
		cmocka_unit_test(test_seeded_interleavings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
