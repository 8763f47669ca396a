/*
 * http.h - dmd's HTTP front: libmicrohttpd on 127.0.0.1:PORT and on a unix
 * socket, routing POST /rpc (authenticated, then dm_rpc_dispatch),
 * /objects/... (authenticated, then objects_http.h), /s3/... (dotmesh's S3
 * paths: authenticated, then s3_http.h), GET /metrics (an admin, or anyone
 * with metrics_public; metrics_http.h), the web page under /ui/
 * (ui/ui_http.h) and GET /healthz; or, with a handler, any POST to that
 * handler (the Docker volume plugin's socket).
 *
 * Lifecycle: dm_http_bind makes the listening sockets (so that "address in
 * use" is known before anything else starts), dm_http_start serves them
 * (connections made in between wait in the listen backlog),
 * dm_http_quiesce stops accepting, dm_http_wait_idle waits for requests in
 * flight, dm_http_free stops everything.
 */
#ifndef DM_SERVER_API_HTTP_H
#define DM_SERVER_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

struct dm_api_env;
struct dm_http;

/* Largest request body; a larger one gets HTTP 413 and `too_large`. */
#define DM_HTTP_BODY_MAX (1024 * 1024)
/* Where dmd listens for clients unless told otherwise: loopback only. */
#define DM_HTTP_HOST "127.0.0.1"

/*
 * A server for another protocol over POST (the Docker volume plugin,
 * plugin.c): every POST, whatever its path, goes to the handler with its
 * body (bounded as for /rpc), without authentication; other methods get
 * 405. It returns the malloc'ed response body and sets *status and
 * *content_type (a static string). Called on connection threads.
 */
typedef char *(*dm_http_handler_fn)(void *ctx, const char *url, const char *body, size_t len,
				    unsigned *status, const char **content_type);

struct dm_http_opts {
	const char *host;           /* "127.0.0.1" */
	int port;                   /* TCP port; 0: no TCP listener */
	const char *socket_path;    /* NULL: no unix socket */
	unsigned timeout_s;         /* idle connection timeout (0: 60) */
	unsigned max_conns;         /* per listener (0: 1024) */
	unsigned per_ip;            /* connections from one address to the TCP port (0: 64) */
	unsigned header_s;          /* a request's headers within this (0: 10; http_guard.h) */
	unsigned body_s;            /* its body within this of its headers (0: 600) */
	dm_http_handler_fn handler; /* NULL: dmd's API (/rpc, /healthz) */
	void *handler_ctx;
	/* TLS on the TCP listener: the certificate chain and key as PEM text
	 * (copied); NULL: plain HTTP. The unix socket is always plain. */
	const char *tls_cert_pem, *tls_key_pem;
	/* with them: the CAs whose certificates name the cluster's nodes
	 * (PEM, copied): the TCP port asks every client for a certificate,
	 * and a node calls with its own (http.c); NULL: asks none */
	const char *tls_trust_pem;
};

/* Makes the listeners; DM_EBUSY "cannot listen on HOST:PORT: Address
 * already in use" and the like. A stale socket file is replaced; the new
 * one has mode 0600. env is borrowed for the handlers. */
int dm_http_bind(struct dm_http **out, const struct dm_api_env *env,
		 const struct dm_http_opts *opts, struct dm_err *err);
/* Starts serving the listeners. */
int dm_http_start(struct dm_http *h, struct dm_err *err);
/* Stops accepting new connections and removes the socket file; requests
 * already received go on. Idempotent. */
void dm_http_quiesce(struct dm_http *h);
/* Waits until no request is being handled; DM_ETIMEOUT after timeout_ms. */
int dm_http_wait_idle(struct dm_http *h, int timeout_ms);
/* Stops (waiting for handlers that still run) and frees; accepts NULL. */
void dm_http_free(struct dm_http *h);

struct MHD_Connection;
/* Whether the request's Content-Length says more than max bytes (a value
 * too large to read counts as more): refused before its body is read. */
bool dm_http_declared_over(struct MHD_Connection *c, unsigned long long max);

#endif
