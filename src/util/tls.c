/*
 * tls.c - certificates with OpenSSL (see tls.h).
 *
 * Invariants:
 *   - Every OpenSSL object made here is freed here, on every path; what
 *     leaves is PEM text in the caller's buffers.
 *   - A key's PEM is written only into the caller's buffer (which the
 *     caller stores with mode 0600); nothing here writes files.
 *   - Certificates are X.509 v3 with random 128-bit serials; a CA has
 *     basicConstraints CA:TRUE and keyCertSign, a server certificate
 *     CA:FALSE, serverAuth and clientAuth (nodes call each other with it).
 *   - A node of a cluster is named by exactly one DNS name of its
 *     certificate, ID DM_TLS_NODE_SUFFIX; nothing else names a node.
 */
#include "util/tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

#define DAY_S (24L * 3600)

static int ssl_error(struct dm_err *err, const char *what)
{
	return dm_err_set(err, DM_EINTERNAL, "cannot %s (OpenSSL)", what);
}

static EVP_PKEY *new_key(void)
{
	return EVP_EC_gen("P-256");
}

/* PEM of a key or a certificate appended to out. */
static int bio_to_buf(struct dm_buf *out, BIO *bio, struct dm_err *err)
{
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);

	if (len <= 0 || dm_buf_add(out, data, (size_t)len))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}

static int cert_pem(struct dm_buf *out, X509 *x, struct dm_err *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int rc;

	if (!bio || !PEM_write_bio_X509(bio, x)) {
		BIO_free(bio);
		return ssl_error(err, "write a certificate");
	}
	rc = bio_to_buf(out, bio, err);
	BIO_free(bio);
	return rc;
}

static int key_pem(struct dm_buf *out, EVP_PKEY *k, struct dm_err *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int rc;

	if (!bio || !PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL)) {
		BIO_free(bio);
		return ssl_error(err, "write a key");
	}
	rc = bio_to_buf(out, bio, err);
	BIO_free(bio);
	return rc;
}

static X509 *read_cert(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	return x;
}

/* The last certificate of pem: the CA that signs, in a bundle of CAs
 * (the new one last, while a CA is rotated). */
static X509 *read_last_cert(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x, *last = NULL;

	while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		X509_free(last);
		last = x;
	}
	ERR_clear_error();
	BIO_free(bio);
	return last;
}

static EVP_PKEY *read_key(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	return k;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* A certificate for key with subject CN=cn, valid for days from now, its
 * issuer's name (NULL: itself) set; not yet signed. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer, long days)
{
	X509 *x = X509_new();
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	X509_NAME *name;

	if (!x || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f; /* a positive serial */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !X509_set_version(x, 2) || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto fail;
	if (!X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), days * DAY_S) || !X509_set_pubkey(x, key))
		goto fail;
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"dm", -1,
					-1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0))
		goto fail;
	if (!X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name))
		goto fail;
	BN_free(bn);
	return x;
fail:
	BN_free(bn);
	X509_free(x);
	return NULL;
}

int dm_tls_make_ca(struct dm_buf *cert_out, struct dm_buf *key_out, const char *label,
		   struct dm_err *err)
{
	EVP_PKEY *key = new_key();
	char cn[128];
	X509 *x = NULL;
	int rc = 0;

	snprintf(cn, sizeof(cn), "dm CA %.100s", label);
	if (key)
		x = new_cert(key, cn, NULL, 3650);
	if (!x || !add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    !add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !add_ext(x, x, NID_subject_key_identifier, "hash") ||
	    !X509_sign(x, key, EVP_sha256()))
		rc = ssl_error(err, "make a CA certificate");
	if (!rc)
		rc = cert_pem(cert_out, x, err);
	if (!rc)
		rc = key_pem(key_out, key, err);
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

/* "IP:a.b.c.d" or "DNS:name" for one name; 0 when it is neither. */
static int san_item(char *out, size_t size, const char *name)
{
	unsigned char addr[16];
	size_t len = strlen(name);

	if (!len || len > 253)
		return 0;
	if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1) {
		snprintf(out, size, "IP:%s", name);
		return 1;
	}
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '.')
			return 0;
	snprintf(out, size, "DNS:%s", name);
	return 1;
}

/* A certificate for key's public half, signed by the CA (ca, ca_key),
 * valid two years, for names[0..n) (names[0] its CN), for a TLS server
 * and client; cert_out gets it, then the CA's. */
static int issue(struct dm_buf *cert_out, EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key,
		 const char *const *names, size_t n, struct dm_err *err)
{
	struct dm_buf san = DM_BUF_INIT;
	X509 *x = NULL;
	int rc = 0;

	if (!n || n > DM_TLS_NAMES_MAX)
		rc = dm_err_set(err, DM_EINVAL, "a server certificate needs 1 to %d names",
				DM_TLS_NAMES_MAX);
	for (size_t i = 0; i < n && !rc; i++) {
		char item[300];

		if (!san_item(item, sizeof(item), names[i]))
			rc = dm_err_set(err, DM_EINVAL,
					"'%.100s' is neither an IP address nor a host name",
					names[i]);
		else if ((i && dm_buf_add(&san, ",", 1)) || dm_buf_add(&san, item, strlen(item)))
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	if (!rc && dm_buf_add(&san, "", 1))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!rc) {
		x = new_cert(key, names[0], ca, 730);
		if (!x || !add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") ||
		    !add_ext(x, ca, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
		    !add_ext(x, ca, NID_ext_key_usage, "serverAuth,clientAuth") ||
		    !add_ext(x, ca, NID_subject_alt_name, (const char *)san.data) ||
		    !add_ext(x, ca, NID_authority_key_identifier, "keyid:always") ||
		    !X509_sign(x, ca_key, EVP_sha256()))
			rc = ssl_error(err, "make a server certificate");
	}
	if (!rc)
		rc = cert_pem(cert_out, x, err);
	if (!rc)
		rc = cert_pem(cert_out, ca, err);
	dm_buf_release(&san);
	X509_free(x);
	return rc;
}

int dm_tls_make_server(struct dm_buf *cert_out, struct dm_buf *key_out, const char *ca_cert_pem,
		       const char *ca_key_pem, const char *const *names, size_t n,
		       struct dm_err *err)
{
	X509 *ca = read_last_cert(ca_cert_pem);
	EVP_PKEY *ca_key = read_key(ca_key_pem), *key = NULL;
	int rc = 0;

	if (!ca || !ca_key)
		rc = dm_err_set(err, DM_EINVAL, "the CA certificate or its key cannot be read");
	if (!rc && !(key = new_key()))
		rc = ssl_error(err, "make a key");
	if (!rc)
		rc = issue(cert_out, key, ca, ca_key, names, n, err);
	if (!rc)
		rc = key_pem(key_out, key, err);
	X509_free(ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ca_key);
	return rc;
}

int dm_tls_make_csr(struct dm_buf *csr_out, struct dm_buf *key_out, const char *cn,
		    struct dm_err *err)
{
	EVP_PKEY *key = new_key();
	X509_REQ *req = X509_REQ_new();
	BIO *bio = BIO_new(BIO_s_mem());
	int rc = 0;

	if (!key || !req || !bio || !X509_REQ_set_version(req, 0) ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_pubkey(req, key) || !X509_REQ_sign(req, key, EVP_sha256()) ||
	    !PEM_write_bio_X509_REQ(bio, req))
		rc = ssl_error(err, "make a certificate request");
	if (!rc)
		rc = bio_to_buf(csr_out, bio, err);
	if (!rc)
		rc = key_pem(key_out, key, err);
	BIO_free(bio);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return rc;
}

int dm_tls_sign_csr(struct dm_buf *cert_out, const char *csr_pem, const char *ca_cert_pem,
		    const char *ca_key_pem, const char *const *names, size_t n,
		    struct dm_err *err)
{
	BIO *bio = BIO_new_mem_buf(csr_pem, -1);
	X509_REQ *req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
	EVP_PKEY *pub = req ? X509_REQ_get0_pubkey(req) : NULL;
	X509 *ca = read_last_cert(ca_cert_pem);
	EVP_PKEY *ca_key = read_key(ca_key_pem);
	int rc = 0;

	if (!ca || !ca_key)
		rc = dm_err_set(err, DM_EINVAL, "the CA certificate or its key cannot be read");
	else if (!pub || X509_REQ_verify(req, pub) != 1)
		rc = dm_err_set(err, DM_EINVAL,
				"not a certificate request signed by its own key (PEM)");
	if (!rc)
		rc = issue(cert_out, pub, ca, ca_key, names, n, err);
	BIO_free(bio);
	X509_REQ_free(req);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return rc;
}

void dm_tls_node_name(char *out, size_t size, const char *node_id)
{
	snprintf(out, size, "%s%s", node_id, DM_TLS_NODE_SUFFIX);
}

/* The node id the DNS names of x's subjectAltName give (ID
 * DM_TLS_NODE_SUFFIX) into out; -1 when none or more than one. */
static int node_of(char *out, size_t size, X509 *x)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	const size_t slen = strlen(DM_TLS_NODE_SUFFIX);
	int found = 0;

	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const char *s;
		int len;

		if (g->type != GEN_DNS)
			continue;
		s = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
		len = ASN1_STRING_length(g->d.dNSName);
		if (len <= (int)slen || (size_t)len - slen >= size ||
		    memcmp(s + len - slen, DM_TLS_NODE_SUFFIX, slen) != 0 ||
		    memchr(s, '\0', (size_t)len))
			continue;
		memcpy(out, s, (size_t)len - slen);
		out[len - slen] = '\0';
		found++;
	}
	GENERAL_NAMES_free(names);
	return found == 1 ? 0 : -1;
}

/* Every certificate of pem into store; the count. */
static int add_cas(X509_STORE *store, const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x;
	int n = 0;

	while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		if (X509_STORE_add_cert(store, x))
			n++;
		X509_free(x);
	}
	BIO_free(bio);
	return n;
}

int dm_tls_peer_node(char *out, size_t size, const unsigned char *const *der, const size_t *lens,
		     size_t n, const char *ca_pem, struct dm_err *err)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *chain = sk_X509_new_null();
	X509 *leaf = NULL;
	int rc = 0;

	if (!store || !ctx || !chain)
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	else if (!n || n > 8 || add_cas(store, ca_pem) == 0)
		rc = dm_err_set(err, DM_EPERM, "no certificate to check, or no CA to check it by");
	for (size_t i = 0; !rc && i < n; i++) {
		const unsigned char *p = der[i];
		X509 *x = lens[i] <= DM_TLS_PEM_MAX ? d2i_X509(NULL, &p, (long)lens[i]) : NULL;

		if (!x)
			rc = dm_err_set(err, DM_EPERM, "the peer's certificate cannot be read");
		else if (i == 0)
			leaf = x;
		else if (!sk_X509_push(chain, x)) {
			X509_free(x);
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		}
	}
	if (!rc && (!X509_STORE_CTX_init(ctx, store, leaf, chain) ||
		    !X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) ||
		    X509_verify_cert(ctx) != 1))
		rc = dm_err_set(err, DM_EPERM, "the peer's certificate does not verify: %s",
				X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	if (!rc && node_of(out, size, leaf))
		rc = dm_err_set(err, DM_EPERM, "the peer's certificate names no node of dm");
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

int dm_tls_names_node(const char *pem, const char *node_id)
{
	X509 *x = read_cert(pem);
	char id[128];
	int rc = x && !node_of(id, sizeof(id), x) && !strcmp(id, node_id) ? 0 : -1;

	X509_free(x);
	return rc;
}

static void hex_fingerprint(char *out, const unsigned char *md)
{
	memcpy(out, "SHA256:", 7);
	for (int i = 0; i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

int dm_tls_fingerprint(char *out, const char *pem, struct dm_err *err)
{
	X509 *x = read_cert(pem);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (!x)
		return dm_err_set(err, DM_EINVAL, "no certificate in the PEM text");
	if (!X509_digest(x, EVP_sha256(), md, &len) || len != 32) {
		X509_free(x);
		return ssl_error(err, "hash a certificate");
	}
	X509_free(x);
	hex_fingerprint(out, md);
	return 0;
}

int dm_tls_chain_root(struct dm_buf *out, const char *pem, struct dm_err *err)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x, *last = NULL;
	int rc;

	while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		X509_free(last);
		last = x;
	}
	BIO_free(bio);
	if (!last)
		return dm_err_set(err, DM_EINVAL, "no certificate in the PEM text");
	rc = cert_pem(out, last, err);
	X509_free(last);
	return rc;
}

int dm_tls_check_signed(const char *pem, const char *ca_pem, struct dm_err *err)
{
	char fp[DM_TLS_FINGERPRINT_LEN + 1];

	return dm_tls_signer(fp, pem, ca_pem, err);
}

int dm_tls_signer(char *out, const char *pem, const char *ca_pem, struct dm_err *err)
{
	X509 *x = read_cert(pem), *ca;
	BIO *bio = BIO_new_mem_buf(ca_pem, -1);
	int rc = DM_EINVAL;

	while (x && bio && rc && (ca = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		EVP_PKEY *k = X509_get0_pubkey(ca);
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int len = 0;

		if (k && X509_verify(x, k) == 1 && X509_digest(ca, EVP_sha256(), md, &len) &&
		    len == 32) {
			hex_fingerprint(out, md);
			rc = 0;
		} else if (rc == DM_EINVAL) {
			rc = DM_EPERM; /* a CA, but not the one */
		}
		X509_free(ca);
	}
	ERR_clear_error();
	BIO_free(bio);
	X509_free(x);
	if (rc == DM_EINVAL)
		return dm_err_set(err, DM_EINVAL, "no certificate in the PEM text");
	if (rc)
		return dm_err_set(err, DM_EPERM, "the certificate is not signed by this CA");
	return 0;
}

int dm_tls_fingerprint_parse(char *out, const char *text, struct dm_err *err)
{
	unsigned char md[32];
	size_t n = 0;
	const char *p = text;

	if (!strncasecmp(p, "sha256:", 7))
		p += 7;
	for (; *p && n < 2 * sizeof(md); p++) {
		int v;

		if (*p == ':')
			continue;
		if (!isxdigit((unsigned char)*p))
			break;
		v = isdigit((unsigned char)*p) ? *p - '0' : (tolower((unsigned char)*p) - 'a' + 10);
		if (n % 2 == 0)
			md[n / 2] = (unsigned char)(v << 4);
		else
			md[n / 2] |= (unsigned char)v;
		n++;
	}
	if (*p || n != 2 * sizeof(md))
		return dm_err_set(err, DM_EINVAL,
				  "'%.100s' is not a SHA-256 fingerprint (SHA256: and 64 hex "
				  "digits)",
				  text);
	hex_fingerprint(out, md);
	return 0;
}
