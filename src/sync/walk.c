/*
 * walk.c - which objects move, and in what order (see
 * walk.h).
 *
 * Invariants:
 *   - Push: a record is sent only after every object it names is
 *     acknowledged by the peer or was reported present there: chunks, sync,
 *     files, sync, trees one height at a time (a tree's height is one more
 *     than its tallest subtree the peer lacks), sync after each, commits.
 *   - Pull: a fetched record is checked against its id before anything in
 *     it is believed; commits, trees and files are held (in memory up to
 *     hold_max bytes, the rest in an unnamed file beside the store:
 *     spill.h) and stored (through dm_sync_accept) only once everything below them
 *     is stored: chunks first, then files, then trees in postorder, then
 *     commits. The local store is flushed after every batch of chunks and
 *     at the end.
 *   - Neither walk descends into a tree the other side already has: the
 *     store invariant says everything below it is there too.
 *   - `seen` holds every id already asked about or queued, so each object
 *     is asked for, fetched and sent at most once per walk. What an object
 *     names comes from dm_object_refs (object.h), queued by one callback
 *     (queue_ref) for push and pull alike.
 */
#include "sync/walk.h"

#include <stdlib.h>
#include <string.h>

#include "store/object.h"
#include "store/oidmap.h"
#include "store/store.h"
#include "sync/receive.h"
#include "sync/spill.h"
#include "util/err.h"

#include "util/banned.h"

#define CHUNK_BATCH_BYTES (64u << 20) /* pull: bytes of chunks per get (and flush) */

/* ---- small collections ---- */

struct oids {
	dm_oid *v;
	size_t n, cap;
};

static void oids_add(struct oids *o, const dm_oid *id)
{
	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 256;
		o->v = dm_xrealloc(o->v, o->cap * sizeof(*o->v));
	}
	o->v[o->n++] = *id;
}

static void oids_release(struct oids *o)
{
	free(o->v);
	memset(o, 0, sizeof(*o));
}

/* An object held until it can be stored: its record and where its stored
 * bytes are (in memory or spilled, spill.h). */
struct held {
	struct dm_pack_rec rec;
	uint64_t off; /* in the walk's blob */
};

struct helds {
	struct held *v;
	size_t n, cap;
};

static void helds_add(struct helds *h, const struct dm_pack_rec *rec, size_t off)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 64;
		h->v = dm_xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	h->v[h->n].rec = *rec;
	h->v[h->n].off = off;
	h->n++;
}

/*
 * Trees and the subtrees they name, for ordering: push sends them by
 * height, pull stores them in postorder. Nodes are the trees that move;
 * a child id that is not a node is already on the receiving side.
 */
struct node {
	dm_oid id;
	size_t first_sub, nsubs; /* into dag.subs */
	int height;              /* push */
	struct held obj;         /* pull: the fetched record */
	int state;               /* postorder: 0 new, 1 on the stack, 2 done */
};

struct dag {
	struct node *v;
	size_t n, cap;
	struct oids subs;
	struct dm_oidmap index; /* id -> size_t */
};

static void dag_init(struct dag *d)
{
	memset(d, 0, sizeof(*d));
	dm_oidmap_init(&d->index, sizeof(size_t));
}

static void dag_release(struct dag *d)
{
	free(d->v);
	oids_release(&d->subs);
	dm_oidmap_release(&d->index);
}

static struct node *dag_add(struct dag *d, const dm_oid *id)
{
	struct node *nd;

	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 64;
		d->v = dm_xrealloc(d->v, d->cap * sizeof(*d->v));
	}
	nd = &d->v[d->n];
	memset(nd, 0, sizeof(*nd));
	nd->id = *id;
	nd->first_sub = d->subs.n;
	dm_oidmap_put(&d->index, id, &d->n);
	d->n++;
	return nd;
}

/* The node of id, or SIZE_MAX when it is not one. */
static size_t dag_find(const struct dag *d, const dm_oid *id)
{
	const size_t *i = dm_oidmap_get(&d->index, id);

	return i ? *i : SIZE_MAX;
}

/*
 * Calls visit on every node after every node below it (iteratively: a
 * peer's trees may nest deeper than the C stack would allow).
 */
static int dag_postorder(struct dag *d, int (*visit)(void *ctx, struct dag *d, struct node *nd),
			 void *ctx)
{
	struct stack_ent {
		size_t node, pos;
	} *stack = dm_xmalloc((d->n ? d->n : 1) * sizeof(*stack));
	int rc = 0;

	for (size_t i = 0; i < d->n && !rc; i++) {
		size_t top = 0;

		if (d->v[i].state)
			continue;
		d->v[i].state = 1;
		stack[top++] = (struct stack_ent){i, 0};
		while (top && !rc) {
			struct stack_ent *e = &stack[top - 1];
			struct node *nd = &d->v[e->node];

			if (e->pos < nd->nsubs) {
				size_t j = dag_find(d, &d->subs.v[nd->first_sub + e->pos++]);

				if (j != SIZE_MAX && d->v[j].state == 0) {
					d->v[j].state = 1;
					stack[top++] = (struct stack_ent){j, 0};
				}
				continue;
			}
			nd->state = 2;
			top--;
			rc = visit(ctx, d, nd);
		}
	}
	free(stack);
	return rc;
}

/* ---- shared ---- */

static int check_cancel(struct dm_sync_walk *w, struct dm_err *err)
{
	if (w->cancelled && w->cancelled(w->ctx))
		return dm_err_set(err, DM_ECANCELED, "transfer canceled");
	return 0;
}

static void report(struct dm_sync_walk *w)
{
	if (w->progress)
		w->progress(w->ctx, &w->counts);
}

void dm_sync_acked(struct dm_sync_walk *w, uint64_t objects, uint64_t bytes)
{
	w->counts.objects_done += objects;
	w->counts.bytes_done += bytes;
	report(w);
}

/* Reads a local object and checks its kind. */
static int load_local(struct dm_sync_walk *w, const dm_oid *id, int want, struct dm_buf *out,
		      struct dm_err *err)
{
	int kind = 0;
	int rc;

	dm_buf_reset(out);
	rc = dm_store_get(w->store, id, out, &kind, err);
	if (!rc && kind != want) {
		char hex[DM_OID_HEXSZ + 1];

		dm_oid_hex(hex, id);
		rc = dm_err_set(err, DM_ECORRUPT, "object %s is a %s, not a %s", hex,
				dm_obj_kind_name(kind), dm_obj_kind_name(want));
	}
	return rc;
}

/*
 * Queues what an object names for the walk, each id once (push and pull
 * alike): a subtree is also recorded under the tree being opened (nd, when
 * not NULL) for the ordering, whether it moves or not.
 */
struct queue {
	struct dm_oidmap *seen;
	struct dm_store *local; /* pull: what is here already is not queued; push: NULL */
	struct dag *dag;
	struct node *nd;
	struct oids *trees, *files, *chunks;
	struct dm_oidmap *chunk_len;
	uint64_t *chunk_bytes; /* of the chunks queued */
};

static int queue_ref(void *ctx, const struct dm_obj_ref *ref)
{
	struct queue *q = ctx;

	if (ref->kind == DM_OBJ_TREE && q->nd) {
		oids_add(&q->dag->subs, ref->id);
		q->nd->nsubs++;
	}
	if (dm_oidmap_get(q->seen, ref->id))
		return 0;
	dm_oidmap_put(q->seen, ref->id, NULL);
	if (q->local && dm_store_has(q->local, ref->id))
		return 0;
	if (ref->kind == DM_OBJ_CHUNK) {
		dm_oidmap_put(q->chunk_len, ref->id, &ref->len);
		oids_add(q->chunks, ref->id);
		*q->chunk_bytes += ref->len;
	} else {
		oids_add(ref->kind == DM_OBJ_TREE ? q->trees : q->files, ref->id);
	}
	return 0;
}

/* ---- push ---- */

/* The ids among ask the peer lacks, appended to lack. */
static int ask_missing(struct dm_sync_walk *w, const struct oids *ask, struct oids *lack,
		       struct dm_err *err)
{
	struct dm_buf out = DM_BUF_INIT;
	int rc = 0;

	for (size_t off = 0; off < ask->n && !rc; off += DM_WIRE_MAX_IDS) {
		size_t n = ask->n - off < DM_WIRE_MAX_IDS ? ask->n - off : DM_WIRE_MAX_IDS, got = 0;
		const dm_oid *ids;

		rc = check_cancel(w, err);
		if (rc)
			break;
		dm_buf_reset(&out);
		rc = w->peer.missing(w->peer.ctx, ask->v + off, n, &out, err);
		if (!rc)
			rc = dm_wire_ids_check(out.len, &got, err);
		if (rc)
			break;
		ids = dm_wire_ids(out.data);
		for (size_t i = 0; i < got; i++)
			oids_add(lack, &ids[i]);
	}
	dm_buf_release(&out);
	return rc;
}

/* Sends ids (local objects) as they are stored, then waits for the acks. */
static int send_all(struct dm_sync_walk *w, const dm_oid *ids, size_t n, struct dm_buf *tmp,
		    struct dm_err *err)
{
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		struct dm_pack_rec rec;

		if ((i & 63) == 0)
			rc = check_cancel(w, err);
		if (rc)
			break;
		dm_buf_reset(tmp);
		rc = dm_store_get_stored(w->store, &ids[i], &rec, tmp, err);
		if (!rc)
			rc = w->peer.put(w->peer.ctx, &rec, tmp->data, err);
	}
	return rc ? rc : w->peer.put_sync(w->peer.ctx, err);
}

static int height_of(void *ctx, struct dag *d, struct node *nd)
{
	int *max = ctx;

	nd->height = 0;
	for (size_t k = 0; k < nd->nsubs; k++) {
		size_t j = dag_find(d, &d->subs.v[nd->first_sub + k]);

		if (j != SIZE_MAX && d->v[j].height + 1 > nd->height)
			nd->height = d->v[j].height + 1;
	}
	if (nd->height > *max)
		*max = nd->height;
	return 0;
}

static void add_raw_len(struct dm_sync_walk *w, const dm_oid *id)
{
	uint64_t len = 0;

	if (!dm_store_stat(w->store, id, NULL, &len, NULL))
		w->counts.bytes_total += len;
}

int dm_sync_push(struct dm_sync_walk *w, const dm_oid *commits, size_t n,
			     struct dm_err *err)
{
	struct oids ask = {0}, lack = {0}, level = {0}, next = {0}, files = {0}, chunks = {0};
	struct oids lack_commits = {0}, lack_files = {0}, lack_chunks = {0};
	struct dm_oidmap seen, chunk_len;
	struct dm_buf buf = DM_BUF_INIT;
	struct dag trees;
	struct queue q;
	uint64_t chunk_bytes = 0;
	int rc = 0, max_height = -1;

	dm_oidmap_init(&seen, 0);
	dm_oidmap_init(&chunk_len, sizeof(uint32_t));
	dag_init(&trees);
	q = (struct queue){.seen = &seen,
			   .dag = &trees,
			   .trees = &next,
			   .files = &files,
			   .chunks = &chunks,
			   .chunk_len = &chunk_len,
			   .chunk_bytes = &chunk_bytes};
	memset(&w->counts, 0, sizeof(w->counts));
	w->counts.phase = DM_SYNC_NEGOTIATING;
	report(w);

	/* commits the peer lacks, and their root trees */
	for (size_t i = 0; i < n; i++)
		oids_add(&ask, &commits[i]);
	rc = ask_missing(w, &ask, &lack_commits, err);
	q.trees = &level;
	for (size_t i = 0; i < lack_commits.n && !rc; i++) {
		bool record_only = w->records_only &&
				   dm_oidmap_get(w->records_only, &lack_commits.v[i]);

		rc = load_local(w, &lack_commits.v[i], DM_OBJ_COMMIT, &buf, err);
		if (!rc && !record_only) /* a pruned commit: its record only */
			rc = dm_object_refs(DM_OBJ_COMMIT, buf.data, buf.len, queue_ref, &q, err);
		if (rc)
			break;
		add_raw_len(w, &lack_commits.v[i]);
	}
	/* trees, one level at a time: a tree the peer has is not opened */
	q.trees = &next;
	while (!rc && level.n) {
		lack.n = 0;
		rc = ask_missing(w, &level, &lack, err);
		next.n = 0;
		for (size_t i = 0; i < lack.n && !rc; i++) {
			struct dm_object t;

			rc = load_local(w, &lack.v[i], DM_OBJ_TREE, &buf, err);
			if (!rc)
				rc = dm_object_decode(&t, DM_OBJ_TREE, buf.data, buf.len, err);
			if (rc)
				break;
			add_raw_len(w, &lack.v[i]);
			q.nd = dag_add(&trees, &lack.v[i]);
			dm_object_each_ref(&t, queue_ref, &q);
			q.nd = NULL;
			dm_object_release(&t);
		}
		{
			struct oids tmp = level;

			level = next;
			next = tmp;
		}
	}
	/* files the peer lacks, and their chunks */
	if (!rc)
		rc = ask_missing(w, &files, &lack_files, err);
	for (size_t i = 0; i < lack_files.n && !rc; i++) {
		rc = load_local(w, &lack_files.v[i], DM_OBJ_FILE, &buf, err);
		if (!rc)
			rc = dm_object_refs(DM_OBJ_FILE, buf.data, buf.len, queue_ref, &q, err);
		if (rc)
			break;
		add_raw_len(w, &lack_files.v[i]);
	}
	if (!rc)
		rc = ask_missing(w, &chunks, &lack_chunks, err);
	if (rc)
		goto done;
	for (size_t i = 0; i < lack_chunks.n; i++) {
		const uint32_t *len = dm_oidmap_get(&chunk_len, &lack_chunks.v[i]);

		w->counts.bytes_total += len ? *len : 0;
	}
	w->counts.objects_total = lack_commits.n + trees.n + lack_files.n + lack_chunks.n;
	w->counts.phase = DM_SYNC_MOVING;
	report(w);

	/* bottom-up: chunks, files, trees by height, commits */
	rc = send_all(w, lack_chunks.v, lack_chunks.n, &buf, err);
	if (!rc)
		rc = send_all(w, lack_files.v, lack_files.n, &buf, err);
	if (!rc)
		rc = dag_postorder(&trees, height_of, &max_height);
	for (int h = 0; h <= max_height && !rc; h++) {
		ask.n = 0;
		for (size_t i = 0; i < trees.n; i++)
			if (trees.v[i].height == h)
				oids_add(&ask, &trees.v[i].id);
		rc = send_all(w, ask.v, ask.n, &buf, err);
	}
	if (!rc)
		rc = send_all(w, lack_commits.v, lack_commits.n, &buf, err);
done:
	oids_release(&ask);
	oids_release(&lack);
	oids_release(&level);
	oids_release(&next);
	oids_release(&files);
	oids_release(&chunks);
	oids_release(&lack_commits);
	oids_release(&lack_files);
	oids_release(&lack_chunks);
	dm_oidmap_release(&seen);
	dm_oidmap_release(&chunk_len);
	dm_buf_release(&buf);
	dag_release(&trees);
	return rc;
}

/* ---- pull ---- */

struct pull {
	struct dm_sync_walk *w;
	int want;              /* the kind being fetched */
	struct dm_oidmap seen; /* ids queued or known present */
	struct dm_oidmap chunk_len;
	struct dm_spill blob; /* stored bytes of held records (spilled past a budget) */
	struct dm_buf back;   /* scratch: one held record read back from the file */
	struct dm_buf raw;    /* scratch: one decompressed record */
	struct helds commits, files;
	struct dag trees;
	struct oids next; /* trees to fetch next */
	struct oids want_files, want_chunks;
	uint64_t chunk_bytes; /* sizes of want_chunks */
	struct dm_err *err;   /* for store_tree */
};

/* Decompresses (when flagged) and hashes a fetched record: its raw bytes
 * in p->raw, or DM_ECORRUPT. */
static int open_record(struct pull *p, const struct dm_pack_rec *rec, const unsigned char *bytes,
		       const unsigned char **raw, struct dm_err *err)
{
	char hex[DM_OID_HEXSZ + 1];
	dm_oid got;
	int rc;

	dm_oid_hex(hex, &rec->id);
	if (rec->kind != p->want)
		return dm_err_set(err, DM_ECORRUPT, "object %s came as a %s, not a %s", hex,
				  dm_obj_kind_name(rec->kind), dm_obj_kind_name(p->want));
	rc = dm_sync_rec_raw(raw, &p->raw, rec, bytes, err);
	if (rc)
		return rc;
	dm_hash(&got, *raw, rec->raw_len);
	if (dm_oid_cmp(&got, &rec->id))
		return dm_err_set(err, DM_ECORRUPT, "%s %s: content does not match its id",
				  dm_obj_kind_name(rec->kind), hex);
	return 0;
}

/* Keeps a record's stored bytes until it can be stored. */
static int hold(struct pull *p, struct helds *list, struct node *nd, const struct dm_pack_rec *rec,
		const unsigned char *bytes, struct dm_err *err)
{
	uint64_t off;
	int rc = dm_spill_add(&p->blob, bytes, rec->stored_len, &off, err);

	if (rc)
		return rc;
	if (list)
		helds_add(list, rec, off);
	if (nd) {
		nd->obj.rec = *rec;
		nd->obj.off = off;
	}
	return 0;
}

/* Whether commit id is to be fetched: not queued already, and not here;
 * one held here as a record only is fetched again (its data is wanted),
 * unless it comes as a record only too. */
static bool want_commit(struct pull *p, const dm_oid *id)
{
	bool record = p->w->records_only && dm_oidmap_get(p->w->records_only, id);

	if (dm_oidmap_get(&p->seen, id))
		return false;
	dm_oidmap_put(&p->seen, id, NULL);
	return record ? !dm_store_has(p->w->store, id) : !dm_store_has_whole(p->w->store, id);
}

/* What a fetched object names goes to the next fetches; nd: the tree's. */
static struct queue pull_queue(struct pull *p, struct node *nd)
{
	return (struct queue){.seen = &p->seen,
			      .local = p->w->store,
			      .dag = &p->trees,
			      .nd = nd,
			      .trees = &p->next,
			      .files = &p->want_files,
			      .chunks = &p->want_chunks,
			      .chunk_len = &p->chunk_len,
			      .chunk_bytes = &p->chunk_bytes};
}

/* A commit or a file: what it names is queued, and it is held (in list)
 * until that is stored. */
static int got_held(struct pull *p, int kind, struct helds *list, const struct dm_pack_rec *rec,
		    const unsigned char *bytes, struct dm_err *err)
{
	struct queue q = pull_queue(p, NULL);
	const unsigned char *raw;
	int rc = open_record(p, rec, bytes, &raw, err);

	if (!rc)
		rc = dm_object_refs(kind, raw, rec->raw_len, queue_ref, &q, err);
	if (rc)
		return rc;
	return hold(p, list, NULL, rec, bytes, err);
}

static int got_commit(void *ctx, const struct dm_pack_rec *rec, const unsigned char *bytes,
		      struct dm_err *err)
{
	struct pull *p = ctx;
	const unsigned char *raw;
	int rc;

	if (!p->w->records_only || !dm_oidmap_get(p->w->records_only, &rec->id))
		return got_held(p, DM_OBJ_COMMIT, &p->commits, rec, bytes, err);
	/* a commit pruned there: its record only, nothing below it */
	rc = open_record(p, rec, bytes, &raw, err);
	return rc ? rc : hold(p, &p->commits, NULL, rec, bytes, err);
}

static int got_tree(void *ctx, const struct dm_pack_rec *rec, const unsigned char *bytes,
		    struct dm_err *err)
{
	struct pull *p = ctx;
	const unsigned char *raw;
	struct dm_object t;
	struct queue q;
	int rc = open_record(p, rec, bytes, &raw, err);

	if (!rc)
		rc = dm_object_decode(&t, DM_OBJ_TREE, raw, rec->raw_len, err);
	if (rc)
		return rc;
	q = pull_queue(p, dag_add(&p->trees, &rec->id));
	rc = hold(p, NULL, q.nd, rec, bytes, err);
	dm_object_each_ref(&t, queue_ref, &q);
	dm_object_release(&t);
	return rc;
}

static int got_file(void *ctx, const struct dm_pack_rec *rec, const unsigned char *bytes,
		    struct dm_err *err)
{
	struct pull *p = ctx;

	return got_held(p, DM_OBJ_FILE, &p->files, rec, bytes, err);
}

static int got_chunk(void *ctx, const struct dm_pack_rec *rec, const unsigned char *bytes,
		     struct dm_err *err)
{
	struct pull *p = ctx;
	const uint32_t *len = dm_oidmap_get(&p->chunk_len, &rec->id);
	int rc;

	if (rec->kind != DM_OBJ_CHUNK || !len || rec->raw_len != *len) {
		char hex[DM_OID_HEXSZ + 1];

		dm_oid_hex(hex, &rec->id);
		return dm_err_set(err, DM_ECORRUPT, "chunk %s came with the wrong kind or length",
				  hex);
	}
	rc = dm_sync_accept(p->w->store, rec, bytes, p->w->dot_id, NULL, err);
	if (rc)
		return rc;
	p->w->counts.objects_done++;
	p->w->counts.bytes_done += rec->raw_len;
	report(p->w);
	return check_cancel(p->w, err);
}

/* Fetches ids (in requests of at most DM_WIRE_MAX_IDS) into fn. */
static int fetch(struct pull *p, const dm_oid *ids, size_t n, int kind, dm_wire_rec_fn fn,
		 struct dm_err *err)
{
	int rc = 0;

	p->want = kind;
	for (size_t off = 0; off < n && !rc; off += DM_WIRE_MAX_IDS) {
		size_t k = n - off < DM_WIRE_MAX_IDS ? n - off : DM_WIRE_MAX_IDS;

		rc = check_cancel(p->w, err);
		if (!rc)
			rc = p->w->peer.get(p->w->peer.ctx, ids + off, k, fn, p, err);
	}
	return rc;
}

/* Stores a held record (everything below it is stored by now). */
static int store_held(struct pull *p, const struct held *h, struct dm_err *err)
{
	const unsigned char *bytes;
	int rc = dm_spill_get(&p->blob, h->off, h->rec.stored_len, &p->back, &bytes, err);

	if (!rc)
		rc = dm_sync_accept(p->w->store, &h->rec, bytes, p->w->dot_id, NULL, err);
	if (rc)
		return rc;
	p->w->counts.objects_done++;
	p->w->counts.bytes_done += h->rec.raw_len;
	report(p->w);
	return 0;
}

static int store_tree(void *ctx, struct dag *d, struct node *nd)
{
	struct pull *p = ctx;

	return store_held(p, &nd->obj, p->err);
}

int dm_sync_pull(struct dm_sync_walk *w, const dm_oid *commits, size_t n,
			     struct dm_err *err)
{
	struct pull p;
	struct oids ask = {0}, level = {0};
	int rc = 0;

	memset(&p, 0, sizeof(p));
	p.w = w;
	dm_oidmap_init(&p.seen, 0);
	dm_oidmap_init(&p.chunk_len, sizeof(uint32_t));
	dm_spill_init(&p.blob, w->hold_max ? w->hold_max : DM_SYNC_HOLD_MAX,
		      dm_store_dir(w->store));
	dm_buf_init(&p.back, 0);
	dm_buf_init(&p.raw, 0);
	dag_init(&p.trees);
	memset(&w->counts, 0, sizeof(w->counts));
	w->counts.phase = DM_SYNC_NEGOTIATING;
	report(w);

	/* top-down: commits, trees level by level, files */
	for (size_t i = 0; i < n; i++)
		if (want_commit(&p, &commits[i]))
			oids_add(&ask, &commits[i]);
	rc = fetch(&p, ask.v, ask.n, DM_OBJ_COMMIT, got_commit, err);
	while (!rc && p.next.n) {
		struct oids tmp = level;

		level = p.next;
		p.next = tmp;
		p.next.n = 0;
		rc = fetch(&p, level.v, level.n, DM_OBJ_TREE, got_tree, err);
	}
	if (!rc)
		rc = fetch(&p, p.want_files.v, p.want_files.n, DM_OBJ_FILE, got_file, err);
	if (rc)
		goto done;
	w->counts.objects_total = p.commits.n + p.trees.n + p.files.n + p.want_chunks.n;
	w->counts.bytes_total = p.chunk_bytes;
	for (size_t i = 0; i < p.commits.n; i++)
		w->counts.bytes_total += p.commits.v[i].rec.raw_len;
	for (size_t i = 0; i < p.files.n; i++)
		w->counts.bytes_total += p.files.v[i].rec.raw_len;
	for (size_t i = 0; i < p.trees.n; i++)
		w->counts.bytes_total += p.trees.v[i].obj.rec.raw_len;
	w->counts.phase = DM_SYNC_MOVING;
	report(w);

	/* bottom-up: chunks in batches of bounded size, each made durable */
	for (size_t start = 0; start < p.want_chunks.n && !rc;) {
		size_t end = start;
		uint64_t bytes = 0;

		while (end < p.want_chunks.n && end - start < DM_WIRE_MAX_IDS &&
		       (bytes < CHUNK_BATCH_BYTES || end == start)) {
			const uint32_t *len = dm_oidmap_get(&p.chunk_len, &p.want_chunks.v[end]);

			bytes += len ? *len : 0;
			end++;
		}
		rc = fetch(&p, p.want_chunks.v + start, end - start, DM_OBJ_CHUNK, got_chunk, err);
		if (!rc)
			rc = dm_store_flush(w->store, err);
		start = end;
	}
	for (size_t i = 0; i < p.files.n && !rc; i++)
		rc = store_held(&p, &p.files.v[i], err);
	if (!rc) {
		p.err = err;
		rc = dag_postorder(&p.trees, store_tree, &p);
	}
	for (size_t i = 0; i < p.commits.n && !rc; i++)
		rc = store_held(&p, &p.commits.v[i], err);
	if (!rc)
		rc = dm_store_flush(w->store, err);
done:
	oids_release(&ask);
	oids_release(&level);
	oids_release(&p.next);
	oids_release(&p.want_files);
	oids_release(&p.want_chunks);
	free(p.commits.v);
	free(p.files.v);
	dag_release(&p.trees);
	dm_oidmap_release(&p.seen);
	dm_oidmap_release(&p.chunk_len);
	dm_spill_release(&p.blob);
	dm_buf_release(&p.back);
	dm_buf_release(&p.raw);
	return rc;
}
