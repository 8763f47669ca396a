/*
 * test_metrics.c - the metrics registry and its text format: counters,
 * gauges and histograms as Prometheus's exposition format wants them
 * (escaping, cumulative buckets, +Inf equal to the count), one series per
 * label set even when threads add it at once, a full family dropping
 * updates and counting them, and interned label values.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/metrics.h"
#include "util/buf.h"

#include "util/banned.h"

/* The text m writes, alone (a C string; free it). */
static char *text_of(struct dm_metric *m)
{
	struct dm_metric *const list[] = {m, NULL};
	struct dm_buf b = DM_BUF_INIT;

	assert_int_equal(dm_metrics_write(&b, list), 0);
	return dm_buf_detach(&b, NULL);
}

static void counter_with_labels(void **state)
{
	static struct dm_metric m = {.name = "t_requests_total",
				     .help = "Requests, by a \\ and a\nnewline.",
				     .type = DM_METRIC_COUNTER,
				     .labels = {"method", "outcome"}};
	char *t;

	t = text_of(&m);
	assert_string_equal(t, "# HELP t_requests_total Requests, by a \\\\ and a\\nnewline.\n"
			       "# TYPE t_requests_total counter\n");
	free(t);
	dm_metric_add(&m, "a.b", "ok", 1);
	dm_metric_add(&m, "a.b", "ok", 2);
	dm_metric_add(&m, "a.b", "not \"found\"\n", 1);
	t = text_of(&m);
	assert_non_null(strstr(t, "t_requests_total{method=\"a.b\",outcome=\"ok\"} 3\n"));
	assert_non_null(
		strstr(t, "t_requests_total{method=\"a.b\",outcome=\"not \\\"found\\\"\\n\"} 1\n"));
	free(t);
}

static void gauge_without_labels_is_there_at_zero(void **state)
{
	static struct dm_metric g = {.name = "t_depth", .help = "Depth.", .type = DM_METRIC_GAUGE};
	static struct dm_metric r = {
		.name = "t_ratio", .help = "Ratio.", .type = DM_METRIC_GAUGE, .scale = 1e-6};
	char *t = text_of(&g);

	assert_string_equal(t, "# HELP t_depth Depth.\n# TYPE t_depth gauge\nt_depth 0\n");
	free(t);
	dm_metric_add(&g, NULL, NULL, 5);
	dm_metric_add(&g, NULL, NULL, -7);
	t = text_of(&g);
	assert_non_null(strstr(t, "\nt_depth -2\n"));
	free(t);
	dm_metric_set(&r, NULL, NULL, 2500000);
	t = text_of(&r);
	assert_non_null(strstr(t, "\nt_ratio 2.5\n"));
	free(t);
}

static void histogram_buckets_are_cumulative(void **state)
{
	static const int64_t bounds[] = {1000000, 10000000, 1000000000};
	static struct dm_metric h = {.name = "t_seconds",
				     .help = "Time.",
				     .type = DM_METRIC_HISTOGRAM,
				     .labels = {"kind"},
				     .bounds = bounds,
				     .nbounds = 3,
				     .scale = 1e-9};
	char *t;

	dm_metric_observe(&h, "x", NULL, 500000);     /* 0.5 ms */
	dm_metric_observe(&h, "x", NULL, 1000000);    /* 1 ms: on the bound, in it */
	dm_metric_observe(&h, "x", NULL, 20000000);   /* 20 ms */
	dm_metric_observe(&h, "x", NULL, 5000000000); /* 5 s: above every bound */
	t = text_of(&h);
	assert_string_equal(t, "# HELP t_seconds Time.\n"
			       "# TYPE t_seconds histogram\n"
			       "t_seconds_bucket{kind=\"x\",le=\"0.001\"} 2\n"
			       "t_seconds_bucket{kind=\"x\",le=\"0.01\"} 2\n"
			       "t_seconds_bucket{kind=\"x\",le=\"1\"} 3\n"
			       "t_seconds_bucket{kind=\"x\",le=\"+Inf\"} 4\n"
			       "t_seconds_sum{kind=\"x\"} 5.0215\n"
			       "t_seconds_count{kind=\"x\"} 4\n");
	free(t);
}

static struct dm_metric shared = {
	.name = "t_shared_total", .help = "Shared.", .type = DM_METRIC_COUNTER, .labels = {"who"}};
static const char *const names[] = {"a", "b", "c", "d", "e", "f", "g", "h"};

static void *adder(void *arg)
{
	(void)arg;
	for (int i = 0; i < 10000; i++)
		dm_metric_add(&shared, names[i % 8], NULL, 1);
	return NULL;
}

static void threads_make_one_series_per_labels(void **state)
{
	pthread_t th[4];
	size_t n = 0;

	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, adder, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (size_t i = 0; i < DM_METRIC_SERIES_MAX; i++) {
		if (atomic_load(&shared.series[i].state) != 2)
			break;
		assert_int_equal(atomic_load(&shared.series[i].value), 5000);
		n++;
	}
	assert_int_equal(n, 8);
}

static void a_full_family_drops_and_counts(void **state)
{
	static struct dm_metric f = {
		.name = "t_full", .help = "Full.", .type = DM_METRIC_COUNTER, .labels = {"v"}};
	static char values[DM_METRIC_SERIES_MAX + 1][8];
	uint64_t before = dm_metrics_dropped();

	for (size_t i = 0; i <= DM_METRIC_SERIES_MAX; i++) {
		snprintf(values[i], sizeof(values[i]), "%zu", i);
		dm_metric_add(&f, values[i], NULL, 1);
	}
	assert_int_equal(dm_metrics_dropped() - before, 1);
	assert_null(dm_metric_series(&f, "new", NULL));
	assert_non_null(dm_metric_series(&f, "0", NULL));
}

static void interned_values_are_one_pointer(void **state)
{
	const char *a = dm_metric_intern("dot shop", 3), *b = dm_metric_intern("dot", 3);

	assert_string_equal(a, "dot");
	assert_ptr_equal(a, b);
	assert_ptr_not_equal(a, dm_metric_intern("space", 5));
	assert_string_equal(dm_metric_intern("a name longer than thirty-two bytes", 35), "other");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(counter_with_labels),
		cmocka_unit_test(gauge_without_labels_is_there_at_zero),
		cmocka_unit_test(histogram_buckets_are_cumulative),
		cmocka_unit_test(threads_make_one_series_per_labels),
		cmocka_unit_test(a_full_family_drops_and_counts),
		cmocka_unit_test(interned_values_are_one_pointer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
