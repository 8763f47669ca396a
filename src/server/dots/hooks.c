/*
 * hooks.c - one consistency hook: its JSON form, checked strictly, and
 * running it on the host (posix_spawn, no shell) or in a container (exec
 * through the Docker API), with its output in dmd's log (hooks.h).
 *
 * Invariants: a struct dm_hook that from_json filled is valid (argv has
 * 1..DM_HOOK_ARGS_MAX strings and a NULL, the container name is one Docker
 * accepts, the timeout is in range), and dm_hook_run refuses one that is
 * not. A host hook runs in a process group of its own, with nothing of
 * dmd's open but stdin (/dev/null) and one pipe for stdout and stderr, and
 * with default signal dispositions; it is waited for until it exits or its
 * deadline, when its whole group is killed; it is always reaped before
 * dm_hook_run returns. What is logged of its output is bounded (a line,
 * and all lines together), and stripped of control characters.
 */
#include "server/dots/hooks.h"
#include "server/dots/docker.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/banned.h"

extern char **environ;

#define LINE_MAX_LOGGED 1000
#define LOG_MAX         (64u * 1024)
#define LAST_MAX        200

/* --- JSON --- */

static bool container_name_ok(const char *s, size_t len)
{
	return len >= 2 && len <= DM_HOOK_CONTAINER_MAX && dm_docker_name_chars_ok(s, len);
}

void dm_hook_release(struct dm_hook *h)
{
	if (!h)
		return;
	for (size_t i = 0; h->argv && i < h->argc; i++)
		free(h->argv[i]);
	free(h->argv);
	free(h->container);
	memset(h, 0, sizeof(*h));
}

int dm_hook_from_json(struct dm_hook *out, json_t *j, struct dm_err *err)
{
	const char *key;
	json_t *v, *argv, *container, *timeout;
	size_t i;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(j))
		return dm_err_set(err, DM_EINVAL, "invalid hook: not a JSON object");
	json_object_foreach(j, key, v)
	{
		if (strcmp(key, "argv") && strcmp(key, "container") && strcmp(key, "timeout_ms"))
			return dm_err_set(err, DM_EINVAL, "invalid hook: unknown field '%.64s'",
					  key);
	}
	argv = json_object_get(j, "argv");
	container = json_object_get(j, "container");
	timeout = json_object_get(j, "timeout_ms");
	if (!json_is_array(argv) || json_array_size(argv) == 0 ||
	    json_array_size(argv) > DM_HOOK_ARGS_MAX)
		return dm_err_set(err, DM_EINVAL,
				  "invalid hook: 'argv' must be an array of 1 to %d strings",
				  DM_HOOK_ARGS_MAX);
	out->argv = dm_xcalloc(json_array_size(argv) + 1, sizeof(*out->argv));
	json_array_foreach(argv, i, v)
	{
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);

		if (!s || strlen(s) != len || len > DM_HOOK_ARG_MAX || (i == 0 && len == 0)) {
			rc = dm_err_set(err, DM_EINVAL,
					"invalid hook: argument %zu must be a string of %s%d bytes "
					"without NUL",
					i, i == 0 ? "1 to " : "at most ", DM_HOOK_ARG_MAX);
			goto fail;
		}
		out->argv[i] = dm_xstrdup(s);
		out->argc++;
	}
	if (container && !json_is_null(container)) {
		const char *s = json_string_value(container);
		size_t len = json_string_length(container);

		if (!s) {
			rc = dm_err_set(err, DM_EINVAL,
					"invalid hook: 'container' must be a string");
			goto fail;
		}
		if (len > 0 && (strlen(s) != len || !container_name_ok(s, len))) {
			rc = dm_err_set(err, DM_EINVAL,
					"invalid hook: invalid container name '%.*s'",
					DM_HOOK_CONTAINER_MAX, s);
			goto fail;
		}
		if (len > 0)
			out->container = dm_xstrdup(s);
	}
	out->timeout_ms = DM_HOOK_TIMEOUT_DEFAULT_MS;
	if (timeout) {
		json_int_t t = json_integer_value(timeout);

		if (!json_is_integer(timeout) || t < 1 || t > DM_HOOK_TIMEOUT_MAX_MS) {
			rc = dm_err_set(
				err, DM_EINVAL,
				"invalid hook: 'timeout_ms' must be an integer from 1 to %d",
				DM_HOOK_TIMEOUT_MAX_MS);
			goto fail;
		}
		out->timeout_ms = (int)t;
	}
	return 0;
fail:
	dm_hook_release(out);
	return rc;
}

json_t *dm_hook_to_json(const struct dm_hook *h)
{
	json_t *argv = json_array(), *j;

	for (size_t i = 0; argv && i < h->argc; i++)
		if (json_array_append_new(argv, json_string(h->argv[i]))) {
			json_decref(argv);
			return NULL;
		}
	j = json_pack("{s:o, s:i}", "argv", argv, "timeout_ms", h->timeout_ms);
	if (j && h->container && h->container[0] &&
	    json_object_set_new(j, "container", json_string(h->container))) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Whether h could have come from dm_hook_from_json. */
static int hook_check(const struct dm_hook *h, struct dm_err *err)
{
	if (!h || !h->argv || h->argc == 0 || h->argc > DM_HOOK_ARGS_MAX || !h->argv[0] ||
	    !h->argv[0][0] || h->argv[h->argc])
		return dm_err_set(err, DM_EINVAL, "invalid hook: no command");
	if (h->timeout_ms < 1 || h->timeout_ms > DM_HOOK_TIMEOUT_MAX_MS)
		return dm_err_set(err, DM_EINVAL, "invalid hook: timeout of %d ms", h->timeout_ms);
	if (h->container && h->container[0] &&
	    !container_name_ok(h->container, strlen(h->container)))
		return dm_err_set(err, DM_EINVAL, "invalid hook: invalid container name '%.*s'",
				  DM_HOOK_CONTAINER_MAX, h->container);
	return 0;
}

/* --- output into the log, line by line --- */

struct lines {
	const char *what;
	char line[LINE_MAX_LOGGED + 1];
	size_t len;
	bool cut;
	size_t logged;
	bool quiet;
	char last[LAST_MAX + 1];
};

static void lines_emit(struct lines *l)
{
	while (l->len && l->line[l->len - 1] == '\r')
		l->len--;
	l->line[l->len] = '\0';
	if (l->len || l->cut) {
		snprintf(l->last, sizeof(l->last), "%.*s", LAST_MAX, l->line);
		if (l->logged + l->len > LOG_MAX) {
			if (!l->quiet)
				dm_info("%s: (more output, not logged)", l->what);
			l->quiet = true;
		} else {
			l->logged += l->len;
			dm_info("%s: %s%s", l->what, l->line, l->cut ? " [cut]" : "");
		}
	}
	l->len = 0;
	l->cut = false;
}

static void lines_feed(struct lines *l, const char *data, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)data[i];

		if (c == '\n') {
			lines_emit(l);
			continue;
		}
		if (l->len == LINE_MAX_LOGGED) {
			l->cut = true;
			continue;
		}
		l->line[l->len++] =
			(c < 0x20 && c != '\t' && c != '\r') || c == 0x7f ? '?' : (char)c;
	}
}

/* The end of the output: a last line without its newline. */
static void lines_flush(struct lines *l)
{
	if (l->len || l->cut)
		lines_emit(l);
}

/* --- on the host --- */

/* dmd's environment with env's entries (which replace any of the same name). */
static char **make_env(char *const env[])
{
	size_t n = 0, m = 0, k = 0;
	char **out;

	while (environ && environ[n])
		n++;
	while (env && env[m])
		m++;
	out = dm_xcalloc(n + m + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t klen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		bool replaced = false;

		for (size_t e = 0; e < m && !replaced; e++)
			replaced = !strncmp(env[e], environ[i], klen) && env[e][klen] == '=';
		if (!replaced)
			out[k++] = environ[i];
	}
	for (size_t e = 0; e < m; e++)
		out[k++] = env[e];
	return out;
}

static int64_t ms_left(int64_t deadline)
{
	int64_t ns = deadline - dm_now_monotonic_ns();

	return ns <= 0 ? 0 : (ns + 999999) / 1000000;
}

/* Starts argv in a process group of its own, output into out_fd. */
static int spawn(pid_t *pid, const struct dm_hook *h, char *const env[], int out_fd,
		 struct dm_err *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	char **envp = make_env(env);
	int e;

	sigemptyset(&none);
	sigemptyset(&dfl);
	for (int s = 1; s < 32; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaddset(&dfl, s);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out_fd, STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	/* dmd's descriptors are close-on-exec; this also covers any that are not */
	posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
#endif
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	e = posix_spawnp(pid, h->argv[0], &fa, &attr, h->argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(envp);
	if (e)
		return dm_err_errno(err, e, "cannot run '%s'", h->argv[0]);
	return 0;
}

/* Reads what is in fd now (it may be at its end), at most max bytes. */
static void drain(int fd, struct lines *l, size_t max)
{
	char buf[4096];

	while (max) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 0) <= 0)
			return;
		n = read(fd, buf, sizeof(buf) < max ? sizeof(buf) : max);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		lines_feed(l, buf, (size_t)n);
		max -= (size_t)n;
	}
}

/* Runs h on the host; *status its wait status. */
static int run_host(const struct dm_hook *h, char *const env[], struct lines *l, int *status,
		    struct dm_err *err)
{
	int64_t deadline = dm_now_monotonic_ns() + (int64_t)h->timeout_ms * 1000000;
	int p[2] = {-1, -1}, pidfd = -1, rc;
	pid_t pid = -1;
	bool exited = false;

	if (pipe2(p, O_CLOEXEC) < 0)
		return dm_err_errno(err, errno, "cannot make a pipe for '%s'", h->argv[0]);
	rc = spawn(&pid, h, env, p[1], err);
	close(p[1]);
	if (rc) {
		close(p[0]);
		return rc;
	}
#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
	while (!exited) {
		struct pollfd fds[2];
		int64_t left = ms_left(deadline);
		nfds_t nfds = 0;
		int r;

		if (left <= 0)
			break;
		if (p[0] >= 0)
			fds[nfds++] = (struct pollfd){.fd = p[0], .events = POLLIN};
		if (pidfd >= 0)
			fds[nfds++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		/* without a pidfd, exit is noticed by polling waitpid */
		r = poll(fds, nfds, (int)(pidfd >= 0 ? left : (left < 20 ? left : 20)));
		if (r < 0 && errno != EINTR) {
			rc = dm_err_errno(err, errno, "cannot wait for '%s'", h->argv[0]);
			break;
		}
		if (r > 0 && p[0] >= 0 && fds[0].revents) {
			char buf[4096];
			ssize_t n = read(p[0], buf, sizeof(buf));

			if (n > 0) {
				lines_feed(l, buf, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(p[0]);
				p[0] = -1;
			}
		}
		if (waitpid(pid, status, WNOHANG) == pid)
			exited = true;
	}
	if (!exited) {
		kill(-pid, SIGKILL);
		while (waitpid(pid, status, 0) < 0 && errno == EINTR)
			;
		if (!rc)
			rc = dm_err_set(err, DM_ETIMEOUT,
					"did not finish within %d ms and was killed",
					h->timeout_ms);
	}
	/* what it wrote before it ended; a child it left may hold the pipe open,
	 * so only what is there now */
	if (p[0] >= 0) {
		drain(p[0], l, 1u << 20);
		close(p[0]);
	}
	lines_flush(l);
	if (pidfd >= 0)
		close(pidfd);
	return rc;
}

/* --- either --- */

int dm_hook_run(struct dm_docker *d, const struct dm_hook *h, const char *what, char *const env[],
		struct dm_err *err)
{
	struct lines *l = dm_xcalloc(1, sizeof(*l));
	int rc = hook_check(h, err), status = 0, code = 0;

	l->what = what;
	if (rc)
		goto done;
	if (!h->container || !h->container[0]) {
		rc = run_host(h, env, l, &status, err);
		if (rc == DM_ETIMEOUT)
			dm_err_prefix(err, "%s ('%s')", what, h->argv[0]);
		else if (rc)
			dm_err_prefix(err, "%s", what);
		if (rc)
			goto done;
		if (WIFSIGNALED(status)) {
			rc = dm_err_set(err, DM_ECONFLICT, "%s ('%s') was killed by signal %d: %s",
					what, h->argv[0], WTERMSIG(status),
					l->last[0] ? l->last : "(no output)");
			goto done;
		}
		code = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
	} else {
		struct dm_buf out;

		if (!d) {
			rc = dm_err_set(err, DM_EUNAVAILABLE,
					"%s runs in container '%s', but dmd has no Docker API",
					what, h->container);
			goto done;
		}
		dm_buf_init(&out, DM_DOCKER_EXEC_OUTPUT_MAX + 256);
		rc = dm_docker_exec(d, h->container, h->argv, env, h->timeout_ms, &code, &out, err);
		lines_feed(l, (const char *)out.data, out.len);
		lines_flush(l);
		dm_buf_release(&out);
		if (rc) {
			dm_err_prefix(err, "%s", what);
			goto done;
		}
	}
	if (code != 0)
		rc = dm_err_set(err, DM_ECONFLICT, "%s ('%s') exited with status %d: %s", what,
				h->argv[0], code, l->last[0] ? l->last : "(no output)");
done:
	free(l);
	return rc;
}
