/*
 * test_kv.c - the KV interface on both backends: revisions, prefix ranges,
 * compare-and-swap, transactions, watches (history, live events from
 * several threads, compaction, cancel), leases and size limits run the
 * same test bodies against the embedded LMDB store and against a real
 * etcd; then what only one backend has: LMDB's reopening, map growth,
 * long keys and self-trimming log, and etcd's failover, watch resumption
 * across broken streams and deadlines when etcd is down or silent.
 *
 * Every test gets a fresh directory under /tmp, removed at the end. An
 * etcd test starts its own etcd (one member, or three) with its data in
 * that directory and free ports on 127.0.0.1, and kills it in teardown,
 * so revisions start at 0 in every test, as on LMDB. Some etcd tests put
 * a proxy of their own between dm and etcd, to cut or freeze a watch's
 * stream at a chosen point. Watch events are gathered by a collector that
 * copies them under a mutex, so tests can wait for a count and inspect
 * them in order.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv/backend.h"
#include "kv/kv.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

#define MEMBERS_MAX 3

/* ---- etcd members ---- */

struct member {
	pid_t pid; /* 0: not running */
	int client_port, peer_port;
	char name[8];
	char **argv; /* to start it again */
};

/* The cluster of a test: MEMBERS_MAX at most. */
struct cluster {
	struct member m[MEMBERS_MAX];
	int n;
	char endpoints[256]; /* every member's client URL, comma-separated */
};

static struct proxy *proxy_start(int target_port);
static int proxy_port(const struct proxy *p);
static void proxy_stop(struct proxy *p);

/* ---- fixtures ---- */

struct fx {
	char dir[64];
	struct dm_kv *kv;
	const char *backend; /* "lmdb" or "etcd" */
	struct cluster c;
	struct dm_kv_etcd_opts eopts;
	const char *etcd_endpoints; /* what fx_open opens: the cluster's, or a proxy's */
	char proxy_endpoint[64];
	struct proxy *proxy;
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

static int64_t ms_since(int64_t start_ns)
{
	return (dm_now_monotonic_ns() - start_ns) / 1000000LL;
}

static struct dm_kv *open_kv(const char *dir, const struct dm_kv_lmdb_opts *opts)
{
	struct dm_kv *kv = NULL;
	struct dm_err err;

	dm_err_clear(&err);
	if (dm_kv_open_lmdb_opts(&kv, dir, opts, &err) < 0)
		fail_msg("open: %s", err.msg);
	return kv;
}

/* A TCP port on 127.0.0.1 that nothing listens on right now. */
static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	return s;
}

static void free_argv(char **argv)
{
	if (!argv)
		return;
	for (char **a = argv; *a; a++)
		free(*a);
	free(argv);
}

/* Starts member i from its argv, its output in dir/<name>.log. */
static void member_spawn(struct fx *f, int i)
{
	struct member *m = &f->c.m[i];
	char *log = xprintf("%s/%s.log", f->dir, m->name);
	pid_t parent = getpid(), pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		/* never outlive the test, even when it crashes */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(m->argv[0], m->argv);
		_exit(127);
	}
	free(log);
	m->pid = pid;
}

/* Whether member i answers a linearizable read (so it has a leader). */
static bool member_ready(struct fx *f, int i)
{
	struct dm_kv_etcd_opts o = {.request_timeout_ms = 500, .connect_timeout_ms = 200};
	char url[64];
	struct dm_kv *kv = NULL;
	struct dm_err err;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", f->c.m[i].client_port);
	if (dm_kv_open_etcd(&kv, url, &o, &err) < 0)
		return false;
	dm_kv_free(kv);
	return true;
}

/* Waits until member i answers; false when it died (its ports were taken). */
static bool member_wait(struct fx *f, int i)
{
	int64_t start = dm_now_monotonic_ns();
	int status;

	while (ms_since(start) < 20000) {
		if (waitpid(f->c.m[i].pid, &status, WNOHANG) == f->c.m[i].pid) {
			f->c.m[i].pid = 0;
			return false;
		}
		if (member_ready(f, i))
			return true;
		sleep_ms(20);
	}
	fail_msg("etcd member %s did not become ready; see %s/%s.log", f->c.m[i].name, f->dir,
		 f->c.m[i].name);
	return false;
}

static void member_kill(struct fx *f, int i)
{
	struct member *m = &f->c.m[i];

	if (m->pid > 0) {
		kill(m->pid, SIGKILL);
		waitpid(m->pid, NULL, 0);
		m->pid = 0;
	}
}

static void member_restart(struct fx *f, int i)
{
	member_spawn(f, i);
	if (!member_wait(f, i))
		fail_msg("etcd member %s did not start again; see %s/%s.log", f->c.m[i].name,
			 f->dir, f->c.m[i].name);
}

static void cluster_stop(struct fx *f)
{
	for (int i = 0; i < f->c.n; i++) {
		member_kill(f, i);
		free_argv(f->c.m[i].argv);
		f->c.m[i].argv = NULL;
	}
	f->c.n = 0;
}

/*
 * Starts an etcd cluster of n members on free ports, data under f->dir,
 * and waits until each answers. extra: more flags for every member (NULL
 * terminated). A single member runs with short raft ticks, so that etcd's
 * shortest lease TTL (1.5 election timeouts) stays under 1 s; a cluster
 * with less hurried ones, so that a loaded machine does not make it
 * change leaders.
 */
static void cluster_start(struct fx *f, int n, const char *const *extra)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		char initial[512] = "";
		size_t len = 0;
		bool ok = true;

		f->c.n = n;
		for (int i = 0; i < n; i++) {
			struct member *m = &f->c.m[i];

			snprintf(m->name, sizeof(m->name), "m%d", i);
			m->client_port = free_port();
			m->peer_port = free_port();
			len += (size_t)snprintf(initial + len, sizeof(initial) - len,
						"%s%s=http://127.0.0.1:%d", i ? "," : "", m->name,
						m->peer_port);
		}
		for (int i = 0; i < n; i++) {
			struct member *m = &f->c.m[i];
			char **a = calloc(40, sizeof(*a));
			int k = 0;

			assert_non_null(a);
			a[k++] = xprintf("etcd");
			a[k++] = xprintf("--name=%s", m->name);
			a[k++] = xprintf("--data-dir=%s/%s", f->dir, m->name);
			a[k++] =
				xprintf("--listen-client-urls=http://127.0.0.1:%d", m->client_port);
			a[k++] = xprintf("--advertise-client-urls=http://127.0.0.1:%d",
					 m->client_port);
			a[k++] = xprintf("--listen-peer-urls=http://127.0.0.1:%d", m->peer_port);
			a[k++] = xprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d",
					 m->peer_port);
			a[k++] = xprintf("--initial-cluster=%s", initial);
			a[k++] = xprintf("--initial-cluster-token=dm-test-%d", (int)getpid());
			a[k++] = xprintf("--heartbeat-interval=%d", n == 1 ? 10 : 50);
			a[k++] = xprintf("--election-timeout=%d", n == 1 ? 100 : 500);
			a[k++] = xprintf("--logger=zap");
			a[k++] = xprintf("--log-outputs=stderr");
			a[k++] = xprintf("--log-level=warn");
			for (int j = 0; extra && extra[j]; j++)
				a[k++] = xprintf("%s", extra[j]);
			free_argv(m->argv);
			m->argv = a;
			member_spawn(f, i);
		}
		for (int i = 0; i < n; i++)
			ok = ok && member_wait(f, i);
		if (ok) {
			len = 0;
			for (int i = 0; i < n; i++)
				len += (size_t)snprintf(f->c.endpoints + len,
							sizeof(f->c.endpoints) - len,
							"%shttp://127.0.0.1:%d", i ? "," : "",
							f->c.m[i].client_port);
			f->etcd_endpoints = f->c.endpoints;
			return;
		}
		/* a port was taken between free_port and etcd: again */
		cluster_stop(f);
		dm_remove_tree(f->dir, NULL);
		mkdir(f->dir, 0700);
	}
	fail_msg("cannot start an etcd cluster of %d; see the logs in %s", n, f->dir);
}

static struct fx *fx_new(const char *backend)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	snprintf(f->dir, sizeof(f->dir), "/tmp/dm-test-kv-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return NULL;
	}
	f->backend = backend;
	dm_kv_etcd_opts_default(&f->eopts);
	return f;
}

/* Every test gets a fresh directory; teardown removes it even when the
 * test failed. */
static int fx_setup_lmdb(void **state)
{
	*state = fx_new("lmdb");
	return *state ? 0 : -1;
}

/* The same, with a private single-member etcd. */
static int fx_setup_etcd(void **state)
{
	struct fx *f = fx_new("etcd");

	if (!f)
		return -1;
	*state = f;
	cluster_start(f, 1, NULL);
	return 0;
}

/* An etcd test that starts its own cluster. */
static int fx_setup_etcd_none(void **state)
{
	*state = fx_new("etcd");
	return *state ? 0 : -1;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	struct dm_err err;
	int rc;

	if (f->kv)
		dm_kv_free(f->kv);
	if (f->proxy)
		proxy_stop(f->proxy);
	cluster_stop(f);
	rc = dm_remove_tree(f->dir, &err);
	free(f);
	return rc;
}

static void fx_open(struct fx *f, const struct dm_kv_lmdb_opts *opts)
{
	struct dm_err err;

	if (strcmp(f->backend, "lmdb") == 0) {
		f->kv = open_kv(f->dir, opts);
		return;
	}
	if (dm_kv_open_etcd(&f->kv, f->etcd_endpoints, &f->eopts, &err) < 0)
		fail_msg("open etcd at %s: %s", f->etcd_endpoints, err.msg);
}

static void fx_close(struct fx *f)
{
	dm_kv_free(f->kv);
	f->kv = NULL;
}

/* Puts a proxy between dm and member 0; fx_open then goes through it. */
static void fx_proxy(struct fx *f)
{
	f->proxy = proxy_start(f->c.m[0].client_port);
	snprintf(f->proxy_endpoint, sizeof(f->proxy_endpoint), "http://127.0.0.1:%d",
		 proxy_port(f->proxy));
	f->etcd_endpoints = f->proxy_endpoint;
}

/* Options for tests that write a lot: no fsync. */
static struct dm_kv_lmdb_opts fast_opts(void)
{
	struct dm_kv_lmdb_opts o;

	dm_kv_lmdb_opts_default(&o);
	o.sync = false;
	return o;
}

static int64_t put(struct dm_kv *kv, const char *key, const char *value, int64_t lease)
{
	struct dm_err err;
	int64_t rev = -1;

	if (dm_kv_put(kv, &rev, key, value, strlen(value), lease, &err) < 0)
		fail_msg("put '%s': %s", key, err.msg);
	return rev;
}

static int64_t revision(struct dm_kv *kv)
{
	struct dm_err err;
	int64_t rev = -1;

	assert_int_equal(dm_kv_revision(kv, &rev, &err), 0);
	return rev;
}

/* Asserts key has value; returns its mod_revision. */
static int64_t have_value(struct dm_kv *kv, const char *key, const char *value)
{
	struct dm_kv_kv item;
	struct dm_err err;
	int64_t mod;

	if (dm_kv_get(kv, &item, key, &err) < 0)
		fail_msg("get '%s': %s", key, err.msg);
	assert_int_equal(item.value_len, strlen(value));
	assert_string_equal(item.value, value);
	assert_string_equal(item.key, key);
	mod = item.mod_revision;
	dm_kv_kv_release(&item);
	return mod;
}

static void have_no(struct dm_kv *kv, const char *key)
{
	struct dm_kv_kv item;
	struct dm_err err;

	assert_int_equal(dm_kv_get(kv, &item, key, &err), DM_ENOTFOUND);
	assert_null(item.key);
}

/* ---- a watch collector ---- */

struct ev {
	int type;
	char *key;
	char *value;
	size_t value_len;
	int64_t rev, create, version, lease;
	int code;
	char msg[DM_ERR_MSG_MAX];
};

struct coll {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct ev *evs;
	size_t n, alloc;
	bool block; /* the first callback waits until released */
	bool entered;
	bool released;
	bool cancel_self; /* the first callback cancels its own watch */
	struct dm_kv_watch *w;
};

static void coll_init(struct coll *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cond, NULL);
}

static void coll_release(struct coll *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->evs[i].key);
		free(c->evs[i].value);
	}
	free(c->evs);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->mu);
}

static void coll_fn(const struct dm_kv_event *e, void *ctx)
{
	struct coll *c = ctx;
	struct ev *v;

	pthread_mutex_lock(&c->mu);
	if (c->n == c->alloc) {
		c->alloc = c->alloc ? c->alloc * 2 : 64;
		c->evs = realloc(c->evs, c->alloc * sizeof(*c->evs));
		assert_non_null(c->evs);
	}
	v = &c->evs[c->n];
	memset(v, 0, sizeof(*v));
	v->type = e->type;
	v->rev = e->revision;
	if (e->type == DM_KV_EVENT_FAILED) {
		assert_non_null(e->err);
		assert_null(e->key);
		v->code = e->err->code;
		snprintf(v->msg, sizeof(v->msg), "%s", e->err->msg);
	} else {
		v->key = strdup(e->key);
		assert_int_equal(strlen(e->key), e->key_len);
		if (e->type == DM_KV_EVENT_PUT) {
			v->value = malloc(e->value_len + 1);
			memcpy(v->value, e->value, e->value_len + 1);
			v->value_len = e->value_len;
			v->create = e->create_revision;
			v->version = e->version;
			v->lease = e->lease;
		} else {
			assert_null(e->value);
		}
	}
	c->n++;
	pthread_cond_broadcast(&c->cond);
	if (c->block && !c->entered) {
		c->entered = true;
		pthread_cond_broadcast(&c->cond);
		while (!c->released)
			pthread_cond_wait(&c->cond, &c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	if (c->cancel_self && c->n == 1)
		dm_kv_watch_cancel(c->w);
}

/* Waits up to ms for at least n events; returns how many there are. */
static size_t coll_wait(struct coll *c, size_t n, int ms)
{
	struct timespec ts;
	size_t got;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->mu);
	while (c->n < n && pthread_cond_timedwait(&c->cond, &c->mu, &ts) == 0)
		;
	got = c->n;
	pthread_mutex_unlock(&c->mu);
	return got;
}

static size_t coll_count(struct coll *c)
{
	size_t n;

	pthread_mutex_lock(&c->mu);
	n = c->n;
	pthread_mutex_unlock(&c->mu);
	return n;
}

static void is_event(const struct ev *v, int type, const char *key, const char *value, int64_t rev)
{
	assert_int_equal(v->type, type);
	assert_string_equal(v->key, key);
	assert_int_equal(v->rev, rev);
	if (value)
		assert_string_equal(v->value, value);
}

/* ---- a proxy that cuts or freezes watch streams ---- */

#define PROXY_CONNS 64

/*
 * Forwards TCP connections to one etcd member, byte for byte, except that
 * on connections that carry a watch (a "POST /v3/watch" went out on them)
 * it can: cut the stream (close both sides) right after the first line of
 * the answer's body that is a fragment of a larger answer (one-shot);
 * stop forwarding what etcd sends (freeze; on every connection with
 * freeze_all, as a stopped member would); cut every watch stream open
 * now. It reads the answer's chunked encoding to find body lines.
 */
struct proxy {
	int lfd;
	int port;
	int target_port;
	pthread_t accept_thread;
	atomic_bool quit;
	pthread_mutex_t mu;
	pthread_mutex_t fwd_mu; /* held across a look at freeze and the forward it allows */
	pthread_t threads[PROXY_CONNS];
	int nthreads;
	/* under mu */
	bool cut_at_fragment;
	bool freeze;
	bool freeze_all; /* freeze holds back every connection's answers */
	int cut_gen;
	int cuts;
};

struct pconn {
	struct proxy *p;
	int fd;
};

/* The body of a chunked HTTP answer, byte by byte. */
struct dechunk {
	int state; /* 0 headers, 1 chunk size, 2 chunk data, 3 its CRLF, 4 done */
	int hdr_match;
	bool size_ext;
	size_t size;
	int crlf_left;
	char win[15];
	bool line_has; /* the body line being read has "fragment":true */
};

/* Feeds n bytes; true with *at just past the newline of the first body
 * line that had "fragment":true. */
static bool dechunk_feed(struct dechunk *d, const char *b, size_t n, size_t *at)
{
	static const char pat[] = "\"fragment\":true";

	for (size_t i = 0; i < n; i++) {
		char ch = b[i];

		switch (d->state) {
		case 0:
			d->hdr_match =
				ch == "\r\n\r\n"[d->hdr_match] ? d->hdr_match + 1 : ch == '\r';
			if (d->hdr_match == 4)
				d->state = 1;
			break;
		case 1:
			if (ch == '\n') {
				d->state = d->size ? 2 : 4;
				d->size_ext = false;
			} else if (!d->size_ext && ch >= '0' && ch <= '9') {
				d->size = d->size * 16 + (size_t)(ch - '0');
			} else if (!d->size_ext && ch >= 'a' && ch <= 'f') {
				d->size = d->size * 16 + (size_t)(ch - 'a' + 10);
			} else if (!d->size_ext && ch >= 'A' && ch <= 'F') {
				d->size = d->size * 16 + (size_t)(ch - 'A' + 10);
			} else if (ch != '\r') {
				d->size_ext = true;
			}
			break;
		case 2:
			if (--d->size == 0) {
				d->state = 3;
				d->crlf_left = 2;
			}
			if (ch == '\n') {
				bool had = d->line_has;

				d->line_has = false;
				memset(d->win, 0, sizeof(d->win));
				if (had) {
					*at = i + 1;
					return true;
				}
			} else {
				memmove(d->win, d->win + 1, sizeof(d->win) - 1);
				d->win[sizeof(d->win) - 1] = ch;
				if (memcmp(d->win, pat, sizeof(d->win)) == 0)
					d->line_has = true;
			}
			break;
		case 3:
			if (--d->crlf_left == 0) {
				d->state = 1;
				d->size = 0;
			}
			break;
		default:
			break;
		}
	}
	return false;
}

static bool write_all(int fd, const char *b, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, b, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		b += w;
		n -= (size_t)w;
	}
	return true;
}

static void *pconn_main(void *arg)
{
	struct pconn *pc = arg;
	struct proxy *p = pc->p;
	int c = pc->fd, s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), gen;
	struct sockaddr_in a;
	struct dechunk dc;
	bool watch = false, watch_first = false, first = true;
	char *buf = malloc(65536);

	free(pc);
	memset(&dc, 0, sizeof(dc));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)p->target_port);
	if (!buf || s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto done;
	pthread_mutex_lock(&p->mu);
	gen = p->cut_gen;
	pthread_mutex_unlock(&p->mu);
	while (!atomic_load(&p->quit)) {
		struct pollfd fds[2];
		bool frozen, cut;
		ssize_t n;

		pthread_mutex_lock(&p->mu);
		frozen = (watch || p->freeze_all) && p->freeze;
		cut = watch && p->cut_gen != gen;
		pthread_mutex_unlock(&p->mu);
		if (cut)
			break;
		fds[0] = (struct pollfd){c, POLLIN, 0};
		fds[1] = (struct pollfd){s, frozen ? 0 : POLLIN, 0};
		if (poll(fds, 2, 50) < 0 && errno != EINTR)
			break;
		if (fds[0].revents) {
			n = read(c, buf, 65536);
			if (n <= 0)
				break;
			if (memmem(buf, (size_t)n, "POST /v3/watch", 14)) {
				watch = true;
				watch_first = watch_first || first;
			}
			first = false;
			if (!write_all(s, buf, (size_t)n))
				break;
		}
		/* forwards etcd's bytes under fwd_mu, frozen looked at again
		 * there: once proxy_freeze returns, nothing more goes through */
		pthread_mutex_lock(&p->fwd_mu);
		pthread_mutex_lock(&p->mu);
		frozen = (watch || p->freeze_all) && p->freeze;
		pthread_mutex_unlock(&p->mu);
		if (!frozen && fds[1].revents) {
			size_t fwd, at = 0;
			bool armed = false, found = false, ok;

			n = read(s, buf, 65536);
			ok = n > 0;
			fwd = ok ? (size_t)n : 0;
			if (ok && watch_first) {
				pthread_mutex_lock(&p->mu);
				armed = p->cut_at_fragment;
				pthread_mutex_unlock(&p->mu);
				found = dechunk_feed(&dc, buf, (size_t)n, &at);
				if (found && armed)
					fwd = at;
			}
			ok = ok && write_all(c, buf, fwd);
			pthread_mutex_unlock(&p->fwd_mu);
			if (!ok)
				break;
			if (found && armed) {
				pthread_mutex_lock(&p->mu);
				p->cut_at_fragment = false;
				p->cuts++;
				pthread_mutex_unlock(&p->mu);
				break;
			}
		} else {
			pthread_mutex_unlock(&p->fwd_mu);
		}
	}
done:
	free(buf);
	if (s >= 0)
		close(s);
	close(c);
	return NULL;
}

static void *proxy_accept_main(void *arg)
{
	struct proxy *p = arg;

	while (!atomic_load(&p->quit)) {
		struct pollfd pf = {p->lfd, POLLIN, 0};
		struct pconn *pc;
		int fd;

		if (poll(&pf, 1, 50) <= 0)
			continue;
		fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		pc = malloc(sizeof(*pc));
		assert_non_null(pc);
		pc->p = p;
		pc->fd = fd;
		pthread_mutex_lock(&p->mu);
		if (p->nthreads < PROXY_CONNS &&
		    pthread_create(&p->threads[p->nthreads], NULL, pconn_main, pc) == 0) {
			p->nthreads++;
		} else {
			close(fd);
			free(pc);
		}
		pthread_mutex_unlock(&p->mu);
	}
	return NULL;
}

static struct proxy *proxy_start(int target_port)
{
	struct proxy *p = calloc(1, sizeof(*p));
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	assert_non_null(p);
	p->target_port = target_port;
	atomic_init(&p->quit, false);
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->fwd_mu, NULL);
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->lfd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(p->lfd, 64), 0);
	assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&a, &len), 0);
	p->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&p->accept_thread, NULL, proxy_accept_main, p), 0);
	return p;
}

static int proxy_port(const struct proxy *p)
{
	return p->port;
}

static void proxy_stop(struct proxy *p)
{
	atomic_store(&p->quit, true);
	pthread_join(p->accept_thread, NULL);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	close(p->lfd);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->fwd_mu);
	free(p);
}

static void proxy_cut_at_fragment(struct proxy *p)
{
	pthread_mutex_lock(&p->mu);
	p->cut_at_fragment = true;
	pthread_mutex_unlock(&p->mu);
}

static void proxy_freeze(struct proxy *p, bool on)
{
	pthread_mutex_lock(&p->fwd_mu);
	pthread_mutex_lock(&p->mu);
	p->freeze = on;
	pthread_mutex_unlock(&p->mu);
	pthread_mutex_unlock(&p->fwd_mu);
}

/* Holds back what etcd sends on every connection, not only watches. */
static void proxy_freeze_all(struct proxy *p, bool on)
{
	pthread_mutex_lock(&p->fwd_mu);
	pthread_mutex_lock(&p->mu);
	p->freeze = on;
	p->freeze_all = on;
	pthread_mutex_unlock(&p->mu);
	pthread_mutex_unlock(&p->fwd_mu);
}

/* Cuts every watch stream open now. */
static void proxy_cut_watches(struct proxy *p)
{
	pthread_mutex_lock(&p->mu);
	p->cut_gen++;
	pthread_mutex_unlock(&p->mu);
}

static int proxy_cuts(struct proxy *p)
{
	int n;

	pthread_mutex_lock(&p->mu);
	n = p->cuts;
	pthread_mutex_unlock(&p->mu);
	return n;
}

/* Whether member i is the cluster's leader (/v3/maintenance/status). */
static bool member_is_leader(struct fx *f, int i)
{
	char url[80], *ans = NULL;
	size_t ans_len = 0;
	FILE *mem = open_memstream(&ans, &ans_len);
	CURL *h = curl_easy_init();
	json_t *root, *header;
	bool leader;

	assert_non_null(mem);
	assert_non_null(h);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v3/maintenance/status",
		 f->c.m[i].client_port);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{}");
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, mem);
	assert_int_equal(curl_easy_perform(h), CURLE_OK);
	curl_easy_cleanup(h);
	fclose(mem);
	root = json_loadb(ans, ans_len, 0, NULL);
	assert_non_null(root);
	header = json_object_get(root, "header");
	assert_non_null(json_object_get(root, "leader"));
	leader = json_equal(json_object_get(header, "member_id"), json_object_get(root, "leader"));
	json_decref(root);
	free(ans);
	return leader;
}

/* ---- tests ---- */

static void test_put_get_delete_revisions_step_by_one(void **state)
{
	struct dm_kv_kv item;
	struct dm_err err;
	struct fx *f = *state;
	int64_t rev = -1;

	fx_open(f, NULL);
	assert_string_equal(dm_kv_backend(f->kv), f->backend);
	assert_int_equal(revision(f->kv), 0);
	assert_int_equal(put(f->kv, "a", "1", 0), 1);

	assert_int_equal(dm_kv_get(f->kv, &item, "a", &err), 0);
	assert_string_equal(item.value, "1");
	assert_int_equal(item.create_revision, 1);
	assert_int_equal(item.mod_revision, 1);
	assert_int_equal(item.version, 1);
	assert_int_equal(item.lease, 0);
	dm_kv_kv_release(&item);

	assert_int_equal(put(f->kv, "a", "22", 0), 2);
	assert_int_equal(dm_kv_get(f->kv, &item, "a", &err), 0);
	assert_string_equal(item.value, "22");
	assert_int_equal(item.create_revision, 1);
	assert_int_equal(item.mod_revision, 2);
	assert_int_equal(item.version, 2);
	dm_kv_kv_release(&item);

	assert_int_equal(put(f->kv, "b", "x", 0), 3);
	assert_int_equal(dm_kv_delete(f->kv, &rev, "a", &err), 0);
	assert_int_equal(rev, 4);
	have_no(f->kv, "a");
	/* deleting what is not there is an error and changes nothing */
	assert_int_equal(dm_kv_delete(f->kv, &rev, "a", &err), DM_ENOTFOUND);
	assert_non_null(strstr(err.msg, "'a'"));
	assert_int_equal(revision(f->kv), 4);

	/* a key put again starts a new life */
	assert_int_equal(put(f->kv, "a", "3", 0), 5);
	assert_int_equal(dm_kv_get(f->kv, &item, "a", &err), 0);
	assert_int_equal(item.create_revision, 5);
	assert_int_equal(item.version, 1);
	dm_kv_kv_release(&item);

	/* values are bytes: NULs inside, and empty values */
	assert_int_equal(dm_kv_put(f->kv, &rev, "bin", "x\0y", 3, 0, &err), 0);
	assert_int_equal(rev, 6);
	assert_int_equal(dm_kv_get(f->kv, &item, "bin", &err), 0);
	assert_int_equal(item.value_len, 3);
	assert_memory_equal(item.value, "x\0y", 3);
	dm_kv_kv_release(&item);
	assert_int_equal(dm_kv_put(f->kv, &rev, "empty", NULL, 0, 0, &err), 0);
	have_value(f->kv, "empty", "");
	assert_int_equal(revision(f->kv), 7);
	fx_close(f);
}

static void have_keys(struct dm_kv *kv, const char *prefix, size_t limit, bool more,
		      const char *const *keys, size_t n)
{
	struct dm_kv_kvs l;
	struct dm_err err;

	assert_int_equal(dm_kv_range(kv, &l, prefix, limit, &err), 0);
	assert_int_equal(l.len, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l.items[i].key, keys[i]);
	assert_int_equal(l.more, more);
	assert_int_equal(l.revision, revision(kv));
	dm_kv_kvs_release(&l);
}

static void test_range_is_sorted_and_bounded_to_the_prefix(void **state)
{
	static const char *const inserted[] = {"ab", "a/b", "b", "a/", "a", "a0", "a/a", "a/b/c"};
	static const char *const under_slash[] = {"a/", "a/a", "a/b", "a/b/c"};
	static const char *const under_a[] = {"a", "a/", "a/a", "a/b", "a/b/c", "a0", "ab"};
	static const char *const all[] = {"a", "a/", "a/a", "a/b", "a/b/c", "a0", "ab", "b"};
	struct dm_kv_kvs l;
	struct dm_err err;
	struct fx *f = *state;

	fx_open(f, NULL);
	for (size_t i = 0; i < sizeof(inserted) / sizeof(inserted[0]); i++)
		put(f->kv, inserted[i], inserted[i], 0);
	have_keys(f->kv, "a/", 0, false, under_slash, 4);
	have_keys(f->kv, "a", 0, false, under_a, 7);
	have_keys(f->kv, "", 0, false, all, 8);
	have_keys(f->kv, "a/", 2, true, under_slash, 2);
	have_keys(f->kv, "a/", 4, false, under_slash, 4);
	have_keys(f->kv, "zzz", 0, false, NULL, 0);

	/* values and revisions come along */
	assert_int_equal(dm_kv_range(f->kv, &l, "a/b", 0, &err), 0);
	assert_int_equal(l.len, 2);
	assert_string_equal(l.items[1].value, "a/b/c");
	assert_int_equal(l.items[0].mod_revision, 2);
	assert_int_equal(l.items[1].mod_revision, 8);
	dm_kv_kvs_release(&l);
	fx_close(f);
}

static void test_long_keys_sort_and_range_like_short_ones(void **state)
{
	char head[449], base[461], k[4][470], shorter[450];
	const char *want[5];
	size_t deleted = 0;
	struct dm_err err;
	struct fx *f = *state;

	fx_open(f, NULL);
	/* keys past the 448 bytes LMDB can hold inline, sharing that much */
	memset(head, 'k', 448);
	head[448] = '\0';
	memset(base, 'k', 460);
	base[460] = '\0';
	snprintf(k[0], sizeof(k[0]), "%sc", base);
	snprintf(k[1], sizeof(k[1]), "%sa", base);
	snprintf(k[2], sizeof(k[2]), "%sb/x", base);
	snprintf(k[3], sizeof(k[3]), "%sb", base);
	memset(shorter, 'k', 447);
	shorter[447] = 'l';
	shorter[448] = '\0';
	for (int i = 0; i < 4; i++)
		put(f->kv, k[i], k[i], 0);
	put(f->kv, head, "head", 0);
	put(f->kv, shorter, "shorter", 0);

	want[0] = k[1];
	want[1] = k[3];
	want[2] = k[2];
	want[3] = k[0];
	have_keys(f->kv, base, 0, false, want, 4);
	have_keys(f->kv, base, 2, true, want, 2);
	have_keys(f->kv, base, 3, true, want, 3);
	have_value(f->kv, k[3], k[3]);

	/* the 448-byte key sorts before the longer ones it is a prefix of */
	{
		const char *w2[] = {head, k[1], k[3], k[2], k[0]};

		have_keys(f->kv, head, 0, false, w2, 5);
		have_keys(f->kv, head, 1, true, w2, 1);
	}
	assert_int_equal(dm_kv_delete_prefix(f->kv, NULL, k[3], &deleted, &err), 0);
	assert_int_equal(deleted, 2);
	have_no(f->kv, k[2]);
	have_value(f->kv, k[0], k[0]);
	have_value(f->kv, shorter, "shorter");
	fx_close(f);
}

static void test_cas_succeeds_only_on_the_expected_revision(void **state)
{
	struct dm_err err;
	int64_t r1 = 0, r2 = 0, rev;
	struct fx *f = *state;

	fx_open(f, NULL);
	/* create if absent */
	assert_int_equal(dm_kv_cas(f->kv, &r1, "c", 0, "v1", 2, 0, &err), 0);
	assert_int_equal(r1, 1);
	assert_int_equal(dm_kv_cas(f->kv, &rev, "c", 0, "v0", 2, 0, &err), DM_ECONFLICT);
	assert_non_null(strstr(err.msg, "already exists"));
	have_value(f->kv, "c", "v1");
	assert_int_equal(revision(f->kv), 1);

	assert_int_equal(dm_kv_cas(f->kv, &r2, "c", r1, "v2", 2, 0, &err), 0);
	assert_int_equal(r2, 2);
	/* r1 is stale now */
	assert_int_equal(dm_kv_cas(f->kv, &rev, "c", r1, "v3", 2, 0, &err), DM_ECONFLICT);
	assert_non_null(strstr(err.msg, "'c'"));
	assert_int_equal(have_value(f->kv, "c", "v2"), r2);
	/* a key that does not exist has no revision to match */
	assert_int_equal(dm_kv_cas(f->kv, &rev, "d", 1, "x", 1, 0, &err), DM_ECONFLICT);
	have_no(f->kv, "d");
	assert_int_equal(revision(f->kv), 2);
	fx_close(f);
}

static void test_txn_is_all_or_nothing(void **state)
{
	struct dm_kv_op ops[3] = {
		{DM_KV_OP_PUT, "x", "2", 1, 0},
		{DM_KV_OP_DELETE, "y", NULL, 0, 0},
		{DM_KV_OP_PUT, "z", "3", 1, 0},
	};
	struct dm_kv_op many[DM_KV_TXN_MAX_OPS + 1];
	struct dm_kv_cmp cmps[3];
	struct dm_kv_kvs l;
	struct dm_err err;
	int64_t rx, ry, rev = 0, before;
	size_t deleted = 9;
	struct fx *f = *state;

	fx_open(f, NULL);
	rx = put(f->kv, "x", "1", 0);
	ry = put(f->kv, "y", "1", 0);
	before = revision(f->kv);

	cmps[0] = (struct dm_kv_cmp){"x", rx};
	cmps[1] = (struct dm_kv_cmp){"y", ry + 100};
	assert_int_equal(dm_kv_txn(f->kv, &rev, cmps, 2, ops, 3, &err), DM_ECONFLICT);
	assert_non_null(strstr(err.msg, "'y'"));
	have_value(f->kv, "x", "1");
	have_value(f->kv, "y", "1");
	have_no(f->kv, "z");
	assert_int_equal(revision(f->kv), before);

	cmps[1] = (struct dm_kv_cmp){"y", ry};
	cmps[2] = (struct dm_kv_cmp){"w", 0};
	assert_int_equal(dm_kv_txn(f->kv, &rev, cmps, 3, ops, 3, &err), 0);
	assert_int_equal(rev, before + 1);
	assert_int_equal(have_value(f->kv, "x", "2"), rev);
	assert_int_equal(have_value(f->kv, "z", "3"), rev);
	have_no(f->kv, "y");

	/* one op per key */
	ops[1] = (struct dm_kv_op){DM_KV_OP_DELETE, "x", NULL, 0, 0};
	assert_int_equal(dm_kv_txn(f->kv, &rev, NULL, 0, ops, 2, &err), DM_EINVAL);
	ops[1] = (struct dm_kv_op){DM_KV_OP_DELETE_PREFIX, "", NULL, 0, 0};
	assert_int_equal(dm_kv_txn(f->kv, &rev, NULL, 0, ops, 2, &err), DM_EINVAL);
	for (size_t i = 0; i < DM_KV_TXN_MAX_OPS + 1; i++)
		many[i] = (struct dm_kv_op){DM_KV_OP_DELETE, "x", NULL, 0, 0};
	assert_int_equal(dm_kv_txn(f->kv, &rev, NULL, 0, many, DM_KV_TXN_MAX_OPS + 1, &err),
			 DM_ETOOBIG);
	assert_int_equal(revision(f->kv), before + 1);

	/* a txn that changes nothing keeps the revision */
	ops[0] = (struct dm_kv_op){DM_KV_OP_DELETE, "nothing", NULL, 0, 0};
	assert_int_equal(dm_kv_txn(f->kv, &rev, NULL, 0, ops, 1, &err), 0);
	assert_int_equal(rev, before + 1);

	/* a prefix delete is one revision however many keys it takes */
	put(f->kv, "p/1", "1", 0);
	put(f->kv, "p/2", "2", 0);
	put(f->kv, "q", "3", 0);
	before = revision(f->kv);
	assert_int_equal(dm_kv_delete_prefix(f->kv, &rev, "p/", &deleted, &err), 0);
	assert_int_equal(deleted, 2);
	assert_int_equal(rev, before + 1);
	assert_int_equal(dm_kv_range(f->kv, &l, "p", 0, &err), 0);
	assert_int_equal(l.len, 0);
	dm_kv_kvs_release(&l);
	have_value(f->kv, "q", "3");
	assert_int_equal(dm_kv_delete_prefix(f->kv, &rev, "p/", &deleted, &err), 0);
	assert_int_equal(deleted, 0);
	assert_int_equal(rev, before + 1);
	fx_close(f);
}

static void test_watch_from_zero_replays_history_in_order(void **state)
{
	struct dm_kv_op two[2] = {
		{DM_KV_OP_PUT, "w/c", "3", 1, 0},
		{DM_KV_OP_PUT, "w/d", "4", 1, 0},
	};
	struct dm_kv_watch *w0 = NULL, *w3 = NULL;
	struct coll c0, c3;
	struct dm_err err;
	struct fx *f = *state;

	fx_open(f, NULL);
	put(f->kv, "w/a", "1", 0);                                               /* 1 */
	put(f->kv, "other", "x", 0);                                             /* 2 */
	put(f->kv, "w/b", "2", 0);                                               /* 3 */
	assert_int_equal(dm_kv_delete(f->kv, NULL, "w/a", &err), 0);             /* 4 */
	assert_int_equal(dm_kv_txn(f->kv, NULL, NULL, 0, two, 2, &err), 0);      /* 5 */
	assert_int_equal(dm_kv_delete_prefix(f->kv, NULL, "w/", NULL, &err), 0); /* 6 */

	coll_init(&c0);
	coll_init(&c3);
	assert_int_equal(dm_kv_watch(f->kv, &w0, "w/", 0, coll_fn, &c0, &err), 0);
	assert_int_equal(dm_kv_watch(f->kv, &w3, "w/", 3, coll_fn, &c3, &err), 0);
	assert_int_equal(coll_wait(&c0, 8, 5000), 8);
	is_event(&c0.evs[0], DM_KV_EVENT_PUT, "w/a", "1", 1);
	assert_int_equal(c0.evs[0].version, 1);
	assert_int_equal(c0.evs[0].create, 1);
	is_event(&c0.evs[1], DM_KV_EVENT_PUT, "w/b", "2", 3);
	is_event(&c0.evs[2], DM_KV_EVENT_DELETE, "w/a", NULL, 4);
	is_event(&c0.evs[3], DM_KV_EVENT_PUT, "w/c", "3", 5);
	is_event(&c0.evs[4], DM_KV_EVENT_PUT, "w/d", "4", 5);
	is_event(&c0.evs[5], DM_KV_EVENT_DELETE, "w/b", NULL, 6);
	is_event(&c0.evs[6], DM_KV_EVENT_DELETE, "w/c", NULL, 6);
	is_event(&c0.evs[7], DM_KV_EVENT_DELETE, "w/d", NULL, 6);

	/* from revision 3: only what came after it */
	assert_int_equal(coll_wait(&c3, 6, 5000), 6);
	is_event(&c3.evs[0], DM_KV_EVENT_DELETE, "w/a", NULL, 4);
	is_event(&c3.evs[5], DM_KV_EVENT_DELETE, "w/d", NULL, 6);

	/* then live changes, after the history, and nothing twice */
	put(f->kv, "other", "y", 0);
	put(f->kv, "w/e", "5", 0);
	assert_int_equal(coll_wait(&c0, 9, 5000), 9);
	is_event(&c0.evs[8], DM_KV_EVENT_PUT, "w/e", "5", 8);
	sleep_ms(100);
	assert_int_equal(coll_count(&c0), 9);
	assert_int_equal(coll_count(&c3), 7);

	dm_kv_watch_cancel(w0);
	dm_kv_watch_cancel(w3);
	coll_release(&c0);
	coll_release(&c3);
	fx_close(f);
}

#define WRITERS         4
#define PUTS_PER_WRITER 250

struct writer {
	struct dm_kv *kv;
	int id;
	int failures;
};

static void *writer_main(void *arg)
{
	struct writer *wr = arg;
	char key[32], value[16];
	struct dm_err err;

	for (int i = 0; i < PUTS_PER_WRITER; i++) {
		snprintf(key, sizeof(key), "t/%d/%04d", wr->id, i);
		snprintf(value, sizeof(value), "%d", i);
		if (dm_kv_put(wr->kv, NULL, key, value, strlen(value), 0, &err) < 0)
			wr->failures++;
	}
	return NULL;
}

static void test_watch_sees_live_puts_from_4_threads_once_in_order(void **state)
{
	struct dm_kv_lmdb_opts o = fast_opts();
	static bool seen[WRITERS][PUTS_PER_WRITER];
	struct writer wr[WRITERS];
	pthread_t th[WRITERS];
	int last[WRITERS];
	struct dm_kv_watch *w = NULL;
	struct dm_err err;
	struct coll c;
	int64_t rev0;
	struct fx *f = *state;
	size_t total = WRITERS * PUTS_PER_WRITER;

	memset(seen, 0, sizeof(seen));
	fx_open(f, &o);
	put(f->kv, "t/before", "old", 0);
	put(f->kv, "u/unrelated", "x", 0);
	rev0 = revision(f->kv);
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "t/", rev0, coll_fn, &c, &err), 0);
	for (int i = 0; i < WRITERS; i++) {
		wr[i] = (struct writer){f->kv, i, 0};
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &wr[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(wr[i].failures, 0);
		last[i] = -1;
	}
	assert_int_equal(revision(f->kv), rev0 + (int64_t)total);
	assert_int_equal(coll_wait(&c, total, 30000), total);
	sleep_ms(200);
	assert_int_equal(coll_count(&c), total);
	for (size_t i = 0; i < total; i++) {
		int t, n;

		assert_int_equal(c.evs[i].type, DM_KV_EVENT_PUT);
		/* only these writes happened: revisions are consecutive */
		assert_int_equal(c.evs[i].rev, rev0 + 1 + (int64_t)i);
		assert_int_equal(sscanf(c.evs[i].key, "t/%d/%d", &t, &n), 2);
		assert_true(t >= 0 && t < WRITERS && n >= 0 && n < PUTS_PER_WRITER);
		assert_false(seen[t][n]);
		seen[t][n] = true;
		/* each writer's puts arrive in the order it made them */
		assert_int_equal(n, last[t] + 1);
		last[t] = n;
	}
	dm_kv_watch_cancel(w);
	coll_release(&c);
	fx_close(f);
}

static void test_watch_from_a_compacted_revision_fails(void **state)
{
	struct dm_kv_watch *w = NULL;
	struct dm_err err;
	struct coll c;
	char key[16];
	struct fx *f = *state;

	fx_open(f, NULL);
	for (int i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "k/%d", i);
		put(f->kv, key, key, 0);
	}
	assert_int_equal(dm_kv_compact(f->kv, 20, &err), 0);
	/* history now starts after revision 20 */
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "k/", 0, coll_fn, &c, &err), DM_KV_ECOMPACTED);
	assert_null(w);
	assert_non_null(strstr(err.msg, "revision 0 compacted"));
	assert_int_equal(dm_kv_watch(f->kv, &w, "k/", 19, coll_fn, &c, &err), DM_KV_ECOMPACTED);
	assert_non_null(strstr(err.msg, "revision 19 compacted"));
	assert_int_equal(dm_kv_watch(f->kv, &w, "k/", 20, coll_fn, &c, &err), 0);
	assert_int_equal(coll_wait(&c, 10, 5000), 10);
	is_event(&c.evs[0], DM_KV_EVENT_PUT, "k/20", "k/20", 21);
	is_event(&c.evs[9], DM_KV_EVENT_PUT, "k/29", "k/29", 30);
	dm_kv_watch_cancel(w);
	coll_release(&c);

	/* compacting again, to the past or the future */
	assert_int_equal(dm_kv_compact(f->kv, 25, &err), 0);
	assert_int_equal(dm_kv_compact(f->kv, 3, &err), 0);
	assert_int_equal(dm_kv_compact(f->kv, 1000, &err), DM_EINVAL);
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "", 24, coll_fn, &c, &err), DM_KV_ECOMPACTED);
	assert_int_equal(dm_kv_watch(f->kv, &w, "", 25, coll_fn, &c, &err), 0);
	assert_int_equal(coll_wait(&c, 5, 5000), 5);
	is_event(&c.evs[0], DM_KV_EVENT_PUT, "k/25", "k/25", 26);
	sleep_ms(100);
	assert_int_equal(coll_count(&c), 5);
	dm_kv_watch_cancel(w);
	coll_release(&c);

	/* a watch from the future waits for it */
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "k/", 31, coll_fn, &c, &err), 0);
	put(f->kv, "k/31", "no", 0);
	put(f->kv, "k/32", "yes", 0);
	assert_int_equal(coll_wait(&c, 1, 5000), 1);
	is_event(&c.evs[0], DM_KV_EVENT_PUT, "k/32", "yes", 32);
	dm_kv_watch_cancel(w);
	coll_release(&c);
	fx_close(f);
}

static void test_lmdb_log_trims_itself_and_a_lagging_watch_fails(void **state)
{
	struct dm_kv_lmdb_opts o = fast_opts();
	struct dm_kv_watch *w = NULL;
	struct coll c, late;
	struct dm_err err;
	char key[16];
	struct fx *f = *state;
	int64_t cur;

	o.log_keep = 10;
	fx_open(f, &o);
	for (int i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "k/%d", i);
		put(f->kv, key, key, 0);
	}
	/* the log kept revisions 21..30 */
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "k/", 0, coll_fn, &c, &err), DM_KV_ECOMPACTED);
	assert_null(w);
	assert_non_null(strstr(err.msg, "revision 0 compacted"));
	assert_int_equal(dm_kv_watch(f->kv, &w, "k/", 19, coll_fn, &c, &err), DM_KV_ECOMPACTED);
	assert_int_equal(dm_kv_watch(f->kv, &w, "k/", 20, coll_fn, &c, &err), 0);
	assert_int_equal(coll_wait(&c, 10, 5000), 10);
	is_event(&c.evs[0], DM_KV_EVENT_PUT, "k/20", "k/20", 21);
	is_event(&c.evs[9], DM_KV_EVENT_PUT, "k/29", "k/29", 30);
	dm_kv_watch_cancel(w);
	coll_release(&c);

	/* history compacted under a watch that lags: one FAILED, then nothing */
	coll_init(&late);
	late.block = true;
	cur = revision(f->kv);
	assert_int_equal(dm_kv_watch(f->kv, &w, "k/", cur, coll_fn, &late, &err), 0);
	put(f->kv, "k/a", "1", 0);
	pthread_mutex_lock(&late.mu);
	while (!late.entered)
		pthread_cond_wait(&late.cond, &late.mu);
	pthread_mutex_unlock(&late.mu);
	put(f->kv, "k/b", "2", 0);
	put(f->kv, "k/c", "3", 0);
	assert_int_equal(dm_kv_compact(f->kv, revision(f->kv), &err), 0);
	pthread_mutex_lock(&late.mu);
	late.released = true;
	pthread_cond_broadcast(&late.cond);
	pthread_mutex_unlock(&late.mu);
	assert_int_equal(coll_wait(&late, 2, 5000), 2);
	is_event(&late.evs[0], DM_KV_EVENT_PUT, "k/a", "1", cur + 1);
	assert_int_equal(late.evs[1].type, DM_KV_EVENT_FAILED);
	assert_int_equal(late.evs[1].code, DM_KV_ECOMPACTED);
	assert_non_null(strstr(late.evs[1].msg, "compacted"));
	put(f->kv, "k/d", "4", 0);
	sleep_ms(100);
	assert_int_equal(coll_count(&late), 2);
	dm_kv_watch_cancel(w);
	coll_release(&late);
	fx_close(f);
}

static void test_watch_cancel_stops_delivery(void **state)
{
	struct dm_kv_watch *w = NULL, *left = NULL;
	struct coll c, self, open_at_close;
	struct dm_err err;
	struct fx *f = *state;

	fx_open(f, NULL);
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "c/", 0, coll_fn, &c, &err), 0);
	put(f->kv, "c/1", "1", 0);
	assert_int_equal(coll_wait(&c, 1, 5000), 1);
	dm_kv_watch_cancel(w);
	put(f->kv, "c/2", "2", 0);
	sleep_ms(100);
	assert_int_equal(coll_count(&c), 1);

	/* a callback that cancels its own watch gets nothing more */
	coll_init(&self);
	self.cancel_self = true;
	assert_int_equal(dm_kv_watch(f->kv, &self.w, "c/", revision(f->kv), coll_fn, &self, &err),
			 0);
	put(f->kv, "c/3", "3", 0);
	assert_int_equal(coll_wait(&self, 1, 5000), 1);
	put(f->kv, "c/4", "4", 0);
	sleep_ms(100);
	assert_int_equal(coll_count(&self), 1);

	/* a watch left open is ended by dm_kv_free */
	coll_init(&open_at_close);
	assert_int_equal(dm_kv_watch(f->kv, &left, "", 0, coll_fn, &open_at_close, &err), 0);
	assert_int_equal(coll_wait(&open_at_close, 4, 5000), 4);
	fx_close(f);
	coll_release(&c);
	coll_release(&self);
	coll_release(&open_at_close);
}

static void test_lease_expiry_deletes_keys_and_watch_sees_it(void **state)
{
	struct dm_kv_watch *w = NULL;
	struct dm_kv_kv item;
	struct dm_err err;
	struct coll c;
	int64_t lease = 0, start, cur, rev;
	struct fx *f = *state;
	bool gone = false;

	fx_open(f, NULL);
	assert_int_equal(dm_kv_lease_grant(f->kv, &lease, 1, &err), 0);
	assert_true(lease > 0);
	put(f->kv, "l/k", "v", lease);
	put(f->kv, "l/keep", "v", 0);
	assert_int_equal(dm_kv_get(f->kv, &item, "l/k", &err), 0);
	assert_int_equal(item.lease, lease);
	dm_kv_kv_release(&item);
	cur = revision(f->kv);
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "l/", cur, coll_fn, &c, &err), 0);

	start = dm_now_monotonic_ns();
	while (dm_now_monotonic_ns() - start < 5000000000LL) {
		int rc = dm_kv_get(f->kv, &item, "l/k", &err);

		dm_kv_kv_release(&item);
		if (rc == DM_ENOTFOUND) {
			gone = true;
			break;
		}
		assert_int_equal(rc, 0);
		sleep_ms(50);
	}
	assert_true(gone);
	/* not before its time: the TTL is 1 s from the grant */
	assert_true(dm_now_monotonic_ns() - start > 500000000LL);
	have_value(f->kv, "l/keep", "v");
	assert_int_equal(revision(f->kv), cur + 1);
	assert_int_equal(coll_wait(&c, 1, 5000), 1);
	is_event(&c.evs[0], DM_KV_EVENT_DELETE, "l/k", NULL, cur + 1);

	assert_int_equal(dm_kv_lease_keepalive(f->kv, NULL, lease, &err), DM_ENOTFOUND);
	assert_int_equal(dm_kv_put(f->kv, &rev, "l/x", "v", 1, lease, &err), DM_ENOTFOUND);
	have_no(f->kv, "l/x");
	dm_kv_watch_cancel(w);
	coll_release(&c);
	fx_close(f);
}

static void test_lease_keepalive_extends_and_revoke_deletes(void **state)
{
	struct dm_err err;
	int64_t lease = 0, ttl = 0, other = 0, before, start;
	struct fx *f = *state;
	bool gone = false;

	fx_open(f, NULL);
	assert_int_equal(dm_kv_lease_grant(f->kv, &lease, 1, &err), 0);
	put(f->kv, "ka/k", "v", lease);
	for (int i = 0; i < 10; i++) {
		sleep_ms(250);
		assert_int_equal(dm_kv_lease_keepalive(f->kv, &ttl, lease, &err), 0);
		assert_int_equal(ttl, 1);
	}
	/* 2.5 s after the grant, more than twice the TTL */
	have_value(f->kv, "ka/k", "v");
	start = dm_now_monotonic_ns();
	while (!gone && dm_now_monotonic_ns() - start < 5000000000LL) {
		struct dm_kv_kv item;

		gone = dm_kv_get(f->kv, &item, "ka/k", &err) == DM_ENOTFOUND;
		dm_kv_kv_release(&item);
		sleep_ms(50);
	}
	assert_true(gone);

	/* revoke: the lease's keys go at one revision; a key put again
	 * without the lease stays */
	assert_int_equal(dm_kv_lease_grant(f->kv, &other, 60, &err), 0);
	assert_int_not_equal(other, lease);
	put(f->kv, "r/1", "1", other);
	put(f->kv, "r/2", "2", other);
	put(f->kv, "r/3", "3", other);
	put(f->kv, "r/3", "3b", 0);
	before = revision(f->kv);
	assert_int_equal(dm_kv_lease_revoke(f->kv, other, &err), 0);
	assert_int_equal(revision(f->kv), before + 1);
	have_no(f->kv, "r/1");
	have_no(f->kv, "r/2");
	have_value(f->kv, "r/3", "3b");
	assert_int_equal(dm_kv_lease_revoke(f->kv, other, &err), DM_ENOTFOUND);
	assert_int_equal(dm_kv_lease_keepalive(f->kv, NULL, other, &err), DM_ENOTFOUND);
	assert_int_equal(dm_kv_put(f->kv, NULL, "r/4", "x", 1, 9999, &err), DM_ENOTFOUND);
	assert_int_equal(dm_kv_lease_grant(f->kv, &other, 0, &err), DM_EINVAL);
	fx_close(f);
}

static void test_reopen_keeps_data_revision_history_and_leases(void **state)
{
	struct dm_kv *second = NULL;
	struct dm_kv_watch *w = NULL;
	struct dm_kv_kv item;
	struct dm_err err;
	struct coll c;
	int64_t lease = 0, rev;
	struct fx *f = *state;

	fx_open(f, NULL);
	put(f->kv, "a", "1", 0);
	put(f->kv, "b", "2", 0);
	assert_int_equal(dm_kv_delete(f->kv, NULL, "b", &err), 0);
	assert_int_equal(dm_kv_lease_grant(f->kv, &lease, 60, &err), 0);
	put(f->kv, "l", "leased", lease);
	assert_int_equal(revision(f->kv), 4);

	/* one process at a time */
	assert_int_equal(dm_kv_open_lmdb(&second, f->dir, &err), DM_EBUSY);
	assert_null(second);

	dm_kv_free(f->kv);
	f->kv = open_kv(f->dir, NULL);
	assert_int_equal(revision(f->kv), 4);
	have_value(f->kv, "a", "1");
	have_no(f->kv, "b");
	assert_int_equal(dm_kv_get(f->kv, &item, "l", &err), 0);
	assert_int_equal(item.lease, lease);
	dm_kv_kv_release(&item);
	assert_int_equal(dm_kv_lease_keepalive(f->kv, NULL, lease, &err), 0);

	/* the change log survived too */
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "", 0, coll_fn, &c, &err), 0);
	assert_int_equal(coll_wait(&c, 4, 5000), 4);
	is_event(&c.evs[2], DM_KV_EVENT_DELETE, "b", NULL, 3);
	dm_kv_watch_cancel(w);
	coll_release(&c);

	assert_int_equal(dm_kv_lease_revoke(f->kv, lease, &err), 0);
	have_no(f->kv, "l");
	assert_int_equal(dm_kv_put(f->kv, &rev, "c", "3", 1, 0, &err), 0);
	assert_int_equal(rev, 6);
	/* a new lease never reuses an old id */
	{
		int64_t again = 0;

		assert_int_equal(dm_kv_lease_grant(f->kv, &again, 60, &err), 0);
		assert_true(again > lease);
	}
	fx_close(f);
}

static void test_oversized_keys_and_values_are_rejected(void **state)
{
	char *key = malloc(DM_KV_KEY_MAX + 2);
	char *value = malloc(DM_KV_VALUE_MAX + 1);
	struct dm_kv_kvs l;
	struct dm_kv_kv item;
	struct dm_err err;
	int64_t rev;
	struct fx *f = *state;

	assert_non_null(key);
	assert_non_null(value);
	fx_open(f, NULL);
	memset(key, 'x', DM_KV_KEY_MAX + 1);
	key[DM_KV_KEY_MAX + 1] = '\0';
	memset(value, 'v', DM_KV_VALUE_MAX + 1);

	assert_int_equal(dm_kv_put(f->kv, &rev, key, "v", 1, 0, &err), DM_ETOOBIG);
	assert_int_equal(dm_kv_get(f->kv, &item, key, &err), DM_ETOOBIG);
	assert_int_equal(dm_kv_put(f->kv, &rev, "k", value, DM_KV_VALUE_MAX + 1, 0, &err),
			 DM_ETOOBIG);
	assert_non_null(strstr(err.msg, "'k'"));
	assert_int_equal(dm_kv_put(f->kv, &rev, "", "v", 1, 0, &err), DM_EINVAL);
	assert_int_equal(dm_kv_put(f->kv, &rev, NULL, "v", 1, 0, &err), DM_EINVAL);
	assert_int_equal(revision(f->kv), 0);

	/* the limits themselves are fine */
	key[DM_KV_KEY_MAX] = '\0';
	assert_int_equal(dm_kv_put(f->kv, &rev, key, value, DM_KV_VALUE_MAX, 0, &err), 0);
	assert_int_equal(dm_kv_get(f->kv, &item, key, &err), 0);
	assert_int_equal(item.key_len, DM_KV_KEY_MAX);
	assert_int_equal(item.value_len, DM_KV_VALUE_MAX);
	assert_memory_equal(item.value, value, DM_KV_VALUE_MAX);
	dm_kv_kv_release(&item);
	key[1000] = '\0';
	assert_int_equal(dm_kv_range(f->kv, &l, key, 0, &err), 0);
	assert_int_equal(l.len, 1);
	assert_int_equal(l.items[0].key_len, DM_KV_KEY_MAX);
	dm_kv_kvs_release(&l);
	fx_close(f);
	free(key);
	free(value);
}

static void test_map_grows_past_its_initial_size(void **state)
{
	struct dm_kv_lmdb_opts o = fast_opts();
	size_t len = DM_KV_VALUE_MAX;
	unsigned char *value = malloc(len);
	struct dm_kv_kv item;
	struct dm_err err;
	char key[16];
	struct fx *f = *state;

	assert_non_null(value);
	o.map_size = (size_t)1 << 20;
	fx_open(f, &o);
	for (int i = 0; i < 8; i++) {
		memset(value, 'a' + i, len);
		snprintf(key, sizeof(key), "big/%d", i);
		if (dm_kv_put(f->kv, NULL, key, value, len, 0, &err) < 0)
			fail_msg("put %s: %s", key, err.msg);
	}
	dm_kv_free(f->kv);
	f->kv = open_kv(f->dir, &o);
	for (int i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "big/%d", i);
		assert_int_equal(dm_kv_get(f->kv, &item, key, &err), 0);
		assert_int_equal(item.value_len, len);
		assert_int_equal((unsigned char)item.value[0], 'a' + i);
		assert_int_equal((unsigned char)item.value[len - 1], 'a' + i);
		dm_kv_kv_release(&item);
	}
	put(f->kv, "after", "reopen", 0);
	fx_close(f);
	free(value);
}

static void test_prefix_end_matches_etcd(void **state)
{
	char out[8];

	(void)state;
	assert_int_equal(dm_kv_prefix_end(out, "a/", 2), 2);
	assert_memory_equal(out, "a0", 2);
	assert_int_equal(dm_kv_prefix_end(out, "a\xff", 2), 1);
	assert_memory_equal(out, "b", 1);
	assert_int_equal(dm_kv_prefix_end(out, "", 0), 1);
	assert_int_equal(out[0], '\0');
	assert_int_equal(dm_kv_prefix_end(out, "\xff\xff", 2), 1);
	assert_int_equal(out[0], '\0');
	assert_true(dm_kv_key_cmp("a", 1, "a/", 2) < 0);
	assert_true(dm_kv_key_cmp("a/", 2, "a0", 2) < 0);
	assert_true(dm_kv_key_cmp("b", 1, "a\xff", 2) > 0);
}

/* ---- etcd only ---- */

static void test_etcd_down_or_silent_fails_within_the_deadline_and_watches_resume(void **state)
{
	struct dm_kv *other = NULL;
	struct dm_kv_watch *w = NULL, *w2 = NULL;
	struct proxy *proxy;
	struct dm_kv_kv item;
	struct dm_err err;
	struct coll c, c2;
	int64_t start, rev;
	struct fx *f = *state;
	char url[64], silent[64];

	f->eopts.request_timeout_ms = 1000;
	f->eopts.connect_timeout_ms = 500;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", f->c.m[0].client_port);
	fx_open(f, NULL);
	put(f->kv, "d/1", "1", 0);
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "d/", 0, coll_fn, &c, &err), 0);
	assert_int_equal(coll_wait(&c, 1, 5000), 1);

	/* killed: nothing listens, and every call says so at once */
	member_kill(f, 0);
	start = dm_now_monotonic_ns();
	assert_int_equal(dm_kv_put(f->kv, &rev, "d/2", "2", 1, 0, &err), DM_EUNAVAILABLE);
	assert_true(ms_since(start) < 3000);
	assert_non_null(strstr(err.msg, url));
	assert_non_null(strstr(err.msg, "check that etcd is running"));
	assert_int_equal(dm_kv_open_etcd(&other, f->c.endpoints, &f->eopts, &err), DM_EUNAVAILABLE);
	assert_null(other);
	assert_non_null(strstr(err.msg, url));
	assert_non_null(strstr(err.msg, "check that etcd is running"));

	/* back on its data: the same store and its watch carry on, the watch
	 * with neither a loss nor a repeat */
	member_restart(f, 0);
	rev = put(f->kv, "d/3", "3", 0);
	assert_int_equal(coll_wait(&c, 2, 10000), 2);
	is_event(&c.evs[0], DM_KV_EVENT_PUT, "d/1", "1", 1);
	is_event(&c.evs[1], DM_KV_EVENT_PUT, "d/3", "3", rev);

	/* silent: it accepts connections and answers nothing (a proxy in
	 * front of it that holds back every answer, as a stopped or wedged
	 * member would), and a call gives up at its deadline */
	proxy = proxy_start(f->c.m[0].client_port);
	snprintf(silent, sizeof(silent), "http://127.0.0.1:%d", proxy_port(proxy));
	assert_int_equal(dm_kv_open_etcd(&other, silent, &f->eopts, &err), 0);
	coll_init(&c2);
	assert_int_equal(dm_kv_watch(other, &w2, "d/", rev - 1, coll_fn, &c2, &err), 0);
	assert_int_equal(coll_wait(&c2, 1, 5000), 1);
	proxy_freeze_all(proxy, true);
	start = dm_now_monotonic_ns();
	assert_int_equal(dm_kv_get(other, &item, "d/1", &err), DM_ETIMEOUT);
	assert_true(ms_since(start) >= 900);
	assert_true(ms_since(start) < 10000);
	assert_non_null(strstr(err.msg, "no answer from etcd within 1000 ms"));
	assert_non_null(strstr(err.msg, silent));
	/* the request went through, its answer did not: it may have been applied */
	start = dm_now_monotonic_ns();
	assert_int_equal(dm_kv_put(other, &rev, "d/4", "4", 1, 0, &err), DM_ETIMEOUT);
	assert_non_null(strstr(err.msg, "may or may not have been applied"));
	assert_true(ms_since(start) < 10000);
	/* a watch waiting on it is canceled without waiting for it */
	start = dm_now_monotonic_ns();
	dm_kv_watch_cancel(w2);
	assert_true(ms_since(start) < 5000);
	dm_kv_watch_cancel(w);
	proxy_stop(proxy);
	dm_kv_free(other);
	/* the direct watch saw d/4 (etcd applied it); the silent one nothing
	 * past d/3 */
	assert_int_equal(coll_count(&c2), 1);
	coll_release(&c2);
	assert_true(coll_count(&c) >= 2);
	coll_release(&c);
	fx_close(f);
}

#define FRAG_KEYS  2176
#define FRAG_BATCH 128

/* Key i of the fragment test: ~1000 bytes, so that etcd's answer for the
 * revision that deletes them all (2 MiB) comes in two fragments. */
static void frag_key(char *out, size_t size, int i)
{
	int n = snprintf(out, size, "f/%04d/", i);

	memset(out + n, 'x', size - 1 - (size_t)n);
	out[size - 1] = '\0';
}

static void test_etcd_watch_cut_mid_revision_resumes_without_loss_or_repeats(void **state)
{
	static char keys[FRAG_BATCH][1000];
	struct dm_kv_op ops[FRAG_BATCH];
	struct dm_kv_watch *w = NULL;
	struct dm_err err;
	struct coll c;
	char key[1000];
	size_t deleted = 0;
	int64_t rev0, rev;
	struct fx *f = *state;

	fx_proxy(f);
	fx_open(f, NULL);
	for (int b = 0; b < FRAG_KEYS / FRAG_BATCH; b++) {
		for (int i = 0; i < FRAG_BATCH; i++) {
			frag_key(keys[i], sizeof(keys[i]), b * FRAG_BATCH + i);
			ops[i] = (struct dm_kv_op){DM_KV_OP_PUT, keys[i], "", 0, 0};
		}
		if (dm_kv_txn(f->kv, NULL, NULL, 0, ops, FRAG_BATCH, &err) < 0)
			fail_msg("txn: %s", err.msg);
	}
	rev0 = revision(f->kv);
	/* a range of them all comes in pages, as one snapshot */
	{
		struct dm_kv_kvs l;

		assert_int_equal(dm_kv_range(f->kv, &l, "f/", 0, &err), 0);
		assert_int_equal(l.len, FRAG_KEYS);
		assert_false(l.more);
		assert_int_equal(l.revision, rev0);
		for (int i = 0; i < FRAG_KEYS; i++) {
			frag_key(key, sizeof(key), i);
			assert_string_equal(l.items[i].key, key);
		}
		dm_kv_kvs_release(&l);
		assert_int_equal(dm_kv_range(f->kv, &l, "f/", 300, &err), 0);
		assert_int_equal(l.len, 300);
		assert_true(l.more);
		frag_key(key, sizeof(key), 299);
		assert_string_equal(l.items[299].key, key);
		dm_kv_kvs_release(&l);
	}
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "f/", rev0, coll_fn, &c, &err), 0);

	/* one revision, two fragments; the stream is cut after the first */
	proxy_cut_at_fragment(f->proxy);
	assert_int_equal(dm_kv_delete_prefix(f->kv, &rev, "f/", &deleted, &err), 0);
	assert_int_equal(deleted, FRAG_KEYS);
	assert_int_equal(rev, rev0 + 1);
	assert_int_equal(coll_wait(&c, FRAG_KEYS, 30000), FRAG_KEYS);
	assert_int_equal(proxy_cuts(f->proxy), 1);
	for (int i = 0; i < FRAG_KEYS; i++) {
		frag_key(key, sizeof(key), i);
		is_event(&c.evs[i], DM_KV_EVENT_DELETE, key, NULL, rev0 + 1);
	}
	put(f->kv, "f/after", "1", 0);
	assert_int_equal(coll_wait(&c, FRAG_KEYS + 1, 10000), FRAG_KEYS + 1);
	is_event(&c.evs[FRAG_KEYS], DM_KV_EVENT_PUT, "f/after", "1", rev0 + 2);
	sleep_ms(200);
	assert_int_equal(coll_count(&c), FRAG_KEYS + 1);
	dm_kv_watch_cancel(w);
	coll_release(&c);
	fx_close(f);
}

static void
test_etcd_compaction_while_a_stream_is_down_fails_then_range_and_watch_recover(void **state)
{
	struct dm_kv_watch *w = NULL, *w2 = NULL;
	struct dm_kv_kvs l;
	struct dm_err err;
	struct coll c, c2;
	int64_t cur, now;
	struct fx *f = *state;

	fx_proxy(f);
	fx_open(f, NULL);
	put(f->kv, "other", "x", 0);
	cur = revision(f->kv);
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "k/", cur, coll_fn, &c, &err), 0);
	put(f->kv, "k/a", "1", 0);
	assert_int_equal(coll_wait(&c, 1, 5000), 1);

	/* the stream hears nothing more while history moves on and is
	 * compacted; then it breaks */
	proxy_freeze(f->proxy, true);
	put(f->kv, "k/b", "2", 0);
	put(f->kv, "k/c", "3", 0);
	now = revision(f->kv);
	assert_int_equal(dm_kv_compact(f->kv, now, &err), 0);
	assert_int_equal(dm_kv_watch(f->kv, &w2, "k/", cur, coll_fn, &c, &err), DM_KV_ECOMPACTED);
	assert_null(w2);
	proxy_cut_watches(f->proxy);
	proxy_freeze(f->proxy, false);

	/* the watch cannot resume without a gap: one FAILED, then nothing */
	assert_int_equal(coll_wait(&c, 2, 10000), 2);
	is_event(&c.evs[0], DM_KV_EVENT_PUT, "k/a", "1", cur + 1);
	assert_int_equal(c.evs[1].type, DM_KV_EVENT_FAILED);
	assert_int_equal(c.evs[1].code, DM_KV_ECOMPACTED);
	assert_non_null(strstr(c.evs[1].msg, "compacted"));
	put(f->kv, "k/d", "4", 0);
	sleep_ms(200);
	assert_int_equal(coll_count(&c), 2);
	dm_kv_watch_cancel(w);
	coll_release(&c);

	/* the recovery: read the prefix, watch from the revision read */
	assert_int_equal(dm_kv_range(f->kv, &l, "k/", 0, &err), 0);
	assert_int_equal(l.len, 4);
	assert_string_equal(l.items[3].key, "k/d");
	coll_init(&c2);
	assert_int_equal(dm_kv_watch(f->kv, &w2, "k/", l.revision, coll_fn, &c2, &err), 0);
	put(f->kv, "k/e", "5", 0);
	assert_int_equal(coll_wait(&c2, 1, 5000), 1);
	is_event(&c2.evs[0], DM_KV_EVENT_PUT, "k/e", "5", l.revision + 1);
	dm_kv_kvs_release(&l);
	dm_kv_watch_cancel(w2);
	coll_release(&c2);
	fx_close(f);
}

static void test_etcd_cluster_keeps_answering_with_a_member_killed(void **state)
{
	struct dm_kv *second = NULL;
	struct dm_kv_watch *w = NULL;
	struct dm_kv_kvs l;
	struct dm_err err;
	struct coll c;
	char endpoints[256], key[16];
	int order[MEMBERS_MAX], n = 0, leader = -1;
	int64_t rev0;
	struct fx *f = *state;

	cluster_start(f, 3, NULL);
	for (int i = 0; i < 3; i++)
		if (member_is_leader(f, i))
			leader = i;
	assert_true(leader >= 0);
	/* a follower first, so that killing it needs no election */
	for (int i = 0; i < 3; i++)
		if (i != leader)
			order[n++] = i;
	order[n++] = leader;
	snprintf(endpoints, sizeof(endpoints),
		 "http://127.0.0.1:%d,http://127.0.0.1:%d,"
		 "http://127.0.0.1:%d",
		 f->c.m[order[0]].client_port, f->c.m[order[2]].client_port,
		 f->c.m[order[1]].client_port);
	f->etcd_endpoints = endpoints;
	fx_open(f, NULL);
	rev0 = revision(f->kv);
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "c/", rev0, coll_fn, &c, &err), 0);
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "c/%02d", i);
		put(f->kv, key, key, 0);
	}

	/* the member every request and the watch went to dies */
	member_kill(f, order[0]);
	for (int i = 50; i < 100; i++) {
		snprintf(key, sizeof(key), "c/%02d", i);
		put(f->kv, key, key, 0);
	}
	have_value(f->kv, "c/99", "c/99");
	assert_int_equal(dm_kv_range(f->kv, &l, "c/", 0, &err), 0);
	assert_int_equal(l.len, 100);
	assert_int_equal(l.revision, rev0 + 100);
	dm_kv_kvs_release(&l);
	assert_int_equal(coll_wait(&c, 100, 15000), 100);
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "c/%02d", i);
		is_event(&c.evs[i], DM_KV_EVENT_PUT, key, key, rev0 + 1 + i);
	}
	sleep_ms(200);
	assert_int_equal(coll_count(&c), 100);

	/* a store opened with the dead member first in its list */
	assert_int_equal(dm_kv_open_etcd(&second, endpoints, &f->eopts, &err), 0);
	have_value(second, "c/00", "c/00");
	dm_kv_free(second);
	dm_kv_watch_cancel(w);
	coll_release(&c);
	fx_close(f);
}

static void test_etcd_rejects_bad_endpoints_and_big_txns_and_pages_big_ranges(void **state)
{
	static const char *const bad[] = {
		"",
		"127.0.0.1:2379",
		"https://",
		"http://",
		"http://a b:1",
		"http://127.0.0.1:2379/v3",
		"http://127.0.0.1:1,ftp://x",
	};
	struct dm_kv *kv = NULL;
	struct dm_kv_op ops[3];
	struct dm_err err;
	char *big = malloc(DM_KV_VALUE_MAX);
	struct fx *f = *state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(dm_kv_open_etcd(&kv, bad[i], NULL, &err), DM_EINVAL);
		assert_null(kv);
	}
	assert_int_equal(dm_kv_open_etcd(&kv, NULL, NULL, &err), DM_EINVAL);

	/* several values of the largest size are more than etcd takes in one
	 * request (1.5 MiB by default) */
	assert_non_null(big);
	memset(big, 'b', DM_KV_VALUE_MAX);
	fx_open(f, NULL);
	ops[0] = (struct dm_kv_op){DM_KV_OP_PUT, "big/1", big, DM_KV_VALUE_MAX, 0};
	ops[1] = (struct dm_kv_op){DM_KV_OP_PUT, "big/2", big, DM_KV_VALUE_MAX, 0};
	ops[2] = (struct dm_kv_op){DM_KV_OP_PUT, "big/x", big, 10, 0};
	assert_int_equal(dm_kv_txn(f->kv, NULL, NULL, 0, ops, 2, &err), DM_ETOOBIG);
	if (!strstr(err.msg, "too large"))
		fail_msg("txn too big: %s", err.msg);
	assert_int_equal(revision(f->kv), 0);
	/* one fits; and a range of more than one answer of etcd's may hold
	 * (8 MiB) comes back whole, in smaller pages */
	for (int i = 0; i < 8; i++) {
		char key[16];

		snprintf(key, sizeof(key), "big/%d", i);
		big[0] = (char)('0' + i);
		assert_int_equal(dm_kv_put(f->kv, NULL, key, big, DM_KV_VALUE_MAX, 0, &err), 0);
	}
	assert_int_equal(dm_kv_txn(f->kv, NULL, NULL, 0, ops + 2, 1, &err), 0);
	{
		struct dm_kv_kvs l;

		assert_int_equal(dm_kv_range(f->kv, &l, "big/", 0, &err), 0);
		assert_int_equal(l.len, 9);
		assert_int_equal(l.revision, 9);
		for (int i = 0; i < 8; i++) {
			assert_int_equal(l.items[i].value_len, DM_KV_VALUE_MAX);
			assert_int_equal(l.items[i].value[0], '0' + i);
		}
		assert_int_equal(l.items[8].value_len, 10);
		dm_kv_kvs_release(&l);
		assert_int_equal(dm_kv_range(f->kv, &l, "big/", 5, &err), 0);
		assert_int_equal(l.len, 5);
		assert_true(l.more);
		dm_kv_kvs_release(&l);
	}
	free(big);
	fx_close(f);
}

#define BOTH(t)                                                                                    \
	{#t " on lmdb", t, fx_setup_lmdb, fx_teardown, NULL},                                      \
	{                                                                                          \
#t " on etcd", t, fx_setup_etcd, fx_teardown, NULL                                 \
	}
#define LMDB(t)                                                                                    \
	{                                                                                          \
#t, t, fx_setup_lmdb, fx_teardown, NULL                                            \
	}
#define ETCD(t)                                                                                    \
	{                                                                                          \
#t, t, fx_setup_etcd, fx_teardown, NULL                                            \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_put_get_delete_revisions_step_by_one),
		BOTH(test_range_is_sorted_and_bounded_to_the_prefix),
		BOTH(test_cas_succeeds_only_on_the_expected_revision),
		BOTH(test_txn_is_all_or_nothing),
		BOTH(test_watch_from_zero_replays_history_in_order),
		BOTH(test_watch_sees_live_puts_from_4_threads_once_in_order),
		BOTH(test_watch_from_a_compacted_revision_fails),
		BOTH(test_watch_cancel_stops_delivery),
		BOTH(test_lease_expiry_deletes_keys_and_watch_sees_it),
		BOTH(test_lease_keepalive_extends_and_revoke_deletes),
		BOTH(test_oversized_keys_and_values_are_rejected),
		LMDB(test_long_keys_sort_and_range_like_short_ones),
		LMDB(test_lmdb_log_trims_itself_and_a_lagging_watch_fails),
		LMDB(test_reopen_keeps_data_revision_history_and_leases),
		LMDB(test_map_grows_past_its_initial_size),
		LMDB(test_prefix_end_matches_etcd),
		ETCD(test_etcd_down_or_silent_fails_within_the_deadline_and_watches_resume),
		ETCD(test_etcd_watch_cut_mid_revision_resumes_without_loss_or_repeats),
		ETCD(test_etcd_compaction_while_a_stream_is_down_fails_then_range_and_watch_recover),
		{"test_etcd_cluster_keeps_answering_with_a_member_killed",
		 test_etcd_cluster_keeps_answering_with_a_member_killed, fx_setup_etcd_none,
		 fx_teardown, NULL},
		ETCD(test_etcd_rejects_bad_endpoints_and_big_txns_and_pages_big_ranges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
