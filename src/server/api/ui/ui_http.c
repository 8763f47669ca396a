/*
 * ui_http.c - the web page's endpoints (see ui_http.h).
 *
 * Invariants:
 *  - Every answer carries the page's security headers: a Content-Security-
 *    Policy that allows only dmd's own scripts, styles and connections and
 *    no framing, nosniff, no referrer; answers other than the page's files
 *    are never cached.
 *  - The session cookie is HttpOnly, SameSite=Strict, Path=/ui/, lives
 *    DM_UI_SESSION_MAX_S at most, and is Secure on an HTTPS connection. Its
 *    token never appears in a body or a log.
 *  - A change (POST) other than the login needs the session's CSRF token
 *    in the X-DM-CSRF header, compared in constant time.
 *  - A request's cookie and header are bounded before use: a token of any
 *    other length is no token.
 */
#include "server/api/ui/ui_http.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "server/api/api.h"
#include "server/api/auth.h"
#include "server/api/rpc.h"
#include "server/api/ui/assets.h"
#include "server/api/ui/session.h"
#include "util/err.h"

#include "util/banned.h"

#define CSP                                                                                        \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                \
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

bool dm_ui_path(const char *url)
{
	return strcmp(url, "/ui") == 0 || strncmp(url, "/ui/", 4) == 0;
}

bool dm_ui_is_rpc(const char *url, const char *method)
{
	return strcmp(url, "/ui/rpc") == 0 && strcmp(method, MHD_HTTP_METHOD_POST) == 0;
}

bool dm_ui_is_login(const char *url, const char *method)
{
	return strcmp(url, "/ui/login") == 0 && strcmp(method, MHD_HTTP_METHOD_POST) == 0;
}

/* Queues status with body (len bytes; copied), its type, the security
 * headers, and cookie (a Set-Cookie value) and location when not NULL. */
static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *ctype,
			      const void *body, size_t len, bool cache, const char *cookie,
			      const char *location)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body,
								 MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, "Content-Security-Policy", CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache ? "no-cache" : "no-store");
	if (cookie)
		MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
	if (location)
		MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* json (taken) as the body. */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *json,
				 const char *cookie)
{
	char *text = json ? json_dumps(json, JSON_COMPACT) : NULL;
	enum MHD_Result ret;

	json_decref(json);
	if (!text)
		return MHD_NO;
	ret = answer(c, status, "application/json", text, strlen(text), false, cookie, NULL);
	free(text);
	return ret;
}

enum MHD_Result dm_ui_refuse(struct MHD_Connection *c, unsigned status, const struct dm_err *err)
{
	char *body = dm_rpc_error_body(-32000, err->code, err->msg);
	enum MHD_Result ret;

	if (!body)
		return MHD_NO;
	ret = answer(c, status, "application/json", body, strlen(body), false, NULL, NULL);
	free(body);
	return ret;
}

static enum MHD_Result refuse(struct MHD_Connection *c, int code, const char *msg)
{
	struct dm_err err;

	dm_err_set(&err, code, "%s", msg);
	return dm_ui_refuse(c, (unsigned)dm_err_http_status(code), &err);
}

/* The session the request's cookie names into out; DM_EPERM without. */
static int session_of(const struct dm_api_env *env, struct MHD_Connection *c,
		      struct dm_ui_session *out, char *token, struct dm_err *err)
{
	const char *t = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, DM_UI_COOKIE);

	if (!t || strlen(t) != DM_UI_TOKEN_LEN || !env->ui_sessions)
		return dm_err_set(err, DM_EPERM, DM_UI_SESSION_GONE_MSG);
	if (token)
		memcpy(token, t, DM_UI_TOKEN_LEN + 1);
	return dm_ui_session_find(env->ui_sessions, t, out, err);
}

/* DM_EPERM unless the request's X-DM-CSRF header is s's token. */
static int check_csrf(struct MHD_Connection *c, const struct dm_ui_session *s, struct dm_err *err)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, DM_UI_CSRF_HEADER);

	if (!h || strlen(h) != DM_UI_TOKEN_LEN || CRYPTO_memcmp(h, s->csrf, DM_UI_TOKEN_LEN) != 0)
		return dm_err_set(err, DM_EPERM,
				  "missing or wrong " DM_UI_CSRF_HEADER
				  " header: reload the page and try again");
	return 0;
}

int dm_ui_caller(const struct dm_api_env *env, struct MHD_Connection *c, struct dm_caller *out,
		 unsigned *status, struct dm_err *err)
{
	struct dm_ui_session s;
	int rc = session_of(env, c, &s, NULL, err);

	*status = MHD_HTTP_UNAUTHORIZED;
	if (!rc) {
		*status = MHD_HTTP_FORBIDDEN;
		rc = check_csrf(c, &s, err);
	}
	/* the user as it is now: removed (log in again), or no longer an admin */
	if (!rc) {
		*status = MHD_HTTP_UNAUTHORIZED;
		rc = dm_auth_lookup(env->kv, out, s.caller.user, err);
	}
	explicit_bzero(&s, sizeof(s));
	return rc;
}

/* {"user","admin","csrf"} of s. */
static json_t *session_json(const struct dm_ui_session *s)
{
	return json_pack("{s:s, s:b, s:s}", "user", s->caller.user, "admin", s->caller.admin,
			 "csrf", s->csrf);
}

/* "dm_ui=TOKEN; ..." (TOKEN "" with max_age 0: the cookie goes). */
static void cookie_of(char *out, size_t size, const char *token, long max_age, bool tls)
{
	snprintf(out, size, DM_UI_COOKIE "=%s; Path=/ui/; Max-Age=%ld; HttpOnly; SameSite=Strict%s",
		 token, max_age, tls ? "; Secure" : "");
}

enum MHD_Result dm_ui_login(const struct dm_api_env *env, struct MHD_Connection *c,
			    const struct dm_caller *caller, bool tls)
{
	struct dm_ui_session s;
	char token[DM_UI_TOKEN_LEN + 1], cookie[DM_UI_TOKEN_LEN + 128];
	struct dm_err err;
	enum MHD_Result ret;

	memset(&s, 0, sizeof(s));
	s.caller = *caller;
	s.caller.forwarded = false;
	if (!env->ui_sessions)
		return refuse(c, DM_EUNAVAILABLE, "the web page is not served here");
	if (dm_ui_session_open(env->ui_sessions, &s.caller, token, s.csrf, &err))
		return dm_ui_refuse(c, (unsigned)dm_err_http_status(err.code), &err);
	cookie_of(cookie, sizeof(cookie), token, DM_UI_SESSION_MAX_S, tls);
	ret = send_json(c, MHD_HTTP_OK, session_json(&s), cookie);
	explicit_bzero(token, sizeof(token));
	explicit_bzero(cookie, sizeof(cookie));
	explicit_bzero(&s, sizeof(s));
	return ret;
}

static enum MHD_Result logout(const struct dm_api_env *env, struct MHD_Connection *c, bool tls)
{
	struct dm_ui_session s;
	char token[DM_UI_TOKEN_LEN + 1], cookie[128];
	struct dm_err err;
	unsigned status = MHD_HTTP_UNAUTHORIZED;
	int rc = session_of(env, c, &s, token, &err);

	if (!rc) {
		status = MHD_HTTP_FORBIDDEN;
		rc = check_csrf(c, &s, &err);
	}
	if (!rc)
		rc = dm_ui_session_end(env->ui_sessions, token, &err);
	explicit_bzero(token, sizeof(token));
	explicit_bzero(&s, sizeof(s));
	if (rc)
		return dm_ui_refuse(c, status, &err);
	cookie_of(cookie, sizeof(cookie), "", 0, tls);
	return send_json(c, MHD_HTTP_OK, json_object(), cookie);
}

static enum MHD_Result session(const struct dm_api_env *env, struct MHD_Connection *c)
{
	struct dm_ui_session s;
	struct dm_err err;
	enum MHD_Result ret;

	if (session_of(env, c, &s, NULL, &err))
		return dm_ui_refuse(c, MHD_HTTP_UNAUTHORIZED, &err);
	ret = send_json(c, MHD_HTTP_OK, session_json(&s), NULL);
	explicit_bzero(&s, sizeof(s));
	return ret;
}

enum MHD_Result dm_ui_answer(const struct dm_api_env *env, struct MHD_Connection *c,
			     const char *url, const char *method, bool tls)
{
	bool get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
	bool post = !strcmp(method, MHD_HTTP_METHOD_POST);

	if (!strcmp(url, "/ui"))
		return answer(c, MHD_HTTP_MOVED_PERMANENTLY, "text/plain; charset=utf-8", "", 0,
			      true, NULL, "/ui/");
	if (!strcmp(url, "/ui/logout") && post)
		return logout(env, c, tls);
	if (!strcmp(url, "/ui/session") && get)
		return session(env, c);
	if (!get)
		return refuse(c, DM_EUNSUPPORTED, "method not allowed here");
	for (const struct dm_ui_asset *a = dm_ui_assets; a->path; a++)
		if (!strcmp(url, a->path) ||
		    (!strcmp(url, "/ui/") && !strcmp(a->path, "/ui/index.html")))
			return answer(c, MHD_HTTP_OK, a->content_type, a->data, a->len, true, NULL,
				      NULL);
	return refuse(c, DM_ENOTFOUND, "no such page");
}
