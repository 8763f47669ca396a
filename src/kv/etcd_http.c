/*
 * etcd_http.c - requests to an etcd cluster through its JSON gateway:
 * the endpoints, a pool of libcurl handles, one deadline per call, and
 * failover from one member to the next.
 *
 * Invariants:
 *  - Every transfer has a connect timeout and every call a deadline
 *    (request_ms, failovers included): nothing waits for a silent member
 *    longer than that.
 *  - A request goes to another member (or again) only when doing so
 *    cannot apply it twice: the member was not reached, etcd said it did
 *    not apply it (no leader...), or the request is idempotent. Otherwise
 *    the error says the change may or may not have been applied.
 *  - An answer is read into a buffer bounded by DM_ETCD_MSG_MAX.
 *  - conn->current always names an endpoint; threads may race on it, and
 *    any endpoint is a valid place to start.
 *  - Requests never go through a proxy from the environment and never
 *    follow redirects.
 *  - A member that asks for a client certificate when none was given is
 *    told apart from a lost connection (cert_asked), and never retried.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/etcd.h"
#include "kv/etcd_json.h"
#include "util/buf.h"
#include "util/curl.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

#define NS_PER_MS 1000000LL
/* Pause between two rounds over the members while they elect a leader. */
#define ROUND_PAUSE_MS 50
/* An idempotent request leaves at least this much of its deadline to the
 * next member when one does not answer. */
#define SHARE_MIN_MS 500

static int64_t now_ms(void)
{
	return dm_now_monotonic_ns() / NS_PER_MS;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * NS_PER_MS};

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* ---- endpoints ---- */

/* One endpoint of the list: "http[s]://host[:port][/]", host without
 * spaces, paths, queries or credentials. */
static int add_endpoint(struct dm_etcd_conn *c, const char *s, size_t n, struct dm_err *err)
{
	static const char *const schemes[] = {"http://", "https://"};
	size_t host = 0;

	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !host; i++)
		if (n > strlen(schemes[i]) && strncmp(s, schemes[i], strlen(schemes[i])) == 0)
			host = strlen(schemes[i]);
	if (n > host && s[n - 1] == '/')
		n--;
	if (!host || n <= host)
		return dm_err_set(
			err, DM_EINVAL,
			"etcd endpoint '%.*s' is not an https://host:port (or http://) URL", (int)n,
			s);
	if (n >= DM_ETCD_URL_MAX)
		return dm_err_set(err, DM_EINVAL, "etcd endpoint '%.*s...' is too long", 64, s);
	for (size_t i = host; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch <= ' ' || ch >= 0x7f || strchr("/?#@\\\"'", ch))
			return dm_err_set(err, DM_EINVAL,
					  "etcd endpoint '%.*s' is not an https://host:port (or "
					  "http://) URL",
					  (int)n, s);
	}
	if (c->n == DM_ETCD_ENDPOINTS_MAX)
		return dm_err_set(err, DM_EINVAL, "more than %d etcd endpoints",
				  DM_ETCD_ENDPOINTS_MAX);
	c->urls[c->n] = malloc(n + 1);
	if (!c->urls[c->n])
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	memcpy(c->urls[c->n], s, n);
	c->urls[c->n][n] = '\0';
	c->n++;
	return 0;
}

/* *out = a copy of s (NULL stays NULL); false when out of memory. */
static bool copy_opt(char **out, const char *s)
{
	*out = s ? strdup(s) : NULL;
	return !s || *out;
}

int dm_etcd_conn_init(struct dm_etcd_conn *c, const char *endpoints,
		      const struct dm_kv_etcd_opts *o, struct dm_err *err)
{
	int64_t request_ms = o->request_timeout_ms, connect_ms = o->connect_timeout_ms;
	const char *p;
	int rc;

	memset(c, 0, sizeof(*c));
	atomic_init(&c->current, 0);
	if (!endpoints || !*endpoints)
		return dm_err_set(err, DM_EINVAL, "no etcd endpoints given");
	if (request_ms < 1 || connect_ms < 1)
		return dm_err_set(err, DM_EINVAL, "etcd timeouts must be positive");
	if (!o->user != !o->password)
		return dm_err_set(err, DM_EINVAL, "an etcd user needs a password, and only a user");
	if (!o->cert_file != !o->key_file)
		return dm_err_set(err, DM_EINVAL,
				  "an etcd client certificate needs its key, and a key its "
				  "certificate");
	c->request_ms = request_ms;
	c->connect_ms = connect_ms < request_ms ? connect_ms : request_ms;
	if (!copy_opt(&c->ca_file, o->ca_file) || !copy_opt(&c->cert_file, o->cert_file) ||
	    !copy_opt(&c->key_file, o->key_file) || !copy_opt(&c->user, o->user) ||
	    !copy_opt(&c->password, o->password)) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = dm_curl_global_init(err)) < 0)
		return rc;
	for (p = endpoints;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		if ((rc = add_endpoint(c, p, n, err)) < 0)
			goto fail;
		if (!comma)
			break;
		p = comma + 1;
	}
	c->list = strdup(endpoints);
	if (!c->list) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = pthread_mutex_init(&c->pool_mu, NULL)) != 0) {
		rc = dm_err_errno(err, rc, "cannot create a mutex");
		goto fail;
	}
	c->mu_ok = true;
	if ((rc = pthread_mutex_init(&c->auth_mu, NULL)) != 0) {
		rc = dm_err_errno(err, rc, "cannot create a mutex");
		goto fail;
	}
	c->auth_mu_ok = true;
	return 0;
fail:
	dm_etcd_conn_release(c);
	return rc;
}

void dm_etcd_conn_release(struct dm_etcd_conn *c)
{
	for (size_t i = 0; i < c->npool; i++)
		curl_easy_cleanup(c->pool[i]);
	for (size_t i = 0; i < c->n; i++)
		free(c->urls[i]);
	free(c->list);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->user);
	if (c->password) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	if (c->mu_ok)
		pthread_mutex_destroy(&c->pool_mu);
	if (c->auth_mu_ok)
		pthread_mutex_destroy(&c->auth_mu);
	explicit_bzero(c->token, sizeof(c->token));
	memset(c, 0, sizeof(*c));
}

size_t dm_etcd_conn_next(struct dm_etcd_conn *c, size_t ep)
{
	size_t next = (ep + 1) % c->n;

	atomic_compare_exchange_strong(&c->current, &ep, next);
	return next;
}

static CURL *pool_get(struct dm_etcd_conn *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->pool_mu);
	if (c->npool > 0)
		h = c->pool[--c->npool];
	pthread_mutex_unlock(&c->pool_mu);
	return h ? h : curl_easy_init();
}

static void pool_put(struct dm_etcd_conn *c, CURL *h)
{
	pthread_mutex_lock(&c->pool_mu);
	if (c->npool < sizeof(c->pool) / sizeof(c->pool[0])) {
		c->pool[c->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_mu);
	if (h)
		curl_easy_cleanup(h);
}

/* ---- one transfer ---- */

void dm_etcd_sink_init(struct dm_etcd_sink *s)
{
	dm_buf_init(&s->buf, DM_ETCD_MSG_MAX);
	s->too_big = false;
}

size_t dm_etcd_sink_write(char *data, size_t size, size_t n, void *arg)
{
	struct dm_etcd_sink *s = arg;

	if (dm_buf_add(&s->buf, data, size * n) < 0) {
		s->too_big = true;
		return 0; /* anything but size * n ends the transfer */
	}
	return size * n;
}

/* Appends "Authorization: TOKEN" (the current token) to *l, its generation
 * in *gen; nothing while there is none. False when out of memory. */
static bool add_token(struct dm_etcd_conn *c, struct curl_slist **l, uint64_t *gen)
{
	char line[DM_ETCD_TOKEN_MAX + 32];
	struct curl_slist *t = *l;

	pthread_mutex_lock(&c->auth_mu);
	*gen = c->token_gen;
	if (c->token[0])
		snprintf(line, sizeof(line), "Authorization: %s", c->token);
	else
		line[0] = '\0';
	pthread_mutex_unlock(&c->auth_mu);
	if (line[0])
		t = curl_slist_append(*l, line);
	explicit_bzero(line, sizeof(line));
	if (!t)
		return false;
	*l = t;
	return true;
}

/*
 * Whether the member asked for a client certificate in the last handshake
 * of this thread's request, when we had none to give: with TLS 1.3 it
 * closes the connection only after the handshake, which would read as a
 * lost connection. A request runs in the thread that judges it.
 */
static _Thread_local bool cert_asked;

static int on_cert_request(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
	(void)ssl;
	(void)x509;
	(void)pkey;
	cert_asked = true;
	return 0; /* none: the handshake goes on without one */
}

static CURLcode note_cert_requests(CURL *h, void *ssl_ctx, void *arg)
{
	(void)h;
	(void)arg;
	SSL_CTX_set_client_cert_cb(ssl_ctx, on_cert_request);
	return CURLE_OK;
}

int dm_etcd_easy_setup(struct dm_etcd_conn *c, CURL *h, size_t ep, const char *path,
		       const char *body, size_t body_len, int64_t timeout_ms, uint64_t *token_gen,
		       struct curl_slist **headers, struct dm_err *err)
{
	static const char *const lines[] = {
		"Content-Type: application/json",
		"Accept: application/json",
		"Expect:",
		/* a member cut off from the leader ends streams instead of
		 * keeping them silently (etcd's "hasleader" metadata) */
		"Grpc-Metadata-hasleader: true",
	};
	char url[DM_ETCD_URL_MAX + 64];
	int64_t connect_ms = c->connect_ms;
	struct curl_slist *l = NULL, *t;

	*headers = NULL;
	if ((size_t)snprintf(url, sizeof(url), "%s%s", c->urls[ep], path) >= sizeof(url))
		return dm_err_set(err, DM_EINVAL, "etcd URL '%s%s' is too long", c->urls[ep], path);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		t = curl_slist_append(l, lines[i]);
		if (!t) {
			curl_slist_free_all(l);
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		}
		l = t;
	}
	if (token_gen && !add_token(c, &l, token_gen)) {
		curl_slist_free_all(l);
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	if (timeout_ms > 0 && connect_ms > timeout_ms)
		connect_ms = timeout_ms;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 0));
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "dm/" DM_VERSION);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	/* an https:// member proves who it is; http:// ones never see a file */
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	if (c->cert_file) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
	} else {
		curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, note_cert_requests);
	}
	cert_asked = false;
	*headers = l;
	return 0;
}

/* Why curl failed, in words. */
static const char *why(CURL *h, CURLcode cc)
{
	long os_errno = 0;

	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
	return os_errno ? strerror((int)os_errno) : curl_easy_strerror(cc);
}

struct dm_etcd_verdict dm_etcd_judge(const struct dm_etcd_conn *c, CURL *h, size_t ep,
				     const char *path, CURLcode cc, const struct dm_etcd_sink *sink,
				     struct dm_err *err)
{
	struct dm_etcd_verdict v = {DM_ETCD_OK, false, false, false};
	const char *url = c->urls[ep];
	long status = 0, sent = 0;

	if (cc == CURLE_OK) {
		struct dm_etcd_error e;
		struct dm_err perr;
		int code;

		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200)
			return v;
		v.outcome = DM_ETCD_ANSWERED;
		if (dm_etcd_parse_error(&e, (const char *)sink->buf.data, sink->buf.len, &perr) ==
		    0) {
			code = dm_etcd_error_code(&e, &v.transient, &v.not_applied);
			v.stale_token = dm_etcd_token_refused(&e);
			dm_err_set(err, code, "etcd at %s: %s", url,
				   e.message[0] ? e.message : "error without a text");
			return v;
		}
		/* etcd's gateway cannot pass a certificate's CommonName on as a
		 * user, so it refuses certificates that have one */
		if (sink->buf.len && memmem(sink->buf.data, sink->buf.len, "CommonName of client",
					    strlen("CommonName of client"))) {
			v.not_applied = true;
			dm_err_set(
				err, DM_EPERM,
				"etcd at %s refuses a client certificate with a CommonName through "
				"its JSON gateway, which dm uses: give --etcd-cert a certificate "
				"without a CN (the user comes from --etcd-user)",
				url);
			return v;
		}
		/* something that is not etcd's gateway: maybe another member is */
		v.transient = v.not_applied = true;
		dm_err_set(err, DM_EPROTO,
			   "%s answered HTTP %ld to %s, not as etcd 3.4 or later does; check the "
			   "etcd endpoints",
			   url, status, path);
		return v;
	}
	if (sink && sink->too_big) {
		v.outcome = DM_ETCD_ANSWERED;
		dm_err_set(err, DM_ETOOBIG, "etcd at %s answered %s with more than %zu bytes", url,
			   path, DM_ETCD_MSG_MAX);
		return v;
	}
	if (cert_asked && !c->cert_file &&
	    (cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR || cc == CURLE_GOT_NOTHING ||
	     cc == CURLE_SSL_CONNECT_ERROR)) {
		/* it closed on us for the certificate we did not give */
		v.outcome = DM_ETCD_NOT_SENT;
		v.not_applied = true;
		dm_err_set(err, DM_EPERM,
			   "etcd at %s asks for a client certificate, and none was given: give "
			   "--etcd-cert FILE and --etcd-key FILE, a certificate without a "
			   "CommonName signed by a CA that etcd trusts (its --trusted-ca-file)",
			   url);
		return v;
	}
	/* whether any of the request went out (a reused connection has no
	 * connect time, so that cannot tell) */
	curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
	v.transient = true;
	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		/* nothing went to a member that did not prove itself */
		v.outcome = DM_ETCD_NOT_SENT;
		v.transient = false;
		v.not_applied = true;
		dm_err_set(err, DM_EPERM,
			   "the TLS handshake with etcd at %s failed: %s; check --etcd-ca (the CA "
			   "that signed etcd's certificate) and --etcd-cert/--etcd-key",
			   url, curl_easy_strerror(cc));
		return v;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		v.outcome = DM_ETCD_NOT_SENT;
		v.not_applied = true;
		dm_err_set(err, DM_EUNAVAILABLE, "cannot reach etcd at %s: %s", url, why(h, cc));
		return v;
	case CURLE_OPERATION_TIMEDOUT:
		if (sent == 0) {
			v.outcome = DM_ETCD_NOT_SENT;
			v.not_applied = true;
			dm_err_set(err, DM_EUNAVAILABLE,
				   "cannot reach etcd at %s: connection timed out", url);
			return v;
		}
		v.outcome = DM_ETCD_LOST;
		dm_err_set(err, DM_ETIMEOUT, "timed out: no answer from etcd at %s to %s", url,
			   path);
		return v;
	default:
		v.outcome = DM_ETCD_LOST;
		dm_err_set(err, DM_EUNAVAILABLE, "lost the connection to etcd at %s: %s", url,
			   why(h, cc));
		return v;
	}
}

/* ---- a call, with failover ---- */

/* dm_etcd_call's body; with_token false for Authenticate itself. */
static int call(struct dm_etcd_conn *c, struct dm_buf *out, const char *path, const char *body,
		size_t body_len, enum dm_etcd_retry retry, bool with_token, struct dm_err *err)
{
	int64_t deadline = now_ms() + c->request_ms;
	size_t start = atomic_load(&c->current) % c->n, ep = start, unreached = 0;
	struct dm_etcd_sink sink;
	struct dm_etcd_verdict v;
	struct dm_err e;
	CURL *h = pool_get(c);
	bool reauthed = false;
	int rc = 0;

	if (!h)
		return dm_err_set(err, DM_ENOMEM, "cannot make a libcurl handle");
	dm_err_clear(&e);
	dm_etcd_sink_init(&sink);
	for (;;) {
		struct curl_slist *headers = NULL;
		int64_t left = deadline - now_ms(), timeout = left;
		uint64_t gen = 0;
		CURLcode cc;

		if (left <= 0) {
			/* e holds the last member's failure */
			rc = dm_err_set(err, e.code ? e.code : DM_ETIMEOUT,
					"no answer from etcd within %lld ms: %s",
					(long long)c->request_ms, e.msg);
			break;
		}
		if (retry == DM_ETCD_IDEMPOTENT && c->n > 1 && left > 2 * SHARE_MIN_MS)
			timeout = left / 2 > SHARE_MIN_MS ? left / 2 : SHARE_MIN_MS;
		dm_buf_reset(&sink.buf);
		sink.too_big = false;
		if ((rc = dm_etcd_easy_setup(c, h, ep, path, body, body_len, timeout,
					     with_token ? &gen : NULL, &headers, err)) < 0)
			break;
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dm_etcd_sink_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
		cc = curl_easy_perform(h);
		curl_slist_free_all(headers);
		v = dm_etcd_judge(c, h, ep, path, cc, &sink, &e);
		if (v.outcome == DM_ETCD_OK) {
			if (ep != start)
				atomic_store(&c->current, ep);
			dm_buf_release(out);
			*out = sink.buf;
			dm_etcd_sink_init(&sink);
			rc = 0;
			break;
		}
		/* a token that expired (or a member restarted): once more with a
		 * new one; the refusal applied nothing */
		if (v.stale_token && with_token && c->user && !reauthed) {
			reauthed = true;
			if ((rc = dm_etcd_reauth(c, gen, err)) < 0)
				break;
			continue;
		}
		if (v.outcome != DM_ETCD_ANSWERED)
			dm_etcd_conn_next(c, ep);
		if (!v.transient || (!v.not_applied && retry != DM_ETCD_IDEMPOTENT)) {
			rc = dm_err_set(err, e.code, "%s%s", e.msg,
					v.outcome == DM_ETCD_LOST
						? "; the change may or may not have been applied"
						: "");
			break;
		}
		/* nobody there, twice round: a refusal can also be a leftover of
		 * a member that just restarted on the same port */
		unreached = v.outcome == DM_ETCD_NOT_SENT ? unreached + 1 : 0;
		if (unreached == 2 * c->n) {
			if (c->n == 1)
				rc = dm_err_set(err, e.code, "%s; check that etcd is running there",
						e.msg);
			else
				rc = dm_err_set(
					err, e.code,
					"cannot reach any etcd endpoint of '%s' (check that "
					"etcd is running there); the last one: %s",
					c->list, e.msg);
			break;
		}
		ep = (ep + 1) % c->n;
		if (ep == start && deadline - now_ms() > ROUND_PAUSE_MS)
			sleep_ms(ROUND_PAUSE_MS);
	}
	dm_buf_release(&sink.buf);
	pool_put(c, h);
	return rc;
}

int dm_etcd_call(struct dm_etcd_conn *c, struct dm_buf *out, const char *path, const char *body,
		 size_t body_len, enum dm_etcd_retry retry, struct dm_err *err)
{
	return call(c, out, path, body, body_len, retry, true, err);
}

/* ---- authentication ---- */

int dm_etcd_reauth(struct dm_etcd_conn *c, uint64_t seen, struct dm_err *err)
{
	char token[DM_ETCD_TOKEN_MAX];
	struct dm_buf answer = DM_BUF_INIT;
	json_t *req;
	char *body;
	int rc;

	if (!c->user)
		return 0;
	pthread_mutex_lock(&c->auth_mu);
	rc = c->token_gen != seen;
	pthread_mutex_unlock(&c->auth_mu);
	if (rc)
		return 0; /* another thread took a new one meanwhile */
	req = json_pack("{s:s, s:s}", "name", c->user, "password", c->password);
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!body)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	rc = call(c, &answer, "/v3/auth/authenticate", body, strlen(body), DM_ETCD_IDEMPOTENT,
		  false, err);
	explicit_bzero(body, strlen(body));
	free(body);
	if (!rc)
		rc = dm_etcd_parse_token(token, sizeof(token), (const char *)answer.data,
					 answer.len, err);
	dm_buf_release(&answer);
	if (rc) {
		dm_err_prefix(err, "cannot log in to etcd as '%s'", c->user);
		return rc;
	}
	pthread_mutex_lock(&c->auth_mu);
	memcpy(c->token, token, sizeof(c->token));
	c->token_gen++;
	pthread_mutex_unlock(&c->auth_mu);
	explicit_bzero(token, sizeof(token));
	return 0;
}
