/*
 * remote.h - a remote: the other side of push, pull and clone, behind one
 * function table (struct dm_remote_ops), so that the transfers
 * (server/transfers/) and the cluster's forwarding never know how a
 * remote is reached. Backends: another dmd over HTTP (dmd.h). A new kind
 * (an S3 bucket, a plain directory) is a new file here with its own ops
 * and a case in dm_remote_open; nothing that uses remotes changes.
 *
 * One struct dm_remote_conn talks to one remote as one user, from one
 * thread at a time. Every call ends (a backend bounds connecting and
 * stalls), and a cancel function, checked about once a second, aborts a
 * call in progress. Failures are one clear message and a code from
 * util/err.h:
 *   DM_EUNAVAILABLE  "cannot reach dm server at HOST:PORT: Connection refused",
 *                    a connection lost or silent too long
 *   DM_EPERM         wrong user name or API key
 *   DM_EUNSUPPORTED  no transfer version in common
 *   DM_ECANCELED     the cancel function said so
 *   any other        the remote's own error (its code and message)
 *
 * Objects move through the sync walk (sync/walk.h): missing, get and the
 * put_* calls are what a walk's peer needs. Uploads may be pipelined:
 * put_add may return before the remote has the record; put_sync waits
 * until every record given so far is acknowledged, so durable there.
 */
#ifndef DM_REMOTE_REMOTE_H
#define DM_REMOTE_REMOTE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/pack.h"
#include "sync/wire.h"
#include "util/buf.h"
#include "util/curl.h"
#include "util/hash.h"

struct dm_err;

/* Where the remote is and who we are there; strings are copied. */
struct dm_remote_addr {
	const char *host;
	int port;
	const char *user;
	const char *api_key;
	/* a node of a cluster passing on a user's push: that user
	 * (X-Dm-On-Behalf-Of; the remote checks it again), or NULL */
	const char *on_behalf;
	/* the CA the remote's certificate must chain to (PEM): https; NULL:
	 * plain http (a --insecure-http server on loopback) */
	const char *ca;
	/* with ca: a node of a cluster calling another with its certificate,
	 * instead of user and api_key (util/curl.h; copied, its PEM
	 * borrowed), or NULL */
	const struct dm_curl_node *node;
};

struct dm_remote_conn {
	const struct dm_remote_ops *ops;
};

/* What a backend implements; each call as the dm_remote_* function of the
 * same name below documents it. */
struct dm_remote_ops {
	const char *kind; /* "dmd" */
	void (*free)(struct dm_remote_conn *r);
	const char *(*where)(const struct dm_remote_conn *r);
	void (*set_cancel)(struct dm_remote_conn *r, bool (*cancelled)(void *ctx), void *ctx);
	uint64_t (*wire_bytes)(const struct dm_remote_conn *r);
	int (*hello)(struct dm_remote_conn *r, struct dm_err *err);
	int (*refs)(struct dm_remote_conn *r, const char *dot, bool for_push, json_t **out,
		    struct dm_err *err);
	int (*update)(struct dm_remote_conn *r, json_t *req, json_t **out, struct dm_err *err);
	int (*missing)(struct dm_remote_conn *r, const dm_oid *ids, size_t n, struct dm_buf *out,
		       struct dm_err *err);
	int (*get)(struct dm_remote_conn *r, const char *dot, const dm_oid *ids, size_t n,
		   dm_wire_rec_fn fn, void *ctx, struct dm_err *err);
	void (*put_begin)(struct dm_remote_conn *r, const char *dot_id,
			  void (*on_ack)(void *ctx, uint64_t objects, uint64_t bytes), void *ctx);
	int (*put_add)(struct dm_remote_conn *r, const struct dm_pack_rec *rec, const void *bytes,
		       struct dm_err *err);
	int (*put_sync)(struct dm_remote_conn *r, struct dm_err *err);
};

/* Opens the remote addr names (today always another dmd: dmd.h). */
int dm_remote_open(struct dm_remote_conn **out, const struct dm_remote_addr *addr,
		   struct dm_err *err);
/* Aborts puts in flight; accepts NULL. */
void dm_remote_free(struct dm_remote_conn *r);
/* "HOST:PORT", for messages; lives as r. */
const char *dm_remote_where(const struct dm_remote_conn *r);
/* cancelled(ctx) returning true aborts the call in progress (DM_ECANCELED). */
void dm_remote_set_cancel(struct dm_remote_conn *r, bool (*cancelled)(void *ctx), void *ctx);
/* HTTP body bytes sent and received so far, by every call. */
uint64_t dm_remote_wire_bytes(const struct dm_remote_conn *r);

/* 0 when the remote speaks this dm's transfer version (dmd: GET
 * /objects/versions); DM_EUNSUPPORTED "remote 'HOST:PORT' speaks transfer
 * versions [2]; this dm speaks [1]" otherwise. Checks the credentials too. */
int dm_remote_hello(struct dm_remote_conn *r, struct dm_err *err);
/* The remote's refs of DOT (dmd: GET /objects/v1/refs?dot=DOT): *out the answer (a new reference); with
 * for_push, a server refuses at once a push it would refuse at the end;
 * DM_ENOTFOUND when the remote has no such dot. */
int dm_remote_refs(struct dm_remote_conn *r, const char *dot, bool for_push, json_t **out,
		   struct dm_err *err);
/* Appends to out the ids among ids[0..n) that the
 * remote lacks, in order (n <= DM_WIRE_MAX_IDS). */
int dm_remote_missing(struct dm_remote_conn *r, const dm_oid *ids, size_t n, struct dm_buf *out,
		      struct dm_err *err);
/* The records of ids[0..n) (reading as DOT), in order, handed
 * to fn as they arrive (n <= DM_WIRE_MAX_IDS). An error record, a short
 * stream or a record that is not the next id asked for fails the call. */
int dm_remote_get(struct dm_remote_conn *r, const char *dot, const dm_oid *ids, size_t n,
		  dm_wire_rec_fn fn, void *ctx, struct dm_err *err);
/* Asks the remote dot to take the update req (branches to move to commits
 * it now holds): *out the dot's answer. */
int dm_remote_update(struct dm_remote_conn *r, json_t *req, json_t **out, struct dm_err *err);

/*
 * Pipelined upload for dot dot_id (commits are accepted only for it).
 * on_ack(ctx, objects, raw_bytes) is called (from put_add or put_sync, on
 * the caller's thread) as each batch is acknowledged. After an error, every
 * later call returns it until dm_remote_put_begin starts over.
 */
void dm_remote_put_begin(struct dm_remote_conn *r, const char *dot_id,
			 void (*on_ack)(void *ctx, uint64_t objects, uint64_t bytes), void *ctx);
int dm_remote_put_add(struct dm_remote_conn *r, const struct dm_pack_rec *rec, const void *bytes,
		      struct dm_err *err);
int dm_remote_put_sync(struct dm_remote_conn *r, struct dm_err *err);

#endif
