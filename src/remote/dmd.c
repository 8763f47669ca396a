/*
 * dmd.c - the dmd backend of remote.h: a libcurl client for another
 * dmd's /objects endpoints (see dmd.h).
 *
 * Invariants:
 *   - Every request carries basic authentication, never goes through a
 *     proxy, connects within DM_REMOTE_CONNECT_TIMEOUT and is dropped after
 *     DM_REMOTE_STALL_TIMEOUT seconds without a byte moving (update: a
 *     total deadline instead, since the remote dot may think for long).
 *   - Every answer is read into a bounded buffer or the bounded record
 *     parser: nothing the remote sends makes us allocate without limit.
 *   - A put slot is busy exactly while its easy handle is in the multi
 *     handle; its body is not touched while busy. At most one failure is
 *     kept (the first); once set, no new batch is submitted.
 *   - wire counts the request and answer bodies of finished transfers.
 */
#include "remote/dmd.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "util/buf.h"
#include "util/curl.h"
#include "util/err.h"
#include "util/log.h"
#include "util/tls.h"

#include "util/banned.h"

#define ERROR_BODY_MAX (64u * 1024)
#define PUT_ANSWER_MAX (64u * 1024)
#define DRIVE_EVERY    (256u * 1024) /* pump the uploads after this many new bytes */
#define IO_BUFFER      (1u << 20)    /* curl's socket buffers, each way */

struct batch {
	struct dmd_conn *r;
	CURL *easy;
	bool busy;
	struct dm_buf body; /* the records of this request */
	struct dm_buf resp; /* the answer */
	uint64_t objects, raw;
	char errbuf[CURL_ERROR_SIZE];
};

struct dmd_conn {
	struct dm_remote_conn iface; /* first: what remote.h sees */
	char *where;                 /* HOST:PORT */
	char *base; /* https://HOST:PORT, or http:// without a CA */
	char *ca;   /* the pinned CA (PEM), or NULL */
	char ca_fp[DM_TLS_FINGERPRINT_LEN + 1];
	char *user;
	char *key;
	bool is_node; /* a node calling another: node, no user and key */
	struct dm_curl_node node;
	CURL *easy;                 /* for the one-at-a-time calls */
	struct curl_slist *headers; /* every request's, with the session once there is one */
	char *on_behalf;            /* the DM_ON_BEHALF_HEADER line, or NULL */
	bool (*cancelled)(void *ctx);
	void *cancel_ctx;
	uint64_t wire;

	/* uploads */
	CURLM *multi;
	struct batch slots[DM_REMOTE_INFLIGHT];
	struct dm_buf cur; /* the batch being filled */
	uint64_t cur_objects, cur_raw;
	size_t undriven; /* bytes added since the uploads were last pumped */
	char *put_url;
	void (*on_ack)(void *ctx, uint64_t objects, uint64_t bytes);
	void *ack_ctx;
	int put_rc;
	struct dm_err put_err;
};

static const struct dm_remote_ops dmd_ops;
static void dmd_free(struct dm_remote_conn *conn);

/* The headers of every request: with session (NULL: none yet) as the
 * DM_WIRE_SESSION_HEADER. NULL when out of memory. */
static struct curl_slist *request_headers(const struct dmd_conn *r, const char *session)
{
	struct curl_slist *h = curl_slist_append(NULL, "Expect:");
	char *line = session ? dm_asprintf("%s: %s", DM_WIRE_SESSION_HEADER, session) : NULL;

	if (h)
		h = curl_slist_append(h, "Content-Type: application/octet-stream");
	if (h && r->on_behalf)
		h = curl_slist_append(h, r->on_behalf);
	if (h && session)
		h = line ? curl_slist_append(h, line) : NULL;
	free(line);
	return h;
}

int dm_remote_dmd_open(struct dm_remote_conn **out, const struct dm_remote_addr *addr,
		       struct dm_err *err)
{
	struct dmd_conn *r;
	bool v6;

	*out = NULL;
	if (!addr->host || !*addr->host || addr->port <= 0 || addr->port > 65535)
		return dm_err_set(err, DM_EINVAL, "invalid remote address '%s:%d'",
				  addr->host ? addr->host : "", addr->port);
	if (dm_curl_global_init(err))
		return err->code;
	r = dm_xcalloc(1, sizeof(*r));
	r->iface.ops = &dmd_ops;
	v6 = strchr(addr->host, ':') != NULL;
	r->where = dm_asprintf(v6 ? "[%s]:%d" : "%s:%d", addr->host, addr->port);
	r->base = dm_asprintf("%s://%s", addr->ca ? "https" : "http", r->where ? r->where : "");
	if (addr->ca) {
		r->ca = dm_xstrdup(addr->ca);
		if (dm_tls_fingerprint(r->ca_fp, r->ca, err)) {
			dmd_free(&r->iface);
			return dm_err_set(err, DM_EINVAL,
					  "the CA given for dm server '%s' is not a certificate",
					  addr->host);
		}
	}
	if (addr->ca && addr->node) {
		r->is_node = true;
		r->node = *addr->node;
	}
	r->user = dm_xstrdup(addr->user ? addr->user : "");
	r->key = dm_xstrdup(addr->api_key ? addr->api_key : "");
	r->easy = curl_easy_init();
	r->multi = curl_multi_init();
	if (addr->on_behalf)
		r->on_behalf = dm_asprintf("%s: %s", DM_ON_BEHALF_HEADER, addr->on_behalf);
	r->headers = request_headers(r, NULL);
	dm_buf_init(&r->cur, 0);
	for (int i = 0; i < DM_REMOTE_INFLIGHT; i++) {
		r->slots[i].r = r;
		r->slots[i].easy = curl_easy_init();
		dm_buf_init(&r->slots[i].body, 0);
		dm_buf_init(&r->slots[i].resp, PUT_ANSWER_MAX);
		if (!r->slots[i].easy)
			r->easy = NULL; /* reported below */
	}
	if (!r->where || !r->base || !r->easy || !r->multi || !r->headers ||
	    (addr->on_behalf && !r->on_behalf)) {
		dmd_free(&r->iface);
		return dm_err_set(err, DM_ENOMEM, "cannot make a libcurl handle");
	}
	*out = &r->iface;
	return 0;
}

static void dmd_free(struct dm_remote_conn *conn)
{
	struct dmd_conn *r = (struct dmd_conn *)conn;

	if (!r)
		return;
	for (int i = 0; i < DM_REMOTE_INFLIGHT; i++) {
		struct batch *b = &r->slots[i];

		if (b->busy)
			curl_multi_remove_handle(r->multi, b->easy);
		curl_easy_cleanup(b->easy);
		dm_buf_release(&b->body);
		dm_buf_release(&b->resp);
	}
	curl_multi_cleanup(r->multi);
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	free(r->on_behalf);
	dm_buf_release(&r->cur);
	free(r->where);
	free(r->base);
	free(r->user);
	if (r->key) {
		explicit_bzero(r->key, strlen(r->key));
		free(r->key);
	}
	free(r->put_url);
	free(r->ca);
	free(r);
}

static const char *dmd_where(const struct dm_remote_conn *conn)
{
	const struct dmd_conn *r = (const struct dmd_conn *)conn;

	return r->where;
}

static void dmd_set_cancel(struct dm_remote_conn *conn, bool (*cancelled)(void *ctx), void *ctx)
{
	struct dmd_conn *r = (struct dmd_conn *)conn;

	r->cancelled = cancelled;
	r->cancel_ctx = ctx;
}

static uint64_t dmd_wire_bytes(const struct dm_remote_conn *conn)
{
	const struct dmd_conn *r = (const struct dmd_conn *)conn;

	return r->wire;
}

static bool is_cancelled(const struct dmd_conn *r)
{
	return r->cancelled && r->cancelled(r->cancel_ctx);
}

static int on_progress(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	return is_cancelled(p) ? 1 : 0;
}

/* How long a request may take: `stall` is one of these (true is STALL). */
enum { WHOLE = 0, STALL = 1, HELLO = 2 };

/* The options every request shares. */
static void setup(struct dmd_conn *r, CURL *e, const char *url, char *errbuf, int stall)
{
	struct dm_curl_request req = {
		.url = url,
		.user = r->is_node ? NULL : r->user,
		.password = r->is_node ? NULL : r->key,
		.headers = r->headers,
		.agent = "dmd/" DM_VERSION,
		.connect_timeout = DM_REMOTE_CONNECT_TIMEOUT,
		.errbuf = errbuf,
		.ca_pem = r->ca,
		.node = r->is_node ? &r->node : NULL,
	};

	dm_curl_setup(e, &req);
	if (stall == HELLO) {
		/* the first request: a peer that accepts but never answers fails fast */
		curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)DM_REMOTE_HELLO_TIMEOUT);
	} else if (stall) {
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)DM_REMOTE_STALL_TIMEOUT);
	} else {
		curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)DM_REMOTE_UPDATE_TIMEOUT);
	}
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 5L);
	/* big socket reads and writes: a stream of records moves in few calls */
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)IO_BUFFER);
	curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, (long)IO_BUFFER);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, r);
}

static void count_wire(struct dmd_conn *r, CURL *e)
{
	curl_off_t up = 0, down = 0;

	curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &up);
	curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &down);
	r->wire += (uint64_t)up + (uint64_t)down;
}

/* A failed transfer as one of our errors. */
static int transport_error(struct dmd_conn *r, CURL *e, CURLcode cc, const char *errbuf,
			   struct dm_err *err)
{
	long os_errno = 0;
	curl_off_t connected = 0;
	const char *why;

	if (cc == CURLE_ABORTED_BY_CALLBACK && is_cancelled(r))
		return dm_err_set(err, DM_ECANCELED, "transfer canceled");
	curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
	curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connected);
	why = os_errno ? strerror((int)os_errno) : (*errbuf ? errbuf : curl_easy_strerror(cc));
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
		return dm_err_set(err, DM_EUNAVAILABLE, "cannot reach dm server at %s: %s",
				  r->where, why);
	case CURLE_COULDNT_RESOLVE_HOST:
		return dm_err_set(err, DM_EUNAVAILABLE,
				  "cannot reach dm server at %s: unknown host", r->where);
	case CURLE_OPERATION_TIMEDOUT:
		/* a reused connection has no connect time: tell by the words */
		if (strstr(errbuf, "too slow"))
			return dm_err_set(
				err, DM_EUNAVAILABLE,
				"dm server at %s stopped answering: nothing moved for %d s",
				r->where, DM_REMOTE_STALL_TIMEOUT);
		if (connected == 0 && strstr(errbuf, "onnect"))
			return dm_err_set(err, DM_EUNAVAILABLE,
					  "cannot reach dm server at %s: connection timed out",
					  r->where);
		return dm_err_set(err, DM_EUNAVAILABLE,
				  "dm server at %s did not answer in time (%s)", r->where, why);
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return dm_err_set(err, DM_EUNAVAILABLE,
				  "lost the connection to dm server at %s: %s", r->where, why);
	default:
		if (r->ca && dm_curl_is_tls_failure(cc))
			return dm_client_tls_refusal(err, r->where, r->where, r->ca_fp,
						     r->is_node ? &r->node : NULL, errbuf);
		return dm_err_set(err, DM_EIO, "cannot talk to dm server at %s: %s", r->where,
				  *errbuf ? errbuf : curl_easy_strerror(cc));
	}
}

/* An answer that is not 200: its JSON-RPC error, or the status. */
static int status_error(struct dmd_conn *r, long status, const struct dm_buf *body,
			const char *what, struct dm_err *err)
{
	json_t *doc, *error, *msg, *data, *name;
	int rc;

	if (status == 401)
		return dm_err_set(err, DM_EPERM,
				  "permission denied: invalid user name or API key for dm server "
				  "at %s",
				  r->where);
	doc = body->len ? json_loadb((const char *)body->data, body->len, 0, NULL) : NULL;
	error = json_object_get(doc, "error");
	msg = json_object_get(error, "message");
	data = json_object_get(error, "data");
	name = json_object_get(data, "code");
	if (json_is_string(msg) && json_is_string(name)) {
		int code = dm_err_from_json_name(json_string_value(name));

		rc = dm_err_set(err, code ? code : DM_EINTERNAL, "%s", json_string_value(msg));
	} else if (status == 404) {
		rc = dm_err_set(err, DM_EUNSUPPORTED,
				"dm server at %s does not serve %s (an older dm?)", r->where, what);
	} else {
		rc = dm_err_set(err, DM_EPROTO, "dm server at %s answered HTTP %ld to %s", r->where,
				status, what);
	}
	json_decref(doc);
	return rc;
}

struct sink {
	struct dm_buf buf;
	bool too_big;
};

static size_t to_sink(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;

	if (dm_buf_add(&s->buf, data, size * nmemb)) {
		s->too_big = true;
		return 0;
	}
	return size * nmemb;
}

/*
 * One request on r->easy: GET path when body is NULL, else POST body.
 * The answer goes to write(ctx); *status gets the HTTP status.
 */
static int perform(struct dmd_conn *r, const char *path, const void *body, size_t len, int stall,
		   curl_write_callback write, void *ctx, long *status, struct dm_err *err)
{
	char errbuf[CURL_ERROR_SIZE];
	char *url = dm_asprintf("%s%s", r->base, path);
	CURLcode cc;
	int rc = 0;

	if (!url)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	if (is_cancelled(r)) {
		free(url);
		return dm_err_set(err, DM_ECANCELED, "transfer canceled");
	}
	setup(r, r->easy, url, errbuf, stall);
	if (body) {
		curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, write);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, ctx);
	cc = curl_easy_perform(r->easy);
	count_wire(r, r->easy);
	*status = 0;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, status);
	if (cc != CURLE_OK)
		rc = cc == CURLE_WRITE_ERROR
			     ? dm_err_set(err, DM_EIO, "cannot take the answer of dm server at %s",
					  r->where)
			     : transport_error(r, r->easy, cc, errbuf, err);
	free(url);
	return rc;
}

/* A request whose answer is JSON (bounded): *out a new reference. */
static int json_call(struct dmd_conn *r, const char *path, const void *body, size_t len, int stall,
		     const char *what, json_t **out, struct dm_err *err)
{
	struct sink s = {DM_BUF_INIT, false};
	json_error_t jerr;
	long status = 0;
	int rc;

	*out = NULL;
	dm_buf_init(&s.buf, DM_REMOTE_JSON_MAX);
	rc = perform(r, path, body, len, stall, to_sink, &s, &status, err);
	if (rc == DM_EIO && s.too_big)
		rc = dm_err_set(err, DM_ETOOBIG, "the answer of dm server at %s to %s is too large",
				r->where, what);
	if (rc)
		goto done;
	if (status != 200) {
		rc = status_error(r, status, &s.buf, what, err);
		goto done;
	}
	*out = json_loadb((const char *)s.buf.data, s.buf.len, 0, &jerr);
	if (!*out || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		rc = dm_err_set(err, DM_EPROTO, "invalid answer from dm server at %s to %s: %s",
				r->where, what, jerr.text);
	}
done:
	dm_buf_release(&s.buf);
	return rc;
}

static int dmd_versions(struct dm_remote_conn *conn, struct dm_err *err)
{
	struct dmd_conn *r = (struct dmd_conn *)conn;
	json_t *doc = NULL, *list, *v;
	struct dm_buf theirs = DM_BUF_INIT;
	bool ok = false;
	size_t i;
	int rc = json_call(r, "/objects/versions", NULL, 0, HELLO, "'versions'", &doc, err);

	if (rc)
		return rc;
	list = json_object_get(doc, "versions");
	json_array_foreach(list, i, v)
	{
		if (json_is_integer(v) && json_integer_value(v) == DM_REMOTE_VERSION)
			ok = true;
		dm_buf_addf(&theirs, "%s%lld", i ? "," : "",
			    json_is_integer(v) ? (long long)json_integer_value(v) : -1LL);
	}
	if (!ok)
		rc = dm_err_set(err, DM_EUNSUPPORTED,
				"remote '%s' speaks transfer versions [%s]; this dm speaks [%d]",
				r->where, theirs.data ? (const char *)theirs.data : "",
				DM_REMOTE_VERSION);
	dm_buf_release(&theirs);
	json_decref(doc);
	return rc;
}

/* "/objects/v1/NAME?KEY=escaped(value)" */
static char *path_with(struct dmd_conn *r, const char *name, const char *key, const char *value)
{
	char *esc = curl_easy_escape(r->easy, value, 0);
	char *p = esc ? dm_asprintf("/objects/v1/%s?%s=%s", name, key, esc) : NULL;

	curl_free(esc);
	return p;
}

/* The session `refs` answered (if any) goes with every later request.
 * No upload is in flight here: a transfer asks refs before it sends. */
static void keep_session(struct dmd_conn *r)
{
	struct curl_header *h = NULL;
	struct curl_slist *next;
	const char *v;

	if (curl_easy_header(r->easy, DM_WIRE_SESSION_HEADER, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return;
	v = h->value;
	if (!*v || strlen(v) > DM_WIRE_SESSION_MAX || strspn(v, "0123456789abcdef") != strlen(v))
		return;
	next = request_headers(r, v);
	if (!next)
		return;
	curl_slist_free_all(r->headers);
	r->headers = next;
}

static int dmd_refs(struct dm_remote_conn *conn, const char *dot, bool for_push, json_t **out,
		    struct dm_err *err)
{
	struct dmd_conn *r = (struct dmd_conn *)conn;
	char *path = path_with(r, "refs", "dot", dot), *full = NULL;
	int rc;

	if (path)
		full = for_push ? dm_asprintf("%s&for=push", path) : dm_xstrdup(path);
	free(path);
	if (!full)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	rc = json_call(r, full, NULL, 0, true, "'refs'", out, err);
	free(full);
	if (!rc || rc == DM_ENOTFOUND)
		keep_session(r);
	return rc;
}

static int dmd_missing(struct dm_remote_conn *conn, const dm_oid *ids, size_t n, struct dm_buf *out,
		       struct dm_err *err)
{
	struct dmd_conn *r = (struct dmd_conn *)conn;
	struct sink s = {DM_BUF_INIT, false};
	long status = 0;
	size_t got = 0;
	int rc;

	if (n > DM_WIRE_MAX_IDS)
		return dm_err_set(err, DM_EINVAL, "too many ids (%zu) for one request", n);
	dm_buf_init(&s.buf, (size_t)n * DM_OID_RAWSZ + ERROR_BODY_MAX);
	rc = perform(r, "/objects/v1/missing", n ? (const void *)ids : "", n * sizeof(*ids), true,
		     to_sink, &s, &status, err);
	if (rc == DM_EIO && s.too_big)
		rc = dm_err_set(err, DM_EPROTO, "dm server at %s answered 'missing' with too much",
				r->where);
	if (!rc && status != 200)
		rc = status_error(r, status, &s.buf, "'missing'", err);
	if (!rc)
		rc = dm_wire_ids_check(s.buf.len, &got, err);
	if (!rc && got > n)
		rc = dm_err_set(err, DM_EPROTO, "dm server at %s lacks more ids than it was asked",
				r->where);
	if (!rc)
		rc = dm_buf_add(out, s.buf.data, s.buf.len);
	dm_buf_release(&s.buf);
	return rc;
}

struct get_ctx {
	struct dmd_conn *r;
	const dm_oid *ids;
	size_t n, next;
	dm_wire_rec_fn fn;
	void *fnctx;
	bool checked;
	long status;
	struct dm_wire_parser parser;
	struct dm_buf errbody;
	int rc;
	struct dm_err err;
};

static int get_rec(void *ctx, const struct dm_pack_rec *rec, const unsigned char *bytes,
		   struct dm_err *err)
{
	struct get_ctx *g = ctx;

	if (g->next >= g->n || dm_oid_cmp(&rec->id, &g->ids[g->next])) {
		char hex[DM_OID_HEXSZ + 1];

		dm_oid_hex(hex, &rec->id);
		return dm_err_set(err, DM_EPROTO,
				  "dm server at %s sent object %s, which was not the one asked for",
				  g->r->where, hex);
	}
	g->next++;
	return g->fn(g->fnctx, rec, bytes, err);
}

static size_t on_get_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct get_ctx *g = arg;
	size_t n = size * nmemb;

	if (!g->checked) {
		curl_easy_getinfo(g->r->easy, CURLINFO_RESPONSE_CODE, &g->status);
		g->checked = true;
	}
	if (g->status != 200) {
		if (g->errbody.len + n <= ERROR_BODY_MAX)
			dm_buf_add(&g->errbody, data, n);
		return n;
	}
	g->rc = dm_wire_parser_feed(&g->parser, data, n, get_rec, g, &g->err);
	return g->rc ? 0 : n;
}

static int dmd_get(struct dm_remote_conn *conn, const char *dot, const dm_oid *ids, size_t n,
		   dm_wire_rec_fn fn, void *ctx, struct dm_err *err)
{
	struct dmd_conn *r = (struct dmd_conn *)conn;
	struct get_ctx g;
	long status = 0;
	char *path;
	int rc;

	if (n > DM_WIRE_MAX_IDS)
		return dm_err_set(err, DM_EINVAL, "too many ids (%zu) for one request", n);
	path = path_with(r, "get", "dot", dot);
	if (!path)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	memset(&g, 0, sizeof(g));
	g.r = r;
	g.ids = ids;
	g.n = n;
	g.fn = fn;
	g.fnctx = ctx;
	dm_wire_parser_init(&g.parser);
	dm_buf_init(&g.errbody, 0);
	rc = perform(r, path, n ? (const void *)ids : "", n * sizeof(*ids), true, on_get_data, &g,
		     &status, err);
	if (g.rc) {
		/* the stream (or what we did with a record) failed */
		*err = g.err;
		rc = g.rc;
	} else if (!rc && status != 200) {
		rc = status_error(r, status, &g.errbody, "'get'", err);
	} else if (!rc) {
		rc = dm_wire_parser_finish(&g.parser, err);
		if (!rc && g.next != n)
			rc = dm_err_set(err, DM_EPROTO,
					"dm server at %s sent %zu of the %zu objects asked for",
					r->where, g.next, n);
	}
	dm_wire_parser_release(&g.parser);
	dm_buf_release(&g.errbody);
	free(path);
	return rc;
}

static int dmd_update(struct dm_remote_conn *conn, json_t *req, json_t **out, struct dm_err *err)
{
	struct dmd_conn *r = (struct dmd_conn *)conn;
	char *body = json_dumps(req, JSON_COMPACT);
	int rc;

	if (!body)
		return dm_err_set(err, DM_ENOMEM, "cannot encode the update");
	rc = json_call(r, "/objects/v1/update", body, strlen(body), false, "'update'", out, err);
	free(body);
	return rc;
}

/* ---- pipelined uploads ---- */

static void dmd_put_begin(struct dm_remote_conn *conn, const char *dot_id,
			  void (*on_ack)(void *ctx, uint64_t objects, uint64_t bytes), void *ctx)
{
	struct dmd_conn *r = (struct dmd_conn *)conn;

	free(r->put_url);
	r->put_url = NULL;
	if (dot_id) {
		char *esc = curl_easy_escape(r->easy, dot_id, 0);

		r->put_url = esc ? dm_asprintf("%s/objects/v1/put?dot_id=%s", r->base, esc) : NULL;
		curl_free(esc);
	} else {
		r->put_url = dm_asprintf("%s/objects/v1/put", r->base);
	}
	r->on_ack = on_ack;
	r->ack_ctx = ctx;
	r->put_rc = 0;
	dm_err_clear(&r->put_err);
	dm_buf_reset(&r->cur);
	r->cur_objects = r->cur_raw = 0;
}

static void put_failed(struct dmd_conn *r, int rc, const struct dm_err *err)
{
	if (!r->put_rc) {
		r->put_rc = rc;
		r->put_err = *err;
	}
}

/* A finished put request: acknowledge its records or keep its error. */
static void reap(struct dmd_conn *r, struct batch *b, CURLcode cc)
{
	struct dm_err err;
	long status = 0;

	dm_err_clear(&err);
	curl_multi_remove_handle(r->multi, b->easy);
	b->busy = false;
	count_wire(r, b->easy);
	curl_easy_getinfo(b->easy, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK) {
		put_failed(r, transport_error(r, b->easy, cc, b->errbuf, &err), &err);
	} else if (status != 200) {
		put_failed(r, status_error(r, status, &b->resp, "'put'", &err), &err);
	} else if (r->on_ack) {
		r->on_ack(r->ack_ctx, b->objects, b->raw);
	}
	dm_buf_reset(&b->body);
	dm_buf_reset(&b->resp);
}

static size_t to_buf(char *data, size_t size, size_t nmemb, void *arg)
{
	struct batch *b = arg;

	return dm_buf_add(&b->resp, data, size * nmemb) ? 0 : size * nmemb;
}

enum drive_until { DRIVE_ONCE, DRIVE_SLOT_FREE, DRIVE_ALL_DONE };

static int busy_count(const struct dmd_conn *r)
{
	int n = 0;

	for (int i = 0; i < DM_REMOTE_INFLIGHT; i++)
		n += r->slots[i].busy;
	return n;
}

/* Runs the uploads in flight: once, or until a slot is free, or until
 * none is left. */
static int drive(struct dmd_conn *r, enum drive_until until, struct dm_err *err)
{
	for (;;) {
		int running = 0, left = 0;
		CURLMcode mc = curl_multi_perform(r->multi, &running);
		CURLMsg *m;

		if (mc != CURLM_OK)
			return dm_err_set(err, DM_EIO, "libcurl: %s", curl_multi_strerror(mc));
		while ((m = curl_multi_info_read(r->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			for (int i = 0; i < DM_REMOTE_INFLIGHT; i++)
				if (r->slots[i].busy && r->slots[i].easy == m->easy_handle) {
					reap(r, &r->slots[i], m->data.result);
					break;
				}
		}
		if (until == DRIVE_ONCE)
			return 0;
		if (until == DRIVE_SLOT_FREE && busy_count(r) < DM_REMOTE_INFLIGHT)
			return 0;
		if (busy_count(r) == 0)
			return 0;
		if (is_cancelled(r))
			return dm_err_set(err, DM_ECANCELED, "transfer canceled");
		mc = curl_multi_poll(r->multi, NULL, 0, 1000, NULL);
		if (mc != CURLM_OK)
			return dm_err_set(err, DM_EIO, "libcurl: %s", curl_multi_strerror(mc));
	}
}

/* Sends the batch being filled as one put request. */
static int submit(struct dmd_conn *r, struct dm_err *err)
{
	struct batch *b = NULL;
	struct dm_buf tmp;
	int rc;

	if (!r->cur.len)
		return 0;
	rc = drive(r, DRIVE_SLOT_FREE, err);
	if (rc)
		return rc;
	if (r->put_rc)
		return 0; /* reported by the caller */
	for (int i = 0; i < DM_REMOTE_INFLIGHT && !b; i++)
		if (!r->slots[i].busy)
			b = &r->slots[i];
	if (!b)
		return dm_err_set(err, DM_EINTERNAL, "no free upload slot");
	if (!r->put_url)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	tmp = b->body;
	b->body = r->cur;
	r->cur = tmp;
	dm_buf_reset(&r->cur);
	b->objects = r->cur_objects;
	b->raw = r->cur_raw;
	r->cur_objects = r->cur_raw = 0;
	dm_buf_reset(&b->resp);
	setup(r, b->easy, r->put_url, b->errbuf, true);
	curl_easy_setopt(b->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(b->easy, CURLOPT_POSTFIELDS, b->body.data);
	curl_easy_setopt(b->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->body.len);
	curl_easy_setopt(b->easy, CURLOPT_WRITEFUNCTION, to_buf);
	curl_easy_setopt(b->easy, CURLOPT_WRITEDATA, b);
	if (curl_multi_add_handle(r->multi, b->easy) != CURLM_OK)
		return dm_err_set(err, DM_EIO, "libcurl: cannot start a request");
	b->busy = true;
	return drive(r, DRIVE_ONCE, err);
}

/* The first failure of the uploads, as a return value. */
static int put_status(struct dmd_conn *r, struct dm_err *err)
{
	if (r->put_rc && err)
		*err = r->put_err;
	return r->put_rc;
}

/* Stops every upload in flight (after a failure). */
static void abort_puts(struct dmd_conn *r)
{
	for (int i = 0; i < DM_REMOTE_INFLIGHT; i++) {
		struct batch *b = &r->slots[i];

		if (b->busy) {
			curl_multi_remove_handle(r->multi, b->easy);
			b->busy = false;
		}
		dm_buf_reset(&b->body);
	}
	dm_buf_reset(&r->cur);
}

/* The end of an upload call: rc, or else the uploads' first failure; a
 * failure is kept (the first one) and stops every upload in flight. */
static int put_end(struct dmd_conn *r, int rc, struct dm_err *err)
{
	if (!rc)
		rc = put_status(r, err);
	if (rc) {
		put_failed(r, rc, err);
		abort_puts(r);
	}
	return rc;
}

static int dmd_put_add(struct dm_remote_conn *conn, const struct dm_pack_rec *rec,
		       const void *bytes, struct dm_err *err)
{
	struct dmd_conn *r = (struct dmd_conn *)conn;
	int rc = put_status(r, err);

	if (rc)
		return rc;
	rc = dm_wire_rec_add(&r->cur, rec, bytes);
	if (rc)
		return dm_err_set(err, rc, "out of memory");
	r->cur_objects++;
	r->cur_raw += rec->raw_len;
	r->undriven += DM_PACK_REC_LEN + rec->stored_len;
	if (r->cur.len >= DM_REMOTE_BATCH) {
		rc = submit(r, err);
		r->undriven = 0;
	} else if (r->undriven >= DRIVE_EVERY && busy_count(r)) {
		rc = drive(r, DRIVE_ONCE, err);
		r->undriven = 0;
	}
	return put_end(r, rc, err);
}

static int dmd_put_sync(struct dm_remote_conn *conn, struct dm_err *err)
{
	struct dmd_conn *r = (struct dmd_conn *)conn;
	int rc = put_status(r, err);

	if (!rc)
		rc = submit(r, err);
	if (!rc)
		rc = drive(r, DRIVE_ALL_DONE, err);
	return put_end(r, rc, err);
}

static const struct dm_remote_ops dmd_ops = {
	.kind = "dmd",
	.free = dmd_free,
	.where = dmd_where,
	.set_cancel = dmd_set_cancel,
	.wire_bytes = dmd_wire_bytes,
	.hello = dmd_versions,
	.refs = dmd_refs,
	.update = dmd_update,
	.missing = dmd_missing,
	.get = dmd_get,
	.put_begin = dmd_put_begin,
	.put_add = dmd_put_add,
	.put_sync = dmd_put_sync,
};
