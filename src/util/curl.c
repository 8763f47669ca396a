/*
 * curl.c - libcurl's global set-up and the options every dm request shares
 * (see curl.h).
 *
 * Invariants: curl_global_init runs at most once per process (pthread_once)
 * and its result is kept for every later caller; dm_curl_setup leaves no
 * option of an earlier request on the handle (it starts with
 * curl_easy_reset); a request of a node (r->node) is TLS with the node's
 * certificate, and its handshake fails unless the server's certificate
 * names the node it calls.
 */
#include "util/curl.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "util/err.h"

#include "util/banned.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CURLcode init_rc;

static void init_once(void)
{
	init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int dm_curl_global_init(struct dm_err *err)
{
	pthread_once(&once, init_once);
	if (init_rc != CURLE_OK)
		return dm_err_set(err, DM_EINTERNAL, "cannot initialise libcurl: %s",
				  curl_easy_strerror(init_rc));
	return 0;
}

/* The called node's name joins what its certificate must carry: OpenSSL
 * checks it in the handshake, beside curl's check of the host. */
static CURLcode node_ctx(CURL *e, void *ssl_ctx, void *arg)
{
	const struct dm_curl_node *node = arg;
	X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ssl_ctx);

	(void)e;
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return X509_VERIFY_PARAM_set1_host(param, node->peer, 0) == 1 ? CURLE_OK
									: CURLE_SSL_CERTPROBLEM;
}

/* A node's own certificate and key, and the name it expects of the other. */
static void setup_node(CURL *e, const struct dm_curl_node *node)
{
	struct curl_blob cert = {(void *)(uintptr_t)node->cert_pem, strlen(node->cert_pem),
				 CURL_BLOB_COPY};
	struct curl_blob key = {(void *)(uintptr_t)node->key_pem, strlen(node->key_pem),
				CURL_BLOB_COPY};

	curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cert);
	curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
	curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key);
	curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
	curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, node_ctx);
	curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, (void *)(uintptr_t)node);
	/* a connection checked for another node is never reused for this one */
	curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
}

void dm_curl_setup(CURL *e, const struct dm_curl_request *r)
{
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never through $http_proxy */
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, r->connect_timeout);
	curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(e, CURLOPT_USERNAME, r->user);
	curl_easy_setopt(e, CURLOPT_PASSWORD, r->password);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, r->agent);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	r->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	if (r->ca_pem) {
		struct curl_blob ca = {(void *)(uintptr_t)r->ca_pem, strlen(r->ca_pem),
				       CURL_BLOB_COPY};

		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL); /* no system CAs: only ours */
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
		curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
		if (r->node)
			setup_node(e, r->node);
	}
}

int dm_curl_is_tls_failure(CURLcode cc)
{
	return cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR ||
	       cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_SSL_ISSUER_ERROR;
}
