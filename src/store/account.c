/*
 * account.c - what each dot and branch costs (dm_store_account, store.h):
 * ZFS's referenced, used ("unique": what deleting it frees now) and
 * written, over the store's commit index.
 *
 *   per dot   its indexed commits are read (parents, tree, flags); each
 *             branch (up to DM_ACCT_BRANCHES_MAX - 1 of them) gets a bit,
 *             and every commit the mask of the branches whose history
 *             (all parents, from the head) reaches it; commits no branch
 *             reaches (a reset keeps them) get the `other` bit. Then every
 *             object each commit reaches is visited with its commit's mask
 *             (most shared commits first, so few objects are visited
 *             twice; an object is opened again only when its mask grows):
 *             the dot's map holds, per object, the mask and its size on
 *             disk. A pruned commit reaches only itself (its record).
 *   store     the dots' maps are folded into one: per object, the one dot
 *             that reaches it (or "several") and that dot's mask.
 *   figures   referenced: the objects a dot (a branch) reaches; unique:
 *             those no other dot (no other branch, nor a commit only a
 *             reset keeps) reaches, which is what deleting it and the next
 *             dm gc free; written: what a branch's head reaches that its
 *             nearest unpruned first-parent ancestor does not (cached per
 *             head and ancestor: commits never change).
 *
 * Sizes are what an object takes in its pack (its record, header included)
 * or, kept in an engine's file, its length. Reads are quiet: they do not
 * make ids fresh for a running collection (guard.c), so accounting never
 * keeps garbage alive; an object a collection condemns meanwhile is simply
 * not counted.
 *
 * Memory: the store map holds every object some commit reaches (an id and
 * 24 bytes, in a map at most half full: about 120 bytes each), plus one
 * dot's map of the same kind while that dot is walked.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/index.h"
#include "store/internal.h"
#include "store/object.h"
#include "store/oidmap.h"
#include "store/pack.h"
#include "store/store.h"
#include "store/tree.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/hash.h"

#include "util/banned.h"

#define OTHER_BIT (DM_ACCT_BRANCHES_MAX - 1) /* commits only a reset keeps, and the branches past it */
#define MANY_DOTS UINT32_MAX

/* One object in a dot's map: the branches that reach it, its size. */
struct mine {
	uint64_t mask;
	uint64_t size;
};

/* One object in the store's map: the dot that reaches it (index + 1, or
 * MANY_DOTS), that dot's mask, its size. */
struct all {
	uint64_t mask;
	uint64_t size;
	uint32_t dot;
	uint32_t pad;
};

struct commit_rec {
	char *id;
	dm_oid oid;
	dm_oid tree;
	unsigned flags;
	char *parents[2]; /* first parent, and any second (more are not followed) */
	uint64_t mask;
	bool loaded;
};

struct walk {
	struct dm_store *s;
	struct dm_oidmap *map; /* id -> struct mine */
	struct dm_buf obj;
	uint64_t mask;
	int depth;
	struct dm_err *err;
	bool (*cancelled)(void *);
	void *cancel_ctx;
	uint64_t visits;
};

/* The size id takes on disk; false when it is not stored (any more). */
static bool stored_size(struct dm_store *s, const dm_oid *id, uint64_t *out)
{
	struct dm_loc loc;

	if (dm_store_lookup(s, id, &loc, NULL, NULL))
		return false;
	*out = loc.where == DM_LOC_PACK ? DM_PACK_REC_LEN + (uint64_t)loc.stored_len
					: (uint64_t)loc.raw_len;
	return true;
}

static int visit(struct walk *w, const dm_oid *id, int kind);

static int visit_ref(void *ctx, const struct dm_obj_ref *ref)
{
	return visit(ctx, ref->id, ref->kind);
}

/* Adds w->mask to id and, when that grew its mask, to what it names. */
static int visit(struct walk *w, const dm_oid *id, int kind)
{
	struct mine *m = dm_oidmap_get(w->map, id), fresh;
	int k = 0, rc;

	if (m && (m->mask | w->mask) == m->mask)
		return 0;
	if (m) {
		m->mask |= w->mask;
	} else {
		fresh.mask = w->mask;
		if (!stored_size(w->s, id, &fresh.size))
			return 0; /* gone: it holds nothing */
		dm_oidmap_put(w->map, id, &fresh);
	}
	if (kind == DM_OBJ_CHUNK)
		return 0;
	if ((++w->visits & 1023) == 0 && w->cancelled && w->cancelled(w->cancel_ctx))
		return dm_err_set(w->err, DM_ECANCELED, "accounting canceled");
	if (w->depth > DM_TREE_MAX_DEPTH + 2)
		return dm_err_set(w->err, DM_ECORRUPT, "trees nest more than %d deep",
				  DM_TREE_MAX_DEPTH);
	dm_buf_reset(&w->obj);
	if (dm_store_get(w->s, id, &w->obj, &k, NULL) || k != kind)
		return 0; /* unreadable: counted, but it names nothing we can see */
	w->depth++;
	rc = dm_object_refs(kind, w->obj.data, w->obj.len, visit_ref, w, w->err);
	w->depth--;
	return rc > 0 ? 0 : rc;
}

static void id_key(dm_oid *out, const char *a, const char *b)
{
	struct dm_buf k = DM_BUF_INIT;

	dm_buf_adds(&k, a);
	dm_buf_add(&k, "", 1);
	dm_buf_adds(&k, b ? b : "");
	dm_hash(out, k.data, k.len);
	dm_buf_release(&k);
}

static int popcount_cmp(const void *a, const void *b)
{
	const struct commit_rec *x = *(const struct commit_rec *const *)a;
	const struct commit_rec *y = *(const struct commit_rec *const *)b;
	int px = __builtin_popcountll(x->mask), py = __builtin_popcountll(y->mask);

	return py - px;
}

struct dot_commits {
	struct commit_rec *c;
	size_t n;
	struct dm_oidmap by_id; /* commit id key -> uint32_t index */
};

static void commits_release(struct dot_commits *dc)
{
	for (size_t i = 0; i < dc->n; i++) {
		free(dc->c[i].id);
		free(dc->c[i].parents[0]);
		free(dc->c[i].parents[1]);
	}
	free(dc->c);
	dm_oidmap_release(&dc->by_id);
	memset(dc, 0, sizeof(*dc));
}

static struct commit_rec *find_commit(struct dot_commits *dc, const char *dot, const char *id)
{
	dm_oid key;
	uint32_t *at;

	if (!id || !id[0])
		return NULL;
	id_key(&key, dot, id);
	at = dm_oidmap_get(&dc->by_id, &key);
	return at ? &dc->c[*at] : NULL;
}

/* The dot's indexed commits, each read for its tree and parents. */
static int read_commits(struct dm_store *s, const char *dot, struct dot_commits *dc,
			struct dm_err *err)
{
	char **ids = NULL;
	size_t n = 0;
	struct dm_buf b = DM_BUF_INIT;
	int rc;

	memset(dc, 0, sizeof(*dc));
	dm_oidmap_init(&dc->by_id, sizeof(uint32_t));
	rc = dm_store_commit_find(s, dot, "", SIZE_MAX, &ids, &n, err);
	if (rc)
		return rc;
	dc->c = dm_xcalloc(n + 1, sizeof(*dc->c));
	for (size_t i = 0; i < n; i++) {
		struct commit_rec *c = &dc->c[dc->n];
		struct dm_commit cm;
		uint32_t at = (uint32_t)dc->n;
		dm_oid key;
		int kind = 0;

		if (dm_store_commit_info(s, dot, ids[i], &c->oid, &c->flags, NULL))
			continue;
		c->id = ids[i];
		ids[i] = NULL;
		dm_buf_reset(&b);
		if (!dm_store_get(s, &c->oid, &b, &kind, NULL) && kind == DM_OBJ_COMMIT &&
		    !dm_commit_decode(&cm, b.data, b.len, NULL)) {
			c->tree = cm.tree;
			c->loaded = true;
			for (size_t p = 0; p < cm.nparents && p < 2; p++)
				c->parents[p] = dm_xstrdup(cm.parents[p]);
			dm_commit_release(&cm);
		}
		id_key(&key, dot, c->id);
		dm_oidmap_put(&dc->by_id, &key, &at);
		dc->n++;
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	dm_buf_release(&b);
	return 0;
}

/* Gives bit `bit` to every commit head reaches through its parents. */
static void mark_history(struct dot_commits *dc, const char *dot, const char *head, int bit)
{
	struct commit_rec **stack = NULL;
	size_t depth = 0, cap = 0;
	struct commit_rec *c = find_commit(dc, dot, head);
	uint64_t m = 1ull << bit;

	if (c) {
		stack = dm_xmalloc(64 * sizeof(*stack));
		cap = 64;
		stack[depth++] = c;
	}
	while (depth) {
		c = stack[--depth];
		if (c->mask & m)
			continue;
		c->mask |= m;
		for (int p = 0; p < 2; p++) {
			struct commit_rec *parent = find_commit(dc, dot, c->parents[p]);

			if (!parent || (parent->mask & m))
				continue;
			if (depth == cap) {
				cap *= 2;
				stack = dm_xrealloc(stack, cap * sizeof(*stack));
			}
			stack[depth++] = parent;
		}
	}
	free(stack);
}

/* The objects reached from tree (everything it names) into set. */
static int reach_all(struct walk *w, const dm_oid *tree)
{
	w->mask = 1;
	return visit(w, tree, DM_OBJ_TREE);
}

/*
 * What head (commit c of dot) reaches that its nearest unpruned
 * first-parent ancestor does not; cached in cache (may be NULL) by head and
 * ancestor.
 */
static int written(struct walk *tmpl, struct dot_commits *dc, const char *dot,
		   struct commit_rec *c, struct dm_oidmap *cache, uint64_t *out)
{
	struct commit_rec *base = find_commit(dc, dot, c->parents[0]);
	struct dm_oidmap before, after;
	struct walk w = *tmpl;
	dm_oid key;
	uint64_t *hit, sum = 0;
	const dm_oid *id;
	void *val;
	size_t it = 0;
	int rc = 0;

	while (base && (base->flags & DM_COMMIT_PRUNED || !base->loaded))
		base = find_commit(dc, dot, base->parents[0]);
	{
		struct dm_buf k = DM_BUF_INIT;

		dm_buf_adds(&k, dot);
		dm_buf_add(&k, "", 1);
		dm_buf_adds(&k, c->id);
		dm_buf_add(&k, "", 1);
		dm_buf_adds(&k, base ? base->id : "");
		dm_hash(&key, k.data, k.len);
		dm_buf_release(&k);
	}
	hit = cache ? dm_oidmap_get(cache, &key) : NULL;
	if (hit) {
		*out = *hit;
		return 0;
	}
	dm_oidmap_init(&before, sizeof(struct mine));
	dm_oidmap_init(&after, sizeof(struct mine));
	dm_buf_init(&w.obj, DM_OBJ_MAX_SIZE);
	w.depth = 0;
	if (base) {
		w.map = &before;
		rc = reach_all(&w, &base->tree);
	}
	/* what `before` holds is there already: the walk stops at it (its
	 * mask has the walk's bit already) */
	for (it = 0; !rc && dm_oidmap_next(&before, &it, &id, &val);) {
		struct mine m = {3, 0};

		dm_oidmap_put(&after, id, &m);
	}
	if (!rc) {
		w.map = &after;
		w.mask = 2;
		rc = visit(&w, &c->tree, DM_OBJ_TREE);
	}
	for (it = 0; !rc && dm_oidmap_next(&after, &it, &id, &val);)
		if (((struct mine *)val)->mask == 2)
			sum += ((struct mine *)val)->size;
	dm_buf_release(&w.obj);
	dm_oidmap_release(&before);
	dm_oidmap_release(&after);
	if (rc)
		return rc;
	if (cache)
		dm_oidmap_put(cache, &key, &sum);
	*out = sum;
	return 0;
}

/* One dot: its commits' masks, its objects, its figures; folds its objects
 * into all. */
static int account_dot(struct walk *tmpl, const struct dm_acct_dot *d, uint32_t index,
		       struct dm_oidmap *all, struct dm_oidmap *cache, struct dm_acct_result *res,
		       struct dm_err *err)
{
	struct dot_commits dc;
	struct commit_rec **order = NULL;
	struct dm_oidmap mine;
	struct walk w = *tmpl;
	const dm_oid *id;
	void *val;
	size_t it = 0;
	int rc = read_commits(w.s, d->id, &dc, err);

	if (rc)
		return rc;
	for (size_t b = 0; b < d->nbranches; b++)
		mark_history(&dc, d->id, d->heads[b], b < OTHER_BIT ? (int)b : OTHER_BIT);
	order = dm_xcalloc(dc.n + 1, sizeof(*order));
	for (size_t i = 0; i < dc.n; i++) {
		if (!dc.c[i].mask)
			dc.c[i].mask = 1ull << OTHER_BIT;
		order[i] = &dc.c[i];
	}
	qsort(order, dc.n, sizeof(*order), popcount_cmp);
	dm_oidmap_init(&mine, sizeof(struct mine));
	dm_buf_init(&w.obj, DM_OBJ_MAX_SIZE);
	w.map = &mine;
	for (size_t i = 0; !rc && i < dc.n; i++) {
		struct commit_rec *c = order[i];
		struct mine m;

		w.mask = c->mask;
		w.depth = 0;
		if (c->flags & DM_COMMIT_PRUNED || !c->loaded) {
			/* its record only */
			if (!dm_oidmap_get(&mine, &c->oid) && stored_size(w.s, &c->oid, &m.size)) {
				m.mask = c->mask;
				dm_oidmap_put(&mine, &c->oid, &m);
			}
			continue;
		}
		rc = visit(&w, &c->oid, DM_OBJ_COMMIT);
	}
	res->dot.known = !rc;
	for (it = 0; !rc && dm_oidmap_next(&mine, &it, &id, &val);) {
		const struct mine *m = val;
		struct all *a = dm_oidmap_get(all, id), fresh;

		res->dot.referenced += m->size;
		for (size_t b = 0; b < d->nbranches && b < OTHER_BIT; b++)
			if (m->mask & (1ull << b))
				res->branches[b].referenced += m->size;
		if (!a) {
			fresh.mask = m->mask;
			fresh.size = m->size;
			fresh.dot = index + 1;
			fresh.pad = 0;
			dm_oidmap_put(all, id, &fresh);
		} else {
			a->dot = MANY_DOTS;
		}
	}
	/* written: each branch's head against its nearest kept ancestor */
	for (size_t b = 0; !rc && b < d->nbranches; b++) {
		struct commit_rec *c = find_commit(&dc, d->id, d->heads[b]);

		if (!c || !c->loaded || (c->flags & DM_COMMIT_PRUNED))
			continue;
		rc = written(&w, &dc, d->id, c, cache, &res->branches[b].written);
		if (!rc && d->current && !strcmp(d->current, d->names[b]))
			res->dot.written = res->branches[b].written;
	}
	for (size_t b = 0; !rc && b < d->nbranches && b < OTHER_BIT; b++)
		res->branches[b].known = true;
	dm_buf_release(&w.obj);
	dm_oidmap_release(&mine);
	free(order);
	commits_release(&dc);
	return rc;
}

/* The dots of the commit index that dots[0..ndots) does not name. */
struct extra {
	const struct dm_acct_dot *dots;
	size_t ndots;
	char **ids;
	size_t n;
};

static int note_dot(const char *dot_id, const char *commit_id, const dm_oid *oid, unsigned flags,
		    void *ctx)
{
	struct extra *x = ctx;

	(void)commit_id;
	(void)oid;
	(void)flags;
	if (x->n && !strcmp(x->ids[x->n - 1], dot_id))
		return 0; /* the index is sorted by dot */
	for (size_t i = 0; i < x->ndots; i++)
		if (!strcmp(x->dots[i].id, dot_id))
			return 0;
	x->ids = dm_xrealloc(x->ids, (x->n + 1) * sizeof(*x->ids));
	x->ids[x->n++] = dm_xstrdup(dot_id);
	return 0;
}

int dm_store_account(struct dm_store *s, const struct dm_acct_dot *dots, size_t ndots,
		     struct dm_acct_result *out, struct dm_oidmap *cache,
		     bool (*cancelled)(void *ctx), void *ctx, struct dm_err *err)
{
	struct extra x = {dots, ndots, NULL, 0};
	struct dm_oidmap all;
	struct walk w;
	const dm_oid *id;
	void *val;
	size_t it = 0;
	int rc;

	memset(&w, 0, sizeof(w));
	w.s = s;
	w.err = err;
	w.cancelled = cancelled;
	w.cancel_ctx = ctx;
	dm_oidmap_init(&all, sizeof(struct all));
	/* every dot with commits counts, named or not: what they share is
	 * nobody's own */
	rc = dm_store_commit_foreach(s, note_dot, &x, err);
	dm_store_quiet_reads(true);
	for (size_t d = 0; !rc && d < ndots; d++) {
		memset(&out[d].dot, 0, sizeof(out[d].dot));
		memset(out[d].branches, 0, dots[d].nbranches * sizeof(*out[d].branches));
		rc = account_dot(&w, &dots[d], (uint32_t)d, &all, cache, &out[d], err);
	}
	for (size_t i = 0; !rc && i < x.n; i++) {
		struct dm_acct_dot d = {x.ids[i], NULL, 0, NULL, NULL};
		struct dm_acct_result r = {{0}, NULL};

		rc = account_dot(&w, &d, (uint32_t)(ndots + i), &all, NULL, &r, err);
	}
	dm_store_quiet_reads(false);
	for (it = 0; !rc && dm_oidmap_next(&all, &it, &id, &val);) {
		const struct all *a = val;
		size_t d = a->dot - 1;
		int b;

		if (a->dot == MANY_DOTS || d >= ndots)
			continue;
		out[d].dot.unique += a->size;
		if (__builtin_popcountll(a->mask) != 1)
			continue;
		b = __builtin_ctzll(a->mask);
		if (b < OTHER_BIT && (size_t)b < dots[d].nbranches)
			out[d].branches[b].unique += a->size;
	}
	dm_oidmap_release(&all);
	for (size_t i = 0; i < x.n; i++)
		free(x.ids[i]);
	free(x.ids);
	return rc;
}
