/*
 * catalog.c - the one table of dm's metrics (see catalog.h): each one's
 * name, help, type, labels and buckets. Names follow Prometheus's
 * conventions: dm_ prefix, base units (_seconds, _bytes), _total on
 * counters; process_ metrics as the client libraries name them.
 *
 * Invariant: docs/metrics.md lists exactly these, in this order
 * (tests/e2e/t1200-metrics-format.sh compares the two).
 */
#include "metrics/catalog.h"

#include "util/banned.h"

#define MS  1000000LL
#define SEC 1000000000LL

/* requests, KV calls: 0.1 ms to a minute */
static const int64_t latency[] = {MS / 10, MS / 2,   MS,       5 * MS,   10 * MS, 25 * MS,
				  50 * MS, 100 * MS, 250 * MS, 500 * MS, SEC,     5 * SEC / 2,
				  5 * SEC, 10 * SEC, 30 * SEC, 60 * SEC};
/* jobs, transfers, collections: 10 ms to an hour */
static const int64_t long_running[] = {10 * MS,   100 * MS,  500 * MS,   SEC,       5 * SEC / 2,
				       5 * SEC,   10 * SEC,  30 * SEC,   60 * SEC,  120 * SEC,
				       300 * SEC, 600 * SEC, 1800 * SEC, 3600 * SEC};

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define GAUGE(var, nm, hp, ...)                                                                    \
	struct dm_metric var = {                                                                   \
		.name = nm, .help = hp, .type = DM_METRIC_GAUGE, .labels = {__VA_ARGS__}}
#define COUNTER(var, nm, hp, ...)                                                                  \
	struct dm_metric var = {                                                                   \
		.name = nm, .help = hp, .type = DM_METRIC_COUNTER, .labels = {__VA_ARGS__}}
#define SECONDS(var, nm, hp, b, ...)                                                               \
	struct dm_metric var = {.name = nm,                                                        \
				.help = hp,                                                        \
				.type = DM_METRIC_HISTOGRAM,                                       \
				.labels = {__VA_ARGS__},                                           \
				.bounds = b,                                                       \
				.nbounds = N(b),                                                   \
				.scale = 1e-9}

/* what the node holds */
GAUGE(dm_m_dots, "dm_dots", "Dots on this node.", NULL);
GAUGE(dm_m_branches, "dm_branches", "Branches of the dots on this node.", NULL);
GAUGE(dm_m_commits, "dm_commits", "Commits in the store (each counted once).", NULL);
GAUGE(dm_m_containers, "dm_containers", "Containers using dots on this node.", NULL);
GAUGE(dm_m_wc_bytes, "dm_working_copy_bytes",
      "Bytes in the working copies of every branch, as last measured.", NULL);
GAUGE(dm_m_wc_dirty_bytes, "dm_working_copy_dirty_bytes",
      "Uncommitted bytes in the working copies, as last measured.", NULL);
GAUGE(dm_m_store_objects, "dm_store_objects", "Objects in the store, by kind.", "kind");
GAUGE(dm_m_store_logical_bytes, "dm_store_logical_bytes",
      "Bytes of the objects in the store, uncompressed, each object once.", NULL);
GAUGE(dm_m_store_stored_bytes, "dm_store_stored_bytes",
      "Bytes the objects in the store take in its packs (compressed).", NULL);
GAUGE(dm_m_store_pack_bytes, "dm_store_pack_bytes",
      "Bytes of the store's pack files on disk, garbage included.", NULL);
struct dm_metric dm_m_store_dedup_ratio = {
	.name = "dm_store_dedup_ratio",
	.help = "Bytes written to the store divided by the bytes it had to keep, since dmd "
		"started (1 before any write).",
	.type = DM_METRIC_GAUGE,
	.scale = 1e-6,
};
COUNTER(dm_m_store_put_bytes, "dm_store_put_bytes_total",
	"Bytes of objects written to the store, by whether it had them (duplicate) or not (new).",
	"result");
GAUGE(dm_m_gc_garbage_bytes, "dm_gc_garbage_bytes",
      "Estimated bytes of garbage made since the last collection.", NULL);

/* what happens */
COUNTER(dm_m_rpc_requests, "dm_rpc_requests_total",
	"JSON-RPC requests handled, by method and outcome (ok or an error code).", "method",
	"outcome");
SECONDS(dm_m_rpc_duration, "dm_rpc_request_duration_seconds",
	"How long JSON-RPC requests took, by method.", latency, "method");
COUNTER(dm_m_transfers, "dm_transfers_total",
	"Pushes, pulls and clones this node ran, by direction and outcome.", "direction",
	"outcome");
COUNTER(dm_m_transfer_bytes, "dm_transfer_bytes_total",
	"Bytes moved by the transfers this node ran, by direction and outcome.", "direction",
	"outcome");
SECONDS(dm_m_transfer_duration, "dm_transfer_duration_seconds",
	"How long the transfers this node ran took, by direction and outcome.", long_running,
	"direction", "outcome");
GAUGE(dm_m_mailbox, "dm_actor_mailbox_messages",
      "Messages waiting in the mailboxes of the actors, by kind of actor.", "kind");
SECONDS(dm_m_job_duration, "dm_job_duration_seconds", "How long jobs took, by kind.", long_running,
	"kind");
COUNTER(dm_m_gc_runs, "dm_gc_runs_total", "Garbage collections of the store, by outcome.",
	"outcome");
COUNTER(dm_m_gc_freed_bytes, "dm_gc_freed_bytes_total",
	"Bytes of pack files garbage collections freed.", NULL);
SECONDS(dm_m_gc_duration, "dm_gc_duration_seconds", "How long garbage collections took.",
	long_running, NULL);
SECONDS(dm_m_kv_duration, "dm_kv_call_duration_seconds",
	"How long calls of the cluster state store took, by backend and call.", latency, "backend",
	"call");
COUNTER(dm_m_kv_errors, "dm_kv_errors_total",
	"Calls of the cluster state store that failed, by backend and call.", "backend", "call");
COUNTER(dm_m_http_refused, "dm_http_refused_total",
	"Requests and connections refused, by reason (credentials, headers_late, body_late, "
	"no_request: closed before a whole request, as when TLS fails).",
	"reason");

/* the process */
GAUGE(dm_m_process_rss, "process_resident_memory_bytes", "Resident memory size in bytes.", NULL);
GAUGE(dm_m_process_vsize, "process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL);
GAUGE(dm_m_process_fds, "process_open_fds", "Number of open file descriptors.", NULL);
GAUGE(dm_m_process_max_fds, "process_max_fds", "Maximum number of open file descriptors.", NULL);
GAUGE(dm_m_process_threads, "process_threads", "Number of threads of the process.", NULL);
struct dm_metric dm_m_process_cpu = {
	.name = "process_cpu_seconds_total",
	.help = "Total user and system CPU time spent in seconds.",
	.type = DM_METRIC_COUNTER,
	.scale = 1e-9,
};
GAUGE(dm_m_process_start, "process_start_time_seconds",
      "Start time of the process since unix epoch in seconds.", NULL);
COUNTER(dm_m_dropped, "dm_metrics_dropped_total",
	"Metric updates dropped because a metric had as many series as it may hold.", NULL);

struct dm_metric *const dm_metrics_catalog[] = {
	&dm_m_dots,
	&dm_m_branches,
	&dm_m_commits,
	&dm_m_containers,
	&dm_m_wc_bytes,
	&dm_m_wc_dirty_bytes,
	&dm_m_store_objects,
	&dm_m_store_logical_bytes,
	&dm_m_store_stored_bytes,
	&dm_m_store_pack_bytes,
	&dm_m_store_dedup_ratio,
	&dm_m_store_put_bytes,
	&dm_m_gc_garbage_bytes,
	&dm_m_rpc_requests,
	&dm_m_rpc_duration,
	&dm_m_transfers,
	&dm_m_transfer_bytes,
	&dm_m_transfer_duration,
	&dm_m_mailbox,
	&dm_m_job_duration,
	&dm_m_gc_runs,
	&dm_m_gc_freed_bytes,
	&dm_m_gc_duration,
	&dm_m_kv_duration,
	&dm_m_kv_errors,
	&dm_m_http_refused,
	&dm_m_process_rss,
	&dm_m_process_vsize,
	&dm_m_process_fds,
	&dm_m_process_max_fds,
	&dm_m_process_threads,
	&dm_m_process_cpu,
	&dm_m_process_start,
	&dm_m_dropped,
	NULL,
};
