/*
 * freezer.h - freezing a set of containers for a moment (Docker's pause,
 * the cgroup freezer), so that a commit can take its last pass over a
 * database's files at one instant, and never leaving them frozen: not when
 * dmd dies during the freeze, not when the freeze runs past its limit.
 *
 * Two things make that true. A journal file, written before anything is
 * paused and removed after everything is thawed, names what a freeze may
 * have paused; dm_freezer_recover, at dmd's start, thaws what the journals
 * of a dead dmd name. And a thaw guard, a process started before anything
 * is paused, thaws the containers when dmd dies (its end of a socket pair
 * reaches EOF) or when the freeze outlives its limit (max_ns plus
 * DM_FREEZE_GUARD_MARGIN_NS), whichever comes first.
 *
 * Only what this freeze paused is ever thawed: a container that is already
 * paused fails the freeze (DM_ECONFLICT) and is left as it was.
 */
#ifndef DM_SERVER_DOTS_FREEZER_H
#define DM_SERVER_DOTS_FREEZER_H

#include <stddef.h>
#include <stdint.h>

struct dm_docker;
struct dm_err;
struct dm_freezer;
struct dm_freeze;

/* The most containers one freeze pauses. */
#define DM_FREEZE_MAX 256
/* How long past max_ns the guard waits before it thaws. */
#define DM_FREEZE_GUARD_MARGIN_NS 1000000000LL
/* The longest freeze: max_ns is 1 ms .. this. */
#define DM_FREEZE_MAX_NS (600LL * 1000000000LL)

/*
 * One per dmd. docker is borrowed and must outlive the freezer; journal_dir
 * (made, mode 0700, when missing) holds the journals, one file per freeze
 * under way: KEY.freeze, mode 0600.
 */
int dm_freezer_open(struct dm_freezer **out, struct dm_docker *docker, const char *journal_dir,
		    struct dm_err *err);
/* Accepts NULL. Freezes under way must have ended. */
void dm_freezer_free(struct dm_freezer *f);

/*
 * At dmd's start, before any freeze: for every journal left by a dmd that
 * died during a freeze, unpauses the containers it names (through the
 * engine socket the journal names) and removes it, logging what it did. A
 * corrupt journal is logged and removed. A journal whose containers cannot
 * all be thawed now (the engine does not answer) is kept for the next call
 * and the first such error is returned, after every journal was tried; dmd
 * may log it and go on. Safe to call again at any time (after a
 * dm_freeze_end that could not thaw, say): the journals of freezes under
 * way in this process are left alone.
 */
int dm_freezer_recover(struct dm_freezer *f, struct dm_err *err);

/*
 * Freezes containers ids[0..n) (ids or names; 1 <= n <= DM_FREEZE_MAX,
 * duplicates count once) for at most max_ns (1 ms .. DM_FREEZE_MAX_NS).
 * key names the freeze's journal: [A-Za-z0-9_-][A-Za-z0-9_.-]{0,127} (e.g.
 * a dot id + "-" + a branch); DM_EBUSY while a freeze of that key is under
 * way or its journal is left from a dead dmd.
 *
 * In order: the journal, the guard (started and ready), then each
 * container paused. When a pause fails, those paused are unpaused, the
 * guard ended, the journal removed, and the error names the container
 * (DM_ECONFLICT when it was paused by someone else or is not running).
 * On success *out is the freeze, which the caller ends with dm_freeze_end
 * exactly once. Thread-safe: freezes of different keys may run at once.
 */
int dm_freeze_begin(struct dm_freezer *f, const char *key, const char (*ids)[65], size_t n,
		    int64_t max_ns, struct dm_freeze **out, struct dm_err *err);

/* The monotonic time (dm_now_monotonic_ns) when the last pause returned:
 * from then on, every container of the freeze is frozen. */
int64_t dm_freeze_frozen_since(const struct dm_freeze *fz);

/*
 * Unpauses every container of the freeze (each is tried, even after one
 * fails), ends the guard and waits for it, removes the journal and frees
 * fz. *frozen_ns (may be NULL) is the time from the first pause's start to
 * the last unpause's end. Fails with the first unpause's error (the
 * journal is then kept, for dm_freezer_recover), or with DM_ETIMEOUT when
 * the guard had thawed the containers first because the freeze outlived
 * max_ns: what was read while "frozen" may then not be of one instant.
 */
int dm_freeze_end(struct dm_freeze *fz, int64_t *frozen_ns, struct dm_err *err);

#endif
