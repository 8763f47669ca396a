/*
 * wcwatch.c - a cheap signal that a working copy changed (see wcwatch.h).
 *
 * Invariants (everything below is under w->mu):
 *  - Every inotify watch this watcher holds is in the map exactly once,
 *    owned by one entry; a watch the kernel dropped (IN_IGNORED) or that a
 *    scan found no longer in its copy leaves the map.
 *  - An entry vouches (dm_wcwatch_unchanged can say yes) only while
 *    `watched` and not `scan`: its last scan watched every directory of
 *    its copy, and no event since said a directory appeared, moved or went
 *    unwatched (then `scan` is set and the next begin walks again).
 *  - Events are consumed only by drain(), which bumps the generation of
 *    the entry each event belongs to (of every entry, when the kernel's
 *    queue overflowed) before anyone can read that generation again. A
 *    change made before a token was taken either is seen by the measure
 *    that follows the token, or its event is drained after the token was
 *    taken, which bumps the generation past it.
 */
#include "server/dots/wcwatch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"

#include "util/banned.h"

/* What a directory's watch reports: anything that changes what a dirty
 * measure would find in it (reads and opens do not). */
#define WATCH_MASK                                                                                 \
	(IN_MODIFY | IN_ATTRIB | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVED_FROM |          \
	 IN_MOVED_TO | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)
/* Reads of the event queue in one drain; past it the rest waits for the
 * next one (and nothing is vouched for meanwhile). */
#define DRAIN_READS_MAX 64
/* Deepest directory a scan enters (as the tree format's DM_TREE_MAX_DEPTH). */
#define SCAN_DEPTH_MAX 256
/* Watches a node holds at most when the kernel's limit cannot be read;
 * otherwise half the user's limit (other programs need some too). */
#define WATCHES_DEFAULT_MAX 65536

struct watch {
	int wd;
	struct dm_wcwatch_entry *e;
	unsigned epoch; /* the scan of e that last found it */
	struct watch *next;
};

struct dm_wcwatch {
	atomic_int refs; /* the owner's and one per entry */
	int fd;
	pthread_mutex_t mu;
	struct watch **buckets; /* by wd */
	size_t nbuckets, nwatches, max_watches;
	struct dm_wcwatch_entry *entries;
	bool warned_limit; /* said once that the limit was reached */
	/* drain's buffer (one drain at a time: under mu) */
	char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
};

struct dm_wcwatch_entry {
	atomic_int refs;
	struct dm_wcwatch *w;
	uint64_t gen; /* bumped by every event in the copy; never 0 */
	bool watched; /* the last scan watched the whole copy */
	bool scan;    /* walk again before vouching */
	int root_wd;  /* the copy's top directory, or -1 */
	unsigned epoch;
	struct dm_wcwatch_entry *prev, *next;
};

/* ---- the map from watch descriptor to watch ---- */

static size_t slot_of(const struct dm_wcwatch *w, int wd)
{
	return ((size_t)(unsigned)wd * 2654435761u) & (w->nbuckets - 1);
}

static struct watch *find_watch(struct dm_wcwatch *w, int wd)
{
	for (struct watch *x = w->buckets[slot_of(w, wd)]; x; x = x->next)
		if (x->wd == wd)
			return x;
	return NULL;
}

static void grow(struct dm_wcwatch *w)
{
	size_t n = w->nbuckets * 2;
	struct watch **b = dm_xcalloc(n, sizeof(*b));
	struct watch **old = w->buckets;
	size_t oldn = w->nbuckets;

	w->buckets = b;
	w->nbuckets = n;
	for (size_t i = 0; i < oldn; i++)
		while (old[i]) {
			struct watch *x = old[i];
			size_t s = slot_of(w, x->wd);

			old[i] = x->next;
			x->next = b[s];
			b[s] = x;
		}
	free(old);
}

static struct watch *add_to_map(struct dm_wcwatch *w, int wd)
{
	struct watch *x = dm_xcalloc(1, sizeof(*x));
	size_t s;

	if (w->nwatches >= w->nbuckets)
		grow(w);
	s = slot_of(w, wd);
	x->wd = wd;
	x->next = w->buckets[s];
	w->buckets[s] = x;
	w->nwatches++;
	return x;
}

/* Takes x out of the map and frees it; rm: the kernel still holds it. */
static void drop_watch(struct dm_wcwatch *w, struct watch *x, bool rm)
{
	struct watch **p = &w->buckets[slot_of(w, x->wd)];

	while (*p != x)
		p = &(*p)->next;
	*p = x->next;
	w->nwatches--;
	if (x->e && x->e->root_wd == x->wd)
		x->e->root_wd = -1;
	if (rm)
		inotify_rm_watch(w->fd, x->wd);
	free(x);
}

/* Drops e's watches; all of them (epoch 0 and all = true) or those its
 * scan `epoch` did not find. */
static void drop_watches_of(struct dm_wcwatch *w, struct dm_wcwatch_entry *e, unsigned epoch,
			    bool all)
{
	for (size_t i = 0; i < w->nbuckets; i++) {
		struct watch *x = w->buckets[i];

		while (x) {
			struct watch *next = x->next;

			if (x->e == e && (all || x->epoch != epoch))
				drop_watch(w, x, true);
			x = next;
		}
	}
}

/* ---- events ---- */

static void bump(struct dm_wcwatch_entry *e, bool scan)
{
	e->gen++;
	if (scan)
		e->scan = true;
}

static void bump_all(struct dm_wcwatch *w)
{
	for (struct dm_wcwatch_entry *e = w->entries; e; e = e->next)
		bump(e, true);
}

static void on_event(struct dm_wcwatch *w, const struct inotify_event *ev)
{
	struct watch *x;
	bool dir = (ev->mask & IN_ISDIR) != 0;

	if (ev->mask & IN_Q_OVERFLOW) {
		dm_debug("working copy watch: the kernel's event queue overflowed");
		bump_all(w);
		return;
	}
	x = find_watch(w, ev->wd);
	if (!x)
		return; /* one we removed */
	/* a directory appeared or moved: watch it (and what is in it) */
	bump(x->e, (dir && (ev->mask & (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM))) ||
			   (ev->mask & (IN_MOVE_SELF | IN_UNMOUNT)) ||
			   ((ev->mask & (IN_DELETE_SELF | IN_IGNORED)) && x->wd == x->e->root_wd));
	if (ev->mask & IN_IGNORED)
		drop_watch(w, x, false);
}

/* Reads the events that arrived; false when more are left than one drain
 * reads (nothing may be vouched for then). Under w->mu. */
static bool drain(struct dm_wcwatch *w)
{
	char *buf = w->buf;

	for (int i = 0; i < DRAIN_READS_MAX; i++) {
		ssize_t n = read(w->fd, buf, sizeof(w->buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0) {
			/* cannot happen with a buffer this size; vouch for nothing */
			bump_all(w);
			return false;
		}
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;

			on_event(w, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
	return false;
}

/* ---- scanning a copy ---- */

struct scan {
	struct dm_wcwatch_entry *e;
	unsigned epoch;
	dev_t dev;
	struct dm_buf path;
};

/* Watches the directory at s->path (open on fd, taken) and, depth first,
 * every directory under it on the same file system. */
static int scan_dir(struct scan *s, int fd, int depth, struct dm_err *err)
{
	struct dm_wcwatch *w = s->e->w;
	struct dirent *de;
	DIR *d;
	int wd, rc = 0;

	wd = inotify_add_watch(w->fd, (const char *)s->path.data, WATCH_MASK);
	if (wd < 0) {
		int e = errno;

		close(fd);
		if (depth && (e == ENOENT || e == ENOTDIR))
			return 0; /* gone or replaced since it was listed: its parent said so */
		if (e == ENOSPC)
			return dm_err_set(err, DM_ETOOBIG,
					  "inotify's limit of watches is reached "
					  "(fs.inotify.max_user_watches)");
		return dm_err_errno(err, e, "cannot watch '%s'", (const char *)s->path.data);
	}
	pthread_mutex_lock(&w->mu);
	{
		struct watch *x = find_watch(w, wd);

		if (!x)
			x = add_to_map(w, wd);
		else if (x->e != s->e)
			bump(x->e, true); /* a directory that moved between copies */
		x->e = s->e;
		x->epoch = s->epoch;
		if (depth == 0)
			s->e->root_wd = wd;
		if (w->nwatches > w->max_watches)
			rc = dm_err_set(err, DM_ETOOBIG,
					"more than %zu directories to watch on this node",
					w->max_watches);
	}
	pthread_mutex_unlock(&w->mu);
	if (rc) {
		close(fd);
		return rc;
	}
	d = fdopendir(fd);
	if (!d) {
		rc = dm_err_errno(err, errno, "cannot read '%s'", (const char *)s->path.data);
		close(fd);
		return rc;
	}
	while (!rc && (errno = 0, de = readdir(d)) != NULL) {
		struct stat st;
		size_t old;
		int sub;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		sub = openat(dirfd(d), de->d_name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (sub < 0)
			continue; /* not a directory, or gone: nothing to watch */
		if (fstat(sub, &st) < 0 || st.st_dev != s->dev) {
			close(sub); /* another file system: dirty walks refuse it anyway */
			continue;
		}
		if (depth + 1 >= SCAN_DEPTH_MAX) {
			close(sub);
			rc = dm_err_set(err, DM_EUNSUPPORTED, "'%s' nests more than %d deep",
					(const char *)s->path.data, SCAN_DEPTH_MAX);
			break;
		}
		old = s->path.len;
		dm_buf_addc(&s->path, '/');
		dm_buf_adds(&s->path, de->d_name);
		rc = scan_dir(s, sub, depth + 1, err);
		s->path.len = old;
		s->path.data[old] = '\0';
	}
	if (!rc && errno)
		rc = dm_err_errno(err, errno, "cannot read '%s'", (const char *)s->path.data);
	closedir(d);
	return rc;
}

int dm_wcwatch_begin(struct dm_wcwatch_entry *e, const char *path, uint64_t *token,
		     struct dm_err *err)
{
	struct dm_wcwatch *w = e->w;
	struct scan s;
	struct stat st;
	int fd, rc = 0;

	*token = 0;
	pthread_mutex_lock(&w->mu);
	if (!drain(w)) {
		pthread_mutex_unlock(&w->mu);
		return 0; /* a flood of events: vouch for nothing this time */
	}
	if (e->watched && !e->scan) {
		*token = e->gen;
		pthread_mutex_unlock(&w->mu);
		return 0;
	}
	e->scan = false;
	s.epoch = ++e->epoch;
	pthread_mutex_unlock(&w->mu);

	s.e = e;
	dm_buf_init(&s.path, 0);
	dm_buf_adds(&s.path, path);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = dm_err_errno(err, errno, "cannot open directory '%s'", path);
		if (fd >= 0)
			close(fd);
	} else {
		s.dev = st.st_dev;
		rc = scan_dir(&s, fd, 0, err);
	}
	dm_buf_release(&s.path);

	pthread_mutex_lock(&w->mu);
	if (rc) {
		drop_watches_of(w, e, 0, true);
		e->watched = false;
		if (rc == DM_ETOOBIG && !w->warned_limit) {
			w->warned_limit = true;
			dm_warn("cannot watch every working copy for changes: %s; dm list "
				"measures those it cannot watch when their figure is a second old",
				err->msg);
		}
	} else {
		drop_watches_of(w, e, s.epoch, false);
		e->watched = true;
		*token = e->gen;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

bool dm_wcwatch_unchanged(struct dm_wcwatch_entry *e, uint64_t token)
{
	struct dm_wcwatch *w;
	bool ok;

	if (!e || !token)
		return false;
	w = e->w;
	pthread_mutex_lock(&w->mu);
	ok = drain(w) && e->watched && !e->scan && e->gen == token;
	pthread_mutex_unlock(&w->mu);
	return ok;
}

/* ---- the watcher and its entries ---- */

/* Half of fs.inotify.max_user_watches, or a default. */
static size_t watches_max(void)
{
	FILE *f = fopen("/proc/sys/fs/inotify/max_user_watches", "re");
	unsigned long v = 0;

	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v >= 2 ? (size_t)(v / 2) : WATCHES_DEFAULT_MAX;
}

int dm_wcwatch_new(struct dm_wcwatch **out, struct dm_err *err)
{
	struct dm_wcwatch *w;
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	*out = NULL;
	if (fd < 0)
		return dm_err_errno(err, errno, "cannot watch working copies (inotify)");
	w = dm_xcalloc(1, sizeof(*w));
	atomic_init(&w->refs, 1);
	w->fd = fd;
	pthread_mutex_init(&w->mu, NULL);
	w->nbuckets = 64;
	w->buckets = dm_xcalloc(w->nbuckets, sizeof(*w->buckets));
	w->max_watches = watches_max();
	*out = w;
	return 0;
}

void dm_wcwatch_unref(struct dm_wcwatch *w)
{
	if (!w || atomic_fetch_sub(&w->refs, 1) != 1)
		return;
	for (size_t i = 0; i < w->nbuckets; i++)
		while (w->buckets[i]) {
			struct watch *x = w->buckets[i];

			w->buckets[i] = x->next;
			free(x);
		}
	free(w->buckets);
	close(w->fd);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

struct dm_wcwatch_entry *dm_wcwatch_entry_new(struct dm_wcwatch *w)
{
	struct dm_wcwatch_entry *e = dm_xcalloc(1, sizeof(*e));

	atomic_init(&e->refs, 1);
	atomic_fetch_add(&w->refs, 1);
	e->w = w;
	e->gen = 1;
	e->root_wd = -1;
	pthread_mutex_lock(&w->mu);
	e->next = w->entries;
	if (w->entries)
		w->entries->prev = e;
	w->entries = e;
	pthread_mutex_unlock(&w->mu);
	return e;
}

void dm_wcwatch_entry_ref(struct dm_wcwatch_entry *e)
{
	atomic_fetch_add(&e->refs, 1);
}

void dm_wcwatch_entry_unref(struct dm_wcwatch_entry *e)
{
	struct dm_wcwatch *w;

	if (!e || atomic_fetch_sub(&e->refs, 1) != 1)
		return;
	w = e->w;
	pthread_mutex_lock(&w->mu);
	drop_watches_of(w, e, 0, true);
	if (e->prev)
		e->prev->next = e->next;
	else
		w->entries = e->next;
	if (e->next)
		e->next->prev = e->prev;
	pthread_mutex_unlock(&w->mu);
	free(e);
	dm_wcwatch_unref(w);
}
