/*
 * test_tls.c - the certificates dm makes (util/tls.h): a CA signs a server
 * certificate for IP addresses and names, the chain a server sends ends
 * with the CA, fingerprints are stable and parse in the forms users type,
 * and a certificate of another CA is told apart; a node's certificate,
 * signed from its request, names that node and is checked as a TLS
 * client's against one CA or several.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/tls.h"

#include "util/banned.h"

struct ca {
	struct dm_buf cert, key;
};

static void make_ca(struct ca *ca, const char *label)
{
	struct dm_err err;

	dm_buf_init(&ca->cert, 0);
	dm_buf_init(&ca->key, 0);
	assert_int_equal(dm_tls_make_ca(&ca->cert, &ca->key, label, &err), 0);
	assert_int_equal(dm_buf_add(&ca->cert, "", 1), 0);
	assert_int_equal(dm_buf_add(&ca->key, "", 1), 0);
	assert_non_null(strstr((const char *)ca->cert.data, "BEGIN CERTIFICATE"));
	assert_non_null(strstr((const char *)ca->key.data, "PRIVATE KEY"));
}

static void free_ca(struct ca *ca)
{
	dm_buf_release(&ca->cert);
	dm_buf_release(&ca->key);
}

static void test_server_signed_by_its_ca(void **state)
{
	const char *names[] = {"127.0.0.1", "localhost", "::1", "node-1.example"};
	struct ca ca, other;
	struct dm_buf cert = DM_BUF_INIT, key = DM_BUF_INIT, root = DM_BUF_INIT;
	char fp_ca[DM_TLS_FINGERPRINT_LEN + 1], fp_root[DM_TLS_FINGERPRINT_LEN + 1];
	char fp_srv[DM_TLS_FINGERPRINT_LEN + 1];
	struct dm_err err;

	make_ca(&ca, "test");
	make_ca(&other, "other");
	assert_int_equal(dm_tls_make_server(&cert, &key, (const char *)ca.cert.data,
					    (const char *)ca.key.data, names, 4, &err),
			 0);
	assert_int_equal(dm_buf_add(&cert, "", 1), 0);
	/* the chain: the server's certificate, then the CA's */
	assert_int_equal(dm_tls_chain_root(&root, (const char *)cert.data, &err), 0);
	assert_int_equal(dm_buf_add(&root, "", 1), 0);
	assert_int_equal(dm_tls_fingerprint(fp_ca, (const char *)ca.cert.data, &err), 0);
	assert_int_equal(dm_tls_fingerprint(fp_root, (const char *)root.data, &err), 0);
	assert_string_equal(fp_ca, fp_root);
	assert_int_equal(dm_tls_fingerprint(fp_srv, (const char *)cert.data, &err), 0);
	assert_string_not_equal(fp_srv, fp_ca);
	assert_int_equal(strlen(fp_ca), DM_TLS_FINGERPRINT_LEN);
	assert_memory_equal(fp_ca, "SHA256:", 7);
	/* signed by its CA, not by another */
	assert_int_equal(dm_tls_check_signed((const char *)cert.data, (const char *)ca.cert.data,
					     &err),
			 0);
	assert_int_equal(dm_tls_check_signed((const char *)cert.data,
					     (const char *)other.cert.data, &err),
			 DM_EPERM);
	dm_buf_release(&cert);
	dm_buf_release(&key);
	dm_buf_release(&root);
	free_ca(&ca);
	free_ca(&other);
}

static void test_bad_names_refused(void **state)
{
	const char *bad[] = {"has space"}, *none[] = {NULL};
	struct ca ca;
	struct dm_buf cert = DM_BUF_INIT, key = DM_BUF_INIT;
	struct dm_err err;

	make_ca(&ca, "test");
	assert_int_equal(dm_tls_make_server(&cert, &key, (const char *)ca.cert.data,
					    (const char *)ca.key.data, bad, 1, &err),
			 DM_EINVAL);
	assert_non_null(strstr(err.msg, "neither an IP address nor a host name"));
	assert_int_equal(dm_tls_make_server(&cert, &key, (const char *)ca.cert.data,
					    (const char *)ca.key.data, none, 0, &err),
			 DM_EINVAL);
	assert_int_equal(dm_tls_make_server(&cert, &key, "not pem", (const char *)ca.key.data,
					    bad, 1, &err),
			 DM_EINVAL);
	dm_buf_release(&cert);
	dm_buf_release(&key);
	free_ca(&ca);
}

static void test_fingerprint_forms(void **state)
{
	const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char want[DM_TLS_FINGERPRINT_LEN + 1], got[DM_TLS_FINGERPRINT_LEN + 1], text[200];
	struct dm_err err;

	snprintf(want, sizeof(want), "SHA256:%s", hex);
	assert_int_equal(dm_tls_fingerprint_parse(got, want, &err), 0);
	assert_string_equal(got, want);
	assert_int_equal(dm_tls_fingerprint_parse(got, hex, &err), 0);
	assert_string_equal(got, want);
	snprintf(text, sizeof(text), "sha256:%s", "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:ab:cd:ef:"
						  "01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef");
	assert_int_equal(dm_tls_fingerprint_parse(got, text, &err), 0);
	assert_string_equal(got, want);
	assert_int_equal(dm_tls_fingerprint_parse(got, "SHA256:0123", &err), DM_EINVAL);
	snprintf(text, sizeof(text), "SHA256:%sff", hex);
	assert_int_equal(dm_tls_fingerprint_parse(got, text, &err), DM_EINVAL);
	assert_int_equal(dm_tls_fingerprint_parse(got, "SHA256:zz", &err), DM_EINVAL);
	assert_int_equal(dm_tls_fingerprint(got, "no certificate", &err), DM_EINVAL);
}

/* The first certificate of pem as DER, into out (OPENSSL_free). */
static int der_of(unsigned char **out, const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	int len;

	assert_non_null(x);
	*out = NULL;
	len = i2d_X509(x, out);
	X509_free(x);
	BIO_free(bio);
	return len;
}

static void test_node_certificate(void **state)
{
	static const char node[] = "0b5c2a58-5b8e-4d55-9f0e-1f6bdc1d3a77";
	struct ca a, b;
	struct dm_buf csr = DM_BUF_INIT, key = DM_BUF_INIT, chain = DM_BUF_INIT,
		      both = DM_BUF_INIT;
	char name[DM_TLS_NODE_NAME_MAX], got[64];
	const char *names[2] = {"127.0.0.1", name};
	const unsigned char *der[1];
	unsigned char *leaf;
	size_t len;
	struct dm_err err;

	make_ca(&a, "a");
	make_ca(&b, "b");
	dm_tls_node_name(name, sizeof(name), node);
	assert_string_equal(name, "0b5c2a58-5b8e-4d55-9f0e-1f6bdc1d3a77.node.dm.invalid");
	assert_int_equal(dm_tls_make_csr(&csr, &key, node, &err), 0);
	assert_int_equal(dm_buf_add(&csr, "", 1), 0);
	assert_non_null(strstr((const char *)csr.data, "CERTIFICATE REQUEST"));
	assert_int_equal(dm_tls_sign_csr(&chain, (const char *)csr.data, (const char *)a.cert.data,
					 (const char *)a.key.data, names, 2, &err),
			 0);
	assert_int_equal(dm_buf_add(&chain, "", 1), 0);
	assert_int_equal(dm_tls_check_signed((const char *)chain.data, (const char *)a.cert.data,
					     &err),
			 0);
	assert_int_equal(dm_tls_names_node((const char *)chain.data, node), 0);
	assert_int_equal(dm_tls_names_node((const char *)chain.data, "another"), -1);
	assert_int_equal(dm_tls_names_node((const char *)a.cert.data, node), -1);

	len = (size_t)der_of(&leaf, (const char *)chain.data);
	der[0] = leaf;
	assert_int_equal(dm_tls_peer_node(got, sizeof(got), der, &len, 1,
					  (const char *)a.cert.data, &err),
			 0);
	assert_string_equal(got, node);
	/* another CA's: refused */
	assert_int_equal(dm_tls_peer_node(got, sizeof(got), der, &len, 1,
					  (const char *)b.cert.data, &err),
			 DM_EPERM);
	/* during a rotation both are trusted */
	assert_int_equal(dm_buf_add(&both, b.cert.data, b.cert.len - 1), 0);
	assert_int_equal(dm_buf_add(&both, a.cert.data, a.cert.len), 0);
	assert_int_equal(dm_tls_peer_node(got, sizeof(got), der, &len, 1,
					  (const char *)both.data, &err),
			 0);
	OPENSSL_free(leaf);

	/* a server certificate that names no node is no node's */
	dm_buf_release(&chain);
	dm_buf_init(&chain, 0);
	assert_int_equal(dm_tls_sign_csr(&chain, (const char *)csr.data, (const char *)a.cert.data,
					 (const char *)a.key.data, names, 1, &err),
			 0);
	assert_int_equal(dm_buf_add(&chain, "", 1), 0);
	len = (size_t)der_of(&leaf, (const char *)chain.data);
	der[0] = leaf;
	assert_int_equal(dm_tls_peer_node(got, sizeof(got), der, &len, 1,
					  (const char *)a.cert.data, &err),
			 DM_EPERM);
	OPENSSL_free(leaf);

	/* a request whose signature does not hold is refused */
	((char *)csr.data)[strlen((const char *)csr.data) / 2] ^= 1;
	dm_buf_release(&chain);
	dm_buf_init(&chain, 0);
	assert_int_equal(dm_tls_sign_csr(&chain, (const char *)csr.data, (const char *)a.cert.data,
					 (const char *)a.key.data, names, 2, &err),
			 DM_EINVAL);
	dm_buf_release(&csr);
	dm_buf_release_secret(&key);
	dm_buf_release(&chain);
	dm_buf_release(&both);
	free_ca(&a);
	free_ca(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_signed_by_its_ca),
		cmocka_unit_test(test_bad_names_refused),
		cmocka_unit_test(test_fingerprint_forms),
		cmocka_unit_test(test_node_certificate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
