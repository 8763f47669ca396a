/*
 * curl.h - what every libcurl client of dm sets up the same way: libcurl's
 * global state, once per process, and the options each request shares (no
 * proxy, no signals, no redirects, basic authentication, a connect timeout,
 * an error buffer).
 *
 * A library of its own (util_curl_dep in src/util/meson.build), apart from
 * the rest of util, so that only the modules that speak HTTP as clients
 * (client, remote) link libcurl.
 */
#ifndef DM_UTIL_CURL_H
#define DM_UTIL_CURL_H

#include <curl/curl.h>

struct dm_err;

/* curl_global_init, the first time only (thread-safe); DM_EINTERNAL
 * "cannot initialise libcurl" when it failed. Never cleaned up: the
 * process keeps libcurl to its end. */
int dm_curl_global_init(struct dm_err *err);

/*
 * A node of a cluster calling another: its own certificate chain and key
 * (PEM; borrowed, they live as long as the node), sent as a TLS client
 * certificate instead of any API key, and the name the called node's
 * certificate must carry (util/tls.h's dm_tls_node_name of the node id
 * its record says), checked during the handshake, before anything is sent.
 */
struct dm_curl_node {
	const char *cert_pem;
	const char *key_pem;
	char peer[96]; /* DM_TLS_NODE_NAME_MAX */
};

/* The options every request of a dm client shares. Borrowed: each must
 * live until the request is done. */
struct dm_curl_request {
	const char *url;
	const char *user; /* basic authentication */
	const char *password;
	struct curl_slist *headers;
	const char *agent;    /* User-Agent */
	long connect_timeout; /* seconds */
	char *errbuf;         /* CURL_ERROR_SIZE bytes; emptied here */
	/* https: the one CA the server's certificate must chain to (PEM
	 * text), pinned; its host name or address is checked too. NULL for
	 * plain http (a server on loopback with --insecure-http, or a unix
	 * socket). */
	const char *ca_pem;
	/* with ca_pem: a node calling another (no user, no password), or NULL */
	const struct dm_curl_node *node;
};

/* Resets e (curl_easy_reset) and sets r's options on it, with no proxy
 * (whatever $http_proxy says), no signals and no redirects followed. */
void dm_curl_setup(CURL *e, const struct dm_curl_request *r);

/* Whether cc says the server's certificate did not verify against the
 * pinned CA (or the TLS handshake failed): the caller's message then says
 * so loudly, with the fingerprint it expected. */
int dm_curl_is_tls_failure(CURLcode cc);

#endif
