/*
 * kv.c - the KV interface: argument checks, dispatch to the backend's
 * function table, the watch handle and its thread, and helpers shared by
 * the backends (key order, result lists, etcd's prefix range_end).
 *
 * Invariants:
 *  - A backend is called with checked arguments only (see backend.h); every
 *    public function here checks before it dispatches.
 *  - put, cas, delete and delete_prefix are one-op transactions, so every
 *    write goes through ops->txn and every backend has one write path.
 *  - A watch is in kv->watches from creation until its handle is freed;
 *    its thread is joined by whoever frees it, except after a cancel from
 *    its own callback, when the thread is detached, frees the handle
 *    itself and is counted in kv->detached until it has.
 *  - A watch's callback runs on its thread only, never after a FAILED
 *    event, and never after dm_kv_watch_cancel has returned.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kv/backend.h"
#include "kv/kv.h"
#include "metrics/catalog.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

/* Keys are quoted in messages up to this many bytes. */
#define KEY_QUOTE_MAX 200

/* The watch whose thread this is, if any. */
static _Thread_local struct dm_kv_watch *current_watch;

/* ---- results ---- */

void dm_kv_kv_init(struct dm_kv_kv *kv)
{
	memset(kv, 0, sizeof(*kv));
}

void dm_kv_kv_release(struct dm_kv_kv *kv)
{
	if (!kv)
		return;
	free(kv->key);
	free(kv->value);
	dm_kv_kv_init(kv);
}

void dm_kv_kvs_init(struct dm_kv_kvs *l)
{
	memset(l, 0, sizeof(*l));
}

void dm_kv_kvs_release(struct dm_kv_kvs *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->len; i++)
		dm_kv_kv_release(&l->items[i]);
	free(l->items);
	dm_kv_kvs_init(l);
}

int dm_kv_kv_set(struct dm_kv_kv *out, const char *key, size_t key_len, const void *value,
                 size_t value_len, struct dm_err *err)
{
	char *k = malloc(key_len + 1);
	char *v = malloc(value_len + 1);

	if (!k || !v) {
		free(k);
		free(v);
		return dm_err_set(err, DM_ENOMEM, "out of memory for a value of %zu bytes",
		                  value_len);
	}
	memcpy(k, key, key_len);
	k[key_len] = '\0';
	if (value_len)
		memcpy(v, value, value_len);
	v[value_len] = '\0';
	dm_kv_kv_release(out);
	out->key = k;
	out->key_len = key_len;
	out->value = v;
	out->value_len = value_len;
	return 0;
}

struct dm_kv_kv *dm_kv_kvs_push(struct dm_kv_kvs *l, const char *key, size_t key_len,
                                const void *value, size_t value_len, struct dm_err *err)
{
	struct dm_kv_kv *item;

	if (l->len == l->alloc) {
		size_t n = l->alloc ? l->alloc * 2 : 16;
		struct dm_kv_kv *items = realloc(l->items, n * sizeof(*items));

		if (!items) {
			dm_err_set(err, DM_ENOMEM, "out of memory for %zu keys", n);
			return NULL;
		}
		l->items = items;
		l->alloc = n;
	}
	item = &l->items[l->len];
	dm_kv_kv_init(item);
	if (dm_kv_kv_set(item, key, key_len, value, value_len, err) < 0)
		return NULL;
	l->len++;
	return item;
}

int dm_kv_key_cmp(const char *a, size_t a_len, const char *b, size_t b_len)
{
	int c = memcmp(a, b, a_len < b_len ? a_len : b_len);

	if (c)
		return c;
	return a_len < b_len ? -1 : a_len > b_len;
}

static int item_cmp(const void *a, const void *b)
{
	const struct dm_kv_kv *x = a, *y = b;

	return dm_kv_key_cmp(x->key, x->key_len, y->key, y->key_len);
}

void dm_kv_kvs_sort(struct dm_kv_kvs *l)
{
	if (l->len > 1)
		qsort(l->items, l->len, sizeof(l->items[0]), item_cmp);
}

bool dm_kv_has_prefix(const char *key, size_t key_len, const char *prefix, size_t prefix_len)
{
	return key_len >= prefix_len && memcmp(key, prefix, prefix_len) == 0;
}

size_t dm_kv_prefix_end(char *out, const char *prefix, size_t prefix_len)
{
	size_t n = prefix_len;

	while (n > 0 && (unsigned char)prefix[n - 1] == 0xff)
		n--;
	if (n == 0) {
		out[0] = '\0';
		return 1;
	}
	memcpy(out, prefix, n);
	out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
	return n;
}

/* ---- argument checks ---- */

static int check_key(const char *key, size_t *len_out, bool may_be_empty, struct dm_err *err)
{
	size_t len;

	if (!key)
		return dm_err_set(err, DM_EINVAL, "key is missing");
	len = strnlen(key, DM_KV_KEY_MAX + 1);
	if (len > DM_KV_KEY_MAX)
		return dm_err_set(err, DM_ETOOBIG, "key '%.*s...' is longer than %d bytes",
		                  KEY_QUOTE_MAX, key, DM_KV_KEY_MAX);
	if (len == 0 && !may_be_empty)
		return dm_err_set(err, DM_EINVAL, "key is empty");
	*len_out = len;
	return 0;
}

static int check_value(const char *key, const void *value, size_t len, struct dm_err *err)
{
	if (!value && len)
		return dm_err_set(err, DM_EINVAL, "value of key '%.*s' is missing", KEY_QUOTE_MAX,
		                  key);
	if (len > DM_KV_VALUE_MAX)
		return dm_err_set(err, DM_ETOOBIG,
		                  "value of key '%.*s' is %zu bytes, over the limit of %d",
		                  KEY_QUOTE_MAX, key, len, DM_KV_VALUE_MAX);
	return 0;
}

static int check_kv(struct dm_kv *kv, struct dm_err *err)
{
	if (!kv)
		return dm_err_set(err, DM_EINVAL, "kv store is missing");
	return 0;
}

/* Whether two ops of one transaction write an overlapping key. */
static bool ops_overlap(const struct dm_kv_op *a, const struct dm_kv_op *b)
{
	size_t al = strlen(a->key), bl = strlen(b->key);

	if (a->type == DM_KV_OP_DELETE_PREFIX && b->type == DM_KV_OP_DELETE_PREFIX)
		return dm_kv_has_prefix(a->key, al, b->key, bl) ||
		       dm_kv_has_prefix(b->key, bl, a->key, al);
	if (a->type == DM_KV_OP_DELETE_PREFIX)
		return dm_kv_has_prefix(b->key, bl, a->key, al);
	if (b->type == DM_KV_OP_DELETE_PREFIX)
		return dm_kv_has_prefix(a->key, al, b->key, bl);
	return al == bl && memcmp(a->key, b->key, al) == 0;
}

static int check_txn(const struct dm_kv_cmp *cmps, size_t ncmps, const struct dm_kv_op *ops,
                     size_t nops, struct dm_err *err)
{
	size_t len;
	int rc;

	if ((ncmps && !cmps) || (nops && !ops))
		return dm_err_set(err, DM_EINVAL, "transaction has missing compares or ops");
	if (ncmps > DM_KV_TXN_MAX_OPS || nops > DM_KV_TXN_MAX_OPS)
		return dm_err_set(err, DM_ETOOBIG,
		                  "transaction has %zu compares and %zu ops, over the limit of %d",
		                  ncmps, nops, DM_KV_TXN_MAX_OPS);
	for (size_t i = 0; i < ncmps; i++) {
		if ((rc = check_key(cmps[i].key, &len, false, err)) < 0)
			return rc;
		if (cmps[i].mod_revision < 0)
			return dm_err_set(err, DM_EINVAL,
			                  "compare of key '%.*s' with revision %lld", KEY_QUOTE_MAX,
			                  cmps[i].key, (long long)cmps[i].mod_revision);
	}
	for (size_t i = 0; i < nops; i++) {
		const struct dm_kv_op *op = &ops[i];

		switch (op->type) {
		case DM_KV_OP_PUT:
			if ((rc = check_key(op->key, &len, false, err)) < 0 ||
			    (rc = check_value(op->key, op->value, op->value_len, err)) < 0)
				return rc;
			if (op->lease < 0)
				return dm_err_set(err, DM_EINVAL, "lease %lld is not a lease id",
				                  (long long)op->lease);
			break;
		case DM_KV_OP_DELETE:
			if ((rc = check_key(op->key, &len, false, err)) < 0)
				return rc;
			break;
		case DM_KV_OP_DELETE_PREFIX:
			if ((rc = check_key(op->key, &len, true, err)) < 0)
				return rc;
			break;
		default:
			return dm_err_set(err, DM_EINVAL, "transaction op %zu has unknown type %d",
			                  i, (int)op->type);
		}
		for (size_t j = 0; j < i; j++)
			if (ops_overlap(&ops[j], op))
				return dm_err_set(err, DM_EINVAL,
				                  "key '%.*s' is written twice in one transaction",
				                  KEY_QUOTE_MAX, op->key);
	}
	return 0;
}

/* ---- dispatch ---- */

int dm_kv_base_init(struct dm_kv *kv, const struct dm_kv_ops *ops, struct dm_err *err)
{
	int rc;

	kv->ops = ops;
	kv->watches = NULL;
	kv->detached = 0;
	if ((rc = pthread_mutex_init(&kv->watch_mu, NULL)) != 0)
		return dm_err_errno(err, rc, "cannot create a mutex");
	if ((rc = pthread_cond_init(&kv->watch_cond, NULL)) != 0) {
		pthread_mutex_destroy(&kv->watch_mu);
		return dm_err_errno(err, rc, "cannot create a condition variable");
	}
	return 0;
}

void dm_kv_base_release(struct dm_kv *kv)
{
	pthread_cond_destroy(&kv->watch_cond);
	pthread_mutex_destroy(&kv->watch_mu);
}

const char *dm_kv_backend(const struct dm_kv *kv)
{
	return kv ? kv->ops->name : "none";
}

/* rc of a call of the backend, timed from t0 in dm_kv_call_duration_seconds;
 * a failure of the backend (not an answer such as "not found" or a
 * compare that did not hold) also in dm_kv_errors_total. call is a literal. */
static int timed(struct dm_kv *kv, const char *call, int64_t t0, int rc)
{
	dm_metric_observe_since(&dm_m_kv_duration, kv->ops->name, call, t0);
	if (rc < 0 && rc != DM_ENOTFOUND && rc != DM_ECONFLICT)
		dm_metric_add(&dm_m_kv_errors, kv->ops->name, call, 1);
	return rc;
}

int dm_kv_revision(struct dm_kv *kv, int64_t *out, struct dm_err *err)
{
	int rc;

	if ((rc = check_kv(kv, err)) < 0)
		return rc;
	if (!out)
		return dm_err_set(err, DM_EINVAL, "revision has nowhere to go");
	return timed(kv, "revision", dm_now_monotonic_ns(), kv->ops->revision(kv, out, err));
}

int dm_kv_get(struct dm_kv *kv, struct dm_kv_kv *out, const char *key, struct dm_err *err)
{
	size_t len;
	int64_t t0;
	int rc;

	if (!out)
		return dm_err_set(err, DM_EINVAL, "value has nowhere to go");
	dm_kv_kv_init(out);
	if ((rc = check_kv(kv, err)) < 0 || (rc = check_key(key, &len, false, err)) < 0)
		return rc;
	t0 = dm_now_monotonic_ns();
	rc = timed(kv, "get", t0, kv->ops->get(kv, out, key, len, err));
	if (rc < 0)
		dm_kv_kv_release(out);
	return rc;
}

int dm_kv_range(struct dm_kv *kv, struct dm_kv_kvs *out, const char *prefix, size_t limit,
                struct dm_err *err)
{
	size_t len;
	int64_t t0;
	int rc;

	if (!out)
		return dm_err_set(err, DM_EINVAL, "range has nowhere to go");
	dm_kv_kvs_init(out);
	if ((rc = check_kv(kv, err)) < 0 || (rc = check_key(prefix, &len, true, err)) < 0)
		return rc;
	t0 = dm_now_monotonic_ns();
	rc = timed(kv, "range", t0, kv->ops->range(kv, out, prefix, len, limit, err));
	if (rc < 0)
		dm_kv_kvs_release(out);
	return rc;
}

int dm_kv_txn(struct dm_kv *kv, int64_t *out, const struct dm_kv_cmp *cmps, size_t ncmps,
              const struct dm_kv_op *ops, size_t nops, struct dm_err *err)
{
	struct dm_kv_txn_result res = {0, 0};
	int64_t t0;
	int rc;

	if ((rc = check_kv(kv, err)) < 0 || (rc = check_txn(cmps, ncmps, ops, nops, err)) < 0)
		return rc;
	t0 = dm_now_monotonic_ns();
	if ((rc = timed(kv, "txn", t0, kv->ops->txn(kv, &res, cmps, ncmps, ops, nops, err))) < 0)
		return rc;
	if (out)
		*out = res.revision;
	return 0;
}

int dm_kv_put(struct dm_kv *kv, int64_t *out, const char *key, const void *value, size_t value_len,
              int64_t lease, struct dm_err *err)
{
	struct dm_kv_op op = {DM_KV_OP_PUT, key, value, value_len, lease};

	return dm_kv_txn(kv, out, NULL, 0, &op, 1, err);
}

int dm_kv_cas(struct dm_kv *kv, int64_t *out, const char *key, int64_t expected, const void *value,
              size_t value_len, int64_t lease, struct dm_err *err)
{
	struct dm_kv_cmp cmp = {key, expected};
	struct dm_kv_op op = {DM_KV_OP_PUT, key, value, value_len, lease};

	return dm_kv_txn(kv, out, &cmp, 1, &op, 1, err);
}

int dm_kv_delete(struct dm_kv *kv, int64_t *out, const char *key, struct dm_err *err)
{
	struct dm_kv_op op = {DM_KV_OP_DELETE, key, NULL, 0, 0};
	struct dm_kv_txn_result res = {0, 0};
	int64_t t0;
	int rc;

	if ((rc = check_kv(kv, err)) < 0 || (rc = check_txn(NULL, 0, &op, 1, err)) < 0)
		return rc;
	t0 = dm_now_monotonic_ns();
	if ((rc = timed(kv, "txn", t0, kv->ops->txn(kv, &res, NULL, 0, &op, 1, err))) < 0)
		return rc;
	if (res.deleted == 0)
		return dm_err_set(err, DM_ENOTFOUND, "key '%.*s' not found", KEY_QUOTE_MAX, key);
	if (out)
		*out = res.revision;
	return 0;
}

int dm_kv_delete_prefix(struct dm_kv *kv, int64_t *out, const char *prefix, size_t *deleted,
                        struct dm_err *err)
{
	struct dm_kv_op op = {DM_KV_OP_DELETE_PREFIX, prefix, NULL, 0, 0};
	struct dm_kv_txn_result res = {0, 0};
	int64_t t0;
	int rc;

	if ((rc = check_kv(kv, err)) < 0 || (rc = check_txn(NULL, 0, &op, 1, err)) < 0)
		return rc;
	t0 = dm_now_monotonic_ns();
	if ((rc = timed(kv, "txn", t0, kv->ops->txn(kv, &res, NULL, 0, &op, 1, err))) < 0)
		return rc;
	if (out)
		*out = res.revision;
	if (deleted)
		*deleted = res.deleted;
	return 0;
}

int dm_kv_compact(struct dm_kv *kv, int64_t rev, struct dm_err *err)
{
	int rc;

	if ((rc = check_kv(kv, err)) < 0)
		return rc;
	if (rev < 0)
		return dm_err_set(err, DM_EINVAL, "cannot compact to revision %lld",
		                  (long long)rev);
	return timed(kv, "compact", dm_now_monotonic_ns(), kv->ops->compact(kv, rev, err));
}

int dm_kv_lease_grant(struct dm_kv *kv, int64_t *out, int64_t ttl, struct dm_err *err)
{
	int64_t t0;
	int rc;

	if ((rc = check_kv(kv, err)) < 0)
		return rc;
	if (!out)
		return dm_err_set(err, DM_EINVAL, "lease id has nowhere to go");
	if (ttl < 1 || ttl > DM_KV_LEASE_TTL_MAX)
		return dm_err_set(err, DM_EINVAL, "lease ttl of %lld s is not within 1..%lld",
		                  (long long)ttl, (long long)DM_KV_LEASE_TTL_MAX);
	t0 = dm_now_monotonic_ns();
	return timed(kv, "lease_grant", t0, kv->ops->lease_grant(kv, out, ttl, err));
}

int dm_kv_lease_keepalive(struct dm_kv *kv, int64_t *out, int64_t id, struct dm_err *err)
{
	int64_t ttl = 0;
	int64_t t0;
	int rc;

	if ((rc = check_kv(kv, err)) < 0)
		return rc;
	if (id <= 0)
		return dm_err_set(err, DM_ENOTFOUND, "lease %lld not found", (long long)id);
	t0 = dm_now_monotonic_ns();
	if ((rc = timed(kv, "lease_keepalive", t0, kv->ops->lease_keepalive(kv, &ttl, id, err))) <
	    0)
		return rc;
	if (out)
		*out = ttl;
	return 0;
}

int dm_kv_lease_revoke(struct dm_kv *kv, int64_t id, struct dm_err *err)
{
	int64_t t0;
	int rc;

	if ((rc = check_kv(kv, err)) < 0)
		return rc;
	if (id <= 0)
		return dm_err_set(err, DM_ENOTFOUND, "lease %lld not found", (long long)id);
	t0 = dm_now_monotonic_ns();
	return timed(kv, "lease_revoke", t0, kv->ops->lease_revoke(kv, id, err));
}

/* ---- watches ---- */

bool dm_kv_watch_stopping(const struct dm_kv_watch *w)
{
	return atomic_load(&w->stop);
}

bool dm_kv_watch_deliver(struct dm_kv_watch *w, const struct dm_kv_event *ev)
{
	if (w->failed || dm_kv_watch_stopping(w))
		return false;
	w->fn(ev, w->ctx);
	if (ev->type == DM_KV_EVENT_FAILED) {
		w->failed = true;
		return false;
	}
	return !dm_kv_watch_stopping(w);
}

void dm_kv_watch_fail(struct dm_kv_watch *w, const struct dm_err *e)
{
	struct dm_kv_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = DM_KV_EVENT_FAILED;
	ev.err = e;
	dm_kv_watch_deliver(w, &ev);
}

static void unlink_watch(struct dm_kv *kv, struct dm_kv_watch *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else if (kv->watches == w)
		kv->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->next = w->prev = NULL;
}

/* Frees a watch that is no longer linked and whose thread has ended. */
static void destroy_watch(struct dm_kv_watch *w)
{
	w->kv->ops->watch_release(w);
	free(w->prefix);
	free(w);
}

static void *watch_main(void *arg)
{
	struct dm_kv_watch *w = arg;
	struct dm_kv *kv = w->kv;
	bool self;

	current_watch = w;
	kv->ops->watch_run(w);
	current_watch = NULL;

	pthread_mutex_lock(&kv->watch_mu);
	self = w->self_cancel;
	if (self)
		unlink_watch(kv, w);
	pthread_mutex_unlock(&kv->watch_mu);
	if (self) {
		destroy_watch(w);
		pthread_mutex_lock(&kv->watch_mu);
		kv->detached--;
		pthread_cond_broadcast(&kv->watch_cond);
		pthread_mutex_unlock(&kv->watch_mu);
	}
	return NULL;
}

int dm_kv_watch(struct dm_kv *kv, struct dm_kv_watch **out, const char *prefix,
                int64_t from_revision, dm_kv_watch_fn fn, void *ctx, struct dm_err *err)
{
	struct dm_kv_watch *w = NULL;
	size_t len;
	int rc;

	if (!out)
		return dm_err_set(err, DM_EINVAL, "watch has nowhere to go");
	*out = NULL;
	if ((rc = check_kv(kv, err)) < 0 || (rc = check_key(prefix, &len, true, err)) < 0)
		return rc;
	if (!fn)
		return dm_err_set(err, DM_EINVAL, "watch of '%.*s' has no callback", KEY_QUOTE_MAX,
		                  prefix);
	if (from_revision < 0)
		return dm_err_set(err, DM_EINVAL, "cannot watch from revision %lld",
		                  (long long)from_revision);
	w = calloc(1, sizeof(*w));
	if (!w || !(w->prefix = malloc(len + 1))) {
		free(w);
		return dm_err_set(err, DM_ENOMEM, "out of memory for a watch");
	}
	memcpy(w->prefix, prefix, len + 1);
	w->prefix_len = len;
	w->kv = kv;
	w->from = from_revision;
	w->fn = fn;
	w->ctx = ctx;
	atomic_init(&w->stop, false);
	if ((rc = kv->ops->watch_start(kv, w, err)) < 0) {
		destroy_watch(w);
		return rc;
	}
	pthread_mutex_lock(&kv->watch_mu);
	w->next = kv->watches;
	if (w->next)
		w->next->prev = w;
	kv->watches = w;
	rc = pthread_create(&w->thread, NULL, watch_main, w);
	if (rc != 0)
		unlink_watch(kv, w);
	pthread_mutex_unlock(&kv->watch_mu);
	if (rc != 0) {
		destroy_watch(w);
		return dm_err_errno(err, rc, "cannot start a watch thread");
	}
	*out = w;
	return 0;
}

/* Stops w's thread from another thread and waits for it. */
static void stop_and_join(struct dm_kv_watch *w)
{
	atomic_store(&w->stop, true);
	w->kv->ops->watch_wake(w);
	pthread_join(w->thread, NULL);
}

void dm_kv_watch_cancel(struct dm_kv_watch *w)
{
	struct dm_kv *kv;

	if (!w)
		return;
	kv = w->kv;
	if (current_watch == w) {
		atomic_store(&w->stop, true);
		pthread_mutex_lock(&kv->watch_mu);
		if (!w->joining) {
			w->self_cancel = true;
			kv->detached++;
			pthread_detach(pthread_self());
		}
		pthread_mutex_unlock(&kv->watch_mu);
		return;
	}
	stop_and_join(w);
	pthread_mutex_lock(&kv->watch_mu);
	unlink_watch(kv, w);
	pthread_mutex_unlock(&kv->watch_mu);
	destroy_watch(w);
}

void dm_kv_free(struct dm_kv *kv)
{
	struct dm_kv_watch *w;

	if (!kv)
		return;
	for (;;) {
		pthread_mutex_lock(&kv->watch_mu);
		for (w = kv->watches; w && w->self_cancel; w = w->next)
			;
		if (w) {
			unlink_watch(kv, w);
			w->joining = true;
		}
		pthread_mutex_unlock(&kv->watch_mu);
		if (!w)
			break;
		stop_and_join(w);
		destroy_watch(w);
	}
	pthread_mutex_lock(&kv->watch_mu);
	while (kv->detached > 0)
		pthread_cond_wait(&kv->watch_cond, &kv->watch_mu);
	pthread_mutex_unlock(&kv->watch_mu);
	kv->ops->free(kv);
}
