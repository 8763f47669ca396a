/*
 * etcd.c - the etcd KV backend: each call of the interface as one request
 * to etcd's v3 JSON gateway (the mapping is in docs/internals/kv.md).
 * Transport and failover are in etcd_http.c, decoding in etcd_json.c,
 * watches in etcd_watch.c.
 *
 * Invariants:
 *  - Every revision a caller sees is etcd's minus one, and every revision
 *    a caller gives is sent plus one (etcd.h), so that an empty store is
 *    at revision 0 on both backends. A caller's compare against 0 ("must
 *    not exist") stays 0, which etcd reads the same way.
 *  - Requests are JSON built here from base64 and decimal digits only, so
 *    nothing in them needs escaping.
 *  - Reads, keepalives and compactions may be sent again after a lost
 *    answer; writes, grants and revokes are sent once (etcd_http.c).
 *  - A range larger than one answer may hold is read in pages at the
 *    revision of the first page, so it is one consistent snapshot.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/backend.h"
#include "kv/etcd.h"
#include "kv/etcd_json.h"
#include "kv/kv.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

#define KEY_QUOTE_MAX 200
/* Keys asked for per page of a range; fewer when an answer is too big. */
#define RANGE_PAGE 256
/* The key whose range gives the store's revision. */
#define REVISION_KEY "/dm/"
/* Times a paged range starts over when its snapshot is compacted away. */
#define RANGE_RESTARTS 3

static const struct dm_kv_ops etcd_ops;

/* ---- requests ---- */

/* A request body being built; the first failure sticks. */
struct req {
	struct dm_buf b;
	int rc;
};

static void req_init(struct req *r)
{
	dm_buf_init(&r->b, 0);
	r->rc = 0;
}

__attribute__((format(printf, 2, 3))) static void req_add(struct req *r, const char *fmt, ...)
{
	va_list ap;

	if (r->rc)
		return;
	va_start(ap, fmt);
	r->rc = dm_buf_vaddf(&r->b, fmt, ap);
	va_end(ap);
}

/* "name":"<base64 of p>" */
static void req_bytes(struct req *r, const char *name, const void *p, size_t n)
{
	req_add(r, "\"%s\":\"", name);
	if (!r->rc)
		r->rc = dm_base64_encode(&r->b, p, n, false);
	req_add(r, "\"");
}

/* "key":..., and with prefix set "range_end":... (every key under it). */
static void req_key(struct req *r, const char *key, size_t len, bool prefix)
{
	char end[DM_KV_KEY_MAX + 1];
	size_t end_len;

	if (!prefix) {
		req_bytes(r, "key", key, len);
		return;
	}
	end_len = dm_kv_prefix_end(end, key, len);
	/* the empty prefix is etcd's "\0" .. "\0": every key */
	if (len == 0)
		req_bytes(r, "key", "", 1);
	else
		req_bytes(r, "key", key, len);
	req_add(r, ",");
	req_bytes(r, "range_end", end, end_len);
}

static int req_fail(struct req *r, struct dm_err *err)
{
	dm_buf_release(&r->b);
	return dm_err_set(err, r->rc == DM_ETOOBIG ? DM_ETOOBIG : DM_ENOMEM,
			  "out of memory for a request to etcd");
}

/* POSTs r's body to path; the answer lands in out. */
static int send_req(struct etcd_kv *k, struct dm_buf *out, const char *path, struct req *r,
		    enum dm_etcd_retry retry, struct dm_err *err)
{
	int rc;

	if (r->rc)
		return req_fail(r, err);
	rc = dm_etcd_call(&k->conn, out, path, (const char *)r->b.data, r->b.len, retry, err);
	dm_buf_release(&r->b);
	return rc;
}

/* POSTs {"<field>":"<value>"} to path: the whole body of a compaction and
 * of each lease call. */
static int send_num(struct etcd_kv *k, struct dm_buf *out, const char *path, const char *field,
		    int64_t value, enum dm_etcd_retry retry, struct dm_err *err)
{
	struct req r;

	req_init(&r);
	req_add(&r, "{\"%s\":\"%lld\"}", field, (long long)value);
	return send_req(k, out, path, &r, retry, err);
}

/* Shows an etcd key-value as a dm one. */
static void kv_to_dm(struct dm_kv_kv *kv)
{
	kv->create_revision = DM_OF_ETCD_REV(kv->create_revision);
	kv->mod_revision = DM_OF_ETCD_REV(kv->mod_revision);
}

/* ---- reads ---- */

static int etcd_revision(struct dm_kv *kv, int64_t *out, struct dm_err *err)
{
	struct etcd_kv *k = (struct etcd_kv *)kv;
	struct dm_buf ans = DM_BUF_INIT;
	int64_t rev;
	struct req r;
	int rc;

	/* any key gives the revision: one in dm's prefix, which a user whose
	 * role covers /dm/ only may read */
	req_init(&r);
	req_add(&r, "{");
	req_bytes(&r, "key", REVISION_KEY, strlen(REVISION_KEY));
	req_add(&r, ",\"count_only\":true}");
	if ((rc = send_req(k, &ans, "/v3/kv/range", &r, DM_ETCD_IDEMPOTENT, err)) == 0 &&
	    (rc = dm_etcd_parse_header(&rev, (const char *)ans.data, ans.len, err)) == 0)
		*out = DM_OF_ETCD_REV(rev);
	dm_buf_release(&ans);
	return rc;
}

static int etcd_get(struct dm_kv *kv, struct dm_kv_kv *out, const char *key, size_t key_len,
		    struct dm_err *err)
{
	struct etcd_kv *k = (struct etcd_kv *)kv;
	struct dm_buf ans = DM_BUF_INIT;
	struct dm_kv_kvs l;
	int64_t count;
	struct req r;
	int rc;

	dm_kv_kvs_init(&l);
	req_init(&r);
	req_add(&r, "{");
	req_key(&r, key, key_len, false);
	req_add(&r, "}");
	if ((rc = send_req(k, &ans, "/v3/kv/range", &r, DM_ETCD_IDEMPOTENT, err)) < 0 ||
	    (rc = dm_etcd_parse_range(&l, &count, (const char *)ans.data, ans.len, err)) < 0)
		goto done;
	if (l.len == 0) {
		rc = dm_err_set(err, DM_ENOTFOUND, "key '%.*s' not found", KEY_QUOTE_MAX, key);
		goto done;
	}
	if (l.len != 1 || l.items[0].key_len != key_len || memcmp(l.items[0].key, key, key_len)) {
		rc = dm_err_set(err, DM_EPROTO, "etcd answered another key for '%.*s'",
				KEY_QUOTE_MAX, key);
		goto done;
	}
	dm_kv_kv_release(out);
	*out = l.items[0];
	dm_kv_kv_init(&l.items[0]);
	kv_to_dm(out);
done:
	dm_kv_kvs_release(&l);
	dm_buf_release(&ans);
	return rc;
}

/* Reads one page of a range into page: up to n keys from `from` (which
 * need not be under the prefix: it is where the last page ended), at
 * etcd revision rev (0: the latest). */
static int range_page(struct etcd_kv *k, struct dm_kv_kvs *page, const char *from, size_t from_len,
		      const char *end, size_t end_len, size_t n, int64_t rev, struct dm_err *err)
{
	struct dm_buf ans = DM_BUF_INIT;
	int64_t count;
	struct req r;
	int rc;

	req_init(&r);
	req_add(&r, "{");
	req_bytes(&r, "key", from, from_len);
	req_add(&r, ",");
	req_bytes(&r, "range_end", end, end_len);
	req_add(&r, ",\"limit\":\"%zu\"", n);
	if (rev)
		req_add(&r, ",\"revision\":\"%lld\"", (long long)rev);
	req_add(&r, "}");
	if ((rc = send_req(k, &ans, "/v3/kv/range", &r, DM_ETCD_IDEMPOTENT, err)) == 0)
		rc = dm_etcd_parse_range(page, &count, (const char *)ans.data, ans.len, err);
	dm_buf_release(&ans);
	return rc;
}

/* Moves page's items to the end of out, checking that they are under
 * the prefix and after what out has. */
static int take_page(struct dm_kv_kvs *out, struct dm_kv_kvs *page, const char *prefix,
		     size_t prefix_len, struct dm_err *err)
{
	for (size_t i = 0; i < page->len; i++) {
		struct dm_kv_kv *it = &page->items[i], *dst;

		if (!dm_kv_has_prefix(it->key, it->key_len, prefix, prefix_len) ||
		    (out->len &&
		     dm_kv_key_cmp(out->items[out->len - 1].key, out->items[out->len - 1].key_len,
				   it->key, it->key_len) >= 0))
			return dm_err_set(err, DM_EPROTO,
					  "etcd answered key '%.*s' outside of the range asked for",
					  KEY_QUOTE_MAX, it->key);
		dst = dm_kv_kvs_push(out, "", 0, NULL, 0, err);
		if (!dst)
			return DM_ENOMEM;
		dm_kv_kv_release(dst);
		*dst = *it;
		dm_kv_kv_init(it);
		kv_to_dm(dst);
	}
	return 0;
}

static int range_once(struct etcd_kv *k, struct dm_kv_kvs *out, const char *prefix,
		      size_t prefix_len, size_t limit, struct dm_err *err)
{
	char end[DM_KV_KEY_MAX + 1], from[DM_KV_KEY_MAX + 1];
	size_t end_len = dm_kv_prefix_end(end, prefix, prefix_len), from_len, page_n = RANGE_PAGE;
	int64_t rev = 0;
	int rc = 0;

	if (prefix_len == 0) {
		from[0] = '\0';
		from_len = 1;
	} else {
		memcpy(from, prefix, prefix_len);
		from_len = prefix_len;
	}
	for (;;) {
		size_t want = limit ? limit - out->len : 0;
		size_t n = want && want < page_n ? want : page_n;
		struct dm_kv_kvs page;
		const struct dm_kv_kv *last;
		size_t got;
		bool more;

		rc = range_page(k, &page, from, from_len, end, end_len, n, rev, err);
		if (rc == DM_ETOOBIG && page_n > 1) {
			page_n = page_n / 8 ? page_n / 8 : 1;
			continue;
		}
		if (rc < 0)
			return rc;
		if (rev == 0) {
			rev = page.revision;
			out->revision = DM_OF_ETCD_REV(rev);
		}
		more = page.more;
		got = page.len;
		rc = take_page(out, &page, prefix, prefix_len, err);
		dm_kv_kvs_release(&page);
		if (rc < 0)
			return rc;
		if (!more)
			return 0;
		if (limit && out->len >= limit) {
			out->more = true;
			return 0;
		}
		if (got == 0)
			return dm_err_set(err, DM_EPROTO, "etcd answered an empty page with more");
		/* the next page starts right after the last key */
		last = &out->items[out->len - 1];
		if (last->key_len + 1 > sizeof(from))
			return dm_err_set(err, DM_EPROTO, "etcd answered a key too long");
		memcpy(from, last->key, last->key_len);
		from[last->key_len] = '\0';
		from_len = last->key_len + 1;
		if (page_n < RANGE_PAGE)
			page_n *= 2;
	}
}

static int etcd_range(struct dm_kv *kv, struct dm_kv_kvs *out, const char *prefix,
		      size_t prefix_len, size_t limit, struct dm_err *err)
{
	struct etcd_kv *k = (struct etcd_kv *)kv;
	int rc;

	for (int i = 0;; i++) {
		rc = range_once(k, out, prefix, prefix_len, limit, err);
		/* a later page's revision was compacted: read it all again */
		if (rc != DM_KV_ECOMPACTED || i == RANGE_RESTARTS)
			return rc;
		dm_kv_kvs_release(out);
	}
}

/* ---- writes ---- */

static void req_op(struct req *r, const struct dm_kv_op *op)
{
	size_t len = strlen(op->key);

	switch (op->type) {
	case DM_KV_OP_PUT:
		req_add(r, "{\"request_put\":{");
		req_key(r, op->key, len, false);
		req_add(r, ",");
		req_bytes(r, "value", op->value ? op->value : "", op->value_len);
		if (op->lease)
			req_add(r, ",\"lease\":\"%lld\"", (long long)op->lease);
		req_add(r, "}}");
		break;
	case DM_KV_OP_DELETE:
		req_add(r, "{\"request_delete_range\":{");
		req_key(r, op->key, len, false);
		req_add(r, "}}");
		break;
	case DM_KV_OP_DELETE_PREFIX:
		req_add(r, "{\"request_delete_range\":{");
		req_key(r, op->key, len, true);
		req_add(r, "}}");
		break;
	}
}

/* The conflict of a failed transaction, worded as the embedded backend
 * words it: the first compare that did not hold. */
static int txn_conflict(const struct dm_etcd_txn *t, const struct dm_kv_cmp *cmps, size_t ncmps,
			struct dm_err *err)
{
	if (t->nranges != ncmps)
		return dm_err_set(err, DM_EPROTO,
				  "etcd answered a failed transaction with %zu "
				  "reads for %zu compares",
				  t->nranges, ncmps);
	for (size_t i = 0; i < ncmps; i++) {
		int64_t mod = t->range_mod[i] ? DM_OF_ETCD_REV(t->range_mod[i]) : 0;
		const char *key = cmps[i].key;

		if (mod == cmps[i].mod_revision)
			continue;
		if (cmps[i].mod_revision == 0)
			return dm_err_set(err, DM_ECONFLICT,
					  "key '%.*s' already exists (mod_revision %lld)",
					  KEY_QUOTE_MAX, key, (long long)mod);
		if (mod == 0)
			return dm_err_set(err, DM_ECONFLICT,
					  "key '%.*s' does not exist (expected mod_revision %lld)",
					  KEY_QUOTE_MAX, key, (long long)cmps[i].mod_revision);
		return dm_err_set(err, DM_ECONFLICT, "key '%.*s' has mod_revision %lld, not %lld",
				  KEY_QUOTE_MAX, key, (long long)mod,
				  (long long)cmps[i].mod_revision);
	}
	return dm_err_set(err, DM_ECONFLICT, "a compare of the transaction did not hold");
}

static int etcd_txn(struct dm_kv *kv, struct dm_kv_txn_result *out, const struct dm_kv_cmp *cmps,
		    size_t ncmps, const struct dm_kv_op *ops, size_t nops, struct dm_err *err)
{
	struct etcd_kv *k = (struct etcd_kv *)kv;
	struct dm_buf ans = DM_BUF_INIT;
	struct dm_etcd_txn t;
	struct req r;
	int rc;

	req_init(&r);
	req_add(&r, "{\"compare\":[");
	for (size_t i = 0; i < ncmps; i++) {
		int64_t mod = cmps[i].mod_revision;

		req_add(&r, "%s{", i ? "," : "");
		req_key(&r, cmps[i].key, strlen(cmps[i].key), false);
		req_add(&r, ",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":\"%lld\"}",
			(long long)(mod ? ETCD_OF_DM_REV(mod) : 0));
	}
	req_add(&r, "],\"success\":[");
	for (size_t i = 0; i < nops; i++) {
		req_add(&r, "%s", i ? "," : "");
		req_op(&r, &ops[i]);
	}
	/* when a compare fails, read the compared keys to say which */
	req_add(&r, "],\"failure\":[");
	for (size_t i = 0; i < ncmps; i++) {
		req_add(&r, "%s{\"request_range\":{", i ? "," : "");
		req_key(&r, cmps[i].key, strlen(cmps[i].key), false);
		req_add(&r, ",\"keys_only\":true}}");
	}
	req_add(&r, "]}");
	rc = send_req(k, &ans, "/v3/kv/txn", &r, DM_ETCD_ONCE, err);
	if (rc == DM_ETOOBIG)
		dm_err_prefix(err,
			      "transaction of %zu ops is too large for etcd (its "
			      "--max-request-bytes)",
			      nops);
	if (rc == DM_ENOTFOUND) {
		/* etcd's only not-found for a txn: a put's lease */
		for (size_t i = 0; i < nops; i++) {
			if (ops[i].type == DM_KV_OP_PUT && ops[i].lease) {
				rc = dm_err_set(err, DM_ENOTFOUND, "lease %lld not found",
						(long long)ops[i].lease);
				break;
			}
		}
	}
	if (rc < 0)
		goto done;
	if ((rc = dm_etcd_parse_txn(&t, (const char *)ans.data, ans.len, err)) < 0)
		goto done;
	if (!t.succeeded) {
		rc = txn_conflict(&t, cmps, ncmps, err);
		goto done;
	}
	if (t.nresponses != nops) {
		rc = dm_err_set(err, DM_EPROTO, "etcd answered %zu results for %zu operations",
				t.nresponses, nops);
		goto done;
	}
	out->revision = DM_OF_ETCD_REV(t.revision);
	out->deleted = (size_t)t.deleted;
done:
	dm_buf_release(&ans);
	return rc;
}

static int etcd_compact(struct dm_kv *kv, int64_t rev, struct dm_err *err)
{
	struct etcd_kv *k = (struct etcd_kv *)kv;
	struct dm_buf ans = DM_BUF_INIT;
	int rc;

	if (rev == 0)
		return 0; /* nothing is before revision 0 */
	rc = send_num(k, &ans, "/v3/kv/compaction", "revision", ETCD_OF_DM_REV(rev),
		      DM_ETCD_IDEMPOTENT, err);
	dm_buf_release(&ans);
	if (rc == DM_KV_ECOMPACTED)
		return 0; /* already forgotten */
	if (rc == DM_EINVAL)
		return dm_err_set(err, DM_EINVAL,
				  "cannot compact to revision %lld, past the current revision",
				  (long long)rev);
	return rc;
}

/* ---- leases ---- */

static int etcd_lease_grant(struct dm_kv *kv, int64_t *out, int64_t ttl, struct dm_err *err)
{
	struct etcd_kv *k = (struct etcd_kv *)kv;
	struct dm_buf ans = DM_BUF_INIT;
	int64_t granted;
	int rc;

	if ((rc = send_num(k, &ans, "/v3/lease/grant", "TTL", ttl, DM_ETCD_ONCE, err)) == 0)
		rc = dm_etcd_parse_lease_grant(out, &granted, (const char *)ans.data, ans.len, err);
	dm_buf_release(&ans);
	return rc;
}

static int etcd_lease_keepalive(struct dm_kv *kv, int64_t *out, int64_t id, struct dm_err *err)
{
	struct etcd_kv *k = (struct etcd_kv *)kv;
	struct dm_buf ans = DM_BUF_INIT;
	struct dm_etcd_error e;
	int rc;

	if ((rc = send_num(k, &ans, "/v3/lease/keepalive", "ID", id, DM_ETCD_IDEMPOTENT, err)) < 0)
		goto done;
	rc = dm_etcd_parse_keepalive(out, &e, (const char *)ans.data, ans.len, err);
	if (rc == 1) {
		bool transient, not_applied;

		rc = dm_err_set(err, dm_etcd_error_code(&e, &transient, &not_applied), "etcd: %s",
				e.message);
	}
	if (rc == 0 && *out == 0)
		rc = DM_ENOTFOUND;
done:
	if (rc == DM_ENOTFOUND)
		dm_err_set(err, DM_ENOTFOUND, "lease %lld not found", (long long)id);
	dm_buf_release(&ans);
	return rc;
}

static int etcd_lease_revoke(struct dm_kv *kv, int64_t id, struct dm_err *err)
{
	struct etcd_kv *k = (struct etcd_kv *)kv;
	struct dm_buf ans = DM_BUF_INIT;
	int64_t rev;
	int rc;

	if ((rc = send_num(k, &ans, "/v3/lease/revoke", "ID", id, DM_ETCD_ONCE, err)) == 0)
		rc = dm_etcd_parse_header(&rev, (const char *)ans.data, ans.len, err);
	if (rc == DM_ENOTFOUND)
		dm_err_set(err, DM_ENOTFOUND, "lease %lld not found", (long long)id);
	dm_buf_release(&ans);
	return rc;
}

/* ---- authentication ---- */

/* One auth call whose answer is a bare header; body from json_pack. */
static int auth_call(struct etcd_kv *k, const char *path, json_t *body, struct dm_err *err)
{
	struct dm_buf ans = DM_BUF_INIT;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int64_t rev;
	int rc;

	json_decref(body);
	if (!text)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	rc = dm_etcd_call(&k->conn, &ans, path, text, strlen(text), DM_ETCD_ONCE, err);
	explicit_bzero(text, strlen(text));
	free(text);
	if (!rc)
		rc = dm_etcd_parse_header(&rev, (const char *)ans.data, ans.len, err);
	dm_buf_release(&ans);
	return rc;
}

int dm_kv_etcd_enable_auth(struct dm_kv *kv, const char *user, const char *password,
			   struct dm_err *err)
{
	struct etcd_kv *k = (struct etcd_kv *)kv;
	int rc;

	if (strcmp(dm_kv_backend(kv), "etcd") != 0)
		return dm_err_set(err, DM_EUNSUPPORTED, "only etcd has users of its own");
	rc = auth_call(k, "/v3/auth/user/add",
		       json_pack("{s:s, s:s}", "name", user, "password", password), err);
	if (!rc)
		rc = auth_call(k, "/v3/auth/user/grant",
			       json_pack("{s:s, s:s}", "user", user, "role", "root"), err);
	if (!rc)
		rc = auth_call(k, "/v3/auth/enable", json_object(), err);
	if (rc)
		dm_err_prefix(err, "cannot turn etcd's authentication on");
	return rc;
}

/* ---- open and close ---- */

void dm_kv_etcd_opts_default(struct dm_kv_etcd_opts *out)
{
	memset(out, 0, sizeof(*out));
	out->request_timeout_ms = 5000;
	out->connect_timeout_ms = 2000;
}

static void etcd_free(struct dm_kv *kv)
{
	struct etcd_kv *k = (struct etcd_kv *)kv;

	if (k->conn_ok)
		dm_etcd_conn_release(&k->conn);
	if (k->base_ok)
		dm_kv_base_release(&k->base);
	free(k);
}

int dm_kv_open_etcd(struct dm_kv **out, const char *endpoints, const struct dm_kv_etcd_opts *opts,
		    struct dm_err *err)
{
	struct dm_kv_etcd_opts o;
	struct etcd_kv *k;
	int64_t rev;
	int rc;

	if (!out)
		return dm_err_set(err, DM_EINVAL, "kv store has nowhere to go");
	*out = NULL;
	if (opts)
		o = *opts;
	else
		dm_kv_etcd_opts_default(&o);
	k = calloc(1, sizeof(*k));
	if (!k)
		return dm_err_set(err, DM_ENOMEM, "out of memory for a kv store");
	if ((rc = dm_etcd_conn_init(&k->conn, endpoints, &o, err)) < 0)
		goto done;
	k->conn_ok = true;
	if ((rc = dm_etcd_reauth(&k->conn, 0, err)) < 0)
		goto done;
	if ((rc = dm_kv_base_init(&k->base, &etcd_ops, err)) < 0)
		goto done;
	k->base_ok = true;
	/* something answers as etcd */
	if ((rc = etcd_revision(&k->base, &rev, err)) < 0)
		goto done;
	*out = &k->base;
	k = NULL;
done:
	if (k)
		etcd_free(&k->base);
	return rc;
}

static const struct dm_kv_ops etcd_ops = {
	.name = "etcd",
	.free = etcd_free,
	.revision = etcd_revision,
	.get = etcd_get,
	.range = etcd_range,
	.txn = etcd_txn,
	.compact = etcd_compact,
	.lease_grant = etcd_lease_grant,
	.lease_keepalive = etcd_lease_keepalive,
	.lease_revoke = etcd_lease_revoke,
	.watch_start = dm_etcd_watch_start,
	.watch_run = dm_etcd_watch_run,
	.watch_wake = dm_etcd_watch_wake,
	.watch_release = dm_etcd_watch_release,
};
