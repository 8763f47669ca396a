/*
 * probe.c - first contact with a dm server (see probe.h): what CA its
 * certificate chain ends with, before anything about it is trusted.
 *
 * Invariants:
 *   - Nothing is sent but an unauthenticated GET /healthz: no credential
 *     goes to a server whose certificate is not verified yet.
 *   - A chain longer than DM_TLS_PEM_MAX or without a certificate is
 *     refused; the CA handed out is the chain's last certificate.
 */
#include "client/probe.h"

#include <curl/curl.h>
#include <string.h>

#include "util/buf.h"
#include "util/curl.h"
#include "util/err.h"
#include "util/tls.h"

#include "util/banned.h"

#define PROBE_TIMEOUT 10 /* seconds, connect and answer */

static size_t discard(char *data, size_t size, size_t nmemb, void *arg)
{
	return size * nmemb;
}

static CURLcode get_healthz(CURL *e, const char *url, char *errbuf, bool tls)
{
	dm_curl_setup(e, &(const struct dm_curl_request){
				 .url = url,
				 .user = "",
				 .password = "",
				 .agent = "dm/" DM_VERSION,
				 .connect_timeout = PROBE_TIMEOUT,
				 .errbuf = errbuf,
			 });
	curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_NONE);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)PROBE_TIMEOUT);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	if (tls) {
		/* first contact: the chain is read, not trusted (it is checked
		 * against what the user says, by the caller, before any use) */
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(e, CURLOPT_CERTINFO, 1L);
	}
	return curl_easy_perform(e);
}

/* The last certificate of the chain curl saw, as PEM, into out. */
static int chain_root(struct dm_buf *out, CURL *e, const char *where, struct dm_err *err)
{
	struct curl_certinfo *ci = NULL;
	const char *pem = NULL;

	if (curl_easy_getinfo(e, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci || ci->num_of_certs < 1)
		return dm_err_set(err, DM_EPROTO, "dm server at %s sent no certificate", where);
	for (struct curl_slist *s = ci->certinfo[ci->num_of_certs - 1]; s; s = s->next)
		if (!strncmp(s->data, "Cert:", 5))
			pem = s->data + 5;
	if (!pem || strlen(pem) > DM_TLS_PEM_MAX)
		return dm_err_set(err, DM_EPROTO, "dm server at %s sent no usable certificate",
				  where);
	if (dm_buf_add(out, pem, strlen(pem) + 1))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}

int dm_client_probe(struct dm_client_probe *out, const char *host, int port, struct dm_err *err)
{
	char errbuf[CURL_ERROR_SIZE] = "", url[512], where[300];
	bool v6 = strchr(host, ':') != NULL;
	CURL *e;
	CURLcode cc;
	int rc;

	memset(out, 0, sizeof(*out));
	dm_buf_init(&out->ca, DM_TLS_PEM_MAX + 1);
	rc = dm_curl_global_init(err);
	if (rc)
		return rc;
	e = curl_easy_init();
	if (!e)
		return dm_err_set(err, DM_ENOMEM, "cannot make a libcurl handle");
	snprintf(where, sizeof(where), v6 ? "[%s]:%d" : "%s:%d", host, port);
	snprintf(url, sizeof(url), "https://%s/healthz", where);
	cc = get_healthz(e, url, errbuf, true);
	if (cc == CURLE_OK) {
		rc = chain_root(&out->ca, e, where, err);
		if (!rc)
			rc = dm_tls_fingerprint(out->fingerprint, (const char *)out->ca.data, err);
	} else {
		/* not TLS? a --insecure-http server answers plain HTTP */
		snprintf(url, sizeof(url), "http://%s/healthz", where);
		errbuf[0] = '\0';
		if (get_healthz(e, url, errbuf, false) == CURLE_OK) {
			out->plain = true;
		} else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
			   cc == CURLE_OPERATION_TIMEDOUT) {
			rc = dm_err_set(err, DM_EUNAVAILABLE, "cannot reach dm server at %s: %s",
					where, curl_easy_strerror(cc));
		} else {
			rc = dm_err_set(err, DM_EPROTO,
					"dm server at %s speaks neither HTTPS nor HTTP as dm does: "
					"%s",
					where, curl_easy_strerror(cc));
		}
	}
	curl_easy_cleanup(e);
	if (rc)
		dm_client_probe_release(out);
	return rc;
}

void dm_client_probe_release(struct dm_client_probe *p)
{
	dm_buf_release(&p->ca);
}
