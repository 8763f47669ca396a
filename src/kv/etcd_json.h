/*
 * etcd_json.h - what etcd's JSON gateway answers, decoded into C structs:
 * range, txn, header-only, lease and error bodies, and the lines of a
 * watch stream.
 *
 * Every decoder reads at most DM_ETCD_MSG_MAX bytes of one message and
 * checks what it uses: int64 fields are JSON strings of decimal digits,
 * revisions and versions are not negative, keys are 1..DM_KV_KEY_MAX bytes
 * without NUL, values at most DM_KV_VALUE_MAX, base64 is canonical, range
 * results are sorted. Anything else is DM_EPROTO ("etcd answered ...").
 * Fields it does not use are ignored, so that a later etcd still works.
 *
 * Numbers are etcd's own (its revision starts at 1); etcd.c maps them.
 * Decoded keys and values are owned by the struct they land in.
 */
#ifndef DM_KV_ETCD_JSON_H
#define DM_KV_ETCD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/kv.h"
#include "util/buf.h"
#include "util/err.h"

/* The largest message read from etcd: one answer, or one watch line. */
#define DM_ETCD_MSG_MAX ((size_t)8 << 20)
/* Room kept of etcd's error and cancel texts. */
#define DM_ETCD_TEXT_MAX 256

/* Decodes base64 (util/base64.h) from etcd into a new buffer (followed
 * by a NUL) of at most max bytes; DM_EPROTO when it is not. */
int dm_etcd_b64_decode(char **out, size_t *out_len, const char *s, size_t len, size_t max,
		       struct dm_err *err);

/* An error etcd answered: the gateway's {"error","message","code"}, or a
 * stream's {"error":{"grpc_code","message",...}}. */
struct dm_etcd_error {
	int grpc_code; /* google.golang.org/grpc/codes */
	char message[DM_ETCD_TEXT_MAX];
};

int dm_etcd_parse_error(struct dm_etcd_error *out, const char *body, size_t len,
			struct dm_err *err);

/*
 * What an etcd error means for dm: the DM_E* code; whether asking again
 * (another member, a moment later) may succeed (transient: no leader,
 * timed out...); and whether etcd certainly did not apply the request, so
 * that a write may be sent again. Known texts first (compaction, leases,
 * sizes), then the gRPC code.
 */
int dm_etcd_error_code(const struct dm_etcd_error *e, bool *transient, bool *not_applied);

/* Whether e (or a watch's cancel reason, as text) says the request's
 * token is missing or no longer valid, so that a new one may do. */
bool dm_etcd_token_refused(const struct dm_etcd_error *e);
bool dm_etcd_token_refused_text(const char *text);

/* Authenticate's answer: its token, 1 to size - 1 printable characters
 * without spaces (it goes into a header line). */
int dm_etcd_parse_token(char *out, size_t size, const char *body, size_t len, struct dm_err *err);

/* Any answer's header.revision. */
int dm_etcd_parse_header(int64_t *revision, const char *body, size_t len, struct dm_err *err);

/* A range answer: out (initialised here) gets kvs, more and
 * header.revision; items are sorted and unique. count: the "count" field. */
int dm_etcd_parse_range(struct dm_kv_kvs *out, int64_t *count, const char *body, size_t len,
			struct dm_err *err);

/* A txn answer. Range answers (the failure branch of a compare) give the
 * mod_revision of the one key each read, 0 when it was absent. */
struct dm_etcd_txn {
	int64_t revision;
	bool succeeded;
	uint64_t deleted; /* summed over the delete_range answers */
	size_t nresponses;
	size_t nranges;
	int64_t range_mod[DM_KV_TXN_MAX_OPS];
};

int dm_etcd_parse_txn(struct dm_etcd_txn *out, const char *body, size_t len, struct dm_err *err);

/* /v3/lease/grant: id > 0 and the TTL etcd granted (it may raise it). */
int dm_etcd_parse_lease_grant(int64_t *id, int64_t *ttl, const char *body, size_t len,
			      struct dm_err *err);

/* /v3/lease/keepalive, a one-message stream: {"result":{...,"TTL"}} gives
 * the TTL (0 when etcd omits it: the lease is gone); {"error":{...}}
 * fills e and returns 1. */
int dm_etcd_parse_keepalive(int64_t *ttl, struct dm_etcd_error *e, const char *body, size_t len,
			    struct dm_err *err);

/* One line of a /v3/watch stream. */
enum dm_etcd_wmsg_kind {
	DM_ETCD_WMSG_RESULT = 1,
	DM_ETCD_WMSG_ERROR, /* the stream failed: see error */
};

struct dm_etcd_event {
	bool put; /* else a delete: kv has key and mod_revision only */
	struct dm_kv_kv kv;
};

struct dm_etcd_wmsg {
	enum dm_etcd_wmsg_kind kind;
	int64_t revision; /* header.revision (0 when absent) */
	bool created;
	bool canceled;
	bool fragment; /* more of this answer's events follow in the next line */
	int64_t compact_revision;
	char cancel_reason[DM_ETCD_TEXT_MAX];
	struct dm_etcd_error error;
	struct dm_etcd_event *events; /* mod_revision never decreases */
	size_t nevents;
};

/* Decodes one line (without its newline) into out (initialised here;
 * release it). */
int dm_etcd_parse_watch(struct dm_etcd_wmsg *out, const char *line, size_t len, struct dm_err *err);
void dm_etcd_wmsg_release(struct dm_etcd_wmsg *m);

#endif
