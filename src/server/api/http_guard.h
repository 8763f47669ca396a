/*
 * http_guard.h - deadlines for what a connection sends, so that clients
 * that open connections and send slowly, or nothing, cannot hold dmd's
 * connection threads (docs/internals/security.md, "Limits").
 *
 * libmicrohttpd's own timeout is an idle one: a byte every few seconds
 * keeps a connection forever. The guard adds deadlines that count from a
 * point whatever arrives: a request's headers (and a TLS handshake) within
 * header_s of the connection's start, its body within body_s of its
 * headers, and the next request's headers on a kept-alive connection
 * within idle_s of the last answer. No deadline runs while a request is
 * being handled (a commit may take long). A connection past its deadline
 * is shut down (the thread that serves it sees the end and closes it).
 * What was cut is counted and logged, at most one line a minute.
 *
 * Threads: the notify callback and the access handler run on connection
 * threads, the watchdog on its own; the guard's list is under its mutex,
 * and a connection leaves it (MHD_CONNECTION_NOTIFY_CLOSED) before
 * libmicrohttpd closes its socket, so the watchdog never shuts down a
 * descriptor that was closed and reused.
 */
#ifndef DM_SERVER_API_HTTP_GUARD_H
#define DM_SERVER_API_HTTP_GUARD_H

#include <microhttpd.h>
#include <stdbool.h>

struct dm_err;
struct dm_http_guard;

struct dm_http_guard_opts {
	unsigned header_s; /* 0: 10 */
	unsigned body_s;   /* 0: 600 */
	unsigned idle_s;   /* 0: 60 */
};

int dm_http_guard_new(struct dm_http_guard **out, const struct dm_http_guard_opts *opts,
		      struct dm_err *err);
/* Stops the watchdog; after the daemons that use the guard stopped. */
void dm_http_guard_free(struct dm_http_guard *g);

/* MHD_OPTION_NOTIFY_CONNECTION's callback; cls is the guard. */
void dm_http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code);

/* From the access handler: first, the request's first call (its headers
 * are in: the body's deadline starts); else body_done, its last (the body
 * is in: no deadline while it is handled). */
void dm_http_guard_request(struct MHD_Connection *c, bool first, bool body_done);
/* From MHD_OPTION_NOTIFY_COMPLETED: the next request's headers are due. */
void dm_http_guard_request_done(struct MHD_Connection *c);

#endif
