/*
 * client.c - JSON-RPC 2.0 over libcurl to one dm server.
 *
 * Invariants: a struct dm_client owns copies of every string it uses and one
 * curl easy handle, reset before each call; a call reads the answer into a
 * buffer bounded by DM_CLIENT_MAX_RESPONSE, so nothing the server sends can
 * make us allocate more; every failure leaves *result NULL and one message
 * in err; request ids increase by one per call and a reply must echo ours.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "client/client.h"
#include "util/buf.h"
#include "util/curl.h"
#include "util/tls.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

struct dm_client {
	CURL *curl;
	char *name;    /* remote name, for messages */
	char *url;     /* http://HOST:PORT/rpc, or http://localhost/rpc on the socket */
	char *where;   /* HOST:PORT or the socket path, for messages */
	char *socket;  /* NULL: TCP */
	char *user;
	char *api_key;
	char *on_behalf; /* the DM_ON_BEHALF_HEADER line, or NULL */
	char *ca;        /* the pinned CA (PEM): https; NULL: http */
	char ca_fp[DM_TLS_FINGERPRINT_LEN + 1]; /* its fingerprint, for messages */
	bool is_node;                /* a node calling another: node */
	struct dm_curl_node node;
	bool local;    /* loopback or socket: hint at 'dm cluster start' */
	long timeout;  /* 0: per method */
	int64_t next_id;
};

/* Methods whose server-side deadline is an hour (docs/api.md). */
static const char *const long_methods[] = {"dots.commit", "dots.reset", NULL};

static long method_timeout(const struct dm_client *c, const char *method)
{
	if (c->timeout > 0)
		return c->timeout;
	for (size_t i = 0; long_methods[i]; i++)
		if (!strcmp(method, long_methods[i]))
			return DM_CLIENT_LONG_TIMEOUT;
	return DM_CLIENT_DEFAULT_TIMEOUT;
}

static bool socket_usable(const char *path)
{
	struct stat st;

	if (!path || !*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return false;
	return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static bool host_is_loopback(const char *host)
{
	return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1");
}

int dm_client_new(struct dm_client **out, const struct dm_remote *remote, struct dm_err *err)
{
	struct dm_client *c = NULL;
	bool v6;
	int rc = 0;

	*out = NULL;
	if (!remote->host || !*remote->host || remote->port <= 0 || remote->port > 65535)
		return dm_err_set(err, DM_EINVAL, "remote '%s' has no valid host and port",
				  remote->name ? remote->name : "?");
	rc = dm_curl_global_init(err);
	if (rc)
		return rc;
	c = dm_xcalloc(1, sizeof(*c));
	c->next_id = 1;
	c->curl = curl_easy_init();
	if (!c->curl) {
		free(c);
		return dm_err_set(err, DM_ENOMEM, "cannot make a libcurl handle");
	}
	c->name = dm_xstrdup(remote->name ? remote->name : "?");
	c->user = dm_xstrdup(remote->user ? remote->user : "");
	c->api_key = dm_xstrdup(remote->api_key ? remote->api_key : "");
	if (remote->on_behalf) {
		size_t n = strlen(DM_ON_BEHALF_HEADER) + strlen(remote->on_behalf) + 3;

		c->on_behalf = dm_xmalloc(n);
		snprintf(c->on_behalf, n, "%s: %s", DM_ON_BEHALF_HEADER, remote->on_behalf);
	}
	v6 = strchr(remote->host, ':') != NULL;
	if (socket_usable(remote->socket)) {
		c->socket = dm_xstrdup(remote->socket);
		c->where = dm_xstrdup(remote->socket);
		c->url = dm_xstrdup("http://localhost/rpc");
		c->local = true;
	} else {
		const char *scheme = remote->ca ? "https" : "http";

		c->where = dm_asprintf(v6 ? "[%s]:%d" : "%s:%d", remote->host, remote->port);
		c->url = dm_asprintf(v6 ? "%s://[%s]:%d/rpc" : "%s://%s:%d/rpc", scheme,
				     remote->host, remote->port);
		c->local = host_is_loopback(remote->host);
		if (remote->ca && remote->node) {
			c->is_node = true;
			c->node = *remote->node;
		}
		if (remote->ca) {
			c->ca = dm_xstrdup(remote->ca);
			if (dm_tls_fingerprint(c->ca_fp, c->ca, err)) {
				rc = dm_err_set(err, DM_EINVAL,
						"remote '%s': its pinned CA is not a certificate; "
						"add the remote again",
						c->name);
				goto done;
			}
		}
	}
	if (!c->where || !c->url) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto done;
	}
	dm_debug("remote '%s': %s", c->name, c->url);
done:
	if (rc) {
		dm_client_free(c);
		c = NULL;
	}
	*out = c;
	return rc;
}

void dm_client_free(struct dm_client *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	free(c->ca);
	free(c->name);
	free(c->url);
	free(c->where);
	free(c->socket);
	free(c->user);
	if (c->api_key) {
		memset(c->api_key, 0, strlen(c->api_key));
		free(c->api_key);
	}
	free(c->on_behalf);
	free(c);
}

void dm_client_set_timeout(struct dm_client *c, long seconds)
{
	c->timeout = seconds > 0 ? seconds : 0;
}

const char *dm_client_where(const struct dm_client *c)
{
	return c->where;
}

struct sink {
	struct dm_buf buf;
	bool too_big;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;

	if (dm_buf_add(&s->buf, data, n)) {
		s->too_big = true;
		return 0; /* anything but n aborts the transfer */
	}
	return n;
}

/* The failure of curl_easy_perform as one of our errors. */
static int transport_error(struct dm_client *c, CURLcode cc, const char *errbuf, long timeout,
			   struct dm_err *err)
{
	const char *hint = c->local ? " (is dmd running? try 'dm cluster start')" : "";
	long os_errno = 0;
	curl_off_t connected = 0;
	const char *why;

	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
	curl_easy_getinfo(c->curl, CURLINFO_CONNECT_TIME_T, &connected);
	why = os_errno ? strerror((int)os_errno) : (*errbuf ? errbuf : curl_easy_strerror(cc));
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
		return dm_err_set(err, DM_EUNAVAILABLE, "cannot reach dm server at %s: %s%s",
				  c->where, why, hint);
	case CURLE_COULDNT_RESOLVE_HOST:
		return dm_err_set(err, DM_EUNAVAILABLE,
				  "cannot reach dm server at %s: unknown host", c->where);
	case CURLE_OPERATION_TIMEDOUT:
		if (connected == 0)
			return dm_err_set(err, DM_EUNAVAILABLE,
					  "cannot reach dm server at %s: connection timed out%s",
					  c->where, hint);
		return dm_err_set(err, DM_ETIMEOUT,
				  "timed out: no answer from dm server at %s within %ld s", c->where,
				  timeout);
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return dm_err_set(err, DM_EUNAVAILABLE,
				  "lost the connection to dm server at %s: %s%s", c->where, why,
				  c->ca ? "" : " (a server that speaks HTTPS? add the remote again)");
	default:
		if (c->ca && dm_curl_is_tls_failure(cc))
			return dm_client_tls_refusal(err, c->where, c->name, c->ca_fp,
						     c->is_node ? &c->node : NULL, errbuf);
		return dm_err_set(err, DM_EIO, "cannot talk to dm server at %s: %s", c->where,
				  *errbuf ? errbuf : curl_easy_strerror(cc));
	}
}

int dm_client_tls_refusal(struct dm_err *err, const char *where, const char *remote,
			  const char *fingerprint, const struct dm_curl_node *node,
			  const char *detail)
{
	if (node)
		return dm_err_set(err, DM_EPERM,
				  "REFUSED: the server at %s did not prove it is %s of this cluster "
				  "(its certificate must chain to the cluster's CA, %s, and name "
				  "'%s')%s%s. Nothing was sent to it. If its record in etcd points "
				  "at another address, someone changed it: check 'dm cluster "
				  "status'",
				  where, remote, fingerprint, node->peer,
				  detail && *detail ? ": " : "", detail ? detail : "");
	return dm_err_set(err, DM_EPERM,
			  "REFUSED: the certificate of dm server at %s does not chain to the CA "
			  "pinned for remote '%s' (%s)%s%s. Either the server's CA changed since "
			  "the remote was added, or this is not that server. If the server was "
			  "set up again, check its CA's fingerprint (dm cluster init printed it) "
			  "and add the remote again with --fingerprint; otherwise do not trust it",
			  where, remote, fingerprint, detail && *detail ? ": " : "",
			  detail ? detail : "");
}

/* JSON-RPC's own codes, when the reply names no dm code. */
static int code_of_rpc_error(json_int_t rpc_code)
{
	switch (rpc_code) {
	case -32700:
	case -32600:
		return DM_EPROTO;
	case -32601:
		return DM_EUNSUPPORTED;
	case -32602:
		return DM_EINVAL;
	default:
		return DM_EINTERNAL;
	}
}

/* A reply's error object as our error. */
static int reply_error(struct dm_client *c, const char *method, json_t *error,
		       struct dm_err *err)
{
	json_t *msg = json_object_get(error, "message");
	json_t *data = json_object_get(error, "data");
	json_t *name = json_is_object(data) ? json_object_get(data, "code") : NULL;
	int code;

	if (json_is_string(name))
		code = dm_err_from_json_name(json_string_value(name));
	else
		code = code_of_rpc_error(json_integer_value(json_object_get(error, "code")));
	if (code == DM_OK)
		code = DM_EINTERNAL;
	if (json_is_string(msg) && *json_string_value(msg))
		return dm_err_set(err, code, "%s", json_string_value(msg));
	return dm_err_set(err, code, "dm server at %s failed '%s' without saying why", c->where,
			  method);
}

/* Checks that body is our reply and takes its result or error. */
/*
 * A 401: the server refused the credentials. It says why only to a caller
 * who gave the right key (an expired key); every other refusal is the same
 * words, which say which remote's key to check.
 */
static int refused(struct dm_client *c, const struct dm_buf *body, struct dm_err *err)
{
	json_t *reply = json_loadb((const char *)body->data, body->len, 0, NULL);
	const char *msg =
		json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
	int rc;

	if (msg && !strncmp(msg, "API key of user ", 16))
		rc = dm_err_set(err, DM_EPERM, "remote '%s': %s", c->name, msg);
	else
		rc = dm_err_set(err, DM_EPERM,
				"permission denied: invalid user name or API key for remote '%s'",
				c->name);
	json_decref(reply);
	return rc;
}

static int parse_reply(struct dm_client *c, const char *method, int64_t id, long status,
		       const struct dm_buf *body, json_t **result, struct dm_err *err)
{
	json_error_t jerr;
	json_t *reply = NULL, *error, *res, *rid;
	int rc = 0;

	reply = json_loadb((const char *)body->data, body->len, 0, &jerr);
	if (!reply || !json_is_object(reply)) {
		if (status != 200)
			rc = dm_err_set(err, DM_EPROTO, "dm server at %s answered HTTP %ld to '%s'",
					c->where, status, method);
		else
			rc = dm_err_set(err, DM_EPROTO,
					"invalid JSON-RPC reply from dm server at %s: %s", c->where,
					reply ? "not an object" : jerr.text);
		goto done;
	}
	error = json_object_get(reply, "error");
	res = json_object_get(reply, "result");
	rid = json_object_get(reply, "id");
	if (json_is_object(error)) {
		/* an id of null is allowed when the server could not read ours */
		rc = reply_error(c, method, error, err);
		goto done;
	}
	if (!json_is_string(json_object_get(reply, "jsonrpc")) ||
	    strcmp(json_string_value(json_object_get(reply, "jsonrpc")), "2.0") != 0 || !res ||
	    !json_is_integer(rid) || json_integer_value(rid) != id) {
		rc = dm_err_set(err, DM_EPROTO,
				"invalid JSON-RPC reply from dm server at %s: no result for request %lld",
				c->where, (long long)id);
		goto done;
	}
	*result = json_incref(res);
done:
	json_decref(reply);
	return rc;
}

int dm_client_call(struct dm_client *c, const char *method, json_t *params, json_t **result,
		   struct dm_err *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *headers = NULL;
	struct sink sink = {DM_BUF_INIT, false};
	json_t *req = NULL;
	char *body = NULL;
	long timeout = method_timeout(c, method), status = 0;
	int64_t id = c->next_id++;
	int64_t t0 = 0;
	CURLcode cc;
	int rc = 0;

	*result = NULL;
	dm_buf_init(&sink.buf, DM_CLIENT_MAX_RESPONSE);
	req = json_object();
	if (req && !json_object_set_new(req, "jsonrpc", json_string("2.0")) &&
	    !json_object_set_new(req, "id", json_integer((json_int_t)id)) &&
	    !json_object_set_new(req, "method", json_string(method)) &&
	    !json_object_set_new(req, "params", params ? json_incref(params) : json_object()))
		body = json_dumps(req, JSON_COMPACT);
	if (!body) {
		rc = dm_err_set(err, DM_ENOMEM, "cannot encode the request '%s'", method);
		goto done;
	}
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Accept: application/json");
	headers = curl_slist_append(headers, "Expect:");
	if (headers && c->on_behalf)
		headers = curl_slist_append(headers, c->on_behalf);
	if (!headers) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto done;
	}

	dm_curl_setup(c->curl, &(const struct dm_curl_request){
				       .url = c->url,
				       .user = c->is_node ? NULL : c->user,
				       .password = c->is_node ? NULL : c->api_key,
				       .headers = headers,
				       .agent = "dm/" DM_VERSION,
				       .connect_timeout = DM_CLIENT_CONNECT_TIMEOUT,
				       .errbuf = errbuf,
				       .ca_pem = c->socket ? NULL : c->ca,
				       .node = c->is_node && !c->socket ? &c->node : NULL,
			       });
	if (c->socket)
		curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->socket);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, timeout);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &sink);

	dm_debug("-> %s %s %s", c->where, method, body);
	t0 = dm_now_monotonic_ns();
	cc = curl_easy_perform(c->curl);
	if (cc == CURLE_WRITE_ERROR && sink.too_big) {
		rc = dm_err_set(err, DM_ETOOBIG,
				"the answer of dm server at %s to '%s' is larger than %u MiB",
				c->where, method, DM_CLIENT_MAX_RESPONSE >> 20);
		goto done;
	}
	if (cc != CURLE_OK) {
		rc = transport_error(c, cc, errbuf, timeout, err);
		goto done;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	dm_debug("<- %s HTTP %ld in %lld ms: %s", c->where, status,
		 (long long)((dm_now_monotonic_ns() - t0) / 1000000), (const char *)sink.buf.data);
	if (status == 401) {
		rc = refused(c, &sink.buf, err);
		goto done;
	}
	if (status == 413) {
		rc = dm_err_set(err, DM_ETOOBIG, "the request '%s' is too large for dm server at %s",
				method, c->where);
		goto done;
	}
	if (sink.buf.len == 0) {
		rc = dm_err_set(err, DM_EPROTO, "dm server at %s answered HTTP %ld to '%s' with nothing",
				c->where, status, method);
		goto done;
	}
	rc = parse_reply(c, method, id, status, &sink.buf, result, err);
done:
	curl_slist_free_all(headers);
	if (body) {
		memset(body, 0, strlen(body));
		free(body);
	}
	json_decref(req);
	dm_buf_release(&sink.buf);
	return rc;
}
