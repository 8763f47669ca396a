/*
 * http.c - the HTTP front of dmd (see http.h), on libmicrohttpd.
 *
 * api/ owns everything that answers a request from outside (api.h says
 * what it may touch): this front, JSON-RPC dispatch and its resources,
 * authentication, the /objects endpoints and the Docker volume plugin.
 *
 * Threads: each listener is one MHD daemon in thread-per-connection mode.
 * A request handler blocks until the dot answers, which may take up to its
 * method's deadline (an hour for dots.commit), so a fixed pool would let a
 * few slow commits starve every other request, /healthz included; a thread
 * per connection (bounded by max_conns per listener, and per_ip from one
 * address on the TCP port) cannot. The threads are idle in poll(2) between
 * requests. A connection that sends its request too slowly, or not at all,
 * is cut by the guard (http_guard.h), whose deadlines count whatever comes.
 *
 * Invariants:
 *  - No byte of a request body is buffered before its caller is
 *    authenticated, and never more than DM_HTTP_BODY_MAX bytes. A listener
 *    with a handler (the Docker plugin's) has no authentication: its
 *    socket is only for root (mode 0600).
 *  - /objects requests (objects_http.c) and /s3/ requests (s3_http.c)
 *    are authenticated here like /rpc, and their bodies bounded there.
 *  - A caller is a user with its API key (basic authentication), or a node
 *    of the cluster with its TLS client certificate (node_caller), which
 *    the TCP port asks for only in a cluster on etcd; nothing else.
 *  - POST /join, the one request without a caller, carries its own secret
 *    (cluster/nodecred.h) and at most DM_JOIN_BODY_MAX bytes; POST /renew
 *    is a node's, by its certificate, for a certificate of that node only.
 *  - Every /rpc request that was accepted (authenticated and given a
 *    request struct) counts in h->inflight from its first callback until
 *    MHD reports it completed; dm_http_wait_idle waits for that count.
 *  - A listening fd is ours until dm_http_start hands it to MHD, and ours
 *    again (to close) once MHD_quiesce_daemon gives it back.
 */
#include "server/api/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "client/client.h"
#include "metrics/catalog.h"
#include "server/api/api.h"
#include "server/api/auth.h"
#include "server/api/http_guard.h"
#include "server/api/metrics_http.h"
#include "server/api/objects_http.h"
#include "server/api/rpc.h"
#include "server/api/s3_http.h"
#include "server/api/s3_path.h"
#include "server/api/ui/ui_http.h"
#include "server/cluster/nodecred.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/tls.h"

#include "util/banned.h"

#define LISTEN_BACKLOG 128

struct listener {
	int fd; /* ours while >= 0 */
	struct MHD_Daemon *daemon;
	char name[160]; /* "127.0.0.1:32607" or the socket path */
	bool tcp;       /* the TCP port (else the unix socket) */
	bool tls;       /* serves HTTPS with the server's certificate */
};

struct dm_http {
	const struct dm_api_env *env;
	struct listener l[2];
	size_t n;
	char *socket_path; /* the socket file we made; NULL once removed */
	unsigned timeout_s;
	unsigned max_conns, per_ip;
	struct dm_http_guard *guard; /* deadlines on every listener's connections */
	dm_http_handler_fn handler;  /* NULL: the API; else every POST goes there */
	void *handler_ctx;
	char *tls_cert, *tls_key; /* PEM, or NULL: no TLS */
	char *tls_trust;          /* CAs of nodes' client certificates (PEM), or NULL */
	pthread_mutex_t mu;
	pthread_cond_t cond; /* signalled when inflight drops to 0 */
	int inflight;        /* under mu */
	bool quiesced;       /* under mu */
};

/* One /rpc request, from its first callback to its completion. */
struct request {
	struct dm_http *h;
	struct dm_caller caller;
	struct dm_buf body;
	bool too_big;
	/* /ui/rpc: the page's session; /join: no caller; /renew: a node (nodecred.h) */
	enum { RPC, UI_RPC, JOIN, RENEW } kind;
	struct dm_objects_req *obj; /* an /objects request: objects_http.c has it */
	struct dm_s3_req *s3;       /* an /s3/ request: s3_http.c has it */
};

/* ---- responses ---- */

/* Queues a response with body (taken; malloc'ed). */
static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *ctype,
			       char *body, bool auth_challenge, bool close_after)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (!body)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (close_after)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (auth_challenge)
		ret = MHD_queue_basic_auth_fail_response(c, "dm", resp);
	else
		ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *text,
				    const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text,
					       MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* A JSON-RPC error (id null) for a dm error, with the code's HTTP status. */
static enum MHD_Result respond_error(struct MHD_Connection *c, const struct dm_err *err,
				     bool close_after)
{
	return respond(c, (unsigned)dm_err_http_status(err->code), "application/json",
		       dm_rpc_error_body(-32000, err->code, err->msg), err->code == DM_EPERM,
		       close_after);
}

/* ---- requests ---- */

static bool is_quiesced(struct dm_http *h)
{
	bool q;

	pthread_mutex_lock(&h->mu);
	q = h->quiesced;
	pthread_mutex_unlock(&h->mu);
	return q;
}

/* The node a TLS client certificate on c names, when it verifies against
 * the cluster's CA and the node is one of the cluster's (nodecred.h);
 * DM_EPERM otherwise, DM_ENOTFOUND when c sent no certificate. */
static int node_caller(struct dm_http *h, struct MHD_Connection *c, struct dm_caller *out,
		       struct dm_err *err)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	const unsigned char *der[8];
	size_t lens[8];
	const gnutls_datum_t *peers;
	unsigned n = 0;
	char node[DM_UUID_LEN + 1];
	int rc;

	if (!h->env->ca || !info || !info->tls_session)
		return DM_ENOTFOUND;
	peers = gnutls_certificate_get_peers((gnutls_session_t)info->tls_session, &n);
	if (!peers || !n)
		return DM_ENOTFOUND;
	for (unsigned i = 0; i < n && i < 8; i++) {
		der[i] = peers[i].data;
		lens[i] = peers[i].size;
	}
	rc = dm_tls_peer_node(node, sizeof(node), der, lens, n < 8 ? n : 8, h->env->ca, err);
	if (!rc)
		rc = dm_nodecred_admitted(h->env->kv, node, err);
	if (rc == DM_EPERM)
		dm_warn("refused a node's call: %s", err->msg);
	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	snprintf(out->user, sizeof(out->user), "%s", DM_CLUSTER_ADMIN_USER);
	snprintf(out->node, sizeof(out->node), "%s", node);
	out->admin = true;
	return 0;
}

static int authenticate(struct dm_http *h, struct MHD_Connection *c, struct dm_caller *out,
			struct dm_err *err)
{
	char *pass = NULL;
	char *user = MHD_basic_auth_get_username_password(c, &pass);
	int rc;

	if (user)
		rc = dm_auth_verify(h->env->kv, out, user, pass, err);
	else if ((rc = node_caller(h, c, out, err)) == DM_ENOTFOUND)
		rc = dm_err_set(err, DM_EPERM, DM_AUTH_DENIED_MSG);
	if (!rc && out->admin) {
		/* another node of the cluster, forwarding a caller's request */
		const char *behalf =
			MHD_lookup_connection_value(c, MHD_HEADER_KIND, DM_ON_BEHALF_HEADER);

		if (behalf)
			rc = dm_auth_lookup(h->env->kv, out, behalf, err);
		if (behalf && !rc)
			out->forwarded = true;
	}
	if (rc && rc != DM_EPERM)
		dm_error("cannot check the credentials of '%s': %s", user ? user : "", err->msg);
	else if (rc)
		dm_info("refused a request: bad credentials for user '%.64s'", user ? user : "");
	if (rc == DM_EPERM)
		dm_metric_add(&dm_m_http_refused, "credentials", NULL, 1);
	if (pass) {
		explicit_bzero(pass, strlen(pass));
		MHD_free(pass);
	}
	MHD_free(user);
	return rc;
}

bool dm_http_declared_over(struct MHD_Connection *c, unsigned long long max)
{
	const char *cl =
		MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long n;
	char *end;

	if (!cl)
		return false;
	errno = 0;
	n = strtoull(cl, &end, 10);
	return end != cl && (errno == ERANGE || n > max);
}

static void too_big_err(struct dm_err *err)
{
	dm_err_set(err, DM_ETOOBIG, "request body is larger than %d bytes", DM_HTTP_BODY_MAX);
}

/* The first callback of a POST /rpc (the page's /ui/rpc with its session,
 * or /join): checks, authenticates, and allocates. With a handler: no
 * authentication, and the handler answers while quiesced. /join has no
 * caller and a smaller body. */
static enum MHD_Result rpc_begin(struct dm_http *h, struct MHD_Connection *c, int kind,
				 void **con_cls)
{
	struct dm_caller caller;
	struct request *r;
	struct dm_err err;
	unsigned status;

	dm_err_clear(&err);
	memset(&caller, 0, sizeof(caller));
	if (!h->handler && is_quiesced(h)) {
		dm_err_set(&err, DM_EUNAVAILABLE, "dmd is shutting down");
		return respond_error(c, &err, true);
	}
	if (kind == UI_RPC && dm_ui_caller(h->env, c, &caller, &status, &err))
		return dm_ui_refuse(c, status, &err);
	if (kind != UI_RPC && !h->handler && kind != JOIN && authenticate(h, c, &caller, &err))
		return respond_error(c, &err, false);
	if (kind == RENEW && !caller.node[0]) {
		dm_err_set(&err, DM_EPERM, "only a node of the cluster renews its certificate");
		return respond_error(c, &err, true);
	}
	if (dm_http_declared_over(c, DM_HTTP_BODY_MAX)) {
		if (h->handler)
			return respond_text(c, MHD_HTTP_CONTENT_TOO_LARGE,
					    "request body too large\n", NULL);
		too_big_err(&err);
		return respond_error(c, &err, true);
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return MHD_NO;
	r->h = h;
	r->caller = caller;
	r->kind = kind;
	dm_buf_init(&r->body, kind == JOIN || kind == RENEW ? DM_JOIN_BODY_MAX : DM_HTTP_BODY_MAX);
	pthread_mutex_lock(&h->mu);
	h->inflight++;
	pthread_mutex_unlock(&h->mu);
	*con_cls = r;
	return MHD_YES;
}

/* The first callback of an /objects or /s3/ request: authenticated as
 * /rpc is, then objects_http.c or s3_http.c takes it (and bounds its
 * body). */
static enum MHD_Result module_begin(struct dm_http *h, struct MHD_Connection *c, const char *url,
				    const char *method, void **con_cls)
{
	struct dm_objects_req *obj = NULL;
	struct dm_s3_req *s3 = NULL;
	struct dm_caller caller;
	struct request *r;
	struct dm_err err;
	int rc;

	dm_err_clear(&err);
	if (is_quiesced(h)) {
		dm_err_set(&err, DM_EUNAVAILABLE, "dmd is shutting down");
		return respond_error(c, &err, true);
	}
	if (authenticate(h, c, &caller, &err))
		return respond_error(c, &err, false);
	if (dm_s3_path_is(url))
		rc = dm_s3_begin(&s3, h->env, &caller, c, url, method, &err);
	else
		rc = dm_objects_begin(&obj, h->env, &caller, c, url, method, &err);
	if (rc && !dm_s3_path_is(url))
		return respond_error(c, &err, true);
	if (rc) /* a refusal, not a failed authentication: no challenge */
		return respond(c, (unsigned)dm_err_http_status(err.code), "application/json",
			       dm_rpc_error_body(-32000, err.code, err.msg), false, true);
	r = calloc(1, sizeof(*r));
	if (!r) {
		dm_objects_free(obj);
		dm_s3_free(s3);
		return MHD_NO;
	}
	r->h = h;
	r->caller = caller;
	r->obj = obj;
	r->s3 = s3;
	pthread_mutex_lock(&h->mu);
	h->inflight++;
	pthread_mutex_unlock(&h->mu);
	*con_cls = r;
	return MHD_YES;
}

static enum MHD_Result rpc_end(struct dm_http *h, struct MHD_Connection *c, const char *url,
			       struct request *r)
{
	struct dm_err err;
	char *reply;
	int status = 200;

	if (r->too_big && h->handler)
		return respond_text(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n",
				    NULL);
	if (r->too_big) {
		too_big_err(&err);
		return respond_error(c, &err, true);
	}
	if (r->kind == JOIN || r->kind == RENEW) {
		unsigned jstatus = 200;

		reply = dm_nodecred_sign(h->env->cluster, h->env->ca_key,
					 r->kind == RENEW ? r->caller.node : NULL,
					 r->body.data ? (const char *)r->body.data : "", r->body.len,
					 &jstatus);
		return respond(c, jstatus, "application/json", reply, false, true);
	}
	if (h->handler) {
		const char *ctype = "application/json";
		unsigned hstatus = 200;

		reply = h->handler(h->handler_ctx, url,
				   r->body.data ? (const char *)r->body.data : "", r->body.len,
				   &hstatus, &ctype);
		return respond(c, hstatus, ctype, reply, false, is_quiesced(h));
	}
	reply = dm_rpc_dispatch(h->env, &r->caller, r->body.data ? (const char *)r->body.data : "",
				r->body.len, &status);
	return respond(c, (unsigned)status, "application/json", reply, false, is_quiesced(h));
}

/* Whether c came on the HTTPS listener. */
static bool conn_tls(struct dm_http *h, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);

	for (size_t i = 0; ci && i < h->n; i++)
		if (h->l[i].daemon == ci->daemon)
			return h->l[i].tls;
	return false;
}

/* The web page's requests (ui/ui_http.h): its JSON-RPC as /rpc's, but for
 * the session's user; its login authenticated as /rpc is; the rest
 * answered there. */
static enum MHD_Result ui_begin(struct dm_http *h, struct MHD_Connection *c, const char *url,
				const char *method, void **con_cls)
{
	struct dm_caller caller;
	struct dm_err err;

	dm_err_clear(&err);
	if (dm_ui_is_rpc(url, method))
		return rpc_begin(h, c, UI_RPC, con_cls);
	if (!dm_ui_is_login(url, method))
		return dm_ui_answer(h->env, c, url, method, conn_tls(h, c));
	memset(&caller, 0, sizeof(caller));
	if (authenticate(h, c, &caller, &err))
		return dm_ui_refuse(c,
				    err.code == DM_EPERM ? MHD_HTTP_UNAUTHORIZED
							 : (unsigned)dm_err_http_status(err.code),
				    &err);
	return dm_ui_login(h->env, c, &caller, conn_tls(h, c));
}

/* GET /metrics: for an admin, or for anyone with --metrics-public (the
 * figures are the whole node's, every user's dots counted). */
static enum MHD_Result metrics(struct dm_http *h, struct MHD_Connection *c, const char *method)
{
	struct dm_caller caller;
	struct dm_err err;

	dm_err_clear(&err);
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n",
				    "GET, HEAD");
	if (!h->env->metrics_public) {
		memset(&caller, 0, sizeof(caller));
		if (authenticate(h, c, &caller, &err))
			return respond_error(c, &err, false);
		if (!caller.admin) {
			dm_err_set(&err, DM_EPERM,
				   "/metrics needs an admin user (or dmd start --metrics-public)");
			return respond(c, MHD_HTTP_FORBIDDEN, "application/json",
				       dm_rpc_error_body(-32000, err.code, err.msg), false, false);
		}
	}
	return respond(c, MHD_HTTP_OK, DM_METRICS_CONTENT_TYPE, dm_metrics_http_body(h->env), false,
		       false);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct dm_http *h = cls;
	struct request *r = *con_cls;

	dm_http_guard_request(c, r == NULL, *upload_data_size == 0);
	if (r && r->obj)
		return dm_objects_handle(r->obj, c, upload_data, upload_data_size);
	if (r && r->s3)
		return dm_s3_handle(r->s3, c, upload_data, upload_data_size);
	if (r) {
		if (*upload_data_size) {
			if (!r->too_big && dm_buf_add(&r->body, upload_data, *upload_data_size)) {
				r->too_big = true;
				dm_buf_release(&r->body);
			}
			*upload_data_size = 0;
			return MHD_YES;
		}
		return rpc_end(h, c, url, r);
	}
	if (h->handler) {
		if (strcmp(method, MHD_HTTP_METHOD_POST))
			return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n",
					    "POST");
		return rpc_begin(h, c, RPC, con_cls);
	}
	if (dm_ui_path(url))
		return ui_begin(h, c, url, method, con_cls);
	if (strcmp(url, "/healthz") == 0) {
		if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
			return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n",
					    "GET, HEAD");
		return respond_text(c, MHD_HTTP_OK, "ok\n", NULL);
	}
	if (strcmp(url, "/metrics") == 0)
		return metrics(h, c, method);
	if (strcmp(url, "/rpc") == 0) {
		if (strcmp(method, MHD_HTTP_METHOD_POST))
			return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n",
					    "POST");
		return rpc_begin(h, c, RPC, con_cls);
	}
	if ((!strcmp(url, "/join") || !strcmp(url, "/renew")) && h->env->ca_key) {
		if (strcmp(method, MHD_HTTP_METHOD_POST))
			return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n",
					    "POST");
		return rpc_begin(h, c, !strcmp(url, "/join") ? JOIN : RENEW, con_cls);
	}
	if (dm_objects_path(url) || dm_s3_path_is(url))
		return module_begin(h, c, url, method, con_cls);
	return respond_text(c, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct dm_http *h = cls;
	struct request *r = *con_cls;

	dm_http_guard_request_done(c);
	if (!r)
		return;
	*con_cls = NULL;
	dm_buf_release(&r->body);
	dm_objects_free(r->obj);
	dm_s3_free(r->s3);
	free(r);
	pthread_mutex_lock(&h->mu);
	if (--h->inflight == 0)
		pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	dm_warn("http: %s", line);
}

/* ---- listeners ---- */

static int listen_tcp(struct listener *l, const char *host, int port, struct dm_err *err)
{
	struct sockaddr_in sa;
	int one = 1, e;

	snprintf(l->name, sizeof(l->name), "%s:%d", host, port);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return dm_err_set(err, DM_EINVAL, "invalid address '%s'", l->name);
	l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return dm_err_errno(err, errno, "cannot listen on %s", l->name);
	if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(l->fd, LISTEN_BACKLOG) < 0) {
		e = errno;
		dm_err_errno(err, e, "cannot listen on %s", l->name);
		if (e == EADDRINUSE)
			err->code = DM_EBUSY;
		return err->code;
	}
	return 0;
}

static int listen_unix(struct listener *l, const char *path, struct dm_err *err)
{
	struct sockaddr_un sa;
	struct stat st;

	snprintf(l->name, sizeof(l->name), "%s", path);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path))
		return dm_err_set(err, DM_ETOOBIG,
				  "socket path '%s' is too long (at most %zu bytes)", path,
				  sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return dm_err_set(err, DM_EEXISTS, "'%s' exists and is not a socket",
					  l->name);
		if (unlink(path) < 0)
			return dm_err_errno(err, errno, "cannot remove stale socket '%s'", l->name);
		dm_info("removed stale socket '%s'", l->name);
	}
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return dm_err_errno(err, errno, "cannot listen on '%s'", l->name);
	if (bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return dm_err_errno(err, errno, "cannot listen on '%s'", l->name);
	/* Not listening yet, so nobody connects before the mode is right. */
	if (chmod(path, 0600) < 0 || listen(l->fd, LISTEN_BACKLOG) < 0) {
		dm_err_errno(err, errno, "cannot listen on '%s'", l->name);
		unlink(path);
		return err->code;
	}
	return 0;
}

int dm_http_bind(struct dm_http **out, const struct dm_api_env *env,
		 const struct dm_http_opts *opts, struct dm_err *err)
{
	struct dm_http *h;
	int rc = 0;

	*out = NULL;
	h = dm_xcalloc(1, sizeof(*h));
	h->env = env;
	h->timeout_s = opts->timeout_s ? opts->timeout_s : 60;
	h->max_conns = opts->max_conns ? opts->max_conns : 1024;
	h->per_ip = opts->per_ip ? opts->per_ip : 64;
	h->handler = opts->handler;
	h->handler_ctx = opts->handler_ctx;
	pthread_mutex_init(&h->mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&h->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	for (size_t i = 0; i < 2; i++)
		h->l[i].fd = -1;
	{
		struct dm_http_guard_opts go = {opts->header_s, opts->body_s, h->timeout_s};

		rc = dm_http_guard_new(&h->guard, &go, err);
		if (rc)
			goto done;
	}
	if (opts->tls_cert_pem && opts->tls_key_pem) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			rc = dm_err_set(
				err, DM_EUNSUPPORTED,
				"this libmicrohttpd cannot serve HTTPS (built without TLS)");
			goto done;
		}
		h->tls_cert = dm_xstrdup(opts->tls_cert_pem);
		h->tls_key = dm_xstrdup(opts->tls_key_pem);
		if (opts->tls_trust_pem)
			h->tls_trust = dm_xstrdup(opts->tls_trust_pem);
	}
	if (opts->port) {
		rc = listen_tcp(&h->l[h->n], opts->host ? opts->host : DM_HTTP_HOST, opts->port,
				err);
		h->l[h->n].tcp = true;
		h->l[h->n++].tls = h->tls_cert != NULL;
		if (rc)
			goto done;
	}
	if (opts->socket_path) {
		rc = listen_unix(&h->l[h->n++], opts->socket_path, err);
		if (rc)
			goto done;
		h->socket_path = dm_xstrdup(opts->socket_path);
	}
done:
	if (rc)
		dm_http_free(h);
	else
		*out = h;
	return rc;
}

int dm_http_start(struct dm_http *h, struct dm_err *err)
{
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;

	for (size_t i = 0; i < h->n; i++) {
		struct listener *l = &h->l[i];

		/* the TCP port's options: one address's share; its TLS */
		struct MHD_OptionItem tcp[] = {
			{MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)h->per_ip, NULL},
			{l->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->tls_cert},
			{MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key},
			{MHD_OPTION_HTTPS_PRIORITIES, 0,
			 (void *)(uintptr_t) "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-"
					     "TLS1.2"},
			/* nodes of the cluster call with certificates: ask for one */
			{h->tls_trust ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, h->tls_trust},
			{MHD_OPTION_END, 0, NULL},
		};

		l->daemon = MHD_start_daemon(
			flags | (l->tls ? MHD_USE_TLS : 0), 0, NULL, NULL, handle, h,
			MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, l->fd,
			MHD_OPTION_CONNECTION_TIMEOUT, h->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
			h->max_conns, MHD_OPTION_NOTIFY_COMPLETED, completed, h,
			MHD_OPTION_NOTIFY_CONNECTION, dm_http_guard_notify, h->guard,
			l->tcp ? MHD_OPTION_ARRAY : MHD_OPTION_END, tcp, MHD_OPTION_END);
		if (!l->daemon)
			return dm_err_set(err, DM_EIO, "cannot start the HTTP server on %s",
					  l->name);
		l->fd = -1; /* MHD's now */
	}
	return 0;
}

void dm_http_quiesce(struct dm_http *h)
{
	pthread_mutex_lock(&h->mu);
	h->quiesced = true;
	pthread_mutex_unlock(&h->mu);
	for (size_t i = 0; i < h->n; i++) {
		struct listener *l = &h->l[i];

		if (l->daemon && l->fd == -1) {
			MHD_socket s = MHD_quiesce_daemon(l->daemon);

			if (s != MHD_INVALID_SOCKET)
				l->fd = s;
		}
		if (l->fd >= 0) {
			close(l->fd);
			l->fd = -2; /* closed; never ours again */
		}
	}
	if (h->socket_path) {
		if (unlink(h->socket_path) < 0 && errno != ENOENT)
			dm_warn("cannot remove '%s': %s", h->socket_path, strerror(errno));
		free(h->socket_path);
		h->socket_path = NULL;
	}
}

int dm_http_wait_idle(struct dm_http *h, int timeout_ms)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&h->mu);
	while (h->inflight > 0 && rc == 0)
		if (pthread_cond_timedwait(&h->cond, &h->mu, &until) == ETIMEDOUT)
			rc = DM_ETIMEOUT;
	if (h->inflight == 0)
		rc = 0;
	pthread_mutex_unlock(&h->mu);
	return rc;
}

void dm_http_free(struct dm_http *h)
{
	if (!h)
		return;
	dm_http_quiesce(h);
	for (size_t i = 0; i < h->n; i++)
		if (h->l[i].daemon)
			MHD_stop_daemon(h->l[i].daemon);
	dm_http_guard_free(h->guard);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->mu);
	if (h->tls_key) {
		explicit_bzero(h->tls_key, strlen(h->tls_key));
		free(h->tls_key);
	}
	free(h->tls_cert);
	free(h->tls_trust);
	free(h);
}
