/*
 * test_retention.c - dm dot prune's rules (retention.h) against restic's
 * forget semantics: each count rule keeps the newest commit of each of its
 * N newest buckets, -1 without limit; within is measured from the newest
 * commit; rules combine by union; the reasons say which rule kept what.
 * Times are read in UTC here (TZ=UTC), as the server's local time would be.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "server/dots/retention.h"

#include "util/banned.h"

/* ns since the epoch of a UTC time */
static int64_t at(int y, int mon, int d, int h, int min)
{
	struct tm tm = {0};

	tm.tm_year = y - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = min;
	return (int64_t)timegm(&tm) * 1000000000LL;
}

/* newest first, as a branch's history is read */
static int64_t times[8];
#define N 8

static int setup(void **state)
{
	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	times[0] = at(2024, 3, 10, 15, 0); /* Sunday: ISO week 2024-W10 */
	times[1] = at(2024, 3, 10, 9, 0);
	times[2] = at(2024, 3, 9, 20, 0);
	times[3] = at(2024, 3, 9, 10, 0);
	times[4] = at(2024, 3, 7, 12, 0);
	times[5] = at(2024, 3, 1, 0, 30);   /* W09 */
	times[6] = at(2024, 2, 20, 0, 0);   /* W08 */
	times[7] = at(2023, 12, 31, 23, 59); /* 2023-W52 */
	return 0;
}

/* The indexes p keeps, as a bit set. */
static unsigned kept(const struct dm_retention *p)
{
	unsigned reasons[N], set = 0;

	dm_retention_apply(p, times, N, reasons);
	for (int i = 0; i < N; i++)
		if (reasons[i])
			set |= 1u << i;
	return set;
}

static struct dm_retention rule(int r, int64_t n)
{
	struct dm_retention p;

	memset(&p, 0, sizeof(p));
	p.n[r] = n;
	return p;
}

static void test_last(void **state)
{
	struct dm_retention p = rule(DM_KEEP_LAST, 3);

	(void)state;
	assert_int_equal(kept(&p), 0x07);
	p.n[DM_KEEP_LAST] = -1;
	assert_int_equal(kept(&p), 0xff);
	p.n[DM_KEEP_LAST] = 20;
	assert_int_equal(kept(&p), 0xff);
}

static void test_calendar(void **state)
{
	struct dm_retention p;

	(void)state;
	p = rule(DM_KEEP_HOURLY, 2);
	assert_int_equal(kept(&p), 1u << 0 | 1u << 1);
	p = rule(DM_KEEP_DAILY, 3);
	assert_int_equal(kept(&p), 1u << 0 | 1u << 2 | 1u << 4);
	p = rule(DM_KEEP_DAILY, -1); /* one per day, every day */
	assert_int_equal(kept(&p), 1u << 0 | 1u << 2 | 1u << 4 | 1u << 5 | 1u << 6 | 1u << 7);
	p = rule(DM_KEEP_WEEKLY, 2);
	assert_int_equal(kept(&p), 1u << 0 | 1u << 5);
	p = rule(DM_KEEP_WEEKLY, 4);
	assert_int_equal(kept(&p), 1u << 0 | 1u << 5 | 1u << 6 | 1u << 7);
	p = rule(DM_KEEP_MONTHLY, 2);
	assert_int_equal(kept(&p), 1u << 0 | 1u << 6);
	p = rule(DM_KEEP_MONTHLY, 3);
	assert_int_equal(kept(&p), 1u << 0 | 1u << 6 | 1u << 7);
	p = rule(DM_KEEP_YEARLY, 2);
	assert_int_equal(kept(&p), 1u << 0 | 1u << 7);
}

static void test_within(void **state)
{
	struct dm_retention p;

	(void)state;
	memset(&p, 0, sizeof(p));
	/* measured from the newest commit, not from now */
	p.within_ms = 48LL * 3600 * 1000;
	assert_int_equal(kept(&p), 0x0f);
	p.within_ms = 1;
	assert_int_equal(kept(&p), 0x01);
}

static void test_union_and_reasons(void **state)
{
	struct dm_retention p;
	unsigned reasons[N];
	char text[64];

	(void)state;
	memset(&p, 0, sizeof(p));
	p.n[DM_KEEP_LAST] = 1;
	p.n[DM_KEEP_DAILY] = 2;
	p.n[DM_KEEP_YEARLY] = 1;
	assert_int_equal(kept(&p), 1u << 0 | 1u << 2);
	dm_retention_apply(&p, times, N, reasons);
	dm_retention_reasons_text(text, sizeof(text), reasons[0]);
	assert_string_equal(text, "last, daily, yearly");
	dm_retention_reasons_text(text, sizeof(text), reasons[2]);
	assert_string_equal(text, "daily");
	assert_int_equal(reasons[1], 0);
	p.within_ms = 3600 * 1000;
	dm_retention_apply(&p, times, N, reasons);
	dm_retention_reasons_text(text, sizeof(text), reasons[0]);
	assert_string_equal(text, "last, daily, yearly, within");
}

static void test_off_and_empty(void **state)
{
	struct dm_retention p;
	unsigned reasons[1] = {7};

	(void)state;
	memset(&p, 0, sizeof(p));
	assert_false(dm_retention_any(&p));
	assert_int_equal(kept(&p), 0);
	p.n[DM_KEEP_WEEKLY] = 1;
	assert_true(dm_retention_any(&p));
	dm_retention_apply(&p, times, 0, reasons); /* no commits: nothing to do */
	assert_int_equal(reasons[0], 7);
	assert_string_equal(dm_keep_rule_name(DM_KEEP_MONTHLY), "monthly");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_last, setup),
		cmocka_unit_test_setup(test_calendar, setup),
		cmocka_unit_test_setup(test_within, setup),
		cmocka_unit_test_setup(test_union_and_reasons, setup),
		cmocka_unit_test_setup(test_off_and_empty, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
