/*
 * retention.c - restic's forget rules for one branch (retention.h).
 *
 * As restic's ApplyPolicy: the commits are visited newest first; each
 * count rule remembers the bucket (hour, day, ISO week, month, year; for
 * `last`, the commit itself) of the last commit it kept, and keeps a
 * commit whose bucket differs, counting down its N (-1 never runs out). So
 * each rule keeps the newest commit of each of its N newest buckets.
 */
#include "server/dots/retention.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/banned.h"

static const char *const names[DM_KEEP_NRULES] = {"last",   "hourly",  "daily",
						  "weekly", "monthly", "yearly"};

const char *dm_keep_rule_name(int rule)
{
	return rule >= 0 && rule < DM_KEEP_NRULES ? names[rule] : "?";
}

bool dm_retention_any(const struct dm_retention *p)
{
	for (int r = 0; r < DM_KEEP_NRULES; r++)
		if (p->n[r])
			return true;
	return p->within_ms > 0;
}

/* The bucket of time t (ns) for rule r; for `last`, the commit's index. */
static int64_t bucket(int r, int64_t t_ns, size_t index)
{
	time_t t = (time_t)(t_ns / 1000000000LL);
	struct tm tm;

	if (r == DM_KEEP_LAST)
		return (int64_t)index;
	localtime_r(&t, &tm);
	switch (r) {
	case DM_KEEP_HOURLY:
		return (((int64_t)tm.tm_year * 1000 + tm.tm_yday) * 100) + tm.tm_hour;
	case DM_KEEP_DAILY:
		return (int64_t)tm.tm_year * 1000 + tm.tm_yday;
	case DM_KEEP_WEEKLY: {
		/* the ISO 8601 week: %G (its year) and %V (its number) */
		char buf[16];

		if (!strftime(buf, sizeof(buf), "%G%V", &tm))
			return 0;
		return (int64_t)strtoll(buf, NULL, 10);
	}
	case DM_KEEP_MONTHLY:
		return (int64_t)tm.tm_year * 100 + tm.tm_mon;
	default:
		return tm.tm_year;
	}
}

void dm_retention_apply(const struct dm_retention *p, const int64_t *time_ns, size_t n,
			unsigned *reasons)
{
	int64_t left[DM_KEEP_NRULES], last[DM_KEEP_NRULES];
	bool started[DM_KEEP_NRULES] = {false};

	memcpy(left, p->n, sizeof(left));
	for (size_t i = 0; i < n; i++) {
		reasons[i] = 0;
		for (int r = 0; r < DM_KEEP_NRULES; r++) {
			int64_t b;

			if (left[r] == 0)
				continue;
			b = bucket(r, time_ns[i], i);
			if (started[r] && b == last[r])
				continue;
			started[r] = true;
			last[r] = b;
			reasons[i] |= 1u << r;
			if (left[r] > 0)
				left[r]--;
		}
		if (p->within_ms > 0 && n &&
		    time_ns[0] - time_ns[i] < p->within_ms * 1000000LL)
			reasons[i] |= DM_KEEP_WITHIN_BIT;
	}
}

void dm_retention_reasons_text(char *out, size_t size, unsigned reasons)
{
	size_t used = 0;

	out[0] = '\0';
	for (int r = 0; r <= DM_KEEP_NRULES; r++) {
		const char *name = r == DM_KEEP_NRULES ? "within" : names[r];
		int k;

		if (!(reasons & (1u << r)))
			continue;
		k = snprintf(out + used, size - used, "%s%s", used ? ", " : "", name);
		if (k < 0 || (size_t)k >= size - used)
			return;
		used += (size_t)k;
	}
}
