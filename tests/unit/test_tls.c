/*
 * test_tls.c - the certificates dm makes (util/tls.h): a CA signs a server
 * certificate for IP addresses and names, the chain a server sends ends
 * with the CA, fingerprints are stable and parse in the forms users type,
 * and a certificate of another CA is told apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_signed_by_its_ca),
		cmocka_unit_test(test_bad_names_refused),
		cmocka_unit_test(test_fingerprint_forms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
