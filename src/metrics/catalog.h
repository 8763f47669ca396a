/*
 * catalog.h - every metric dm exports, defined once in catalog.c; the
 * subsystems update them (metrics.h), GET /metrics writes them all
 * (dm_metrics_catalog), and docs/metrics.md lists them in this order.
 *
 * Durations are kept in nanoseconds and written in seconds; sizes in
 * bytes. Label values are the bounded sets docs/metrics.md gives.
 */
#ifndef DM_METRICS_CATALOG_H
#define DM_METRICS_CATALOG_H

#include "metrics/metrics.h"

/* what the node holds, read when /metrics is asked for */
extern struct dm_metric dm_m_dots, dm_m_branches, dm_m_commits, dm_m_containers;
extern struct dm_metric dm_m_wc_bytes, dm_m_wc_dirty_bytes;
extern struct dm_metric dm_m_store_objects, dm_m_store_logical_bytes, dm_m_store_stored_bytes;
extern struct dm_metric dm_m_store_pack_bytes, dm_m_store_dedup_ratio, dm_m_store_put_bytes;
extern struct dm_metric dm_m_gc_garbage_bytes;

/* what happens, counted where it happens */
extern struct dm_metric dm_m_rpc_requests, dm_m_rpc_duration;
extern struct dm_metric dm_m_transfers, dm_m_transfer_bytes, dm_m_transfer_duration;
extern struct dm_metric dm_m_mailbox, dm_m_job_duration;
extern struct dm_metric dm_m_gc_runs, dm_m_gc_freed_bytes, dm_m_gc_duration;
extern struct dm_metric dm_m_kv_duration, dm_m_kv_errors;
extern struct dm_metric dm_m_http_refused;

/* the process, read from /proc when /metrics is asked for */
extern struct dm_metric dm_m_process_rss, dm_m_process_vsize, dm_m_process_fds;
extern struct dm_metric dm_m_process_max_fds, dm_m_process_threads, dm_m_process_cpu;
extern struct dm_metric dm_m_process_start, dm_m_dropped;

/* All of the above, NULL-terminated, in docs/metrics.md's order. */
extern struct dm_metric *const dm_metrics_catalog[];

/* Reads this process's figures (memory, open files, threads, CPU time)
 * into the process metrics above (process.c). */
void dm_metrics_process_update(void);

#endif
