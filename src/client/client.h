/*
 * client.h - dm's RPC client: JSON-RPC 2.0 calls to one dm server (a
 * "remote") over HTTP, on TCP or on the server's unix socket, with basic
 * authentication by user name and API key.
 *
 * Every call ends within its deadline (connect 3 s; the whole call 35 s, or
 * 3700 s for dots.commit and dots.reset), reads at most 16 MiB of answer,
 * and fails with one clear message and a code from util/err.h:
 *   DM_EUNAVAILABLE  the server cannot be reached (with a hint to start dmd)
 *   DM_EPERM         HTTP 401: wrong user name or API key
 *   DM_ETIMEOUT      connected, but no answer within the deadline
 *   DM_EPROTO        the answer is not a JSON-RPC 2.0 reply
 *   DM_ETOOBIG       the answer is larger than 16 MiB
 *   any other        the server's JSON-RPC error (its message, and the code
 *                    named by error.data.code)
 */
#ifndef DM_CLIENT_CLIENT_H
#define DM_CLIENT_CLIENT_H

#include <jansson.h>

#include "util/curl.h"

struct dm_err;

#define DM_DEFAULT_PORT            32607
#define DM_CLIENT_CONNECT_TIMEOUT  3     /* seconds */
#define DM_CLIENT_DEFAULT_TIMEOUT  35    /* seconds, a whole call */
#define DM_CLIENT_LONG_TIMEOUT     3700  /* seconds: dots.commit, dots.reset */
#define DM_CLIENT_MAX_RESPONSE     (16u << 20)

/* Where a remote server is and who we are there. Strings are borrowed. */
struct dm_remote {
	const char *name;        /* "local": for messages */
	const char *user;        /* "admin" */
	const char *host;        /* "127.0.0.1" */
	int port;                /* 32607 */
	const char *api_key;     /* 64 hex digits */
	const char *socket;      /* "/data/dmd.sock", or NULL: TCP only */
	const char *data_dir;    /* the server's data directory, when local; or NULL */
	const char *current_dot; /* or NULL */
	/* the CA the server's certificate must chain to (PEM), pinned when the
	 * remote was added: the server is reached over https; NULL: plain
	 * http (a --insecure-http server on loopback) */
	const char *ca;
	/* a node of a cluster calling another for one of its callers: that
	 * user's name (header DM_ON_BEHALF_HEADER), or NULL */
	const char *on_behalf;
	/* a node of a cluster calling another with its own certificate (no
	 * user, no key; util/curl.h; copied, its PEM borrowed), or NULL */
	const struct dm_curl_node *node;
};

#define DM_ON_BEHALF_HEADER "X-Dm-On-Behalf-Of"

/* The loud refusal of a server whose certificate does not chain to the CA
 * pinned for it (as ssh's "host key changed"), or, for a node calling
 * another (node), does not name that node: DM_EPERM. */
int dm_client_tls_refusal(struct dm_err *err, const char *where, const char *remote,
			  const char *fingerprint, const struct dm_curl_node *node,
			  const char *detail);

struct dm_client;

/*
 * Makes a client for remote (copied; remote may go away after). The unix
 * socket is used when remote->socket names an existing socket whose path
 * fits in sun_path; TCP otherwise.
 */
int dm_client_new(struct dm_client **out, const struct dm_remote *remote, struct dm_err *err);
void dm_client_free(struct dm_client *c);

/* Overrides the whole-call deadline of every later call (seconds; 0: the
 * per-method default). */
void dm_client_set_timeout(struct dm_client *c, long seconds);

/* "127.0.0.1:32607" or the socket path: where calls go. Lives as c. */
const char *dm_client_where(const struct dm_client *c);

/*
 * Calls method with params (borrowed; NULL means {}). On success, *result
 * is a new reference to the reply's result, which the caller owns. On
 * failure *result is NULL and err says why.
 */
int dm_client_call(struct dm_client *c, const char *method, json_t *params, json_t **result,
		   struct dm_err *err);

#endif
