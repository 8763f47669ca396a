/*
 * etcd_member.c - the single-member etcd a dmd runs in its data directory
 * (see etcd_member.h): choosing its ports, running it, waiting until it
 * answers, and stopping it or the one a dead dmd left behind.
 *
 * Invariants: a process is taken for data directory DIR's member only when
 * DIR/etcd.pid names it and its command line holds the argument
 * --data-dir=DIR/etcd, DIR resolved (so a pid reused by another program is
 * never signalled, and a zombie, whose command line is empty, counts as
 * gone). DIR/etcd.pid exists exactly while a member started here may run.
 * Between fork and exec the child calls only async-signal-safe functions
 * (dmd has threads); it gets no descriptor of dmd's, an empty signal mask
 * (dmd blocks SIGTERM in every thread) and SIGPIPE's default action.
 * A member's output is appended to DIR/etcd.log; an error quotes the end of
 * what this start of it wrote there, never an older run's.
 */
#include "server/cluster/etcd_member.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kv/kv.h"
#include "server/cluster/etcd_access.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/id.h"
#include "util/log.h"
#include "util/program.h"

#include "util/banned.h"

#define MEMBER_NAME      "dm"
#define START_TIMEOUT_MS (30 * 1000)
#define STOP_GRACE_MS    5000
#define KILL_WAIT_MS     5000
#define POLL_MS          50
#define PROBE_EVERY_MS   100
#define LOG_TAIL_BYTES   8192
#define LOG_TAIL_LINES   2
#define LOG_LINE_SHOWN   200
#define PORT_TRIES       200
#define PORT_LOWEST      10000

struct dm_etcd_member {
	pid_t pid;               /* our child; 0 once reaped */
	char pid_path[PATH_MAX]; /* DIR/etcd.pid */
};

/* What names data_dir's member: its pid file and its --data-dir argument. */
struct names {
	char dir[PATH_MAX];            /* DIR, resolved */
	char pid_path[PATH_MAX];       /* DIR/etcd.pid */
	char log_path[PATH_MAX];       /* DIR/etcd.log */
	char data_flag[PATH_MAX + 16]; /* --data-dir=DIR/etcd */
};

static int names_of(struct names *out, const char *data_dir, struct dm_err *err)
{
	if (!realpath(data_dir, out->dir))
		return dm_err_errno(err, errno, "cannot resolve '%s'", data_dir);
	if (snprintf(out->pid_path, sizeof(out->pid_path), "%s/%s", out->dir, DM_DATA_ETCD_PID) >=
		    (int)sizeof(out->pid_path) ||
	    snprintf(out->log_path, sizeof(out->log_path), "%s/%s", out->dir, DM_DATA_ETCD_LOG) >=
		    (int)sizeof(out->log_path) ||
	    snprintf(out->data_flag, sizeof(out->data_flag), "--data-dir=%s/%s", out->dir,
		     DM_DATA_ETCD) >= (int)sizeof(out->data_flag))
		return dm_err_set(err, DM_ETOOBIG, "path too long: '%s'", out->dir);
	return 0;
}

int dm_etcd_member_check(struct dm_err *err)
{
	char path[PATH_MAX];

	if (dm_program_find(path, sizeof(path), DM_ETCD_PROGRAM, NULL) == 0)
		return 0;
	return dm_err_set(err, DM_EUNSUPPORTED,
			  "no etcd program in PATH to run a local etcd: install Debian's package "
			  "etcd-server, or give the endpoints of an etcd with --etcd-endpoints");
}

void dm_etcd_member_url(char *out, size_t size, int client_port, bool tls)
{
	snprintf(out, size, "%s://127.0.0.1:%d", tls ? "https" : "http", client_port);
}

/* ---- ports ---- */

/* The kernel's ephemeral ports, [*low, *high] (Linux's default when the
 * file cannot be read). */
static void ephemeral_range(int *low, int *high)
{
	struct dm_buf b = DM_BUF_INIT;

	*low = 32768;
	*high = 60999;
	if (dm_read_file(&b, "/proc/sys/net/ipv4/ip_local_port_range", 64, NULL) == 0 && b.data &&
	    sscanf((const char *)b.data, "%d %d", low, high) != 2) {
		*low = 32768;
		*high = 60999;
	}
	dm_buf_release(&b);
}

/* Binds a socket to 127.0.0.1:port (0: any); the socket, or -1. */
static int bind_port(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* A port outside [low, high], at least PORT_LOWEST, that binds now: its
 * socket (held, so that the second pick differs) and *port, or -1. */
static int pick_one(int *port, int low, int high)
{
	int below = low > PORT_LOWEST ? low - PORT_LOWEST : 0;
	int above = high < 65535 ? 65535 - (high > PORT_LOWEST - 1 ? high : PORT_LOWEST - 1) : 0;

	for (int i = 0; i < PORT_TRIES && below + above > 0; i++) {
		uint32_t r;
		int p, fd;

		if (dm_random_bytes(&r, sizeof(r), NULL))
			break;
		p = (int)(r % (uint32_t)(below + above));
		p = p < below ? PORT_LOWEST + p : 65535 - (p - below);
		fd = bind_port(p);
		if (fd >= 0) {
			*port = p;
			return fd;
		}
	}
	return -1;
}

int dm_etcd_member_pick_ports(int *client_out, int *peer_out, struct dm_err *err)
{
	int low, high, fds[2] = {-1, -1}, ports[2] = {0, 0}, rc = 0;

	ephemeral_range(&low, &high);
	for (int i = 0; i < 2 && !rc; i++) {
		fds[i] = pick_one(&ports[i], low, high);
		if (fds[i] < 0)
			rc = dm_err_set(err, DM_EUNAVAILABLE,
					"cannot find a free port on 127.0.0.1 for a local etcd; "
					"give the endpoints of an etcd with --etcd-endpoints");
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	*client_out = rc ? 0 : ports[0];
	*peer_out = rc ? 0 : ports[1];
	return rc;
}

/* ---- finding and stopping a member ---- */

/* Whether pid runs with names' --data-dir argument: is data_dir's member. */
static bool is_member(pid_t pid, const struct names *n)
{
	char path[64];
	struct dm_buf b = DM_BUF_INIT;
	bool found = false;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	if (dm_read_file(&b, path, 1u << 20, NULL) == 0 && b.data) {
		/* NUL-separated arguments; data[len] is a NUL too */
		for (size_t off = 0; off < b.len && !found; off += strlen((char *)b.data + off) + 1)
			found = strcmp((char *)b.data + off, n->data_flag) == 0;
	}
	dm_buf_release(&b);
	return found;
}

/* The member DIR/etcd.pid names, when it runs; else 0. */
static pid_t running_member(const struct names *n)
{
	struct dm_buf b = DM_BUF_INIT;
	char *end;
	long v = 0;

	if (dm_read_file(&b, n->pid_path, 64, NULL) == 0 && b.data) {
		errno = 0;
		v = strtol((const char *)b.data, &end, 10);
		if (errno || v <= 0 || v > INT32_MAX || (*end && *end != '\n'))
			v = 0;
	}
	dm_buf_release(&b);
	return v > 0 && is_member((pid_t)v, n) ? (pid_t)v : 0;
}

/* Whether pid is gone: our child reaped (*status set), or, not our child,
 * no longer data_dir's member. */
static bool gone(pid_t pid, bool child, const struct names *n, int *status)
{
	if (child) {
		pid_t r = waitpid(pid, status, WNOHANG);

		return r == pid || (r < 0 && errno == ECHILD);
	}
	return !is_member(pid, n);
}

static bool wait_gone(pid_t pid, bool child, const struct names *n, int ms)
{
	int64_t deadline = dm_now_monotonic_ns() + (int64_t)ms * 1000000;
	int status;

	while (!gone(pid, child, n, &status)) {
		if (dm_now_monotonic_ns() >= deadline)
			return false;
		usleep(POLL_MS * 1000);
	}
	return true;
}

/* SIGTERM, then SIGKILL after STOP_GRACE_MS; returns once it is gone (or
 * SIGKILL did not end it within KILL_WAIT_MS, which is logged). */
static void stop_pid(pid_t pid, bool child, const struct names *n)
{
	if (kill(pid, SIGTERM) < 0 && errno == ESRCH && !child)
		return;
	if (wait_gone(pid, child, n, STOP_GRACE_MS))
		return;
	dm_warn("etcd (pid %ld) did not stop within %d s of SIGTERM; killing it", (long)pid,
		STOP_GRACE_MS / 1000);
	kill(pid, SIGKILL);
	if (!wait_gone(pid, child, n, KILL_WAIT_MS))
		dm_warn("etcd (pid %ld) is still there after SIGKILL", (long)pid);
}

int dm_etcd_member_stop_leftover(pid_t *pid_out, const char *data_dir, struct dm_err *err)
{
	struct names n;
	int rc = names_of(&n, data_dir, err);

	*pid_out = 0;
	if (rc)
		return rc;
	*pid_out = running_member(&n);
	if (*pid_out) {
		dm_info("stopping the etcd (pid %ld) a dmd left running on '%s'", (long)*pid_out,
			n.dir);
		stop_pid(*pid_out, false, &n);
	}
	if (unlink(n.pid_path) < 0 && errno != ENOENT)
		return dm_err_errno(err, errno, "cannot remove '%s'", n.pid_path);
	return 0;
}

void dm_etcd_member_stop(struct dm_etcd_member *m)
{
	if (!m)
		return;
	if (m->pid > 0) {
		struct names n;

		/* a child is found by waitpid alone: n's names are not read */
		memset(&n, 0, sizeof(n));
		stop_pid(m->pid, true, &n);
	}
	if (unlink(m->pid_path) < 0 && errno != ENOENT)
		dm_warn("cannot remove '%s': %s", m->pid_path, strerror(errno));
	free(m);
}

/* ---- what it logged ---- */

/* One line of etcd's log as a person reads it: a JSON line (etcd's zap
 * logger) as "msg: error", anything else as it is, at most
 * LOG_LINE_SHOWN bytes. */
static void add_line(struct dm_buf *out, const char *line, size_t len)
{
	json_t *doc = json_loadb(line, len, 0, NULL);
	const char *msg = json_string_value(json_object_get(doc, "msg"));
	const char *error = json_string_value(json_object_get(doc, "error"));

	if (out->len)
		dm_buf_adds(out, " | ");
	if (msg)
		dm_buf_addf(out, "%.*s%s%.*s", LOG_LINE_SHOWN, msg, error ? ": " : "",
			    LOG_LINE_SHOWN, error ? error : "");
	else
		dm_buf_addf(out, "%.*s", (int)(len < LOG_LINE_SHOWN ? len : LOG_LINE_SHOWN), line);
	json_decref(doc);
}

/* The last LOG_TAIL_LINES lines of the log after offset from, into out. */
static void log_tail(struct dm_buf *out, const char *log_path, off_t from)
{
	const char *lines[LOG_TAIL_LINES];
	size_t lens[LOG_TAIL_LINES];
	char buf[LOG_TAIL_BYTES + 1];
	int fd = open(log_path, O_RDONLY | O_CLOEXEC), n = 0;
	struct stat st;
	ssize_t got = 0;
	char *p;

	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > from) {
		off_t start =
			st.st_size - from > LOG_TAIL_BYTES ? st.st_size - LOG_TAIL_BYTES : from;

		got = pread(fd, buf, LOG_TAIL_BYTES, start);
	}
	if (fd >= 0)
		close(fd);
	if (got <= 0) {
		dm_buf_adds(out, "(it wrote nothing)");
		return;
	}
	buf[got] = '\0';
	/* the last lines, newest first */
	for (p = buf + got; n < LOG_TAIL_LINES && p > buf;) {
		char *end = p;

		while (end > buf && (end[-1] == '\n' || end[-1] == '\r'))
			end--;
		p = end;
		while (p > buf && p[-1] != '\n')
			p--;
		if (end > p) {
			lines[n] = p;
			lens[n++] = (size_t)(end - p);
		}
	}
	while (n-- > 0)
		add_line(out, lines[n], lens[n]);
}

/* ---- running it ---- */

/* The flags that give the member its certificate and peers' CA, in dir. */
struct tls_flags {
	char cert[PATH_MAX + 64], key[PATH_MAX + 64], peer_cert[PATH_MAX + 64],
		peer_key[PATH_MAX + 64], peer_ca[PATH_MAX + 64];
};

static void tls_flags_of(struct tls_flags *f, const char *dir)
{
	snprintf(f->cert, sizeof(f->cert), "--cert-file=%s/%s", dir, DM_DATA_ETCD_SERVER);
	snprintf(f->key, sizeof(f->key), "--key-file=%s/%s", dir, DM_DATA_ETCD_SERVER_KEY);
	snprintf(f->peer_cert, sizeof(f->peer_cert), "--peer-cert-file=%s/%s", dir,
		 DM_DATA_ETCD_SERVER);
	snprintf(f->peer_key, sizeof(f->peer_key), "--peer-key-file=%s/%s", dir,
		 DM_DATA_ETCD_SERVER_KEY);
	snprintf(f->peer_ca, sizeof(f->peer_ca), "--peer-trusted-ca-file=%s/%s", dir,
		 DM_DATA_ETCD_CA);
}

/* Runs etcd for n on these ports (TLS with the certificate in n's
 * directory, or plain HTTP), its output appended to the log; *pid_out the
 * child, *log_from the log's size before it. */
static int spawn(pid_t *pid_out, off_t *log_from, const struct names *n, int client, int peer,
		 bool tls, struct dm_err *err)
{
	char etcd[PATH_MAX], lc[64], ac[64], lp[64], ap[64], initial[96];
	const char *scheme = tls ? "https" : "http";
	static const char exec_failed[] = "dmd: cannot execute etcd\n";
	struct tls_flags tf;
	const char *argv[24];
	size_t argc = 0;
	int log_fd = -1, null_fd = -1, rc = 0;
	sigset_t none;
	pid_t pid;

	if (dm_program_find(etcd, sizeof(etcd), DM_ETCD_PROGRAM, NULL))
		return dm_etcd_member_check(err);
	snprintf(lc, sizeof(lc), "--listen-client-urls=%s://127.0.0.1:%d", scheme, client);
	snprintf(ac, sizeof(ac), "--advertise-client-urls=%s://127.0.0.1:%d", scheme, client);
	snprintf(lp, sizeof(lp), "--listen-peer-urls=%s://127.0.0.1:%d", scheme, peer);
	snprintf(ap, sizeof(ap), "--initial-advertise-peer-urls=%s://127.0.0.1:%d", scheme, peer);
	snprintf(initial, sizeof(initial), "--initial-cluster=" MEMBER_NAME "=%s://127.0.0.1:%d",
		 scheme, peer);
	tls_flags_of(&tf, n->dir);
	argv[argc++] = etcd;
	argv[argc++] = "--name=" MEMBER_NAME;
	argv[argc++] = n->data_flag;
	argv[argc++] = lc;
	argv[argc++] = ac;
	argv[argc++] = lp;
	argv[argc++] = ap;
	argv[argc++] = initial;
	argv[argc++] = "--initial-cluster-token=dm-local";
	/* nothing else compacts this etcd's history: one hour of it is kept */
	argv[argc++] = "--auto-compaction-retention=1";
	argv[argc++] = "--logger=zap";
	argv[argc++] = "--log-outputs=stderr";
	if (tls) {
		argv[argc++] = tf.cert;
		argv[argc++] = tf.key;
		argv[argc++] = tf.peer_cert;
		argv[argc++] = tf.peer_key;
		argv[argc++] = tf.peer_ca;
		argv[argc++] = "--peer-client-cert-auth";
	}
	argv[argc] = NULL;

	log_fd = open(n->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (log_fd < 0 || null_fd < 0) {
		rc = dm_err_errno(err, errno, "cannot open '%s'",
				  log_fd < 0 ? n->log_path : "/dev/null");
		goto done;
	}
	*log_from = lseek(log_fd, 0, SEEK_END);
	if (*log_from < 0)
		*log_from = 0;
	sigemptyset(&none);
	pid = fork();
	if (pid < 0) {
		rc = dm_err_errno(err, errno, "cannot fork to run '%s'", etcd);
		goto done;
	}
	if (pid == 0) {
		if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
		    dup2(log_fd, STDERR_FILENO) < 0)
			_exit(126);
		dm_close_from(STDERR_FILENO + 1);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execv(etcd, (char *const *)(void *)argv);
		if (write(STDERR_FILENO, exec_failed, sizeof(exec_failed) - 1) < 0)
			_exit(126);
		_exit(127);
	}
	*pid_out = pid;
done:
	if (log_fd >= 0)
		close(log_fd);
	if (null_fd >= 0)
		close(null_fd);
	return rc;
}

/*
 * Whether the member at url answers: 0 yes. With access, it answers the
 * user; a member that answers without one (its first start) has its
 * authentication turned on here first.
 */
static int probe(const char *url, const struct dm_etcd_access *access, struct dm_err *err)
{
	struct dm_kv_etcd_opts o = {.request_timeout_ms = 1000, .connect_timeout_ms = 500};
	struct dm_kv *kv = NULL;
	int rc;

	if (access)
		o.ca_file = access->ca;
	rc = dm_kv_open_etcd(&kv, url, &o, err);
	if (!rc && access)
		rc = dm_kv_etcd_enable_auth(kv, access->user, access->password, err);
	dm_kv_free(kv);
	if (rc == DM_EPERM && access) {
		/* authentication is on: the user must get in */
		dm_etcd_access_kv_opts(&o, access);
		rc = dm_kv_open_etcd(&kv, url, &o, err);
		dm_kv_free(kv);
	}
	return rc;
}

/* Waits until the member on client answers; on failure err says why, with
 * the end of its log. */
static int wait_ready(struct dm_etcd_member *m, const struct names *n, int client, off_t log_from,
		      const struct dm_etcd_access *access, struct dm_err *err)
{
	int64_t deadline = dm_now_monotonic_ns() + (int64_t)START_TIMEOUT_MS * 1000000;
	struct dm_buf tail = DM_BUF_INIT;
	char url[64], why[DM_ERR_MSG_MAX + 160];
	struct dm_err last;
	int status = 0, rc;

	dm_etcd_member_url(url, sizeof(url), client, access != NULL);
	dm_err_clear(&last);
	for (;;) {
		if (gone(m->pid, true, n, &status)) {
			m->pid = 0;
			if (WIFEXITED(status))
				snprintf(why, sizeof(why),
					 "exited with status %d before it answered",
					 WEXITSTATUS(status));
			else
				snprintf(why, sizeof(why), "died of signal %d before it answered",
					 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
			break;
		}
		if (probe(url, access, &last) == 0)
			return 0;
		if (dm_now_monotonic_ns() >= deadline) {
			snprintf(why, sizeof(why), "did not answer on %s within %d s (%s)", url,
				 START_TIMEOUT_MS / 1000, last.msg[0] ? last.msg : "no answer");
			break;
		}
		usleep(PROBE_EVERY_MS * 1000);
	}
	log_tail(&tail, n->log_path, log_from);
	rc = dm_err_set(err, DM_EUNAVAILABLE, "the local etcd %s; the end of its log: %s", why,
			tail.data ? (const char *)tail.data : "");
	dm_buf_release(&tail);
	return rc;
}

int dm_etcd_member_start(struct dm_etcd_member **out, const char *data_dir, int client_port,
			 int peer_port, const struct dm_etcd_access *access, struct dm_err *err)
{
	struct dm_etcd_member *m = NULL;
	struct names n;
	char dir[PATH_MAX + 8], line[32], url[64];
	off_t log_from = 0;
	pid_t old;
	int rc;

	*out = NULL;
	rc = names_of(&n, data_dir, err);
	if (rc)
		return rc;
	if (access && (!access->ca[0] || !access->user[0]))
		return dm_err_set(err, DM_EINVAL,
				  "the local etcd's CA or user is missing from '%s'", n.dir);
	old = running_member(&n);
	if (old) {
		dm_info("stopping the etcd (pid %ld) a dmd left running; starting it again",
			(long)old);
		stop_pid(old, false, &n);
	}
	snprintf(dir, sizeof(dir), "%s/%s", n.dir, DM_DATA_ETCD);
	rc = dm_mkdir_p(dir, 0700, err);
	if (rc)
		return rc;
	m = dm_xcalloc(1, sizeof(*m));
	snprintf(m->pid_path, sizeof(m->pid_path), "%s", n.pid_path);
	rc = spawn(&m->pid, &log_from, &n, client_port, peer_port, access != NULL, err);
	if (rc)
		goto done;
	snprintf(line, sizeof(line), "%ld\n", (long)m->pid);
	rc = dm_write_file_atomic(n.pid_path, line, strlen(line), 0644, err);
	if (!rc)
		rc = wait_ready(m, &n, client_port, log_from, access, err);
	dm_etcd_member_url(url, sizeof(url), client_port, access != NULL);
	if (!rc)
		dm_info("local etcd (pid %ld) answers on %s%s", (long)m->pid, url,
			access ? ", with TLS and authentication" : "");
done:
	if (rc)
		dm_etcd_member_stop(m);
	else
		*out = m;
	return rc;
}
