/*
 * fsck.c - checking the store for dm fsck, and repairing what is safe to
 * repair (dm_store_fsck, store.h).
 *
 *   objects   every index entry in batches: it must lie inside its pack's
 *             committed length, read back and hash to its id, and (a file,
 *             tree or commit) decode as the kind indexed; an entry that
 *             does not is `bad`. Every object a file, tree or commit names
 *             must be indexed (else it is counted as a missing reference;
 *             whether that matters is the history's to say).
 *   packs     the pack files against the index's pack table: a pack the
 *             index knows must exist and be as long as its committed
 *             length; a file the index does not know is reported (the
 *             next open removes it).
 *   history   every indexed commit: its object must be a commit of its
 *             dot; unless pruned, everything its tree reaches must be
 *             there and not bad (memo per tree and file): otherwise the
 *             commit is damaged. An object with a missing reference that
 *             no commit reaches is garbage the next dm gc frees: noted,
 *             not a problem.
 *   repair    (only when asked; the safe things) bad entries are dropped
 *             from the index (their bytes are gone or wrong: nothing can
 *             read them anyway); every object a commit needs and the index
 *             lacks is looked for in the pack files' records, and stored
 *             again when a record of it hashes right (the index lost it,
 *             its bytes were still there); then the history is walked
 *             again, and each commit still damaged is marked DM_COMMIT_
 *             DAMAGED (its record stays: dm log says so, reset refuses it).
 *
 * A commit marked damaged is not a problem any more: fsck after a repair
 * is clean. Nothing else is changed: no pack is rewritten, no commit
 * forgotten. The store must not be collected meanwhile (the space actor
 * runs one or the other); commits may go on.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/index.h"
#include "store/internal.h"
#include "store/object.h"
#include "store/oidmap.h"
#include "store/pack.h"
#include "store/store.h"
#include "store/tree.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"

#include "util/banned.h"

#define BATCH        4096
#define RESTORE_ROUNDS 8

enum { OK = 1, BROKEN = 2 };

struct run {
	struct dm_store *s;
	bool repair;
	struct dm_fsck_progress *p;
	bool (*cancelled)(void *);
	void *cancel_ctx;
	struct dm_store_fsck_report *r;
	struct dm_pack_len *lens;
	size_t nlens;
	struct dm_oidmap bad;     /* id -> struct dm_loc: entries that cannot be read right */
	struct dm_oidmap dangling; /* objects that name something not indexed */
	struct dm_oidmap missing; /* ids a commit needs that are absent or bad -> kind */
	struct dm_oidmap memo;    /* tree, file -> OK / BROKEN */
	struct dm_buf obj;
	/* the batch being checked */
	struct dm_index_entry *batch;
	size_t nbatch;
	dm_oid last;
	bool resume;
};

/* Notes one problem: counted, logged, and the first few kept for the
 * report. */
static void problem(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct run *r, const char *fmt, ...)
{
	char msg[DM_FSCK_MSG_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dm_warn("fsck: %s", msg);
	if (r->r->nmsgs < DM_FSCK_MSGS)
		snprintf(r->r->msgs[r->r->nmsgs++], DM_FSCK_MSG_LEN, "%s", msg);
}

static void progress(struct run *r, int phase, uint64_t done, uint64_t total)
{
	if (!r->p)
		return;
	__atomic_store_n(&r->p->phase, phase, __ATOMIC_RELAXED);
	__atomic_store_n(&r->p->done, done, __ATOMIC_RELAXED);
	__atomic_store_n(&r->p->total, total, __ATOMIC_RELAXED);
}

static int check_cancel(struct run *r, struct dm_err *err)
{
	if (r->cancelled && r->cancelled(r->cancel_ctx))
		return dm_err_set(err, DM_ECANCELED, "dm fsck was canceled");
	return 0;
}

/* ---- objects ---- */

static const struct dm_pack_len *pack_len(const struct run *r, uint32_t pack)
{
	return dm_store_find_len(r->lens, r->nlens, pack);
}

struct ref_check {
	struct run *r;
	bool dangling;
};

static int check_ref(void *ctx, const struct dm_obj_ref *ref)
{
	struct ref_check *c = ctx;
	struct dm_loc loc;

	if (dm_store_lookup(c->r->s, ref->id, &loc, NULL, NULL) == 0 && loc.kind == ref->kind)
		return 0;
	c->dangling = true;
	c->r->r->missing_refs++;
	return 0;
}

static void mark_bad(struct run *r, const struct dm_index_entry *e, const char *why)
{
	char hex[DM_OID_HEXSZ + 1];

	dm_oid_hex(hex, &e->id);
	dm_oidmap_put(&r->bad, &e->id, &e->loc);
	r->r->bad++;
	problem(r, "%s %s: %s", dm_obj_kind_name(e->loc.kind), hex, why);
}

static void check_object(struct run *r, const struct dm_index_entry *e, struct dm_oidmap *pruned)
{
	struct ref_check c = {r, false};
	struct dm_err err;
	int kind = 0;

	r->r->objects++;
	if (e->loc.where == DM_LOC_PACK) {
		const struct dm_pack_len *l = pack_len(r, e->loc.pack);

		if (!l) {
			mark_bad(r, e, "its pack is not in the index");
			return;
		}
		if (e->loc.offset + DM_PACK_REC_LEN + e->loc.stored_len > l->len) {
			mark_bad(r, e, "it lies past its pack's committed end");
			return;
		}
	}
	dm_buf_reset(&r->obj);
	if (dm_store_get(r->s, &e->id, &r->obj, &kind, &err)) {
		if (err.code == DM_ENOMEM)
			return;
		mark_bad(r, e, err.msg);
		return;
	}
	r->r->bytes += r->obj.len;
	if (e->loc.kind == DM_OBJ_CHUNK)
		return;
	if (dm_obj_peek_kind(r->obj.data, r->obj.len) != e->loc.kind) {
		mark_bad(r, e, "it is not the kind the index says");
		return;
	}
	if (e->loc.kind == DM_OBJ_COMMIT && dm_oidmap_get(pruned, &e->id))
		return; /* its record only */
	if (dm_object_refs(e->loc.kind, r->obj.data, r->obj.len, check_ref, &c, &err)) {
		mark_bad(r, e, err.msg);
		return;
	}
	if (c.dangling)
		dm_oidmap_put(&r->dangling, &e->id, NULL);
}

static int collect_one(const dm_oid *id, const struct dm_loc *loc, void *ctx)
{
	struct run *r = ctx;

	if (r->resume) {
		r->resume = false;
		if (!dm_oid_cmp(id, &r->last))
			return 0;
	}
	r->last = *id;
	r->batch[r->nbatch].id = *id;
	r->batch[r->nbatch].loc = *loc;
	r->batch[r->nbatch].path = NULL;
	return ++r->nbatch == BATCH ? 1 : 0;
}

static int note_pruned(const char *dot_id, const char *commit_id, const dm_oid *oid,
		       unsigned flags, void *ctx)
{
	(void)dot_id;
	(void)commit_id;
	if (flags & DM_COMMIT_PRUNED)
		dm_oidmap_put(ctx, oid, NULL);
	return 0;
}

static int check_objects(struct run *r, struct dm_err *err)
{
	struct dm_oidmap pruned;
	uint64_t total = 0;
	bool first = true;
	int rc = dm_index_count(r->s->idx, &total, err);

	dm_oidmap_init(&pruned, 0);
	if (!rc)
		rc = dm_store_commit_foreach(r->s, note_pruned, &pruned, err);
	r->batch = dm_xmalloc(BATCH * sizeof(*r->batch));
	while (!rc) {
		int wrc;

		r->nbatch = 0;
		r->resume = !first;
		wrc = dm_index_foreach_from(r->s->idx, first ? NULL : &r->last, collect_one, r, err);
		first = false;
		if (wrc < 0) {
			rc = wrc;
			break;
		}
		for (size_t i = 0; i < r->nbatch; i++)
			check_object(r, &r->batch[i], &pruned);
		progress(r, DM_FSCK_OBJECTS, r->r->objects, total);
		rc = check_cancel(r, err);
		if (wrc == 0)
			break;
	}
	free(r->batch);
	r->batch = NULL;
	dm_oidmap_release(&pruned);
	return rc;
}

/* ---- packs ---- */

static int check_packs(struct run *r, struct dm_err *err)
{
	char dir[4096];
	struct dirent *de;
	DIR *d;

	progress(r, DM_FSCK_PACKS, 0, r->nlens);
	for (size_t i = 0; i < r->nlens; i++) {
		char path[4096];
		struct stat st;

		if (dm_store_pack_path(path, sizeof(path), r->s, r->lens[i].pack) < 0)
			continue;
		r->r->packs++;
		if (stat(path, &st) < 0) {
			r->r->pack_problems++;
			r->r->packs_missing++;
			problem(r, "pack %u is missing: %s", r->lens[i].pack, strerror(errno));
		} else if ((uint64_t)st.st_size < r->lens[i].len) {
			r->r->pack_problems++;
			r->r->short_packs++;
			problem(r, "pack %u is %llu bytes, shorter than the %llu the index recorded",
				r->lens[i].pack, (unsigned long long)st.st_size,
				(unsigned long long)r->lens[i].len);
		}
	}
	snprintf(dir, sizeof(dir), "%s/packs", r->s->dir);
	d = opendir(dir);
	if (!d)
		return dm_err_errno(err, errno, "cannot read '%s'", dir);
	while ((de = readdir(d))) {
		unsigned pack;
		char tail;

		if (sscanf(de->d_name, "pack-%8u.pac%c", &pack, &tail) != 2 || tail != 'k')
			continue;
		if (!pack_len(r, pack))
			r->r->unknown_packs++; /* removed at the next open */
	}
	closedir(d);
	return 0;
}

/* ---- history ---- */

/* Whether id (of kind) and everything it names is there and sound; missing
 * or bad ids go into r->missing. */
static int sound(struct run *r, const dm_oid *id, int kind, int depth, bool *ok,
		 struct dm_err *err);

struct subwalk {
	struct run *r;
	int depth;
	bool ok;
	struct dm_err *err;
};

static int sound_ref(void *ctx, const struct dm_obj_ref *ref)
{
	struct subwalk *w = ctx;
	bool ok = true;
	int rc = sound(w->r, ref->id, ref->kind, w->depth + 1, &ok, w->err);

	if (!ok)
		w->ok = false;
	return rc;
}

static int sound(struct run *r, const dm_oid *id, int kind, int depth, bool *ok,
		 struct dm_err *err)
{
	unsigned char *m = dm_oidmap_get(&r->memo, id), v;
	struct subwalk w = {r, depth, true, err};
	struct dm_loc loc;
	struct dm_buf b = DM_BUF_INIT;
	int k = 0, rc;

	if (m) {
		*ok = *m == OK;
		return 0;
	}
	if (dm_oidmap_get(&r->bad, id) || dm_store_lookup(r->s, id, &loc, NULL, NULL) ||
	    loc.kind != kind) {
		unsigned char kb = (unsigned char)kind;

		dm_oidmap_put(&r->missing, id, &kb);
		v = BROKEN;
		dm_oidmap_put(&r->memo, id, &v);
		*ok = false;
		return 0;
	}
	if (kind == DM_OBJ_CHUNK) {
		*ok = true;
		return 0; /* read and hashed by the objects' pass (not memoised: many) */
	}
	if (depth > DM_TREE_MAX_DEPTH + 2)
		return dm_err_set(err, DM_ECORRUPT, "trees nest more than %d deep",
				  DM_TREE_MAX_DEPTH);
	rc = dm_store_get(r->s, id, &b, &k, NULL);
	if (rc || k != kind) {
		unsigned char kb = (unsigned char)kind;

		dm_oidmap_put(&r->missing, id, &kb);
		w.ok = false;
		rc = 0;
	} else {
		rc = dm_object_refs(kind, b.data, b.len, sound_ref, &w, err);
		if (rc > 0)
			rc = 0;
	}
	dm_buf_release(&b);
	v = w.ok ? OK : BROKEN;
	dm_oidmap_put(&r->memo, id, &v);
	*ok = w.ok;
	return rc;
}

struct commit_ent {
	char *dot, *id;
	dm_oid oid;
	unsigned flags;
};

struct commits {
	struct commit_ent *v;
	size_t n, cap;
};

static int list_commit(const char *dot_id, const char *commit_id, const dm_oid *oid, unsigned flags,
		       void *ctx)
{
	struct commits *c = ctx;

	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 256;
		c->v = dm_xrealloc(c->v, c->cap * sizeof(*c->v));
	}
	c->v[c->n].dot = dm_xstrdup(dot_id);
	c->v[c->n].id = dm_xstrdup(commit_id);
	c->v[c->n].oid = *oid;
	c->v[c->n].flags = flags;
	c->n++;
	return 0;
}

static void commits_release(struct commits *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].dot);
		free(c->v[i].id);
	}
	free(c->v);
	memset(c, 0, sizeof(*c));
}

/*
 * Walks every commit; damaged[i] says whether commit i (not pruned) misses
 * data. final: count and report (the last walk).
 */
static int check_history(struct run *r, struct commits *cs, bool *damaged, bool final,
			 struct dm_err *err)
{
	int rc = 0;

	dm_oidmap_clear(&r->memo);
	dm_oidmap_clear(&r->missing);
	for (size_t i = 0; i < cs->n && !rc; i++) {
		struct commit_ent *c = &cs->v[i];
		struct dm_commit cm;
		bool ok = true;
		int kind = 0;

		damaged[i] = false;
		progress(r, DM_FSCK_HISTORY, i, cs->n);
		dm_buf_reset(&r->obj);
		if (dm_oidmap_get(&r->bad, &c->oid) ||
		    dm_store_get(r->s, &c->oid, &r->obj, &kind, NULL) || kind != DM_OBJ_COMMIT ||
		    dm_commit_decode(&cm, r->obj.data, r->obj.len, NULL)) {
			unsigned char kb = DM_OBJ_COMMIT;

			/* no record to keep: dm log cannot show it (unless the
			 * packs still have it) */
			dm_oidmap_put(&r->missing, &c->oid, &kb);
			if (final) {
				r->r->lost_commits++;
				problem(r, "commit %s of dot %s: its commit object is missing or "
					   "unreadable",
					c->id, c->dot);
			}
			continue;
		}
		if (strcmp(cm.dot_id, c->dot) || strcmp(cm.commit_id, c->id)) {
			if (final) {
				r->r->lost_commits++;
				problem(r, "commit %s of dot %s: its object is another commit's",
					c->id, c->dot);
			}
			dm_commit_release(&cm);
			continue;
		}
		if (!(c->flags & DM_COMMIT_PRUNED))
			rc = sound(r, &cm.tree, DM_OBJ_TREE, 0, &ok, err);
		dm_commit_release(&cm);
		damaged[i] = !ok;
		if (!final || ok)
			continue;
		r->r->damaged++;
		if (!(c->flags & DM_COMMIT_DAMAGED)) {
			r->r->unmarked++;
			if (!r->repair)
				problem(r, "commit %s of dot %s is damaged: some of its data is "
					   "missing",
					c->id, c->dot);
		}
		if (!rc)
			rc = check_cancel(r, err);
	}
	return rc;
}

/* ---- repair ---- */

static int drop_bad(struct run *r, struct dm_err *err)
{
	struct dm_index_entry *e = dm_xcalloc(r->bad.count + 1, sizeof(*e));
	const dm_oid *id;
	void *val;
	size_t n = 0, it = 0, deleted = 0;
	int rc;

	while (dm_oidmap_next(&r->bad, &it, &id, &val)) {
		e[n].id = *id;
		e[n].loc = *(struct dm_loc *)val;
		n++;
	}
	rc = dm_index_delete_if(r->s->idx, e, n, &deleted, err);
	free(e);
	if (!rc)
		r->r->dropped += deleted;
	/* nothing points into a pack whose file is gone any more */
	for (size_t i = 0; !rc && i < r->nlens; i++) {
		char path[4096];
		struct stat st;

		if (dm_store_pack_path(path, sizeof(path), r->s, r->lens[i].pack) < 0 ||
		    stat(path, &st) == 0 || errno != ENOENT)
			continue;
		rc = dm_index_drop_packs(r->s->idx, &r->lens[i].pack, 1, err);
		if (!rc)
			r->r->packs_missing--;
	}
	/* their entries are gone: lookups miss them from now on */
	if (!rc)
		dm_oidmap_clear(&r->bad);
	return rc;
}

/* Looks for the missing ids in every pack file's records (the index's
 * packs to their committed ends, files it does not know to their ends)
 * and stores again each one whose record hashes right. */
static int restore(struct run *r, uint64_t *restored, struct dm_err *err)
{
	char dir[4096];
	struct dm_buf stored = DM_BUF_INIT;
	struct dirent *de;
	DIR *d;
	int rc = 0;

	*restored = 0;
	snprintf(dir, sizeof(dir), "%s/packs", r->s->dir);
	d = opendir(dir);
	if (!d)
		return dm_err_errno(err, errno, "cannot read '%s'", dir);
	while (!rc && (de = readdir(d))) {
		const struct dm_pack_len *l;
		char path[4096];
		unsigned pack;
		char tail;
		struct stat st;
		uint64_t off = DM_PACK_HDR_LEN, end;
		int fd;

		if (sscanf(de->d_name, "pack-%8u.pac%c", &pack, &tail) != 2 || tail != 'k')
			continue;
		if (dm_store_pack_path(path, sizeof(path), r->s, pack) < 0 ||
		    dm_pack_open(&fd, path, O_RDONLY, NULL))
			continue;
		l = pack_len(r, pack);
		end = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
		if (l && l->len < end)
			end = l->len;
		while (off + DM_PACK_REC_LEN <= end) {
			struct dm_pack_rec rec;
			unsigned char *kind;

			if (dm_pack_read(fd, off, &rec, &stored, NULL))
				break; /* the rest of this pack cannot be parsed */
			off += DM_PACK_REC_LEN + (uint64_t)rec.stored_len;
			kind = dm_oidmap_get(&r->missing, &rec.id);
			if (!kind || *kind != rec.kind)
				continue;
			/* hashed and checked again as it is stored: a bad copy is refused */
			if (dm_store_put_stored(r->s, &rec, stored.data, NULL))
				continue;
			dm_oidmap_put(&r->missing, &rec.id, NULL); /* found */
			*kind = 0;
			(*restored)++;
		}
		close(fd);
	}
	closedir(d);
	dm_buf_release(&stored);
	if (*restored)
		rc = dm_store_flush(r->s, err);
	return rc;
}

static int mark_damaged(struct run *r, struct commits *cs, const bool *damaged,
			struct dm_err *err)
{
	int rc = 0;

	for (size_t i = 0; i < cs->n && !rc; i++) {
		const char *one[1] = {cs->v[i].id};
		size_t changed = 0;

		if (!damaged[i] || (cs->v[i].flags & DM_COMMIT_DAMAGED))
			continue;
		rc = dm_store_commit_mark(r->s, cs->v[i].dot, one, 1, DM_COMMIT_DAMAGED, &changed,
					  err);
		if (!rc && changed) {
			r->r->marked++;
			dm_warn("fsck: commit %s of dot %s marked damaged: some of its data is gone",
				cs->v[i].id, cs->v[i].dot);
		}
	}
	return rc;
}

int dm_store_fsck(struct dm_store *s, bool repair, struct dm_fsck_progress *p,
		  bool (*cancelled)(void *ctx), void *ctx, struct dm_store_fsck_report *out,
		  struct dm_err *err)
{
	struct run r;
	struct commits cs = {0};
	bool *damaged = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	r.s = s;
	r.repair = repair;
	r.p = p;
	r.cancelled = cancelled;
	r.cancel_ctx = ctx;
	r.r = out;
	dm_oidmap_init(&r.bad, sizeof(struct dm_loc));
	dm_oidmap_init(&r.dangling, 0);
	dm_oidmap_init(&r.missing, 1);
	dm_oidmap_init(&r.memo, 1);
	dm_buf_init(&r.obj, DM_OBJ_MAX_SIZE);
	rc = dm_store_flush(s, err);
	if (!rc)
		rc = dm_index_pack_lengths(s->idx, &r.lens, &r.nlens, err);
	if (!rc)
		rc = check_objects(&r, err);
	if (!rc)
		rc = check_packs(&r, err);
	if (!rc)
		rc = dm_store_commit_foreach(s, list_commit, &cs, err);
	damaged = dm_xcalloc(cs.n + 1, sizeof(*damaged));
	out->commits = cs.n;
	if (!rc && repair) {
		if (r.bad.count)
			rc = drop_bad(&r, err);
		for (int round = 0; !rc && round < RESTORE_ROUNDS; round++) {
			uint64_t n = 0;

			rc = check_history(&r, &cs, damaged, false, err);
			if (rc || !r.missing.count)
				break;
			progress(&r, DM_FSCK_REPAIR, round, RESTORE_ROUNDS);
			rc = restore(&r, &n, err);
			out->restored += n;
			if (!n)
				break;
		}
	}
	if (!rc)
		rc = check_history(&r, &cs, damaged, true, err);
	if (!rc && repair)
		rc = mark_damaged(&r, &cs, damaged, err);
	/* objects that name what is gone, that no commit reaches: garbage */
	if (!rc) {
		const dm_oid *id;
		void *val;
		size_t it = 0;

		while (dm_oidmap_next(&r.dangling, &it, &id, &val))
			if (!dm_oidmap_get(&r.memo, id))
				out->dangling++;
	}
	/* what a repair dropped, restored or marked is not a problem any more */
	if (!rc && repair)
		out->problems = out->lost_commits + out->short_packs + out->packs_missing;
	else if (!rc)
		out->problems = out->bad + out->pack_problems + out->lost_commits + out->unmarked;
	free(damaged);
	commits_release(&cs);
	free(r.lens);
	dm_oidmap_release(&r.bad);
	dm_oidmap_release(&r.dangling);
	dm_oidmap_release(&r.missing);
	dm_oidmap_release(&r.memo);
	dm_buf_release(&r.obj);
	return rc;
}
