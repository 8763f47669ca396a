/*
 * guard.c - what garbage collection must not free while commits,
 * transfers and readers go on (store.h "Holds and pins", gc.md): holds,
 * pins, and the fresh set and condemnation of a running collection.
 *
 * Invariants (all under s->mu):
 *   - holds_old counts holds taken before the running collection's epoch
 *     began; the collector marks only once it is 0, so every job that
 *     looked something up before tracking began has ended, and what it made
 *     is indexed (a commit) or pinned (a session) by then.
 *   - While phase is TRACK or SWEEP, every id written is added to `fresh`;
 *     while TRACK, every id looked up too (except by the collector itself).
 *   - In SWEEP an id is condemned when it is neither fresh, nor marked
 *     (exactly for files, trees and commits, by the Bloom filter for
 *     chunks), nor in a staging pack: a lookup then answers it absent and
 *     does not make it fresh, so no one builds on it again.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "store/bloom.h"
#include "store/internal.h"
#include "store/store.h"
#include "util/fsutil.h"

#include "util/banned.h"

void dm_store_guard_init(struct dm_store *s)
{
	memset(&s->gc, 0, sizeof(s->gc));
	dm_oidmap_init(&s->gc.fresh, 0);
	dm_oidmap_init(&s->gc.pins, sizeof(uint32_t));
	dm_oidmap_init(&s->gc.leases, sizeof(int64_t));
	pthread_cond_init(&s->gc.holds_cv, NULL);
	pthread_mutex_init(&s->maint_mu, NULL);
}

void dm_store_guard_release(struct dm_store *s)
{
	dm_oidmap_release(&s->gc.fresh);
	dm_oidmap_release(&s->gc.pins);
	dm_oidmap_release(&s->gc.leases);
	pthread_cond_destroy(&s->gc.holds_cv);
	pthread_mutex_destroy(&s->maint_mu);
}

static bool by_collector(const struct dm_store *s)
{
	return s->gc.running && pthread_equal(pthread_self(), s->gc.thread);
}

bool dm_store_guard_is_collector(const struct dm_store *s)
{
	return by_collector(s);
}

void dm_store_guard_wrote(struct dm_store *s, const dm_oid *id)
{
	if (s->gc.phase != DM_GC_OFF && !by_collector(s))
		dm_oidmap_put(&s->gc.fresh, id, NULL);
}

static __thread bool quiet;

void dm_store_quiet_reads(bool on)
{
	quiet = on;
}

void dm_store_guard_looked(struct dm_store *s, const dm_oid *id)
{
	if (s->gc.phase == DM_GC_TRACK && !quiet && !by_collector(s))
		dm_oidmap_put(&s->gc.fresh, id, NULL);
}

bool dm_store_guard_condemned(struct dm_store *s, const dm_oid *id, const struct dm_loc *loc)
{
	if (s->gc.phase != DM_GC_SWEEP || dm_oidmap_get(&s->gc.fresh, id))
		return false;
	if (loc->where == DM_LOC_PACK && dm_store_find_staged(s, loc->pack))
		return false;
	if (loc->kind == DM_OBJ_CHUNK)
		return !dm_bloom_has(s->gc.live_chunks, id);
	return !dm_oidmap_get(s->gc.live_meta, id);
}

uint64_t dm_store_hold(struct dm_store *s)
{
	uint64_t epoch;

	pthread_mutex_lock(&s->mu);
	epoch = s->gc.epoch;
	s->gc.holds_cur++;
	pthread_mutex_unlock(&s->mu);
	return epoch;
}

void dm_store_unhold(struct dm_store *s, uint64_t hold)
{
	pthread_mutex_lock(&s->mu);
	if (hold == s->gc.epoch) {
		s->gc.holds_cur--;
	} else if (s->gc.holds_old) {
		if (--s->gc.holds_old == 0)
			pthread_cond_broadcast(&s->gc.holds_cv);
	}
	pthread_mutex_unlock(&s->mu);
}

void dm_store_pin(struct dm_store *s, const dm_oid *id)
{
	uint32_t one = 1, *n;

	pthread_mutex_lock(&s->mu);
	n = dm_oidmap_get(&s->gc.pins, id);
	if (n)
		(*n)++;
	else
		dm_oidmap_put(&s->gc.pins, id, &one);
	pthread_mutex_unlock(&s->mu);
}

void dm_store_unpin(struct dm_store *s, const dm_oid *id)
{
	uint32_t *n;

	/* a count of 0 stays as a slot (the map cannot delete one); the
	 * collector skips it and drops such slots when it copies the pins */
	pthread_mutex_lock(&s->mu);
	n = dm_oidmap_get(&s->gc.pins, id);
	if (n && *n)
		(*n)--;
	pthread_mutex_unlock(&s->mu);
}

void dm_store_lease(struct dm_store *s, const dm_oid *id, int64_t ms)
{
	int64_t until = dm_now_monotonic_ns() + ms * 1000000LL, *old;

	pthread_mutex_lock(&s->mu);
	old = dm_oidmap_get(&s->gc.leases, id);
	if (!old || *old < until)
		dm_oidmap_put(&s->gc.leases, id, &until);
	pthread_mutex_unlock(&s->mu);
}
