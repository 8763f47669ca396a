/*
 * daemon.c - double fork with a readiness handshake, the pid file, signals
 * and `dmd stop` (see daemon.h).
 *
 * The handshake pipe carries one line from the daemon to the process that
 * started it: "R <pid>" when the daemon serves, "E <code> <message>" when
 * it failed. EOF without a line means the daemon died first.
 *
 * Invariants: a dmd runs on a data directory exactly while it holds the
 * flock of DIR/dmd.pid; the pid file is removed before the lock is dropped,
 * so whoever gets the lock next never reads a dead dmd's pid as running.
 * The intermediate child of the double fork only ever _exits; it is the
 * one place under src/ outside main() that ends a process, because a fork
 * child has no caller to return to.
 */
#include "server/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server/datadir.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define HANDSHAKE_FD  3
#define HANDSHAKE_MAX 1024

struct dm_daemon {
	int fd;
};

struct dm_pidfile {
	int fd;
	char *path;
};

/* ---- the handshake ---- */

static void send_line(int fd, const char *line)
{
	if (dm_write_all(fd, line, strlen(line)) < 0)
		dm_warn("cannot answer the process that started dmd: %s", strerror(errno));
}

void dm_daemon_ready(struct dm_daemon *d)
{
	char line[64];

	if (!d)
		return;
	snprintf(line, sizeof(line), "R %ld\n", (long)getpid());
	send_line(d->fd, line);
	close(d->fd);
	free(d);
}

void dm_daemon_fail(struct dm_daemon *d, const struct dm_err *err)
{
	char line[HANDSHAKE_MAX];

	if (!d)
		return;
	snprintf(line, sizeof(line), "E %d %s\n", err->code, err->msg);
	send_line(d->fd, line);
	close(d->fd);
	free(d);
}

/* Parses the daemon's line into *pid_out or err. */
static int parse_answer(const char *line, pid_t *pid_out, const char *log_path, struct dm_err *err)
{
	char *end;
	long v;

	if (line[0] == 'R' && line[1] == ' ') {
		errno = 0;
		v = strtol(line + 2, &end, 10);
		if (errno == 0 && v > 0 && *end == '\n') {
			*pid_out = (pid_t)v;
			return 0;
		}
	} else if (line[0] == 'E' && line[1] == ' ') {
		errno = 0;
		v = strtol(line + 2, &end, 10);
		if (errno == 0 && v < 0 && v >= DM_EINTERNAL && *end == ' ') {
			size_t n = strcspn(end + 1, "\n");

			return dm_err_set(err, (int)v, "%.*s", (int)n, end + 1);
		}
	}
	return dm_err_set(err, DM_EPROTO, "dmd answered its start-up with garbage; see '%s'",
			  log_path);
}

/* In the starting process: waits for the daemon's line. */
static int wait_answer(int fd, pid_t *pid_out, const char *log_path, int timeout_ms,
		       struct dm_err *err)
{
	char buf[HANDSHAKE_MAX + 1];
	size_t len = 0;
	int64_t deadline = dm_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left_ms = (deadline - dm_now_monotonic_ns()) / 1000000;
		ssize_t n;
		int pr;

		if (left_ms <= 0)
			return dm_err_set(err, DM_ETIMEOUT,
					  "dmd did not become ready within %d s; see '%s'",
					  timeout_ms / 1000, log_path);
		pr = poll(&pfd, 1, left_ms > INT_MAX ? INT_MAX : (int)left_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return dm_err_errno(err, errno, "cannot wait for dmd");
		if (pr == 0)
			continue;
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dm_err_errno(err, errno, "cannot wait for dmd");
		len += (size_t)n;
		buf[len] = '\0';
		if (memchr(buf, '\n', len) || len == sizeof(buf) - 1)
			return parse_answer(buf, pid_out, log_path, err);
		if (n == 0)
			return dm_err_set(err, DM_EUNAVAILABLE,
					  "dmd exited before it was ready; see '%s'", log_path);
	}
}

int dm_daemon_detach(struct dm_daemon **out, pid_t *pid_out, const char *log_path, int timeout_ms,
		     struct dm_err *err)
{
	struct dm_daemon *d;
	int p[2], null_fd, rc, status;
	pid_t child;

	*out = NULL;
	*pid_out = 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return dm_err_errno(err, errno, "cannot make a pipe");
	fflush(stdout);
	fflush(stderr);
	child = fork();
	if (child < 0) {
		rc = dm_err_errno(err, errno, "cannot fork");
		close(p[0]);
		close(p[1]);
		return rc;
	}
	if (child > 0) {
		close(p[1]);
		while (waitpid(child, &status, 0) < 0 && errno == EINTR)
			;
		rc = wait_answer(p[0], pid_out, log_path, timeout_ms, err);
		close(p[0]);
		return rc;
	}

	/* The intermediate child: a new session, then the daemon's fork. */
	close(p[0]);
	if (setsid() < 0) {
		struct dm_err e;

		dm_err_errno(&e, errno, "cannot start a session");
		d = dm_xmalloc(sizeof(*d));
		d->fd = p[1];
		dm_daemon_fail(d, &e);
		_exit(1);
	}
	child = fork();
	if (child != 0) {
		if (child < 0) {
			struct dm_err e;

			dm_err_errno(&e, errno, "cannot fork");
			d = dm_xmalloc(sizeof(*d));
			d->fd = p[1];
			dm_daemon_fail(d, &e);
		}
		_exit(child < 0);
	}

	/* The daemon. */
	if (p[1] != HANDSHAKE_FD) {
		if (dup2(p[1], HANDSHAKE_FD) < 0)
			_exit(1);
		close(p[1]);
	}
	fcntl(HANDSHAKE_FD, F_SETFD, FD_CLOEXEC);
	dm_close_from(HANDSHAKE_FD + 1);
	null_fd = open("/dev/null", O_RDONLY);
	if (null_fd >= 0) {
		dup2(null_fd, STDIN_FILENO);
		if (null_fd != STDIN_FILENO)
			close(null_fd);
	}
	if (chdir("/") < 0)
		dm_warn("cannot change directory to '/': %s", strerror(errno));
	d = dm_xmalloc(sizeof(*d));
	d->fd = HANDSHAKE_FD;
	*out = d;
	return 0;
}

int dm_daemon_redirect(const char *log_path, struct dm_err *err)
{
	int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return dm_err_errno(err, errno, "cannot open log file '%s'", log_path);
	fflush(stdout);
	fflush(stderr);
	if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) {
		int rc = dm_err_errno(err, errno, "cannot redirect output to '%s'", log_path);

		close(fd);
		return rc;
	}
	close(fd);
	setvbuf(stdout, NULL, _IOLBF, 0);
	return 0;
}

/* ---- the pid file ---- */

static int pid_path(char *out, size_t size, const char *data_dir, struct dm_err *err)
{
	if (snprintf(out, size, "%s/%s", data_dir, DM_DATA_PID) >= (int)size)
		return dm_err_set(err, DM_ETOOBIG, "path too long: '%s/%s'", data_dir, DM_DATA_PID);
	return 0;
}

/* The pid written in fd's file, or 0 (empty, being written, garbage). */
static pid_t read_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	char *end;
	long v;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || v <= 0 || (*end && *end != '\n'))
		return 0;
	return (pid_t)v;
}

/* The pid of the lock holder, retrying briefly while it writes it. */
static pid_t holder_pid(int fd)
{
	pid_t pid = 0;

	for (int i = 0; i < 100 && !pid; i++) {
		pid = read_pid(fd);
		if (!pid)
			usleep(10000);
	}
	return pid;
}

int dm_pidfile_lock(struct dm_pidfile **out, const char *data_dir, struct dm_err *err)
{
	char path[PATH_MAX], line[32];
	struct stat a, b;
	int fd = -1, rc = 0;

	*out = NULL;
	rc = pid_path(path, sizeof(path), data_dir, err);
	if (rc)
		return rc;
	for (;;) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return dm_err_errno(err, errno, "cannot open '%s'", path);
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			if (errno == EWOULDBLOCK)
				rc = dm_err_set(err, DM_EBUSY,
						"dmd is already running on %s (pid %ld)", data_dir,
						(long)holder_pid(fd));
			else
				rc = dm_err_errno(err, errno, "cannot lock '%s'", path);
			goto done;
		}
		/* A stopping dmd may have removed the file we opened: retry
		 * until the file we locked is the one at path. */
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			break;
		close(fd);
	}
	snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || dm_pwrite_all(fd, line, strlen(line), 0) < 0) {
		rc = dm_err_errno(err, errno, "cannot write '%s'", path);
		unlink(path);
		goto done;
	}
	*out = dm_xmalloc(sizeof(**out));
	(*out)->fd = fd;
	(*out)->path = dm_xstrdup(path);
	fd = -1;
done:
	if (fd >= 0)
		close(fd);
	return rc;
}

void dm_pidfile_release(struct dm_pidfile *p)
{
	if (!p)
		return;
	if (unlink(p->path) < 0)
		dm_warn("cannot remove '%s': %s", p->path, strerror(errno));
	close(p->fd);
	free(p->path);
	free(p);
}

int dm_daemon_stop(pid_t *pid_out, const char *data_dir, int timeout_ms, struct dm_err *err)
{
	char path[PATH_MAX];
	int64_t deadline;
	pid_t pid;
	int fd = -1, rc;

	*pid_out = 0;
	rc = pid_path(path, sizeof(path), data_dir, err);
	if (rc)
		return rc;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return dm_err_errno(err, errno, "cannot open '%s'", path);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		/* Nobody holds it: a dmd that died without cleaning up. */
		unlink(path);
		goto done;
	}
	if (errno != EWOULDBLOCK) {
		rc = dm_err_errno(err, errno, "cannot lock '%s'", path);
		goto done;
	}
	pid = holder_pid(fd);
	if (pid <= 0) {
		rc = dm_err_set(err, DM_ECORRUPT, "'%s' is locked but holds no pid", path);
		goto done;
	}
	*pid_out = pid;
	if (kill(pid, SIGTERM) < 0 && errno != ESRCH) {
		rc = dm_err_errno(err, errno, "cannot signal dmd (pid %ld)", (long)pid);
		goto done;
	}
	deadline = dm_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			rc = dm_err_errno(err, errno, "cannot lock '%s'", path);
			goto done;
		}
		if (dm_now_monotonic_ns() >= deadline) {
			rc = dm_err_set(err, DM_ETIMEOUT, "dmd (pid %ld) did not stop within %d s",
					(long)pid, timeout_ms / 1000);
			goto done;
		}
		usleep(20000);
	}
done:
	close(fd);
	return rc;
}

/* ---- signals ---- */

void dm_daemon_block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int dm_daemon_wait_signal(const sigset_t *set)
{
	int sig = 0;

	while (sigwait(set, &sig) != 0)
		;
	return sig;
}
