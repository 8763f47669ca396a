/*
 * kv.h - the cluster-state key-value store: get, put, compare-and-swap,
 * delete, prefix range, small transactions, watch from a revision, leases.
 *
 * One interface, several backends behind a function table (kv/backend.h):
 * the embedded one (LMDB under the data directory, kv/lmdb.c) and etcd v3
 * through its JSON gateway (kv/etcd.c). The semantics are etcd's, so that
 * a caller written against one backend works unchanged on the other:
 *
 *  - Keys are byte strings without NUL (given here as C strings), 1 to
 *    DM_KV_KEY_MAX bytes; values are any bytes, 0 to DM_KV_VALUE_MAX.
 *    Larger ones fail with DM_ETOOBIG, an empty key with DM_EINVAL.
 *  - The store has one revision (int64, 0 when empty) that grows by exactly
 *    one for every call that changes something: a put, a delete, a
 *    delete_prefix, a transaction, a lease revocation or expiry (however
 *    many keys they touch). A call that changes nothing (deleting an absent
 *    key) leaves it as it is. (etcd counts from 1 on an empty store; the
 *    etcd backend shows etcd's revision minus one everywhere, so numbers
 *    mean the same on both backends.) Each key carries create_revision (the
 *    revision that created it), mod_revision (the last one that changed
 *    it) and version (puts since it was created: 1, 2, ...). Deleting a key
 *    forgets all three; putting it again starts from version 1.
 *  - There are no reads at past revisions: reads see the latest state.
 *  - Watches deliver every change under a prefix with a revision greater
 *    than the one given, in revision order, exactly once, from a thread of
 *    their own. History is kept for a while (the embedded backend keeps
 *    the last 100000 changes); a watch from a revision older than that
 *    fails with DM_KV_ECOMPACTED. The recovery is etcd's: read the prefix
 *    again with dm_kv_range, which returns the current revision R, and
 *    watch from R.
 *  - A lease has a TTL in seconds; keys put with it are deleted (ordinary
 *    deletes, seen by watches) when it expires or is revoked. Keepalives
 *    restart its TTL. When the server restarts, every lease gets its full
 *    TTL again (etcd does the same on leader change).
 *
 * Ownership: whatever comes back through `out` belongs to the caller and is
 * freed with the matching _release. Pointers inside a struct dm_kv_event
 * are borrowed and live only during the callback.
 *
 * Threads: every function may be called from any number of threads at
 * once on one store, except dm_kv_free, which must be the last call.
 */
#ifndef DM_KV_KV_H
#define DM_KV_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct dm_kv;
struct dm_kv_watch;

#define DM_KV_KEY_MAX   1024
#define DM_KV_VALUE_MAX (1024 * 1024)
/* Operations in one transaction (etcd's default --max-txn-ops). */
#define DM_KV_TXN_MAX_OPS 128
/* Longest lease TTL, in seconds. */
#define DM_KV_LEASE_TTL_MAX ((int64_t)1 << 31)

/*
 * The error of a watch (or compaction) that asks for history the store no
 * longer keeps. Its message reads "revision N compacted ...".
 */
#define DM_KV_ECOMPACTED DM_ECOMPACTED

/* One key and its value, as stored (etcd's mvccpb.KeyValue). */
struct dm_kv_kv {
	char *key; /* NUL-terminated */
	size_t key_len;
	char *value; /* followed by a NUL, so text can be used as a string */
	size_t value_len;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;
	int64_t lease; /* 0 when none */
};

/* A sorted list of keys, as returned by dm_kv_range. */
struct dm_kv_kvs {
	struct dm_kv_kv *items;
	size_t len;
	size_t alloc;
	int64_t revision; /* the store's revision when it was read */
	bool more;        /* the limit left keys out */
};

void dm_kv_kv_init(struct dm_kv_kv *kv);
void dm_kv_kv_release(struct dm_kv_kv *kv);
void dm_kv_kvs_init(struct dm_kv_kvs *l);
void dm_kv_kvs_release(struct dm_kv_kvs *l);

/* Options of the embedded backend. */
struct dm_kv_lmdb_opts {
	size_t map_size;        /* initial LMDB map size (1 GiB) */
	size_t map_size_max;    /* the map doubles on demand up to this (64 GiB) */
	int64_t log_keep;       /* changes kept for watches (100000) */
	uint64_t log_max_bytes; /* and at most this many bytes of them (256 MiB) */
	bool sync;              /* fsync at each commit (true; off only in tests) */
};

void dm_kv_lmdb_opts_default(struct dm_kv_lmdb_opts *out);

/*
 * Opens the embedded store in directory dir (created when missing, mode
 * 0700; holds data.mdb, lock.mdb and dm-kv.lock). One process at a time:
 * a second open fails with DM_EBUSY. opts may be NULL.
 */
int dm_kv_open_lmdb(struct dm_kv **out, const char *dir, struct dm_err *err);
int dm_kv_open_lmdb_opts(struct dm_kv **out, const char *dir, const struct dm_kv_lmdb_opts *opts,
			 struct dm_err *err);

/* Options of the etcd backend. */
struct dm_kv_etcd_opts {
	int64_t request_timeout_ms; /* one call, failovers included (5000) */
	int64_t connect_timeout_ms; /* one connection to one member (2000) */
	/* https:// endpoints: the CA that signed the members' certificates
	 * (NULL: the system's), and a client certificate and its key for a
	 * cluster that asks for one (NULL: none); files, PEM */
	const char *ca_file;
	const char *cert_file;
	const char *key_file;
	/* etcd's authentication: a user and its password (NULL: none) */
	const char *user;
	const char *password;
};

void dm_kv_etcd_opts_default(struct dm_kv_etcd_opts *out);

/*
 * Opens the store kept in an etcd (3.4 or later) cluster, through its v3
 * JSON gateway. endpoints: the members' client URLs, comma-separated
 * ("https://10.0.0.1:2379,https://10.0.0.2:2379"; http:// for a cluster
 * without TLS). An https:// member must show a certificate the CA
 * (opts->ca_file) signed for its address. Fails, naming them, when
 * none answers (DM_EUNAVAILABLE, DM_ETIMEOUT). opts may be NULL.
 *
 * Every call has the request deadline: a member that cannot be reached
 * is skipped for the next; a write whose answer is lost fails ("may or
 * may not have been applied") rather than risk applying it twice. Watches
 * reconnect by themselves, to the next member if need be, and deliver
 * every event exactly once across reconnects. Limits beyond kv.h's: a
 * transaction must fit etcd's --max-request-bytes (1.5 MiB by default:
 * DM_ETOOBIG), and etcd may raise a short lease TTL to its minimum.
 *
 * With a user, every request carries a token from etcd's Authenticate,
 * taken at open and again whenever etcd says it is no longer valid (a
 * request refused for that is sent once more, with the new token); a wrong
 * user or password fails the open with DM_EPERM.
 */
int dm_kv_open_etcd(struct dm_kv **out, const char *endpoints, const struct dm_kv_etcd_opts *opts,
		    struct dm_err *err);

/* etcd only: makes user (password) with etcd's root role and turns etcd's
 * authentication on; every later request needs a user. DM_EUNSUPPORTED on
 * another backend. */
int dm_kv_etcd_enable_auth(struct dm_kv *kv, const char *user, const char *password,
			   struct dm_err *err);

/* Closes the store; accepts NULL. Watches still running are canceled and
 * freed (their handles become invalid). Not from a watch callback. */
void dm_kv_free(struct dm_kv *kv);

/* The backend's name: "lmdb", "etcd". */
const char *dm_kv_backend(const struct dm_kv *kv);

/* The store's current revision. */
int dm_kv_revision(struct dm_kv *kv, int64_t *out, struct dm_err *err);

/* Reads key into out (initialised here; release it). DM_ENOTFOUND. */
int dm_kv_get(struct dm_kv *kv, struct dm_kv_kv *out, const char *key, struct dm_err *err);

/*
 * Reads every key that starts with prefix ("" for all), sorted bytewise,
 * into out (initialised here; release it), with the store's revision.
 * limit 0 means all; otherwise at most limit keys, and out->more tells
 * whether others were left out.
 */
int dm_kv_range(struct dm_kv *kv, struct dm_kv_kvs *out, const char *prefix, size_t limit,
		struct dm_err *err);

/*
 * Writes key = value (value_len bytes). lease is 0 or a granted lease the
 * key is then attached to (DM_ENOTFOUND when it does not exist); a put
 * without a lease detaches the key from its old one. out (may be NULL)
 * receives the new revision, which is also the key's mod_revision.
 */
int dm_kv_put(struct dm_kv *kv, int64_t *out, const char *key, const void *value, size_t value_len,
	      int64_t lease, struct dm_err *err);

/*
 * Compare-and-swap: as dm_kv_put, if key's mod_revision is still expected;
 * expected 0 means "key must not exist" (create if absent). Otherwise
 * DM_ECONFLICT and nothing changes.
 */
int dm_kv_cas(struct dm_kv *kv, int64_t *out, const char *key, int64_t expected, const void *value,
	      size_t value_len, int64_t lease, struct dm_err *err);

/* Deletes key; DM_ENOTFOUND when absent. out: the new revision. */
int dm_kv_delete(struct dm_kv *kv, int64_t *out, const char *key, struct dm_err *err);

/* Deletes every key under prefix in one revision. Deleting nothing is not
 * an error: out is then the current revision. deleted may be NULL. */
int dm_kv_delete_prefix(struct dm_kv *kv, int64_t *out, const char *prefix, size_t *deleted,
			struct dm_err *err);

/*
 * A transaction: if every compare holds, all ops are applied at one new
 * revision; otherwise DM_ECONFLICT (the message names the first key that
 * failed) and nothing changes. A compare holds when the key's mod_revision
 * equals mod_revision (0: the key does not exist). Ops are puts, deletes
 * (of a key that may be absent) and prefix deletes; a key may be written
 * by one op only (DM_EINVAL). At most DM_KV_TXN_MAX_OPS compares and as
 * many ops (DM_ETOOBIG). A transaction whose ops change nothing leaves the
 * revision as it is. Maps onto etcd's /v3/kv/txn directly.
 */
struct dm_kv_cmp {
	const char *key;
	int64_t mod_revision;
};

enum dm_kv_op_type {
	DM_KV_OP_PUT = 1,
	DM_KV_OP_DELETE,
	DM_KV_OP_DELETE_PREFIX,
};

struct dm_kv_op {
	enum dm_kv_op_type type;
	const char *key;   /* the prefix, for DM_KV_OP_DELETE_PREFIX */
	const void *value; /* DM_KV_OP_PUT only */
	size_t value_len;
	int64_t lease; /* DM_KV_OP_PUT only; 0 for none */
};

int dm_kv_txn(struct dm_kv *kv, int64_t *out, const struct dm_kv_cmp *cmps, size_t ncmps,
	      const struct dm_kv_op *ops, size_t nops, struct dm_err *err);

/*
 * Forgets history up to and including revision rev: watches from a
 * revision below rev fail afterwards. rev above the current revision is
 * DM_EINVAL; a rev already compacted is a no-op. The embedded backend also
 * compacts by itself, keeping the last opts.log_keep changes.
 */
int dm_kv_compact(struct dm_kv *kv, int64_t rev, struct dm_err *err);

/* Watches. */
enum dm_kv_event_type {
	DM_KV_EVENT_PUT = 1, /* key now has value */
	DM_KV_EVENT_DELETE,  /* key is gone (deleted, prefix-deleted, lease ended) */
	DM_KV_EVENT_FAILED,  /* the watch has stopped for good; see err */
};

struct dm_kv_event {
	enum dm_kv_event_type type;
	const char *key; /* NUL-terminated; NULL for FAILED */
	size_t key_len;
	const void *value; /* PUT: the new value, NUL-terminated; else NULL */
	size_t value_len;
	int64_t revision;         /* the change's revision (the key's mod_revision) */
	int64_t create_revision;  /* PUT only */
	int64_t version;          /* PUT only */
	int64_t lease;            /* PUT only */
	const struct dm_err *err; /* FAILED only: DM_KV_ECOMPACTED, DM_EIO... */
};

typedef void (*dm_kv_watch_fn)(const struct dm_kv_event *ev, void *ctx);

/*
 * Calls fn(ev, ctx) for every change of a key under prefix with a revision
 * greater than from_revision (0: all history still kept), in revision
 * order (changes of one revision in the order they were made), each
 * exactly once, from a thread of the watch's own. fn may call any dm_kv
 * function, including dm_kv_watch_cancel of its own watch, but not
 * dm_kv_free; while it runs, no later event of this watch is delivered.
 *
 * Fails at once with DM_KV_ECOMPACTED when from_revision is older than the
 * kept history. Should history the watch still needs be compacted later
 * (a callback too slow for the rate of changes), fn gets one
 * DM_KV_EVENT_FAILED event and nothing after it. Either way the recovery
 * is dm_kv_range then a new watch from the revision it returns.
 *
 * out must be passed to dm_kv_watch_cancel exactly once (also after a
 * FAILED event) to free it.
 */
int dm_kv_watch(struct dm_kv *kv, struct dm_kv_watch **out, const char *prefix,
		int64_t from_revision, dm_kv_watch_fn fn, void *ctx, struct dm_err *err);

/* Stops and frees a watch; accepts NULL. Called from another thread, fn is
 * not running when it returns and is never called again; called from fn,
 * fn is not called again after it returns. */
void dm_kv_watch_cancel(struct dm_kv_watch *w);

/* Leases. */

/* Grants a lease of ttl seconds (1..DM_KV_LEASE_TTL_MAX); out: its id (> 0). */
int dm_kv_lease_grant(struct dm_kv *kv, int64_t *out, int64_t ttl, struct dm_err *err);
/* Restarts lease id's TTL; out (may be NULL): the TTL. DM_ENOTFOUND when
 * the lease has expired or never existed. */
int dm_kv_lease_keepalive(struct dm_kv *kv, int64_t *out, int64_t id, struct dm_err *err);
/* Ends lease id now, deleting its keys (one revision). DM_ENOTFOUND. */
int dm_kv_lease_revoke(struct dm_kv *kv, int64_t id, struct dm_err *err);

#endif
