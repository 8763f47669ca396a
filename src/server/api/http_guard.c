/*
 * http_guard.c - deadlines for what a connection sends (see http_guard.h).
 *
 * Invariants:
 *  - Every connection libmicrohttpd started and has not yet closed is in
 *    the guard's list exactly once, its socket context pointing at its
 *    entry; the list, the entries and the counts are under g->mu.
 *  - An entry's deadline is 0 while its request is handled; otherwise the
 *    monotonic time by which the next thing it awaits must be in.
 *  - A connection is shut down at most once, only while in the list.
 */
#include "server/api/http_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "metrics/catalog.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define TICK_MS     250
#define LOG_EVERY_S 60

enum phase { HEADERS, BODY, HANDLING };

struct conn {
	struct dm_http_guard *g;
	int fd;
	enum phase phase;
	int64_t deadline_ms; /* 0: none */
	bool cut;
	bool asked; /* a request came (its connection thread's only) */
	char peer[64];
	struct conn *prev, *next;
};

struct dm_http_guard {
	unsigned header_s, body_s, idle_s;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop;
	pthread_t thread;
	bool started;
	struct conn *head;
	/* cut since the last log line, and the last peer cut */
	unsigned long headers_late, body_late;
	char last_peer[64];
	int64_t logged_ms;
};

static int64_t now_ms(void)
{
	return dm_now_monotonic_ns() / 1000000;
}

/* The peer of c as text ("127.0.0.2", "unix"). */
static void peer_of(char *out, size_t size, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(out, size, "unix");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
			  (socklen_t)size);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			  out, (socklen_t)size);
}

/* c's entry, or NULL (a connection the guard does not watch). */
static struct conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

/* Moves e to phase p, with a deadline secs from now (0: none). */
static void set_phase(struct conn *e, enum phase p, unsigned secs)
{
	struct dm_http_guard *g = e->g;

	pthread_mutex_lock(&g->mu);
	e->phase = p;
	e->deadline_ms = secs ? now_ms() + (int64_t)secs * 1000 : 0;
	pthread_mutex_unlock(&g->mu);
}

void dm_http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct dm_http_guard *g = cls;
	struct conn *e = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		e = calloc(1, sizeof(*e));
		if (!e || !ci) {
			free(e);
			return; /* not watched: libmicrohttpd's idle timeout still holds */
		}
		e->g = g;
		e->fd = ci->connect_fd;
		peer_of(e->peer, sizeof(e->peer), c);
		pthread_mutex_lock(&g->mu);
		e->phase = HEADERS;
		e->deadline_ms = now_ms() + (int64_t)g->header_s * 1000;
		e->next = g->head;
		if (g->head)
			g->head->prev = e;
		g->head = e;
		pthread_mutex_unlock(&g->mu);
		*socket_context = e;
		return;
	}
	if (!e)
		return;
	pthread_mutex_lock(&g->mu);
	if (e->prev)
		e->prev->next = e->next;
	else
		g->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	/* closed before a whole request: a TLS handshake that failed, plain
	 * HTTP on the HTTPS port, a probe that only connects */
	if (!e->asked && !e->cut)
		dm_metric_add(&dm_m_http_refused, "no_request", NULL, 1);
	pthread_mutex_unlock(&g->mu);
	*socket_context = NULL;
	free(e);
}

void dm_http_guard_request(struct MHD_Connection *c, bool first, bool body_done)
{
	struct conn *e = conn_of(c);

	if (!e)
		return;
	if (first)
		e->asked = true;
	if (first)
		set_phase(e, BODY, e->g->body_s);
	else if (body_done && e->phase != HANDLING)
		set_phase(e, HANDLING, 0);
}

void dm_http_guard_request_done(struct MHD_Connection *c)
{
	struct conn *e = conn_of(c);

	if (e)
		set_phase(e, HEADERS, e->g->idle_s);
}

/* Shuts down the connections past their deadline; under g->mu. */
static void cut_late(struct dm_http_guard *g, int64_t now)
{
	for (struct conn *e = g->head; e; e = e->next) {
		if (e->cut || !e->deadline_ms || now < e->deadline_ms)
			continue;
		e->cut = true;
		shutdown(e->fd, SHUT_RDWR);
		if (e->phase == BODY)
			g->body_late++;
		else
			g->headers_late++;
		dm_metric_add(&dm_m_http_refused, e->phase == BODY ? "body_late" : "headers_late",
			      NULL, 1);
		snprintf(g->last_peer, sizeof(g->last_peer), "%s", e->peer);
	}
}

/* One line for what was cut since the last one, at most every minute. */
static void log_cut(struct dm_http_guard *g, int64_t now)
{
	if (!g->headers_late && !g->body_late)
		return;
	if (g->logged_ms && now - g->logged_ms < LOG_EVERY_S * 1000)
		return;
	dm_warn("http: closed %lu connections that sent no whole request within %u s and %lu "
		"whose body took longer than %u s (the last from %s)",
		g->headers_late, g->header_s, g->body_late, g->body_s, g->last_peer);
	g->headers_late = g->body_late = 0;
	g->logged_ms = now;
}

static void *watchdog(void *arg)
{
	struct dm_http_guard *g = arg;

	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		struct timespec ts;
		int64_t now = now_ms();

		cut_late(g, now);
		log_cut(g, now);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&g->cond, &g->mu, &ts);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

int dm_http_guard_new(struct dm_http_guard **out, const struct dm_http_guard_opts *opts,
		      struct dm_err *err)
{
	struct dm_http_guard *g = dm_xcalloc(1, sizeof(*g));
	pthread_condattr_t ca;

	*out = NULL;
	g->header_s = opts->header_s ? opts->header_s : 10;
	g->body_s = opts->body_s ? opts->body_s : 600;
	g->idle_s = opts->idle_s ? opts->idle_s : 60;
	pthread_mutex_init(&g->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&g->thread, NULL, watchdog, g) != 0) {
		dm_http_guard_free(g);
		return dm_err_set(err, DM_ENOMEM, "cannot start the connection watchdog");
	}
	g->started = true;
	*out = g;
	return 0;
}

void dm_http_guard_free(struct dm_http_guard *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->mu);
	g->stop = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->mu);
	if (g->started)
		pthread_join(g->thread, NULL);
	while (g->head) {
		struct conn *e = g->head;

		g->head = e->next;
		free(e);
	}
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->mu);
	free(g);
}
