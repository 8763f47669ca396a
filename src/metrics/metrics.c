/*
 * metrics.c - the series of each family and the text exposition writer
 * (see metrics.h).
 *
 * Invariants:
 *  - A family's series occupy its slots from the first on, without gaps:
 *    a new series claims the first free slot (state 0 -> 1 by CAS), writes
 *    its label values, then publishes them (state 2, release). A thread
 *    looking for labels walks the slots in order and waits on a slot being
 *    claimed (a few stores away from ready) before comparing it, so two
 *    threads that add the same labels at once end on the same slot.
 *  - Values are changed only by atomic operations; nothing here locks.
 *  - The writer reads each slot once; a histogram's count and +Inf bucket
 *    are both the sum of the bucket counts it read, so they always agree.
 */
#include "metrics/metrics.h"

#include <math.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>

#include "util/buf.h"
#include "util/fsutil.h"

#include "util/banned.h"

static _Atomic uint64_t dropped;

uint64_t dm_metrics_dropped(void)
{
	return atomic_load_explicit(&dropped, memory_order_relaxed);
}

static size_t nlabels(const struct dm_metric *m)
{
	size_t n = 0;

	while (n < DM_METRIC_LABELS_MAX && m->labels[n])
		n++;
	return n;
}

static bool same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool matches(const struct dm_metric_series *s, size_t n, const char *const *v)
{
	for (size_t i = 0; i < n; i++)
		if (!same(s->values[i], v[i]))
			return false;
	return true;
}

/* A slot's state: true when the caller claimed it (free -> being
 * claimed: it fills the slot and marks it ready); false once it is ready
 * with someone else's contents (waiting while another thread fills it). */
static bool claim(atomic_int *state)
{
	int st = atomic_load_explicit(state, memory_order_acquire);

	if (st == 0) {
		int expected = 0;

		if (atomic_compare_exchange_strong(state, &expected, 1))
			return true;
		st = expected;
	}
	while (st == 1) {
		sched_yield();
		st = atomic_load_explicit(state, memory_order_acquire);
	}
	return false;
}

struct dm_metric_series *dm_metric_series(struct dm_metric *m, const char *v0, const char *v1)
{
	const char *v[DM_METRIC_LABELS_MAX] = {v0, v1};
	size_t n = nlabels(m);

	for (size_t i = 0; i < DM_METRIC_SERIES_MAX; i++) {
		struct dm_metric_series *s = &m->series[i];

		if (claim(&s->state)) {
			for (size_t k = 0; k < n; k++)
				s->values[k] = v[k] ? v[k] : "";
			atomic_store_explicit(&s->state, 2, memory_order_release);
			return s;
		}
		if (matches(s, n, v))
			return s;
	}
	atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
	return NULL;
}

void dm_metric_add(struct dm_metric *m, const char *v0, const char *v1, int64_t n)
{
	struct dm_metric_series *s = dm_metric_series(m, v0, v1);

	if (s)
		atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
}

void dm_metric_set(struct dm_metric *m, const char *v0, const char *v1, int64_t value)
{
	struct dm_metric_series *s = dm_metric_series(m, v0, v1);

	if (s)
		atomic_store_explicit(&s->value, value, memory_order_relaxed);
}

void dm_metric_observe(struct dm_metric *m, const char *v0, const char *v1, int64_t value)
{
	struct dm_metric_series *s = dm_metric_series(m, v0, v1);
	size_t b = 0, nb = m->nbounds < DM_METRIC_BUCKETS_MAX ? m->nbounds : DM_METRIC_BUCKETS_MAX;

	if (!s)
		return;
	while (b < nb && value > m->bounds[b])
		b++;
	atomic_fetch_add_explicit(&s->bucket[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->value, value, memory_order_relaxed);
}

void dm_metric_observe_since(struct dm_metric *m, const char *v0, const char *v1, int64_t start_ns)
{
	int64_t d = dm_now_monotonic_ns() - start_ns;

	dm_metric_observe(m, v0, v1, d > 0 ? d : 0);
}

/* ---- the text format ---- */

static const char *type_name(enum dm_metric_type t)
{
	return t == DM_METRIC_COUNTER ? "counter" : t == DM_METRIC_GAUGE ? "gauge" : "histogram";
}

/* s with backslash and newline escaped, and with quote too for a label
 * value. */
static int add_escaped(struct dm_buf *out, const char *s, bool quote)
{
	int rc = 0;

	for (; *s && !rc; s++) {
		if (*s == '\\')
			rc = dm_buf_adds(out, "\\\\");
		else if (*s == '\n')
			rc = dm_buf_adds(out, "\\n");
		else if (*s == '"' && quote)
			rc = dm_buf_adds(out, "\\\"");
		else
			rc = dm_buf_addc(out, (unsigned char)*s);
	}
	return rc;
}

/* A value in the base unit: an integer as one, else %.9g. */
static int add_number(struct dm_buf *out, int64_t v, double scale)
{
	double d;

	if (scale == 0 || scale == 1)
		return dm_buf_addf(out, "%lld", (long long)v);
	d = (double)v * scale;
	if (!isfinite(d))
		return dm_buf_adds(out, "NaN");
	return dm_buf_addf(out, "%.9g", d);
}

/* "name{a="x",b="y",le="0.5"}" with suffix after name; le may be NULL. */
static int add_series_name(struct dm_buf *out, const struct dm_metric *m, const char *suffix,
			   const struct dm_metric_series *s, const char *le)
{
	size_t n = nlabels(m);
	int rc = dm_buf_addf(out, "%s%s", m->name, suffix);

	if (!rc && (n || le))
		rc = dm_buf_addc(out, '{');
	for (size_t i = 0; i < n && !rc; i++) {
		rc = dm_buf_addf(out, "%s%s=\"", i ? "," : "", m->labels[i]);
		if (!rc)
			rc = add_escaped(out, s && s->values[i] ? s->values[i] : "", true);
		if (!rc)
			rc = dm_buf_addc(out, '"');
	}
	if (!rc && le)
		rc = dm_buf_addf(out, "%sle=\"%s\"", n ? "," : "", le);
	if (!rc && (n || le))
		rc = dm_buf_addc(out, '}');
	return rc;
}

static int write_histogram(struct dm_buf *out, const struct dm_metric *m,
			   const struct dm_metric_series *s)
{
	size_t nb = m->nbounds < DM_METRIC_BUCKETS_MAX ? m->nbounds : DM_METRIC_BUCKETS_MAX;
	uint64_t cum = 0;
	int64_t sum = s ? atomic_load_explicit(&s->value, memory_order_relaxed) : 0;
	int rc = 0;

	for (size_t b = 0; b <= nb && !rc; b++) {
		struct dm_buf le;

		cum += s ? atomic_load_explicit(&s->bucket[b], memory_order_relaxed) : 0;
		dm_buf_init(&le, 64);
		if (b == nb)
			rc = dm_buf_adds(&le, "+Inf");
		else
			rc = add_number(&le, m->bounds[b], m->scale);
		if (!rc)
			rc = add_series_name(out, m, "_bucket", s, (const char *)le.data);
		dm_buf_release(&le);
		if (!rc)
			rc = dm_buf_addf(out, " %llu\n", (unsigned long long)cum);
	}
	if (!rc)
		rc = add_series_name(out, m, "_sum", s, NULL);
	if (!rc)
		rc = dm_buf_addc(out, ' ');
	if (!rc)
		rc = add_number(out, sum, m->scale);
	if (!rc)
		rc = dm_buf_addc(out, '\n');
	if (!rc)
		rc = add_series_name(out, m, "_count", s, NULL);
	if (!rc)
		rc = dm_buf_addf(out, " %llu\n", (unsigned long long)cum);
	return rc;
}

static int write_family(struct dm_buf *out, const struct dm_metric *m)
{
	size_t n = 0;
	int rc = dm_buf_addf(out, "# HELP %s ", m->name);

	if (!rc)
		rc = add_escaped(out, m->help, false);
	if (!rc)
		rc = dm_buf_addf(out, "\n# TYPE %s %s\n", m->name, type_name(m->type));
	for (; n < DM_METRIC_SERIES_MAX && !rc; n++) {
		const struct dm_metric_series *s = &m->series[n];

		if (atomic_load_explicit(&s->state, memory_order_acquire) != 2)
			break;
		if (m->type == DM_METRIC_HISTOGRAM) {
			rc = write_histogram(out, m, s);
			continue;
		}
		rc = add_series_name(out, m, "", s, NULL);
		if (!rc)
			rc = dm_buf_addc(out, ' ');
		if (!rc)
			rc = add_number(out, atomic_load_explicit(&s->value, memory_order_relaxed),
					m->scale);
		if (!rc)
			rc = dm_buf_addc(out, '\n');
	}
	/* a family without labels is there before it first moves */
	if (!rc && n == 0 && !m->labels[0]) {
		if (m->type == DM_METRIC_HISTOGRAM)
			return write_histogram(out, m, NULL);
		rc = dm_buf_addf(out, "%s 0\n", m->name);
	}
	return rc;
}

int dm_metrics_write(struct dm_buf *out, struct dm_metric *const *list)
{
	int rc = 0;

	for (; *list && !rc; list++)
		rc = write_family(out, *list);
	return rc;
}

/* ---- interned label values ---- */

static struct {
	atomic_int state; /* as a series' */
	char text[32];
} interned[DM_METRIC_INTERN_MAX];

const char *dm_metric_intern(const char *s, size_t len)
{
	if (len >= sizeof(interned[0].text))
		return "other";
	for (size_t i = 0; i < DM_METRIC_INTERN_MAX; i++) {
		if (claim(&interned[i].state)) {
			memcpy(interned[i].text, s, len);
			interned[i].text[len] = '\0';
			atomic_store_explicit(&interned[i].state, 2, memory_order_release);
			return interned[i].text;
		}
		if (strncmp(interned[i].text, s, len) == 0 && interned[i].text[len] == '\0')
			return interned[i].text;
	}
	return "other";
}
