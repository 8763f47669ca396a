/*
 * metrics_http.c - the body of GET /metrics (metrics_http.h): the figures
 * read at the time of the scrape (the dots from the registry's latest
 * views, the store's objects and bytes, the garbage estimate, the process)
 * set into their gauges, then every metric of the catalog in the text
 * exposition format. Who may ask is http.c's business.
 *
 * Invariants:
 *  - No dot's state is touched: the dots' figures come from their
 *    published views (DESIGN.md §3).
 *  - The store's figures walk its whole index, so they are read again at
 *    most every STORE_EVERY_S seconds, by one scrape at a time (an atomic
 *    flag, not a lock); scrapes in between answer the last figures.
 */
#include "server/api/metrics_http.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "metrics/catalog.h"
#include "server/api/api.h"
#include "server/dots/registry.h"
#include "server/space/space.h"
#include "store/object.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define STORE_EVERY_S 15
/* the body's bound: the catalog's families at their most series */
#define BODY_MAX (8u << 20)

static _Atomic int64_t store_read_ns; /* when the store's figures were last read */
static atomic_bool store_reading;

/* Dots, branches, containers and working-copy bytes, from the views. */
static void read_dots(const struct dm_api_env *env)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(env->registry);
	int64_t branches = 0, containers = 0, bytes = 0, dirty = 0;

	for (size_t i = 0; i < snap->n; i++) {
		struct dm_dot_view *v = dm_dot_handle_view(snap->e[i].dot);

		branches += (int64_t)v->nbranches;
		containers += (int64_t)v->nmounts;
		for (size_t b = 0; b < v->nbranches; b++) {
			bytes += (int64_t)v->branches[b].size;
			dirty += (int64_t)v->branches[b].dirty;
		}
		dm_dot_view_unref(v);
	}
	dm_metric_set(&dm_m_dots, NULL, NULL, (int64_t)snap->n);
	dm_registry_snap_unref(snap);
	dm_metric_set(&dm_m_branches, NULL, NULL, branches);
	dm_metric_set(&dm_m_containers, NULL, NULL, containers);
	dm_metric_set(&dm_m_wc_bytes, NULL, NULL, bytes);
	dm_metric_set(&dm_m_wc_dirty_bytes, NULL, NULL, dirty);
}

/* The store's objects and bytes, unless read less than STORE_EVERY_S ago
 * or being read by another scrape. */
static void read_store(const struct dm_api_env *env)
{
	static const char *const kinds[] = {NULL, "chunk", "file", "tree", "commit"};
	int64_t now = dm_now_monotonic_ns(), last = atomic_load(&store_read_ns);
	struct dm_store_stats st;
	struct dm_err err;
	bool expected = false;

	if (last && now - last < STORE_EVERY_S * 1000000000LL)
		return;
	if (!atomic_compare_exchange_strong(&store_reading, &expected, true))
		return;
	if (dm_store_stats(env->store, &st, &err)) {
		dm_warn("metrics: cannot read the store's figures: %s", err.msg);
	} else {
		for (int k = DM_OBJ_CHUNK; k <= DM_OBJ_COMMIT; k++)
			dm_metric_set(&dm_m_store_objects, kinds[k], NULL, (int64_t)st.objects[k]);
		dm_metric_set(&dm_m_commits, NULL, NULL, (int64_t)st.objects[DM_OBJ_COMMIT]);
		dm_metric_set(&dm_m_store_logical_bytes, NULL, NULL, (int64_t)st.raw_bytes);
		dm_metric_set(&dm_m_store_stored_bytes, NULL, NULL, (int64_t)st.stored_bytes);
		dm_metric_set(&dm_m_store_pack_bytes, NULL, NULL, (int64_t)st.pack_bytes);
		atomic_store(&store_read_ns, now);
	}
	atomic_store(&store_reading, false);
}

/* Bytes written over bytes kept, in millionths (1 before any write). */
static void read_dedup(void)
{
	struct dm_metric_series *dup = dm_metric_series(&dm_m_store_put_bytes, "duplicate", NULL);
	struct dm_metric_series *fresh = dm_metric_series(&dm_m_store_put_bytes, "new", NULL);
	int64_t d = dup ? atomic_load(&dup->value) : 0, n = fresh ? atomic_load(&fresh->value) : 0;

	dm_metric_set(&dm_m_store_dedup_ratio, NULL, NULL,
		      n > 0 ? (int64_t)((double)(n + d) / (double)n * 1e6) : 1000000);
}

static void read_garbage(const struct dm_api_env *env)
{
	struct dm_space_last last;
	struct dm_err err;

	if (env->space && !dm_space_last(env->space, &last, &err))
		dm_metric_set(&dm_m_gc_garbage_bytes, NULL, NULL, (int64_t)last.garbage);
}

char *dm_metrics_http_body(const struct dm_api_env *env)
{
	struct dm_buf out;

	if (env->registry)
		read_dots(env);
	if (env->store)
		read_store(env);
	read_dedup();
	read_garbage(env);
	dm_metrics_process_update();
	dm_buf_init(&out, BODY_MAX);
	if (dm_metrics_write(&out, dm_metrics_catalog)) {
		dm_buf_release(&out);
		return NULL;
	}
	return dm_buf_detach(&out, NULL);
}
