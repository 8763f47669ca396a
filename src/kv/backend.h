/*
 * backend.h - what a KV backend implements, and the helpers kv.c shares
 * with every backend. Callers of the store include kv/kv.h only.
 *
 * kv.c checks every argument (sizes, NULLs, duplicate keys in a
 * transaction) before it calls a backend, so a backend sees valid input
 * only: keys of 1..DM_KV_KEY_MAX bytes (prefixes may be empty), values of
 * at most DM_KV_VALUE_MAX, positive TTLs. put, cas and delete are
 * transactions at this level.
 *
 * Watches: kv.c owns the handle and its thread. It calls watch_start on
 * the caller's thread (synchronous checks, such as compaction), then runs
 * watch_run on the watch's thread; watch_run delivers events with
 * dm_kv_watch_deliver and returns when dm_kv_watch_stopping is true or
 * after a FAILED event. watch_wake must make a waiting watch_run look at
 * dm_kv_watch_stopping soon.
 */
#ifndef DM_KV_BACKEND_H
#define DM_KV_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/kv.h"

/* What a transaction did. */
struct dm_kv_txn_result {
	int64_t revision; /* the new revision, or the current one if nothing changed */
	size_t deleted;   /* keys deleted by its delete ops */
};

struct dm_kv_ops {
	const char *name;
	/* Frees the backend; watches are gone already. */
	void (*free)(struct dm_kv *kv);
	int (*revision)(struct dm_kv *kv, int64_t *out, struct dm_err *err);
	int (*get)(struct dm_kv *kv, struct dm_kv_kv *out, const char *key, size_t key_len,
	           struct dm_err *err);
	int (*range)(struct dm_kv *kv, struct dm_kv_kvs *out, const char *prefix, size_t prefix_len,
	             size_t limit, struct dm_err *err);
	int (*txn)(struct dm_kv *kv, struct dm_kv_txn_result *out, const struct dm_kv_cmp *cmps,
	           size_t ncmps, const struct dm_kv_op *ops, size_t nops, struct dm_err *err);
	int (*compact)(struct dm_kv *kv, int64_t rev, struct dm_err *err);
	int (*lease_grant)(struct dm_kv *kv, int64_t *out, int64_t ttl, struct dm_err *err);
	int (*lease_keepalive)(struct dm_kv *kv, int64_t *out, int64_t id, struct dm_err *err);
	int (*lease_revoke)(struct dm_kv *kv, int64_t id, struct dm_err *err);
	int (*watch_start)(struct dm_kv *kv, struct dm_kv_watch *w, struct dm_err *err);
	void (*watch_run)(struct dm_kv_watch *w);
	void (*watch_wake)(struct dm_kv_watch *w);
	/* Frees w->impl (may be NULL: watch_start failed early). */
	void (*watch_release)(struct dm_kv_watch *w);
};

/* The head of every backend's handle. */
struct dm_kv {
	const struct dm_kv_ops *ops;
	pthread_mutex_t watch_mu;  /* guards watches, detached, self_cancel, joining */
	pthread_cond_t watch_cond; /* a detached watch thread ended */
	struct dm_kv_watch *watches;
	int detached; /* watch threads that free themselves */
};

struct dm_kv_watch {
	struct dm_kv *kv;
	char *prefix; /* NUL-terminated */
	size_t prefix_len;
	int64_t from; /* deliver revisions > from */
	dm_kv_watch_fn fn;
	void *ctx;
	void *impl; /* the backend's state */
	pthread_t thread;
	atomic_bool stop; /* canceled, or the store is closing */
	bool failed;      /* a FAILED event went out */
	bool self_cancel; /* canceled from its callback: the thread frees w */
	bool joining;     /* dm_kv_free is joining the thread */
	struct dm_kv_watch *next, *prev;
};

/* Fills the head of a new handle / releases it. */
int dm_kv_base_init(struct dm_kv *kv, const struct dm_kv_ops *ops, struct dm_err *err);
void dm_kv_base_release(struct dm_kv *kv);

/* Bytewise key order, shorter first on a common prefix (etcd's order). */
int dm_kv_key_cmp(const char *a, size_t a_len, const char *b, size_t b_len);
bool dm_kv_has_prefix(const char *key, size_t key_len, const char *prefix, size_t prefix_len);
/*
 * etcd's range_end for a prefix: the prefix with its last byte below 0xff
 * incremented and what follows dropped, into out (room for prefix_len + 1
 * bytes); returns its length. A prefix of "" or all 0xff gives "\0" (1
 * byte), which etcd reads as "to the end of the key space".
 */
size_t dm_kv_prefix_end(char *out, const char *prefix, size_t prefix_len);

/* Fills out with copies of key and value (each followed by a NUL). */
int dm_kv_kv_set(struct dm_kv_kv *out, const char *key, size_t key_len, const void *value,
                 size_t value_len, struct dm_err *err);
/* Appends an item to l and returns it (its key and value copied), or NULL
 * after setting err (DM_ENOMEM). */
struct dm_kv_kv *dm_kv_kvs_push(struct dm_kv_kvs *l, const char *key, size_t key_len,
                                const void *value, size_t value_len, struct dm_err *err);
/* Sorts l's items by key. */
void dm_kv_kvs_sort(struct dm_kv_kvs *l);

/* True once the watch should end (canceled, or the store is closing). */
bool dm_kv_watch_stopping(const struct dm_kv_watch *w);
/* Calls the watch's callback unless it is stopping; returns true when
 * watch_run should go on. A FAILED event ends the watch. */
bool dm_kv_watch_deliver(struct dm_kv_watch *w, const struct dm_kv_event *ev);
/* Delivers a FAILED event carrying e. */
void dm_kv_watch_fail(struct dm_kv_watch *w, const struct dm_err *e);

#endif
