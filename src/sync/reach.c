/*
 * reach.c - the objects one transfer session may see (see reach.h).
 *
 * Invariants:
 *   - `found` holds every id the walk reached: the seed commits and every
 *     object named by an object the walk read. Every found object that is
 *     not a chunk is read exactly once: it is queued when found and read
 *     when taken from the queue. So `found` only grows, and when the queue
 *     is empty it holds everything reachable from the seeds.
 *   - `given` holds what the caller sent; the walk never reads from it, so
 *     an object given and also reachable is still walked through.
 *   - found + given hold at most max ids.
 *   - The seeds and every given id are pinned in the store (store.h) from
 *     when they join until the set is freed: garbage collection keeps
 *     what a running transfer relies on.
 */
#include "sync/reach.h"

#include <stdlib.h>
#include <string.h>

#include "store/object.h"
#include "store/oidmap.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

struct pending {
	dm_oid id;
	int kind;
};

struct dm_reach {
	struct dm_store *store;
	size_t max;
	struct dm_oidmap found, given;
	dm_oid *seeds; /* the commits it started from: pinned, with given */
	size_t nseeds;
	struct pending *queue;
	size_t head, tail, cap; /* queue[head..tail) waits to be read */
	struct dm_buf scratch;
};

static void enqueue(struct dm_reach *r, const dm_oid *id, int kind)
{
	if (r->tail == r->cap) {
		if (r->head > r->cap / 2) {
			memmove(r->queue, r->queue + r->head,
				(r->tail - r->head) * sizeof(*r->queue));
			r->tail -= r->head;
			r->head = 0;
		} else {
			r->cap = r->cap ? 2 * r->cap : 256;
			r->queue = dm_xrealloc(r->queue, r->cap * sizeof(*r->queue));
		}
	}
	r->queue[r->tail].id = *id;
	r->queue[r->tail].kind = kind;
	r->tail++;
}

struct dm_reach *dm_reach_new(struct dm_store *store, const dm_oid *commits, size_t n,
			      size_t max_ids)
{
	struct dm_reach *r = dm_xcalloc(1, sizeof(*r));

	r->store = store;
	r->max = max_ids ? max_ids : DM_REACH_IDS_MAX;
	dm_oidmap_init(&r->found, 0);
	dm_oidmap_init(&r->given, 0);
	dm_buf_init(&r->scratch, 0);
	for (size_t i = 0; i < n && r->found.count < r->max; i++) {
		if (dm_oidmap_get(&r->found, &commits[i]))
			continue;
		dm_oidmap_put(&r->found, &commits[i], NULL);
		enqueue(r, &commits[i], DM_OBJ_COMMIT);
		r->seeds = dm_xrealloc(r->seeds, (r->nseeds + 1) * sizeof(*r->seeds));
		r->seeds[r->nseeds++] = commits[i];
		dm_store_pin(store, &commits[i]);
	}
	return r;
}

void dm_reach_free(struct dm_reach *r)
{
	const dm_oid *id;
	void *val;
	size_t it = 0;

	if (!r)
		return;
	for (size_t i = 0; i < r->nseeds; i++)
		dm_store_unpin(r->store, &r->seeds[i]);
	while (dm_oidmap_next(&r->given, &it, &id, &val))
		dm_store_unpin(r->store, id);
	free(r->seeds);
	dm_oidmap_release(&r->found);
	dm_oidmap_release(&r->given);
	dm_buf_release(&r->scratch);
	free(r->queue);
	free(r);
}

size_t dm_reach_count(const struct dm_reach *r)
{
	return r->found.count + r->given.count;
}

struct ref_ctx {
	struct dm_reach *r;
	struct dm_err *err;
};

static int on_ref(void *ctx, const struct dm_obj_ref *ref)
{
	struct ref_ctx *c = ctx;
	struct dm_reach *r = c->r;

	if (dm_oidmap_get(&r->found, ref->id))
		return 0;
	if (dm_reach_count(r) >= r->max)
		return dm_err_set(c->err, DM_ETOOBIG,
				  "a transfer may see at most %zu objects; this one reaches more",
				  r->max);
	dm_oidmap_put(&r->found, ref->id, NULL);
	if (ref->kind != DM_OBJ_CHUNK)
		enqueue(r, ref->id, ref->kind);
	return 0;
}

/* Reads the next queued object and finds what it names. */
static int walk_one(struct dm_reach *r, struct dm_err *err)
{
	struct pending p = r->queue[r->head];
	struct ref_ctx c = {r, err};
	int kind = 0, rc;

	dm_buf_reset(&r->scratch);
	rc = dm_store_get(r->store, &p.id, &r->scratch, &kind, err);
	if (!rc && kind != p.kind) {
		char hex[DM_OID_HEXSZ + 1];

		dm_oid_hex(hex, &p.id);
		rc = dm_err_set(err, DM_ECORRUPT, "object %s is a %s where a %s was named", hex,
				dm_obj_kind_name(kind), dm_obj_kind_name(p.kind));
	}
	if (!rc)
		rc = dm_object_refs(kind, r->scratch.data, r->scratch.len, on_ref, &c, err);
	if (!rc)
		r->head++; /* a failed read stays queued: the error repeats, nothing is skipped */
	return rc;
}

int dm_reach_allows(struct dm_reach *r, const dm_oid *id, struct dm_err *err)
{
	if (dm_oidmap_get(&r->given, id))
		return 1;
	while (!dm_oidmap_get(&r->found, id)) {
		int rc;

		if (r->head == r->tail)
			return 0;
		rc = walk_one(r, err);
		if (rc)
			return rc;
	}
	return 1;
}

int dm_reach_give(struct dm_reach *r, const dm_oid *id, struct dm_err *err)
{
	if (dm_oidmap_get(&r->given, id))
		return 0;
	if (dm_reach_count(r) >= r->max)
		return dm_err_set(err, DM_ETOOBIG,
				  "a transfer may send at most %zu objects; this one sends more",
				  r->max);
	dm_oidmap_put(&r->given, id, NULL);
	dm_store_pin(r->store, id);
	return 0;
}
