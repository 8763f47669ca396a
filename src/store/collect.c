/*
 * collect.c - garbage collection of the store: dm_store_gc (store.h;
 * the design, its phases and why each is safe: docs/internals/gc.md).
 *
 *   begin     a new epoch: from now on every id looked up or written is
 *             fresh (guard.c); wait until the holds of earlier epochs end
 *   mark      from every indexed commit and every pin: files, trees and
 *             commits into an exact set, chunks into a Bloom filter
 *   close     walk what became fresh meanwhile, until nothing new is;
 *             then, under mu, the mark is final: phase SWEEP
 *   sweep     in batches of the index: forget every entry that is
 *             condemned (neither marked nor fresh nor in a staging pack),
 *             re-checked under mu right before its transaction
 *   rewrite   seal the current pack; every pack whose live records fill
 *             less than live_min_pct of it has them copied into the
 *             current pack, is flushed, forgotten, and deleted
 *
 * Invariants: an object a marked or fresh object names is marked too
 * (marks follow dm_object_refs; fresh ones are walked before SWEEP), so
 * nothing kept names something forgotten; a false positive of the Bloom
 * filter only keeps a chunk (a leaf) one collection longer; a pack is
 * deleted only after a flush that recorded every live record of it
 * elsewhere. A dry run stops after the mark and counts.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/bloom.h"
#include "store/gc.h"
#include "store/index.h"
#include "store/internal.h"
#include "store/pack.h"
#include "store/store.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/id.h"
#include "util/log.h"

#include "util/banned.h"

#define BATCH        16384
#define CLOSE_ROUNDS 1000
#define HOLD_WAIT_MS (10 * 60 * 1000)

void dm_store_gc_opts_default(struct dm_store_gc_opts *out)
{
	memset(out, 0, sizeof(*out));
	out->live_min_pct = DM_GC_LIVE_MIN_PCT;
	out->hold_wait_ms = HOLD_WAIT_MS;
}

struct run {
	struct dm_store *s;
	bool dry;
	struct dm_store_gc_stats *st;
	struct dm_oidmap seen;    /* files, trees, commits marked */
	struct dm_bloom chunks;   /* chunks marked */
	struct dm_oidmap handled; /* fresh ids walked already */
	uint64_t *live;           /* per pack number: bytes of live records */
	uint32_t npacks;
	/* the batch being swept */
	struct dm_index_entry *batch;
	size_t nbatch;
	dm_oid last;
	bool resume;
	const struct dm_store_gc_opts *o;
	uint64_t marks; /* chunks marked, to let others run every YIELD_EVERY */
};

#define YIELD_EVERY 16

/* Lets others run, if the caller said how (dm_store_gc_opts.yield). */
static int yield(const struct dm_store_gc_opts *o)
{
	return o->yield ? o->yield(o->yield_ctx) : 0;
}

static void mark_chunk(void *ctx, const dm_oid *id)
{
	struct run *r = ctx;

	dm_bloom_add(&r->chunks, id);
	if (++r->marks % YIELD_EVERY == 0)
		(void)yield(r->o);
}

static bool marked(const struct run *r, const dm_oid *id, int kind)
{
	if (kind == DM_OBJ_CHUNK)
		return dm_bloom_has(&r->chunks, id);
	return dm_oidmap_get(&r->seen, id) != NULL;
}

/* Starts a new epoch and tracking; DM_EBUSY when a collection runs. */
static int begin(struct dm_store *s, struct dm_err *err)
{
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (s->gc.running) {
		rc = dm_err_set(err, DM_EBUSY, "a garbage collection is running already");
	} else {
		s->gc.running = true;
		s->gc.thread = pthread_self();
		dm_oidmap_clear(&s->gc.fresh);
		s->gc.holds_old += s->gc.holds_cur;
		s->gc.holds_cur = 0;
		s->gc.epoch++;
		__atomic_store_n(&s->gc.phase, DM_GC_TRACK, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static void end(struct dm_store *s)
{
	pthread_mutex_lock(&s->mu);
	__atomic_store_n(&s->gc.phase, DM_GC_OFF, __ATOMIC_RELEASE);
	s->gc.live_meta = NULL;
	s->gc.live_chunks = NULL;
	dm_oidmap_release(&s->gc.fresh);
	dm_oidmap_init(&s->gc.fresh, 0);
	s->gc.running = false;
	pthread_mutex_unlock(&s->mu);
}

/* Waits until every hold of an earlier epoch is given back: sleeping on
 * them, or letting others run while a yield says they do. */
static int wait_holds(struct dm_store *s, const struct dm_store_gc_opts *o, struct dm_err *err)
{
	int wait_ms = o->hold_wait_ms;
	int64_t t0 = dm_now_monotonic_ns();
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	while (s->gc.holds_old && rc != ETIMEDOUT) {
		if (o->yield) {
			int ran;

			pthread_mutex_unlock(&s->mu);
			ran = yield(o);
			pthread_mutex_lock(&s->mu);
			if (ran) {
				if (dm_now_monotonic_ns() - t0 >= (int64_t)wait_ms * 1000000)
					rc = ETIMEDOUT;
				continue;
			}
			/* the holds may have ended while the lock was let go:
			 * look again before sleeping on their signal */
			if (!s->gc.holds_old)
				break;
		}
		rc = pthread_cond_timedwait(&s->gc.holds_cv, &s->mu, &until);
	}
	rc = s->gc.holds_old ? dm_err_set(err, DM_EBUSY,
					  "%llu jobs that were running when garbage "
					  "collection began did not end within %d s",
					  (unsigned long long)s->gc.holds_old, wait_ms / 1000)
			     : 0;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* The pinned and leased ids (dropping pins counted down to 0 and leases
 * that ended); *out is malloc'ed. */
static void copy_pins(struct dm_store *s, dm_oid **out, size_t *n)
{
	struct dm_oidmap keep, keep_leases;
	int64_t now = dm_now_monotonic_ns();
	const dm_oid *id;
	void *val;
	size_t it = 0;

	dm_oidmap_init(&keep, sizeof(uint32_t));
	dm_oidmap_init(&keep_leases, sizeof(int64_t));
	pthread_mutex_lock(&s->mu);
	*out = dm_xmalloc((s->gc.pins.count + s->gc.leases.count + 1) * sizeof(**out));
	*n = 0;
	while (dm_oidmap_next(&s->gc.pins, &it, &id, &val)) {
		if (!*(uint32_t *)val)
			continue;
		dm_oidmap_put(&keep, id, val);
		(*out)[(*n)++] = *id;
	}
	for (it = 0; dm_oidmap_next(&s->gc.leases, &it, &id, &val);) {
		if (*(int64_t *)val < now)
			continue;
		dm_oidmap_put(&keep_leases, id, val);
		(*out)[(*n)++] = *id;
	}
	dm_oidmap_release(&s->gc.pins);
	dm_oidmap_release(&s->gc.leases);
	s->gc.pins = keep;
	s->gc.leases = keep_leases;
	pthread_mutex_unlock(&s->mu);
}

/*
 * Walks what became fresh since the last round until a round finds
 * nothing new; then (not in a dry run) makes the mark final, under mu, so
 * that nothing can become fresh between the last look and SWEEP.
 */
static int close_fresh(struct run *r, struct dm_err *err)
{
	struct dm_store *s = r->s;

	for (int round = 0; round < CLOSE_ROUNDS; round++) {
		dm_oid *ids = NULL;
		const dm_oid *id;
		void *val;
		size_t n = 0, it = 0;
		int rc;

		(void)yield(r->o);
		pthread_mutex_lock(&s->mu);
		while (dm_oidmap_next(&s->gc.fresh, &it, &id, &val)) {
			if (dm_oidmap_get(&r->handled, id))
				continue;
			if (n % 1024 == 0)
				ids = dm_xrealloc(ids, (n + 1024) * sizeof(*ids));
			ids[n++] = *id;
		}
		if (!n) {
			if (!r->dry) {
				s->gc.live_meta = &r->seen;
				s->gc.live_chunks = &r->chunks;
				__atomic_store_n(&s->gc.phase, DM_GC_SWEEP, __ATOMIC_RELEASE);
			}
			pthread_mutex_unlock(&s->mu);
			return 0;
		}
		pthread_mutex_unlock(&s->mu);
		for (size_t i = 0; i < n; i++)
			dm_oidmap_put(&r->handled, &ids[i], NULL);
		rc = dm_store_mark_live(s, false, ids, n, &r->seen, mark_chunk, r, err);
		free(ids);
		if (rc)
			return rc;
	}
	return dm_err_set(err, DM_EBUSY, "the store is too busy to finish garbage collection");
}

static uint64_t rec_bytes(const struct dm_loc *loc)
{
	return loc->where == DM_LOC_PACK ? DM_PACK_REC_LEN + (uint64_t)loc->stored_len : 0;
}

static void count_live(struct run *r, const struct dm_loc *loc)
{
	if (loc->where == DM_LOC_PACK && loc->pack < r->npacks)
		r->live[loc->pack] += rec_bytes(loc);
}

/* Sorts one index entry into the batch (condemned) or the live counts. */
static int sweep_one(const dm_oid *id, const struct dm_loc *loc, void *ctx)
{
	struct run *r = ctx;
	bool staged;

	if (r->resume) {
		r->resume = false;
		if (!dm_oid_cmp(id, &r->last))
			return 0;
	}
	r->last = *id;
	r->st->objects++;
	pthread_mutex_lock(&r->s->mu);
	staged = loc->where == DM_LOC_PACK && dm_store_find_staged(r->s, loc->pack);
	pthread_mutex_unlock(&r->s->mu);
	if (staged || marked(r, id, loc->kind)) {
		count_live(r, loc);
		return 0;
	}
	r->batch[r->nbatch].id = *id;
	r->batch[r->nbatch].loc = *loc;
	r->batch[r->nbatch].path = NULL;
	r->nbatch++;
	return r->nbatch == BATCH ? 1 : 0;
}

/* Forgets the batch's entries that are still condemned. */
static int forget_batch(struct run *r, struct dm_err *err)
{
	struct dm_store *s = r->s;
	size_t n = 0, deleted = 0;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < r->nbatch; i++) {
		struct dm_index_entry *e = &r->batch[i];

		if (dm_oidmap_get(&s->gc.fresh, &e->id)) {
			r->st->kept_fresh++;
			count_live(r, &e->loc);
			continue;
		}
		r->st->freed++;
		if (e->loc.where == DM_LOC_EXTERNAL)
			r->st->external_freed++;
		r->st->freed_bytes += rec_bytes(&e->loc);
		r->batch[n++] = *e;
	}
	if (!r->dry)
		rc = dm_index_delete_if(s->idx, r->batch, n, &deleted, err);
	pthread_mutex_unlock(&s->mu);
	r->nbatch = 0;
	return rc;
}

static int sweep(struct run *r, struct dm_err *err)
{
	bool first = true;
	int rc;

	r->batch = dm_xmalloc(BATCH * sizeof(*r->batch));
	for (;;) {
		r->resume = !first;
		rc = dm_index_foreach_from(r->s->idx, first ? NULL : &r->last, sweep_one, r, err);
		first = false;
		if (rc < 0)
			return rc;
		if (r->nbatch) {
			int frc = forget_batch(r, err);

			if (frc)
				return frc;
		}
		if (rc == 0)
			return 0;
	}
}

/* Forgets pack (nothing points into it any more) and deletes its file;
 * *size gets its size on disk. */
static int delete_pack(struct dm_store *s, uint32_t pack, uint64_t *size, struct dm_err *err)
{
	char path[PATH_MAX];
	struct stat st;
	int rc = dm_index_drop_packs(s->idx, &pack, 1, err);

	*size = 0;
	if (rc)
		return rc;
	pthread_rwlock_wrlock(&s->packs_rw);
	pthread_mutex_lock(&s->mu);
	if (pack < s->nread_fds && s->read_fds[pack] >= 0) {
		close(s->read_fds[pack]);
		s->read_fds[pack] = -1;
	}
	dm_store_pack_path(path, sizeof(path), s, pack);
	if (stat(path, &st) == 0)
		*size = (uint64_t)st.st_size;
	if (unlink(path) < 0 && errno != ENOENT)
		dm_warn("store: cannot remove pack '%s' (removed at the next start): %s", path,
			strerror(errno));
	pthread_mutex_unlock(&s->mu);
	pthread_rwlock_unlock(&s->packs_rw);
	return 0;
}

static int recount_one(const dm_oid *id, const struct dm_loc *loc, void *ctx)
{
	(void)id;
	count_live(ctx, loc);
	return 0;
}

/* The packs a rewrite emptied and not yet deleted: deleted only after the
 * flush that made their live records durable elsewhere. */
struct emptied {
	uint32_t *packs;
	uint64_t *copied;
	size_t n;
	uint64_t bytes; /* copied since the last flush */
};

/* Flushes what was copied, then deletes the packs it came from. */
static int delete_emptied(struct run *r, struct emptied *e, struct dm_err *err)
{
	int rc = e->n ? dm_store_flush(r->s, err) : 0;

	for (size_t i = 0; !rc && i < e->n; i++) {
		uint64_t size;

		rc = delete_pack(r->s, e->packs[i], &size, err);
		if (!rc) {
			r->st->copied_bytes += e->copied[i];
			r->st->disk_freed += size > e->copied[i] ? size - e->copied[i] : 0;
		}
	}
	e->n = 0;
	e->bytes = 0;
	return rc;
}

/* Packs rewritten between two flushes, at most: one sync for many packs,
 * and never more than this many bytes copied but not yet durable. */
#define REWRITE_FLUSH_BYTES (256ull << 20)

static int rewrite(struct run *r, unsigned pct, struct dm_err *err)
{
	struct dm_store *s = r->s;
	struct dm_pack_len *lens = NULL;
	struct emptied em = {NULL, NULL, 0, 0};
	size_t nlens = 0;
	int rc = 0;

	if (!r->dry) {
		/* seal the current pack: new records go to a new one, numbered
		 * npacks or more, which is left alone */
		pthread_mutex_lock(&s->mu);
		if (s->cur.fd >= 0) {
			close(s->cur.fd);
			s->cur.fd = -1;
		}
		pthread_mutex_unlock(&s->mu);
		rc = dm_store_flush(s, err);
		/* what was written since the sweep counted is indexed now: count
		 * again, dead entries are gone */
		memset(r->live, 0, r->npacks * sizeof(*r->live));
		if (!rc)
			rc = dm_index_foreach(s->idx, recount_one, r, err);
	}
	if (!rc)
		rc = dm_index_pack_lengths(s->idx, &lens, &nlens, err);
	em.packs = dm_xcalloc(nlens + 1, sizeof(*em.packs));
	em.copied = dm_xcalloc(nlens + 1, sizeof(*em.copied));
	for (size_t i = 0; !rc && i < nlens; i++) {
		uint32_t p = lens[i].pack;
		uint64_t live = p < r->npacks ? r->live[p] : lens[i].len;
		struct dm_evacuated ev;
		bool skip;

		pthread_mutex_lock(&s->mu);
		/* a dry run counts the current pack as the real run would seal it */
		skip = dm_store_find_staged(s, p) || p >= r->npacks ||
		       (!r->dry && s->cur.fd >= 0 && s->cur.pack == p);
		pthread_mutex_unlock(&s->mu);
		if (skip || lens[i].len <= DM_PACK_HDR_LEN)
			continue;
		if (live * 100 >= lens[i].len * pct) {
			r->st->dead_kept += lens[i].len > live + DM_PACK_HDR_LEN
						    ? lens[i].len - live - DM_PACK_HDR_LEN
						    : 0;
			continue;
		}
		r->st->packs++;
		if (r->dry) {
			r->st->copied_bytes += live;
			r->st->disk_freed += lens[i].len - live;
			continue;
		}
		/* the index is the truth: whatever it places in p moves */
		rc = dm_store_evacuate_pack(s, p, lens[i].len, &ev, err);
		if (rc) {
			dm_err_prefix(err, "cannot rewrite pack %u", p);
			break;
		}
		em.packs[em.n] = p;
		em.copied[em.n++] = ev.stored_bytes;
		em.bytes += ev.stored_bytes;
		if (em.bytes >= REWRITE_FLUSH_BYTES)
			rc = delete_emptied(r, &em, err);
	}
	if (!rc)
		rc = delete_emptied(r, &em, err);
	free(em.packs);
	free(em.copied);
	free(lens);
	return rc;
}

int dm_store_gc(struct dm_store *s, const struct dm_store_gc_opts *opts,
		struct dm_store_gc_stats *out, struct dm_err *err)
{
	struct dm_store_gc_opts o;
	struct dm_store_gc_stats local;
	struct run r;
	dm_oid *pins = NULL;
	size_t npins = 0;
	uint64_t count = 0, seed = 0;
	int64_t t0 = dm_now_monotonic_ns();
	bool maint = false;
	int rc;

	if (opts)
		o = *opts;
	else
		dm_store_gc_opts_default(&o);
	if (!o.live_min_pct || o.live_min_pct > 100)
		o.live_min_pct = DM_GC_LIVE_MIN_PCT;
	if (o.hold_wait_ms <= 0)
		o.hold_wait_ms = HOLD_WAIT_MS;
	if (!out)
		out = &local;
	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	r.s = s;
	r.dry = o.dry_run;
	r.st = out;
	r.o = &o;
	dm_oidmap_init(&r.seen, 0);
	dm_oidmap_init(&r.handled, 0);
	rc = begin(s, err);
	if (rc)
		goto free;
	rc = wait_holds(s, &o, err);
	if (!rc)
		rc = dm_store_flush(s, err);
	if (!rc)
		rc = dm_index_count(s->idx, &count, err);
	if (rc)
		goto done;
	dm_random_bytes(&seed, sizeof(seed), NULL);
	dm_bloom_init(&r.chunks, count, DM_GC_MARK_MAX_BYTES, seed);
	copy_pins(s, &pins, &npins);
	rc = dm_store_mark_live(s, true, pins, npins, &r.seen, mark_chunk, &r, err);
	if (!rc)
		rc = close_fresh(&r, err);
	if (rc)
		goto done;
	out->marked = r.seen.count;
	out->mark_bytes = dm_bloom_bytes(&r.chunks) + r.seen.cap * (DM_OID_RAWSZ + 1);
	pthread_mutex_lock(&s->mu);
	r.npacks = s->last_pack + 1;
	pthread_mutex_unlock(&s->mu);
	r.live = dm_xcalloc(r.npacks, sizeof(*r.live));
	if (!r.dry) {
		pthread_mutex_lock(&s->maint_mu);
		maint = true;
	}
	rc = sweep(&r, err);
	if (rc)
		goto done;
	/* the sweep is done: nothing is condemned any more, lookups are plain */
	pthread_mutex_lock(&s->mu);
	__atomic_store_n(&s->gc.phase, DM_GC_OFF, __ATOMIC_RELEASE);
	s->gc.live_meta = NULL;
	s->gc.live_chunks = NULL;
	pthread_mutex_unlock(&s->mu);
	rc = rewrite(&r, o.live_min_pct, err);
done:
	if (maint)
		pthread_mutex_unlock(&s->maint_mu);
	end(s);
free:
	if (rc)
		dm_err_prefix(err, "garbage collection of store '%s'", s->dir);
	out->ms = (uint64_t)((dm_now_monotonic_ns() - t0) / 1000000);
	dm_bloom_release(&r.chunks);
	dm_oidmap_release(&r.seen);
	dm_oidmap_release(&r.handled);
	free(r.live);
	free(r.batch);
	free(pins);
	return rc;
}
