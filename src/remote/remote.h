/*
 * remote.h - the libcurl client one dmd (the initiator of a transfer) uses
 * to talk to another dmd's /objects endpoints (docs/internals/transfer.md).
 *
 * One struct dm_remote_conn talks to one remote as one user, from one
 * thread at a time. Every call ends: connecting gives up after 3 s, a
 * connection that moves no byte for 30 s is dropped, and a cancel function
 * (checked about once a second) aborts a call in progress. Failures are
 * one clear message and a code from util/err.h:
 *   DM_EUNAVAILABLE  "cannot reach dm server at HOST:PORT: Connection refused",
 *                    a connection lost or silent for 30 s
 *   DM_EPERM         HTTP 401: wrong user name or API key
 *   DM_EUNSUPPORTED  no transfer version in common
 *   DM_ECANCELED     the cancel function said so
 *   any other        the remote's own error (its JSON-RPC error object or
 *                    error record: its code and message)
 *
 * Uploads are pipelined: dm_remote_put_add gathers records into batches of
 * about DM_REMOTE_BATCH bytes and keeps up to DM_REMOTE_INFLIGHT `put`
 * requests in flight (curl multi); dm_remote_put_sync waits until every
 * record given so far is acknowledged, so durable on the remote.
 */
#ifndef DM_REMOTE_REMOTE_H
#define DM_REMOTE_REMOTE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sync/wire.h"
#include "store/pack.h"
#include "util/buf.h"
#include "util/hash.h"

struct dm_err;

#define DM_REMOTE_VERSION         1           /* the transfer version this dm speaks */
#define DM_REMOTE_CONNECT_TIMEOUT 3           /* seconds */
#define DM_REMOTE_STALL_TIMEOUT   30          /* seconds without a byte moving */
#define DM_REMOTE_HELLO_TIMEOUT   5           /* seconds for the first request (versions) */
#define DM_REMOTE_UPDATE_TIMEOUT  3700        /* seconds: a dot may take long to apply */
#define DM_REMOTE_BATCH           (8u << 20)  /* bytes per put request, about */
#define DM_REMOTE_INFLIGHT        4           /* put requests in flight */
#define DM_REMOTE_JSON_MAX        (64u << 20) /* largest JSON answer (refs of long histories) */

/* Where the remote is and who we are there; strings are copied. */
struct dm_remote_addr {
	const char *host;
	int port;
	const char *user;
	const char *api_key;
	/* a node of a cluster passing on a user's push: that user
	 * (X-Dm-On-Behalf-Of; the remote checks it again), or NULL */
	const char *on_behalf;
};

struct dm_remote_conn;

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

/* GET /objects/versions: 0 when the remote speaks DM_REMOTE_VERSION;
 * DM_EUNSUPPORTED "remote 'HOST:PORT' speaks transfer versions [2]; this
 * dm speaks [1]" otherwise. Checks the credentials too. */
int dm_remote_versions(struct dm_remote_conn *r, struct dm_err *err);
/* GET /objects/v1/refs?dot=DOT: *out the answer (a new reference); with
 * for_push, a server refuses at once a push it would refuse at the end;
 * DM_ENOTFOUND when the remote has no such dot. */
int dm_remote_refs(struct dm_remote_conn *r, const char *dot, bool for_push, json_t **out,
		   struct dm_err *err);
/* POST /objects/v1/missing: appends to out the ids among ids[0..n) that the
 * remote lacks, in order (n <= DM_WIRE_MAX_IDS). */
int dm_remote_missing(struct dm_remote_conn *r, const dm_oid *ids, size_t n, struct dm_buf *out,
		      struct dm_err *err);
/* POST /objects/v1/get?dot=DOT: the records of ids[0..n), in order, handed
 * to fn as they arrive (n <= DM_WIRE_MAX_IDS). An error record, a short
 * stream or a record that is not the next id asked for fails the call. */
int dm_remote_get(struct dm_remote_conn *r, const char *dot, const dm_oid *ids, size_t n,
		  dm_wire_rec_fn fn, void *ctx, struct dm_err *err);
/* POST /objects/v1/update with body req: *out the dot's answer. */
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
