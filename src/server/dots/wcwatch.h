/*
 * wcwatch.h - a cheap signal that a working copy changed, so that a dot
 * measures its dirty bytes again only when something was written since it
 * last did (inotify; docs/internals/dots.md, "Dirty bytes").
 *
 * One watcher per node (one inotify instance); one entry per watched
 * working copy, with an inotify watch on each of its directories. Every
 * event in a copy (a file written, truncated, created, deleted, renamed,
 * its mode or owner changed) bumps the entry's generation. A measure takes
 * a token (the generation) after the copy's directories are all watched
 * and before it reads the copy; the copy is unchanged since that measure
 * while the generation still equals the token. Events are read when
 * someone asks (no thread of its own): a write that returned before the
 * question was asked is always counted.
 *
 * What inotify does not see is not signalled: writes through a shared
 * mmap, and changes made by another machine (a network file system). The
 * dot bounds the age of its figure for that (dot.c).
 *
 * Threads: any thread may call any function; one mutex guards the
 * watcher, its watches and every entry's state. An entry is reference
 * counted (the dot's branch holds one, a measuring job another); its
 * watches go with the last reference.
 */
#ifndef DM_SERVER_DOTS_WCWATCH_H
#define DM_SERVER_DOTS_WCWATCH_H

#include <stdbool.h>
#include <stdint.h>

struct dm_err;
struct dm_wcwatch;
struct dm_wcwatch_entry;

/* A watcher (one reference); DM_EIO when inotify cannot be had. */
int dm_wcwatch_new(struct dm_wcwatch **out, struct dm_err *err);
/* Drops the owner's reference (entries keep the watcher until they go). */
void dm_wcwatch_unref(struct dm_wcwatch *w);

/* A new entry (one reference) that watches nothing yet: it vouches for
 * nothing until a dm_wcwatch_begin. */
struct dm_wcwatch_entry *dm_wcwatch_entry_new(struct dm_wcwatch *w);
void dm_wcwatch_entry_ref(struct dm_wcwatch_entry *e);
/* NULL is fine; the last reference removes the entry's watches. */
void dm_wcwatch_entry_unref(struct dm_wcwatch_entry *e);

/*
 * From a measure, before it reads the working copy at path: makes sure
 * every directory under path is watched (walking them when the entry is
 * new, when directories appeared, moved or path was replaced, or after
 * lost events), then sets *token to what the measure stands for. 0 and
 * *token 0 when the copy cannot be watched (err says why: inotify's limit
 * of watches, a directory it may not read): nothing is vouched for then.
 */
int dm_wcwatch_begin(struct dm_wcwatch_entry *e, const char *path, uint64_t *token,
		     struct dm_err *err);

/* Whether nothing changed in e's copy since the measure that took token
 * (never for token 0). Reads the events that arrived first. */
bool dm_wcwatch_unchanged(struct dm_wcwatch_entry *e, uint64_t token);

#endif
