/*
 * freezer_parse.h - reading a freeze journal (freezer.c), apart from the
 * file it is read from. Internal to server/dots; exposed for freezer.c and
 * for the fuzz target (tests/fuzz/fuzz_dots.c).
 *
 * The journal (KEY.freeze in the journal directory):
 *     {"version":1,"key":KEY,"socket":PATH,"pid":DMD_PID,
 *      "started_ns":WALL_NS,"containers":[ID,...]}
 */
#ifndef DM_SERVER_DOTS_FREEZER_PARSE_H
#define DM_SERVER_DOTS_FREEZER_PARSE_H

#include <stddef.h>

struct dm_err;

/* What a journal names. */
struct dm_freeze_journal {
	char socket[108]; /* the engine's socket: absolute, fits a sun_path */
	long pid;         /* the dmd that wrote it */
	char (*ids)[65];  /* n container ids or names (malloc'ed) */
	size_t n;         /* 1 .. DM_FREEZE_MAX */
};

/*
 * Reads the journal text[0..len) of the freeze `key`: version 1, the same
 * key, an absolute socket path that fits a unix socket address, an integer
 * pid, and 1 to DM_FREEZE_MAX containers, each an id or a name
 * ([A-Za-z0-9][A-Za-z0-9_.-]*, at most 64 bytes). Fills *out (release it
 * with dm_freeze_journal_release) or fails with DM_ECORRUPT and leaves
 * nothing allocated.
 */
int dm_freeze_journal_parse(struct dm_freeze_journal *out, const char *key, const char *text,
			    size_t len, struct dm_err *err);
/* Frees out's ids and empties it; accepts an empty one. */
void dm_freeze_journal_release(struct dm_freeze_journal *j);

#endif
