/*
 * etcd.h - what the etcd backend's files share: the connection to a
 * cluster (endpoints, a pool of libcurl handles, deadlines, failover;
 * etcd_http.c), the backend's handle (etcd.c) and its watches
 * (etcd_watch.c). Callers of the store include kv/kv.h only.
 *
 * Revisions: etcd's revision is 1 on an empty store, dm's is 0. The
 * backend shows etcd's revision minus one everywhere (header, create and
 * mod revisions, watch events) and adds one to what callers pass in
 * (compares, watch start, compaction), so that revisions mean the same on
 * both backends. DM_ETCD_REV / ETCD_OF_DM are the two directions.
 */
#ifndef DM_KV_ETCD_H
#define DM_KV_ETCD_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/backend.h"
#include "kv/etcd_json.h"
#include "kv/kv.h"
#include "util/buf.h"
#include "util/err.h"

#define DM_OF_ETCD_REV(r) ((r)-1)
/* Saturates: a revision that large never exists. */
#define ETCD_OF_DM_REV(r) ((r) < INT64_MAX ? (r) + 1 : INT64_MAX)

/* At most this many endpoints, each at most this long. */
#define DM_ETCD_ENDPOINTS_MAX 16
#define DM_ETCD_URL_MAX       256
/* etcd's tokens (simple or JWT) are shorter than this. */
#define DM_ETCD_TOKEN_MAX 2048

struct dm_etcd_conn {
	char *urls[DM_ETCD_ENDPOINTS_MAX]; /* "http[s]://host:port", no trailing slash */
	size_t n;
	char *list; /* the endpoints as given, for messages */
	int64_t request_ms;
	int64_t connect_ms;
	atomic_size_t current; /* where the next request goes first */
	pthread_mutex_t pool_mu;
	CURL *pool[8]; /* idle handles, each keeping its connection */
	size_t npool;
	bool mu_ok;
	/* TLS: files, or NULL */
	char *ca_file, *cert_file, *key_file;
	/* authentication: user NULL when etcd's is off */
	char *user, *password;
	pthread_mutex_t auth_mu; /* guards token and token_gen */
	bool auth_mu_ok;
	char token[DM_ETCD_TOKEN_MAX]; /* "" until the first Authenticate */
	uint64_t token_gen;            /* how many tokens were taken */
};

/* Parses endpoints and sets up the pool (no request yet); takes copies
 * of opts' files and credentials. */
int dm_etcd_conn_init(struct dm_etcd_conn *c, const char *endpoints,
		      const struct dm_kv_etcd_opts *opts, struct dm_err *err);
void dm_etcd_conn_release(struct dm_etcd_conn *c);

/* Whether a request may be sent again after an answer that got lost:
 * reads and keepalives may; writes and grants may not (they could have
 * been applied), and then fail with "may or may not have been applied". */
enum dm_etcd_retry {
	DM_ETCD_IDEMPOTENT = 1,
	DM_ETCD_ONCE,
};

/*
 * POSTs body to path (e.g. "/v3/kv/range") within the request deadline,
 * starting with the current endpoint and moving to the next one when a
 * member cannot be reached, has no leader, or (for an idempotent request)
 * stops answering. On HTTP 200, out (a buffer the caller initialised)
 * holds the answer. Otherwise etcd's error (mapped by dm_etcd_error_code,
 * its text in the message), DM_EUNAVAILABLE (no member reachable; the
 * message names the endpoints), DM_ETIMEOUT, DM_EPROTO.
 */
int dm_etcd_call(struct dm_etcd_conn *c, struct dm_buf *out, const char *path, const char *body,
		 size_t body_len, enum dm_etcd_retry retry, struct dm_err *err);

/* ---- pieces for a watch's own transfers ---- */

/* An answer being read, bounded by DM_ETCD_MSG_MAX. */
struct dm_etcd_sink {
	struct dm_buf buf;
	bool too_big;
};

void dm_etcd_sink_init(struct dm_etcd_sink *s);
/* A CURLOPT_WRITEFUNCTION for a sink (CURLOPT_WRITEDATA). */
size_t dm_etcd_sink_write(char *data, size_t size, size_t n, void *sink);

/* What one transfer came to. */
enum dm_etcd_outcome {
	DM_ETCD_OK = 0,   /* HTTP 200: the body is the answer */
	DM_ETCD_ANSWERED, /* etcd answered an error (or something not etcd did) */
	DM_ETCD_NOT_SENT, /* the member could not be reached */
	DM_ETCD_LOST,     /* sent, but no whole answer came */
};

struct dm_etcd_verdict {
	enum dm_etcd_outcome outcome;
	bool transient;   /* another member, or a moment later, may do */
	bool not_applied; /* etcd certainly did not apply the request */
	bool stale_token; /* etcd refused the token (or its absence): a new one may do */
};

/*
 * Sets h (reset here) up to POST body to endpoint ep + path, with the TLS
 * files and the current token (its generation in *token_gen, for
 * dm_etcd_reauth; NULL when not wanted); *headers (freed by the caller
 * after the transfer) and body must live until the transfer ends.
 * timeout_ms 0: no total timeout (a stream). The caller sets the write
 * callback.
 */
int dm_etcd_easy_setup(struct dm_etcd_conn *c, CURL *h, size_t ep, const char *path,
		       const char *body, size_t body_len, int64_t timeout_ms, uint64_t *token_gen,
		       struct curl_slist **headers, struct dm_err *err);

/*
 * Takes a new token from etcd's Authenticate, unless another thread took
 * one since generation seen (then that one is used). 0 with no user.
 * DM_EPERM when etcd refuses the user or password.
 */
int dm_etcd_reauth(struct dm_etcd_conn *c, uint64_t seen, struct dm_err *err);

/* Judges a finished transfer of h to endpoint ep: cc is curl's result,
 * sink what came. Sets err unless the outcome is DM_ETCD_OK. */
struct dm_etcd_verdict dm_etcd_judge(const struct dm_etcd_conn *c, CURL *h, size_t ep,
				     const char *path, CURLcode cc, const struct dm_etcd_sink *sink,
				     struct dm_err *err);

/* The endpoint after ep, made current unless another thread moved it. */
size_t dm_etcd_conn_next(struct dm_etcd_conn *c, size_t ep);

/* ---- the backend ---- */

struct etcd_kv {
	struct dm_kv base; /* first: the handle callers hold */
	struct dm_etcd_conn conn;
	bool base_ok, conn_ok;
};

/* Watches (etcd_watch.c). */
int dm_etcd_watch_start(struct dm_kv *kv, struct dm_kv_watch *w, struct dm_err *err);
void dm_etcd_watch_run(struct dm_kv_watch *w);
void dm_etcd_watch_wake(struct dm_kv_watch *w);
void dm_etcd_watch_release(struct dm_kv_watch *w);

#endif
