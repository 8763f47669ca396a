/*
 * freezer.c - freezing a set of containers for a moment, with a journal and
 * a thaw guard so that they are thawed even when dmd dies (freezer.h).
 *
 * Invariants:
 *   - A container is paused only while its freeze's journal is on disk and
 *     its guard is running, ready, and armed for it: the journal names every
 *     container of the freeze before the first pause; the guard is told
 *     "arm i" before container i is asked to pause.
 *   - A freeze thaws only what it asked to pause and was not refused:
 *     "already paused" (someone else's pause) disarms the guard for that
 *     container and is never undone.
 *   - The journal is removed only after every container it names was
 *     unpaused (or is gone). While it is on disk, dm_freezer_recover of a
 *     later dmd thaws what it names; it leaves the journals of freezes
 *     under way in this process alone (the list `active`, under `lock`).
 *
 * The guard is a child made with fork (glibc's _Fork where it has it: no
 * atfork handlers) that runs only async-signal-safe calls, since dmd has
 * threads: everything it needs (the socket address, the HTTP/1.0 unpause
 * requests, the deadline) is prepared before the fork. It blocks every
 * signal, leaves dmd's session (a signal to dmd's process group is not for
 * it), closes every descriptor but its end of a socket pair, says "ready",
 * then reads 8-byte messages: arm i, disarm i, end. On EOF (dmd died) or at
 * its deadline it sends each armed container's unpause request (retrying a
 * few times when the engine does not answer) and exits; on "end" it exits
 * at once. Its exit status tells dm_freeze_end whether it thawed first.
 * A fork rather than a program of its own: nothing to install or find, and
 * no exec that could fail while containers are paused. dmd's end of the
 * pair is close-on-exec, so programs other threads start never hold it
 * (which would hide dmd's death), and messages go with MSG_NOSIGNAL.
 *
 * Journal (KEY.freeze in the journal directory, mode 0600, written
 * atomically, read bounded to 64 KiB and checked field by field by a
 * function that does no I/O, freezer_parse.h, fuzzed by
 * tests/fuzz/fuzz_dots.c):
 *     {"version":1,"key":KEY,"socket":PATH,"pid":DMD_PID,
 *      "started_ns":WALL_NS,"containers":[ID,...]}
 */
#include "server/dots/freezer.h"
#include "server/dots/docker.h"
#include "server/dots/freezer_parse.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/banned.h"

#define KEY_MAX          128
#define SUFFIX           ".freeze"
#define JOURNAL_MAX      (64u * 1024)
#define REQ_MAX          256
#define READY_TIMEOUT_MS 2000
/* what the guard waits for one engine answer, and how often it tries */
#define GUARD_ANSWER_MS 5000
#define GUARD_TRIES     4

/* the guard's messages: 8 bytes, the command then a little-endian index */
enum { MSG_ARM = 'A', MSG_DISARM = 'D', MSG_END = 'E' };
/* the guard's exit statuses */
enum { GUARD_ENDED = 0, GUARD_EOF = 10, GUARD_DEADLINE = 11, GUARD_BROKEN = 12 };

struct dm_freezer {
	struct dm_docker *docker;
	char *dir;
	pthread_mutex_t lock;
	struct dm_freeze *active;
};

struct dm_freeze {
	struct dm_freezer *f;
	struct dm_freeze *next;
	char key[KEY_MAX + 1];
	char *journal;
	char (*ids)[65];
	size_t n;
	bool *paused;
	pid_t guard;
	int sock;
	int64_t first_pause_ns;
	int64_t frozen_since_ns;
};

/* What the guard needs, made before the fork. */
struct guard_plan {
	struct sockaddr_un addr;
	char (*reqs)[REQ_MAX];
	size_t *req_len;
	bool *armed;
	size_t n;
	int64_t deadline_ns;
	int fd;
};

static bool key_ok(const char *key)
{
	size_t len = key ? strnlen(key, KEY_MAX + 1) : 0;

	if (len == 0 || len > KEY_MAX || key[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = key[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* A container id or name that fits a char[65]: [A-Za-z0-9][A-Za-z0-9_.-]*. */
static bool container_ok(const char *id, size_t size)
{
	size_t len = strnlen(id, size);

	return len < size && len <= 64 && dm_docker_name_chars_ok(id, len);
}

int dm_freezer_open(struct dm_freezer **out, struct dm_docker *docker, const char *journal_dir,
		    struct dm_err *err)
{
	struct dm_freezer *f;
	int rc;

	if (!docker || !journal_dir || !journal_dir[0])
		return dm_err_set(err, DM_EINVAL, "a freezer needs a Docker API and a directory");
	rc = dm_mkdir_p(journal_dir, 0700, err);
	if (rc)
		return rc;
	f = dm_xcalloc(1, sizeof(*f));
	f->docker = docker;
	f->dir = dm_xstrdup(journal_dir);
	pthread_mutex_init(&f->lock, NULL);
	*out = f;
	return 0;
}

void dm_freezer_free(struct dm_freezer *f)
{
	if (!f)
		return;
	pthread_mutex_destroy(&f->lock);
	free(f->dir);
	free(f);
}

/* --- the guard (the child: async-signal-safe calls only) --- */

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void nap_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Sends request i; 0 when the engine answered anything HTTP. */
static int guard_unpause(const struct guard_plan *g, size_t i)
{
	char answer[16];
	size_t have = 0, sent = 0;
	int64_t until = mono_ns() + (int64_t)GUARD_ANSWER_MS * 1000000;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = -1;

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&g->addr, sizeof(g->addr)) < 0)
		goto done;
	while (sent < g->req_len[i]) {
		ssize_t k = send(fd, g->reqs[i] + sent, g->req_len[i] - sent, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			goto done;
		sent += (size_t)k;
	}
	while (have < sizeof(answer)) {
		int64_t left = until - mono_ns();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t k;

		if (left <= 0)
			goto done;
		if (poll(&p, 1, (int)(left / 1000000) + 1) < 0 && errno != EINTR)
			goto done;
		k = read(fd, answer + have, sizeof(answer) - have);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k <= 0)
			break;
		have += (size_t)k;
	}
	if (have >= 12 && !memcmp(answer, "HTTP/1.", 7))
		rc = 0;
done:
	close(fd);
	return rc;
}

static void guard_thaw_exit(const struct guard_plan *g, int status)
{
	for (size_t i = 0; i < g->n; i++) {
		if (!g->armed[i])
			continue;
		for (int t = 0; t < GUARD_TRIES; t++) {
			if (guard_unpause(g, i) == 0)
				break;
			nap_ms(250 * (t + 1));
		}
	}
	_exit(status);
}

static void guard_close_others(int keep)
{
	if (keep > 0 && close_range(0, (unsigned)keep - 1, 0) < 0)
		for (int fd = 0; fd < keep; fd++)
			close(fd);
	if (close_range((unsigned)keep + 1, ~0U, 0) < 0)
		for (int fd = keep + 1; fd < 65536; fd++)
			close(fd);
}

static void guard_main(struct guard_plan *g)
{
	unsigned char msg[8];
	size_t have = 0;
	sigset_t all;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	setsid();
	guard_close_others(g->fd);
	if (send(g->fd, "R", 1, MSG_NOSIGNAL) != 1)
		guard_thaw_exit(g, GUARD_EOF);
	for (;;) {
		int64_t left = g->deadline_ns - mono_ns();
		struct pollfd p = {.fd = g->fd, .events = POLLIN};
		ssize_t k;
		int r;

		if (left <= 0)
			guard_thaw_exit(g, GUARD_DEADLINE);
		r = poll(&p, 1, left / 1000000 > 60000 ? 60000 : (int)(left / 1000000) + 1);
		if (r < 0 && errno != EINTR)
			guard_thaw_exit(g, GUARD_BROKEN);
		if (r <= 0)
			continue;
		k = read(g->fd, msg + have, sizeof(msg) - have);
		if (k == 0)
			guard_thaw_exit(g, GUARD_EOF);
		if (k < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			guard_thaw_exit(g, GUARD_BROKEN);
		}
		have += (size_t)k;
		if (have < sizeof(msg))
			continue;
		have = 0;
		size_t i = (size_t)msg[4] | (size_t)msg[5] << 8 | (size_t)msg[6] << 16 |
			   (size_t)msg[7] << 24;
		if (msg[0] == MSG_END)
			_exit(GUARD_ENDED);
		if (i < g->n)
			g->armed[i] = msg[0] == MSG_ARM;
	}
}

/* --- dmd's side --- */

/* Sends one message to the guard; -1 when it is gone. */
static int tell(struct dm_freeze *fz, char cmd, size_t i)
{
	unsigned char msg[8] = {(unsigned char)cmd};
	size_t sent = 0;

	for (int b = 0; b < 4; b++)
		msg[4 + b] = (unsigned char)(i >> (8 * b));

	if (fz->sock < 0)
		return -1;
	while (sent < sizeof(msg)) {
		ssize_t k = send(fz->sock, msg + sent, sizeof(msg) - sent, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		sent += (size_t)k;
	}
	return 0;
}

/* Starts the guard and waits until it is ready. */
static int guard_start(struct dm_freeze *fz, int64_t max_ns, struct dm_err *err)
{
	const char *socket_path = dm_docker_socket(fz->f->docker);
	struct guard_plan g = {.addr = {.sun_family = AF_UNIX}, .n = fz->n};
	int sv[2] = {-1, -1}, rc = 0;
	pid_t pid;

	if (strlen(socket_path) >= sizeof(g.addr.sun_path))
		return dm_err_set(err, DM_EINVAL, "the Docker socket path '%s' is too long",
				  socket_path);
	memcpy(g.addr.sun_path, socket_path, strlen(socket_path) + 1);
	g.reqs = dm_xcalloc(fz->n, sizeof(*g.reqs));
	g.req_len = dm_xcalloc(fz->n, sizeof(*g.req_len));
	g.armed = dm_xcalloc(fz->n, sizeof(*g.armed));
	for (size_t i = 0; i < fz->n; i++)
		g.req_len[i] = (size_t)snprintf(g.reqs[i], REQ_MAX,
						"POST /v1.41/containers/%s/unpause HTTP/1.0\r\n"
						"Host: localhost\r\nContent-Length: 0\r\n\r\n",
						fz->ids[i]);
	g.deadline_ns = mono_ns() + max_ns + DM_FREEZE_GUARD_MARGIN_NS;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = dm_err_errno(err, errno, "cannot make the thaw guard's socket pair");
		goto done;
	}
	g.fd = sv[1];
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	pid = _Fork();
#else
	pid = fork();
#endif
	if (pid < 0) {
		rc = dm_err_errno(err, errno, "cannot start the thaw guard");
		goto done;
	}
	if (pid == 0)
		guard_main(&g);
	fz->guard = pid;
	fz->sock = sv[0];
	sv[0] = -1;

	/* ready: the guard holds nothing of dmd's any more */
	for (int64_t until = mono_ns() + (int64_t)READY_TIMEOUT_MS * 1000000;;) {
		struct pollfd p = {.fd = fz->sock, .events = POLLIN};
		int64_t left = until - mono_ns();
		char c = 0;
		int r;

		if (left <= 0) {
			rc = dm_err_set(err, DM_ETIMEOUT,
					"the thaw guard did not start within %d ms",
					READY_TIMEOUT_MS);
			goto done;
		}
		r = poll(&p, 1, (int)(left / 1000000) + 1);
		if (r < 0 && errno != EINTR) {
			rc = dm_err_errno(err, errno, "cannot wait for the thaw guard");
			goto done;
		}
		if (r <= 0)
			continue;
		if (read(fz->sock, &c, 1) == 1 && c == 'R')
			break;
		rc = dm_err_set(err, DM_EINTERNAL, "the thaw guard did not start");
		goto done;
	}
done:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	free(g.reqs);
	free(g.req_len);
	free(g.armed);
	return rc;
}

/* Ends the guard (at once when `end`, else by EOF, when it thaws what is
 * armed) and reaps it; its exit status, or -1 when unknown. */
static int guard_stop(struct dm_freeze *fz, bool end)
{
	int status = 0, code = -1;

	if (fz->guard <= 0)
		return -1;
	if (end && tell(fz, MSG_END, 0) < 0)
		kill(fz->guard, SIGKILL);
	if (fz->sock >= 0)
		close(fz->sock);
	fz->sock = -1;
	for (;;) {
		pid_t r = waitpid(fz->guard, &status, 0);

		if (r == fz->guard) {
			if (WIFEXITED(status))
				code = WEXITSTATUS(status);
			break;
		}
		if (r < 0 && errno != EINTR)
			break;
	}
	fz->guard = -1;
	return code;
}

/* Whether a freeze of key is under way here; under f->lock. */
static bool is_active(struct dm_freezer *f, const char *key)
{
	for (struct dm_freeze *a = f->active; a; a = a->next)
		if (!strcmp(a->key, key))
			return true;
	return false;
}

static void active_remove(struct dm_freeze *fz)
{
	struct dm_freezer *f = fz->f;

	pthread_mutex_lock(&f->lock);
	for (struct dm_freeze **p = &f->active; *p; p = &(*p)->next)
		if (*p == fz) {
			*p = fz->next;
			break;
		}
	pthread_mutex_unlock(&f->lock);
}

static void freeze_free(struct dm_freeze *fz)
{
	if (fz->sock >= 0)
		close(fz->sock);
	free(fz->journal);
	free(fz->ids);
	free(fz->paused);
	free(fz);
}

static int journal_write(struct dm_freeze *fz, struct dm_err *err)
{
	json_t *ids = json_array(), *j;
	char *text;
	int rc;

	for (size_t i = 0; i < fz->n; i++)
		json_array_append_new(ids, json_string(fz->ids[i]));
	j = json_pack("{s:i, s:s, s:s, s:I, s:I, s:o}", "version", 1, "key", fz->key, "socket",
		      dm_docker_socket(fz->f->docker), "pid", (json_int_t)getpid(), "started_ns",
		      (json_int_t)dm_now_realtime_ns(), "containers", ids);
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	rc = dm_write_file_atomic(fz->journal, text, strlen(text), 0600, err);
	free(text);
	return rc;
}

/* Unpauses what fz paused; 0, or the first failure (after trying all and
 * once more each that failed). */
static int thaw_all(struct dm_freeze *fz, struct dm_err *err)
{
	bool *failed = dm_xcalloc(fz->n ? fz->n : 1, sizeof(*failed));
	struct dm_err e;
	int rc = 0, left = 0;

	for (size_t i = 0; i < fz->n; i++) {
		if (!fz->paused[i])
			continue;
		int r = dm_docker_unpause(fz->f->docker, fz->ids[i], &e);

		if (r && r != DM_ENOTFOUND) {
			failed[i] = true;
			left++;
		}
	}
	if (left)
		nap_ms(250);
	for (size_t i = 0; left && i < fz->n; i++) {
		if (!failed[i])
			continue;
		int r = dm_docker_unpause(fz->f->docker, fz->ids[i], &e);

		if (r && r != DM_ENOTFOUND) {
			dm_warn("freezer: cannot thaw container '%s' (freeze '%s'): %s", fz->ids[i],
				fz->key, e.msg);
			if (!rc)
				rc = dm_err_set(err, r, "%s", e.msg);
		}
	}
	free(failed);
	return rc;
}

/* After thaw_all (thaw_rc its result): ends the guard (its exit status into
 * *guard_status), removes the journal unless something may still be
 * frozen, and takes fz off the active list. */
static void finish(struct dm_freeze *fz, int thaw_rc, int *guard_status)
{
	int status = guard_stop(fz, true);

	if (guard_status)
		*guard_status = status;
	if (thaw_rc)
		dm_warn("freezer: '%s' kept: dmd thaws what it names at its next start",
			fz->journal);
	else if (unlink(fz->journal) < 0 && errno != ENOENT)
		dm_warn("freezer: cannot remove '%s': %s", fz->journal, strerror(errno));
	active_remove(fz);
}

int dm_freeze_begin(struct dm_freezer *f, const char *key, const char (*ids)[65], size_t n,
		    int64_t max_ns, struct dm_freeze **out, struct dm_err *err)
{
	struct dm_freeze *fz = NULL;
	int rc = 0;

	if (!key_ok(key))
		return dm_err_set(err, DM_EINVAL, "invalid freeze key '%.*s'", KEY_MAX,
				  key ? key : "");
	if (n == 0 || n > DM_FREEZE_MAX)
		return dm_err_set(err, DM_EINVAL, "a freeze takes 1 to %d containers, not %zu",
				  DM_FREEZE_MAX, n);
	if (max_ns < 1000000 || max_ns > DM_FREEZE_MAX_NS)
		return dm_err_set(err, DM_EINVAL, "a freeze lasts 1 ms to %lld s, not %lld ns",
				  DM_FREEZE_MAX_NS / 1000000000LL, (long long)max_ns);
	fz = dm_xcalloc(1, sizeof(*fz));
	fz->f = f;
	fz->guard = -1;
	fz->sock = -1;
	snprintf(fz->key, sizeof(fz->key), "%s", key);
	fz->ids = dm_xcalloc(n, sizeof(*fz->ids));
	fz->paused = dm_xcalloc(n, sizeof(*fz->paused));
	for (size_t i = 0; i < n; i++) {
		bool dup = false;

		if (!container_ok(ids[i], sizeof(ids[i]))) {
			rc = dm_err_set(err, DM_EINVAL, "invalid container id or name '%.64s'",
					ids[i]);
			goto fail;
		}
		for (size_t k = 0; k < fz->n && !dup; k++)
			dup = !strcmp(fz->ids[k], ids[i]);
		if (!dup)
			memcpy(fz->ids[fz->n++], ids[i], strlen(ids[i]) + 1);
	}
	fz->journal = dm_asprintf("%s/%s" SUFFIX, f->dir, key);
	if (!fz->journal) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto fail;
	}

	pthread_mutex_lock(&f->lock);
	if (is_active(f, key))
		rc = dm_err_set(err, DM_EBUSY, "a freeze of '%s' is under way", key);
	if (!rc && access(fz->journal, F_OK) == 0)
		rc = dm_err_set(
			err, DM_EBUSY,
			"the journal of an earlier freeze of '%s' is left ('%s'): dmd thaws "
			"what it names at its start",
			key, fz->journal);
	if (!rc)
		rc = journal_write(fz, err);
	if (!rc) {
		fz->next = f->active;
		f->active = fz;
	}
	pthread_mutex_unlock(&f->lock);
	if (rc)
		goto fail;

	rc = guard_start(fz, max_ns, err);
	if (rc)
		goto undo;
	for (size_t i = 0; i < fz->n; i++) {
		if (tell(fz, MSG_ARM, i) < 0) {
			rc = dm_err_set(err, DM_EINTERNAL, "the thaw guard has gone");
			goto undo;
		}
		if (i == 0)
			fz->first_pause_ns = dm_now_monotonic_ns();
		rc = dm_docker_pause(f->docker, fz->ids[i], err);
		/* refused for sure: not ours to thaw; else it may be paused */
		if (rc == DM_ECONFLICT || rc == DM_ENOTFOUND || rc == DM_EINVAL)
			tell(fz, MSG_DISARM, i);
		else
			fz->paused[i] = true;
		if (rc)
			goto undo;
	}
	fz->frozen_since_ns = dm_now_monotonic_ns();
	*out = fz;
	return 0;

undo:
	dm_err_prefix(err, "cannot freeze the containers of '%s'", key);
	{
		struct dm_err e;

		finish(fz, thaw_all(fz, &e), NULL);
	}
	freeze_free(fz);
	return rc;
fail:
	freeze_free(fz);
	return rc;
}

int64_t dm_freeze_frozen_since(const struct dm_freeze *fz)
{
	return fz->frozen_since_ns;
}

int dm_freeze_end(struct dm_freeze *fz, int64_t *frozen_ns, struct dm_err *err)
{
	int status = -1, rc;

	if (!fz)
		return 0;
	rc = thaw_all(fz, err);
	if (frozen_ns)
		*frozen_ns = dm_now_monotonic_ns() - fz->first_pause_ns;
	finish(fz, rc, &status);
	if (!rc && status == GUARD_DEADLINE)
		rc = dm_err_set(
			err, DM_ETIMEOUT,
			"the freeze of '%s' outlived its limit: the thaw guard had thawed its "
			"containers first",
			fz->key);
	freeze_free(fz);
	return rc;
}

/* --- recovery --- */

int dm_freeze_journal_parse(struct dm_freeze_journal *out, const char *key, const char *text,
			    size_t len, struct dm_err *err)
{
	json_t *j = NULL, *list, *v;
	const char *s, *k;
	size_t i;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	list = json_object_get(j, "containers");
	s = json_string_value(json_object_get(j, "socket"));
	k = json_string_value(json_object_get(j, "key"));
	v = json_object_get(j, "pid");
	if (!json_is_object(j) || json_integer_value(json_object_get(j, "version")) != 1 || !k ||
	    strcmp(k, key) || !s || s[0] != '/' || strlen(s) >= sizeof(out->socket) ||
	    strlen(s) >= sizeof(((struct sockaddr_un *)0)->sun_path) || !json_is_integer(v) ||
	    !json_is_array(list) || json_array_size(list) == 0 ||
	    json_array_size(list) > DM_FREEZE_MAX) {
		rc = dm_err_set(err, DM_ECORRUPT, "not a freeze journal");
		goto done;
	}
	out->ids = dm_xcalloc(json_array_size(list), sizeof(*out->ids));
	json_array_foreach(list, i, v)
	{
		const char *id = json_string_value(v);

		if (!id || strlen(id) >= 65 || !container_ok(id, 65)) {
			rc = dm_err_set(err, DM_ECORRUPT, "container %zu is not an id or a name",
					i);
			goto done;
		}
		memcpy(out->ids[i], id, strlen(id) + 1);
	}
	out->n = json_array_size(list);
	out->pid = (long)json_integer_value(json_object_get(j, "pid"));
	snprintf(out->socket, sizeof(out->socket), "%s", s);
done:
	if (rc)
		dm_freeze_journal_release(out);
	json_decref(j);
	return rc;
}

void dm_freeze_journal_release(struct dm_freeze_journal *j)
{
	free(j->ids);
	memset(j, 0, sizeof(*j));
}

/* The containers and socket a journal names; DM_ECORRUPT when it is not a
 * journal of ours. */
static int journal_read(struct dm_freeze_journal *out, const char *path, const char *key,
			struct dm_err *err)
{
	struct dm_buf b;
	int rc;

	memset(out, 0, sizeof(*out));
	dm_buf_init(&b, JOURNAL_MAX);
	rc = dm_read_file(&b, path, JOURNAL_MAX, err);
	if (!rc)
		rc = dm_freeze_journal_parse(out, key, (const char *)b.data, b.len, err);
	dm_buf_release(&b);
	return rc;
}

/* Thaws what one journal names; 0 when it may go. */
static int recover_one(struct dm_freezer *f, const char *path, const char *key, struct dm_err *err)
{
	struct dm_freeze_journal jn;
	struct dm_docker *other = NULL, *d = f->docker;
	struct dm_err e;
	int rc = journal_read(&jn, path, key, &e);

	if (rc == DM_ECORRUPT) {
		dm_warn("freezer: '%s' is corrupt (%s); removed: the containers it named may still "
			"be paused",
			path, e.msg);
		return 0;
	}
	if (rc)
		return dm_err_set(err, rc, "%s", e.msg);
	if (strcmp(jn.socket, dm_docker_socket(f->docker))) {
		rc = dm_docker_new(&other, jn.socket, err);
		if (rc)
			goto done;
		d = other;
	}
	for (size_t i = 0; i < jn.n; i++) {
		int r = dm_docker_unpause(d, jn.ids[i], &e);

		if (r == DM_ENOTFOUND) {
			dm_info("freezer: container '%s' of the freeze '%s' (dmd %ld) is gone",
				jn.ids[i], key, jn.pid);
		} else if (r) {
			dm_warn("freezer: cannot thaw container '%s' of the freeze '%s' (dmd %ld): "
				"%s",
				jn.ids[i], key, jn.pid, e.msg);
			if (!rc)
				rc = dm_err_set(err, r, "%s", e.msg);
		} else {
			dm_info("freezer: container '%s' is thawed: the freeze '%s' of dmd %ld, "
				"which "
				"stopped during it, may have left it paused",
				jn.ids[i], key, jn.pid);
		}
	}
done:
	dm_docker_free(other);
	dm_freeze_journal_release(&jn);
	return rc;
}

int dm_freezer_recover(struct dm_freezer *f, struct dm_err *err)
{
	DIR *dir = opendir(f->dir);
	struct dirent *de;
	int rc = 0;

	if (!dir)
		return dm_err_errno(err, errno, "cannot read '%s'", f->dir);
	while ((de = readdir(dir))) {
		const char *name = de->d_name;
		size_t len = strlen(name), sl = strlen(SUFFIX);
		char key[KEY_MAX + 1], *path;
		bool active = false;
		struct dm_err e;

		if (name[0] == '.')
			continue;
		path = dm_asprintf("%s/%s", f->dir, name);
		if (!path) {
			rc = rc ? rc : dm_err_set(err, DM_ENOMEM, "out of memory");
			continue;
		}
		if (len <= sl || strcmp(name + len - sl, SUFFIX)) {
			const char *tmp = strstr(name, SUFFIX ".tmp.");

			/* a journal never written whole (nothing was paused), unless
			 * a freeze of its key is being written now */
			if (tmp && (size_t)(tmp - name) <= KEY_MAX) {
				memcpy(key, name, (size_t)(tmp - name));
				key[tmp - name] = '\0';
				pthread_mutex_lock(&f->lock);
				if (!is_active(f, key))
					unlink(path);
				pthread_mutex_unlock(&f->lock);
			}
			free(path);
			continue;
		}
		if (len - sl > KEY_MAX) {
			free(path);
			continue;
		}
		memcpy(key, name, len - sl);
		key[len - sl] = '\0';
		pthread_mutex_lock(&f->lock);
		active = is_active(f, key);
		pthread_mutex_unlock(&f->lock);
		if (active || !key_ok(key)) {
			free(path);
			continue;
		}
		if (recover_one(f, path, key, &e) == 0) {
			if (unlink(path) < 0 && errno != ENOENT)
				dm_warn("freezer: cannot remove '%s': %s", path, strerror(errno));
			else
				dm_info("freezer: the freeze '%s' left by a dmd that stopped is "
					"undone",
					key);
		} else if (!rc) {
			rc = dm_err_set(err, e.code, "cannot undo the freeze '%s': %s", key, e.msg);
		}
		free(path);
	}
	closedir(dir);
	return rc;
}
