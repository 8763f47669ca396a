/*
 * retention.h - which commits of a branch `dm dot prune` keeps: restic's
 * `forget --keep-*` rules, applied to one branch's first-parent history.
 *
 * The rules, each over the commits newest first (restic's semantics):
 *   last N     the N newest commits
 *   hourly N, daily N, weekly N, monthly N, yearly N
 *              for each of the last N hours (days, ISO weeks, months,
 *              years) that have a commit, the newest commit of it; times
 *              are dmd's local time, as restic uses the local time
 *   within D   every commit less than D older than the newest one (not
 *              than now: a branch nobody committed to keeps its history)
 * A commit is kept when any rule keeps it. N = -1 means no limit; 0 (the
 * default) turns the rule off. A policy with every rule off keeps
 * everything (dm refuses one before it gets here).
 */
#ifndef DM_SERVER_DOTS_RETENTION_H
#define DM_SERVER_DOTS_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dm_keep_rule {
	DM_KEEP_LAST,
	DM_KEEP_HOURLY,
	DM_KEEP_DAILY,
	DM_KEEP_WEEKLY,
	DM_KEEP_MONTHLY,
	DM_KEEP_YEARLY,
	DM_KEEP_NRULES,
};

struct dm_retention {
	int64_t n[DM_KEEP_NRULES]; /* per rule: 0 off, -1 no limit */
	int64_t within_ms;         /* 0 off */
};

/* The rule's name as the options say it ("last", "daily", ...). */
const char *dm_keep_rule_name(int rule);

/* Whether p keeps anything out (some rule is on). */
bool dm_retention_any(const struct dm_retention *p);

/* The reasons a commit is kept: bit 1 << rule for each count rule, and
 * DM_KEEP_WITHIN_BIT for within. 0: not kept. */
#define DM_KEEP_WITHIN_BIT (1u << DM_KEEP_NRULES)

/*
 * Applies p to n commits whose times (ns since the epoch) are given newest
 * first (the order of a first-parent history from its head); reasons[i]
 * gets commit i's reasons (0: p does not keep it).
 */
void dm_retention_apply(const struct dm_retention *p, const int64_t *time_ns, size_t n,
			unsigned *reasons);

/* "last, daily" for reasons, into out. */
void dm_retention_reasons_text(char *out, size_t size, unsigned reasons);

#endif
