/*
 * metrics.h - the process's metrics: counters, gauges and histograms that
 * the subsystems update, and the writer of Prometheus's text exposition
 * format (docs/metrics.md lists them all; catalog.h declares them).
 *
 * A metric is a family (a name, its help, its type and up to
 * DM_METRIC_LABELS_MAX label names) defined once, statically, in
 * catalog.c. Its series are found by their label values, which must be
 * strings that live as long as the process (string literals, names from
 * static tables: an RPC method's name, an error code's JSON name), so that
 * no label can take an unbounded set of values such as a dot's id.
 *
 * Threads: every update is lock-free (atomic adds on the series' fields);
 * a series is added by claiming the first free slot with a compare-and-
 * swap, so that two threads adding the same labels at once make one
 * series. A family holds at most DM_METRIC_SERIES_MAX series; updates of
 * series beyond that are dropped and counted (dm_metrics_dropped_total).
 */
#ifndef DM_METRICS_METRICS_H
#define DM_METRICS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct dm_buf;

#define DM_METRIC_LABELS_MAX  2
#define DM_METRIC_SERIES_MAX  256
#define DM_METRIC_BUCKETS_MAX 16

enum dm_metric_type { DM_METRIC_COUNTER, DM_METRIC_GAUGE, DM_METRIC_HISTOGRAM };

/* One series of a family: private to metrics.c but for its size. */
struct dm_metric_series {
	atomic_int state; /* 0 free, 1 being claimed, 2 ready */
	const char *values[DM_METRIC_LABELS_MAX];
	_Atomic int64_t value; /* counter, gauge; histogram: the sum */
	/* histogram: observations per bucket, not cumulative; the last one
	 * used (index nbounds) holds those above every bound */
	_Atomic uint64_t bucket[DM_METRIC_BUCKETS_MAX + 1];
};

struct dm_metric {
	const char *name; /* "dm_rpc_requests_total" */
	const char *help;
	enum dm_metric_type type;
	const char *labels[DM_METRIC_LABELS_MAX]; /* label names, NULL after the last */
	/* histograms: upper bounds in the unit of the observations, ascending,
	 * at most DM_METRIC_BUCKETS_MAX; +Inf is implied */
	const int64_t *bounds;
	size_t nbounds;
	/* what one unit of a value is in the base unit written out (1e-9 for
	 * a value kept in nanoseconds and written in seconds); 0 means 1 */
	double scale;
	struct dm_metric_series series[DM_METRIC_SERIES_MAX];
};

/*
 * The series of m with label values v0, v1 (as many as m has labels; the
 * rest NULL), added when new; NULL when the family is full (the update is
 * then dropped and counted). The values must live as long as the process.
 */
struct dm_metric_series *dm_metric_series(struct dm_metric *m, const char *v0, const char *v1);

/* Counters and gauges: add (negative for a gauge going down) or set. */
void dm_metric_add(struct dm_metric *m, const char *v0, const char *v1, int64_t n);
void dm_metric_set(struct dm_metric *m, const char *v0, const char *v1, int64_t value);
/* Histograms: one observation of value (in the family's unit). */
void dm_metric_observe(struct dm_metric *m, const char *v0, const char *v1, int64_t value);
/* Histograms of durations kept in nanoseconds: the time since start_ns
 * (dm_now_monotonic_ns()). */
void dm_metric_observe_since(struct dm_metric *m, const char *v0, const char *v1, int64_t start_ns);

/*
 * Appends every family of the NULL-terminated list in the text exposition
 * format (version 0.0.4) to out: HELP and TYPE lines, then each series.
 * A family without series writes a zero series when it has no labels (so
 * a counter is there before it first moves), else only its HELP and TYPE.
 */
int dm_metrics_write(struct dm_buf *out, struct dm_metric *const *list);

/* A value of a label that callers compute (an actor's kind, a KV
 * backend's name) as a string that lives as long as the process: the same
 * pointer for the same text, at most DM_METRIC_INTERN_MAX of them, then
 * "other". */
#define DM_METRIC_INTERN_MAX 32
const char *dm_metric_intern(const char *s, size_t len);

/* Updates dropped because a family was full, since the process started. */
uint64_t dm_metrics_dropped(void);

/* The content type of what dm_metrics_write writes. */
#define DM_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
