/*
 * staging.c - staging packs: chunks received for one dot, kept apart until
 * the engine has recorded what it could as bytes of its snapshot
 * (unstage.c) and dm_store_staging_end empties and deletes them (store.h,
 * "Staging"; not to be confused with unstage.c, which walks a tree).
 *
 * Invariants:
 *   - Staging packs hold only chunks received for one dot (put_received
 *     while staging is on). Every staging pack the index knows is in
 *     `staged` (with its dot); a new one joins the index's staging records
 *     in the flush that first records its length.
 *   - No other object is ever appended to one, so once nothing points into
 *     it (dm_store_staging_end moved what did), it is dropped from the
 *     index first and deleted after: a crash in between leaves a file the
 *     next open removes as unknown.
 *   - A staged chunk becomes bytes of a file (dm_store_unstage) only when
 *     those bytes hash to it, and only if it did not move meanwhile.
 */
#include "store/index.h"
#include "store/internal.h"
#include "store/pack.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/banned.h"

struct staged_pack *dm_store_find_staged(struct dm_store *s, uint32_t pack)
{
	for (size_t i = 0; i < s->nstaged; i++)
		if (s->staged[i].rec.pack == pack)
			return &s->staged[i];
	return NULL;
}

int dm_store_load_staged(struct dm_store *s, struct dm_err *err)
{
	struct dm_index_staged *list = NULL;
	size_t n = 0;
	int rc = dm_index_staged_list(s->idx, &list, &n, err);

	if (rc)
		return rc;
	s->staged = dm_xcalloc(n ? n : 1, sizeof(*s->staged));
	for (size_t i = 0; i < n; i++) {
		s->staged[i].rec = list[i];
		s->staged[i].recorded = true;
	}
	s->nstaged = n;
	free(list);
	return 0;
}

struct writer *dm_store_stage_writer(struct dm_store *s, const char *dot)
{
	struct stage *st;

	for (size_t i = 0; i < s->nstages; i++)
		if (!strcmp(s->stages[i].dot, dot))
			return &s->stages[i].w;
	s->stages = dm_xrealloc(s->stages, (s->nstages + 1) * sizeof(*s->stages));
	st = &s->stages[s->nstages++];
	snprintf(st->dot, sizeof(st->dot), "%s", dot);
	st->w.pack = 0;
	st->w.fd = -1;
	st->w.end = 0;
	return &st->w;
}

void dm_store_add_staged_pack(struct dm_store *s, uint32_t pack, const char *dot)
{
	struct staged_pack *sp;

	s->staged = dm_xrealloc(s->staged, (s->nstaged + 1) * sizeof(*s->staged));
	sp = &s->staged[s->nstaged++];
	memset(sp, 0, sizeof(*sp));
	sp->rec.pack = pack;
	snprintf(sp->rec.dot, sizeof(sp->rec.dot), "%s", dot);
}

int dm_store_put_received(struct dm_store *s, const char *dot_id, const struct dm_pack_rec *rec,
			  const void *bytes, struct dm_err *err)
{
	bool stage;

	pthread_mutex_lock(&s->mu);
	stage = s->staging;
	pthread_mutex_unlock(&s->mu);
	stage = stage && dot_id && rec->kind == DM_OBJ_CHUNK && dot_id[0] &&
		strlen(dot_id) <= DM_INDEX_DOT_MAX;
	return dm_store_put_stored_to(s, rec, bytes, stage ? dot_id : NULL, err);
}

void dm_store_set_staging(struct dm_store *s, bool on)
{
	pthread_mutex_lock(&s->mu);
	s->staging = on;
	pthread_mutex_unlock(&s->mu);
}

/* Whether loc lies in a staging pack of dot; caller holds mu. */
static bool staged_for(struct dm_store *s, const struct dm_loc *loc, const char *dot)
{
	const struct staged_pack *sp;

	if (loc->where != DM_LOC_PACK)
		return false;
	sp = dm_store_find_staged(s, loc->pack);
	return sp && !strcmp(sp->rec.dot, dot);
}

int dm_store_unstage(struct dm_store *s, const char *dot_id, const dm_oid *id, const char *path,
		     uint64_t off, uint32_t len, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_loc loc;
	bool staged, same = false;
	int rc = dm_store_check_external(DM_OBJ_CHUNK, path, len, err);

	if (rc)
		return rc;
	if (dm_store_lookup(s, id, &loc, NULL, NULL))
		return 0;
	pthread_mutex_lock(&s->mu);
	staged = staged_for(s, &loc, dot_id);
	pthread_mutex_unlock(&s->mu);
	if (!staged || loc.kind != DM_OBJ_CHUNK || loc.raw_len != len)
		return 0;
	rc = dm_store_read_and_hash(path, off, len, id, &b, &same, err);
	dm_buf_release(&b);
	if (rc || !same)
		return rc; /* not those bytes (written to meanwhile): it stays put */
	pthread_mutex_lock(&s->mu);
	/* unless it moved meanwhile, its place is now the file */
	if (dm_oidmap_get(&s->pending, id) ||
	    (dm_index_get(s->idx, id, &loc, NULL, NULL) == 0 && staged_for(s, &loc, dot_id))) {
		struct dm_loc *p = dm_oidmap_get(&s->pending, id);

		if (!p || staged_for(s, p, dot_id)) {
			struct dm_loc ext = {0};

			ext.kind = DM_OBJ_CHUNK;
			ext.where = DM_LOC_EXTERNAL;
			ext.raw_len = len;
			ext.stored_len = len;
			ext.offset = off;
			rc = dm_store_pend_external(s, id, &ext, path, err);
			if (!rc)
				rc = 1;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static int staging_end_locked(struct dm_store *s, const char *dot_id,
			      struct dm_store_staging_stats *out, struct dm_err *err)
{
	struct dm_store_staging_stats local;
	struct dm_pack_len *lens = NULL;
	uint32_t *packs = NULL;
	size_t n = 0, nlens = 0;
	int rc = 0;

	if (!out)
		out = &local;
	memset(out, 0, sizeof(*out));
	/* from here on, chunks that arrive for the dot start new packs */
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->nstages; i++) {
		if (strcmp(s->stages[i].dot, dot_id))
			continue;
		if (s->stages[i].w.fd >= 0)
			close(s->stages[i].w.fd);
		s->stages[i] = s->stages[--s->nstages];
		break;
	}
	packs = dm_xmalloc((s->nstaged + 1) * sizeof(*packs));
	for (size_t i = 0; i < s->nstaged; i++)
		if (!strcmp(s->staged[i].rec.dot, dot_id))
			packs[n++] = s->staged[i].rec.pack;
	pthread_mutex_unlock(&s->mu);
	if (!n)
		goto done;
	rc = dm_store_flush(s, err);
	if (!rc)
		rc = dm_index_pack_lengths(s->idx, &lens, &nlens, err);
	for (size_t i = 0; !rc && i < n; i++) {
		const struct dm_pack_len *l = dm_store_find_len(lens, nlens, packs[i]);
		struct dm_evacuated ev;

		if (!l)
			continue;
		/* every object that still lies in the staging pack moves */
		rc = dm_store_evacuate_pack(s, packs[i], l->len, &ev, err);
		if (rc)
			dm_err_prefix(err, "cannot empty staging pack %u", packs[i]);
		out->copied += ev.records;
		out->copied_bytes += ev.raw_bytes;
	}
	if (!rc)
		rc = dm_store_flush(s, err);
	/* nothing points into them now: forget them, then delete them */
	if (!rc)
		rc = dm_index_drop_packs(s->idx, packs, n, err);
	if (rc)
		goto done;
	pthread_rwlock_wrlock(&s->packs_rw);
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct stat st;

		for (size_t j = 0; j < s->nstaged; j++) {
			if (s->staged[j].rec.pack == packs[i]) {
				s->staged[j] = s->staged[--s->nstaged];
				break;
			}
		}
		if (packs[i] < s->nread_fds && s->read_fds[packs[i]] >= 0) {
			close(s->read_fds[packs[i]]);
			s->read_fds[packs[i]] = -1;
		}
		dm_store_pack_path(path, sizeof(path), s, packs[i]);
		if (stat(path, &st) == 0)
			out->freed_bytes += (uint64_t)st.st_size;
		if (unlink(path) < 0 && errno != ENOENT)
			dm_warn("store: cannot remove staging pack '%s' (removed at the next "
				"start): %s",
				path, strerror(errno));
		out->packs++;
	}
	pthread_mutex_unlock(&s->mu);
	pthread_rwlock_unlock(&s->packs_rw);
done:
	free(packs);
	free(lens);
	return rc;
}

/* Holds maint_mu: a collection moves and forgets index entries too. */
int dm_store_staging_end(struct dm_store *s, const char *dot_id, struct dm_store_staging_stats *out,
			 struct dm_err *err)
{
	int rc;

	pthread_mutex_lock(&s->maint_mu);
	rc = staging_end_locked(s, dot_id, out, err);
	pthread_mutex_unlock(&s->maint_mu);
	return rc;
}
