/*
 * fuzz_token.c - libFuzzer target for the join token a user pastes into
 * `dm cluster join` (server/cluster/cluster.h: "dmj1." and the base64url
 * of a small JSON object), the node addresses ("http://HOST:PORT")
 * dmd reads from the KV, and the body of a node's request for its
 * certificate (POST /join, POST /renew; cluster/nodecred.h), signed by a
 * real CA against a real LMDB KV. The input's first byte picks what the
 * rest is:
 *     0 a token as typed           1 the JSON inside a token (the
 *     2 a node's address             harness encodes it, so that mutations
 *     3 a POST /join body            reach the JSON parser)
 *     4 a POST /renew body of node RENEW_NODE
 *
 * Whatever decoding accepts must hold its promises: a cluster id of
 * DM_UUID_LEN characters, a key of DM_API_KEY_LEN, NUL-terminated fields,
 * and a token that encodes back to one that decodes to the same; a
 * refusal is DM_EINVAL and leaves the token zeroed. An address accepted
 * gives a port in 1..65535 and a host that fits. A request for a
 * certificate is answered with exactly one of {"cert"} (status 200, a
 * certificate of the CA naming the node) or {"error"} (any other status).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "kv/kv.h"
#include "server/cluster/cluster.h"
#include "server/cluster/nodecred.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/tls.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t size)
{
	if (strnlen(s, size) == size)
		abort();
}

static void fuzz_token(const char *text)
{
	struct dm_cluster_token t, again;
	struct dm_err err;
	char *back = NULL;
	int rc = dm_cluster_token_decode(&t, text, &err);

	if (rc) {
		static const struct dm_cluster_token zero;

		if (rc != DM_EINVAL || memcmp(&t, &zero, sizeof(t)))
			abort();
		return;
	}
	check_str(t.cluster_id, sizeof(t.cluster_id));
	check_str(t.endpoints, sizeof(t.endpoints));
	check_str(t.signer, sizeof(t.signer));
	check_str(t.secret, sizeof(t.secret));
	check_str(t.ca, sizeof(t.ca));
	if (strlen(t.cluster_id) != DM_UUID_LEN || strlen(t.secret) != DM_API_KEY_LEN)
		abort();
	if (dm_cluster_token_encode(&back, &t, &err))
		return; /* a token too long to make again is not a crash */
	if (dm_cluster_token_decode(&again, back, &err) || memcmp(&t, &again, sizeof(t)))
		abort();
	free(back);
}

static void fuzz_inner(const char *json, size_t len)
{
	struct dm_buf b;

	dm_buf_init(&b, 0);
	if (dm_buf_adds(&b, DM_CLUSTER_TOKEN_PREFIX) || dm_base64_encode(&b, json, len, true) ||
	    dm_buf_addc(&b, '\0'))
		abort();
	fuzz_token((const char *)b.data);
	dm_buf_release(&b);
}

static void fuzz_address(const char *s)
{
	char host[64];
	int port = 0;

	if (dm_cluster_address_parse(host, sizeof(host), &port, s))
		return;
	check_str(host, sizeof(host));
	if (port < 1 || port > 65535 || !host[0])
		abort();
}

#define RENEW_NODE "0b5e0f6c-3a8d-4c1e-9f7a-2d4b6c8e0a1f"

/* A CA and an LMDB KV, made once, removed at exit. */
static struct dm_cluster_env signer;
static struct dm_buf ca, ca_key;
static char kv_dir[64];

static void signer_close(void)
{
	dm_kv_free(signer.kv);
	dm_remove_tree(kv_dir, NULL);
}

static void signer_open(void)
{
	struct dm_err err;
	FILE *null;

	if (signer.kv)
		return;
	null = fopen("/dev/null", "w");
	dm_log_setup(null, DM_LOG_ERROR); /* refusals are logged; not what is fuzzed */
	snprintf(kv_dir, sizeof(kv_dir), "/tmp/dm-fuzz-token-XXXXXX");
	if (!mkdtemp(kv_dir) || dm_kv_open_lmdb(&signer.kv, kv_dir, &err) ||
	    dm_tls_make_ca(&ca, &ca_key, "fuzz", &err) || dm_buf_add(&ca, "", 1) ||
	    dm_buf_add(&ca_key, "", 1))
		abort();
	signer.node_id = "11111111-2222-4333-8444-555555555555";
	signer.ca = (const char *)ca.data;
	atexit(signer_close);
}

static void fuzz_request(const char *body, size_t len, const char *renew)
{
	unsigned status = 0;
	char *out;
	json_t *doc, *cert, *error;

	signer_open();
	out = dm_nodecred_sign(&signer, (const char *)ca_key.data, renew, body, len, &status);
	doc = out ? json_loads(out, 0, NULL) : NULL;
	cert = json_object_get(doc, "cert");
	error = json_object_get(doc, "error");
	if (!doc || json_object_size(doc) != 1 || !cert == !error || (cert && status != 200) ||
	    (error && (status == 200 || !json_is_string(error))))
		abort();
	/* only a renewal can pass: no join secret is in the KV */
	if (cert && (!renew || dm_tls_names_node(json_string_value(cert), renew) ||
		     dm_tls_check_signed(json_string_value(cert), signer.ca, NULL)))
		abort();
	json_decref(doc);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 5) {
	case 0:
		fuzz_token(s);
		break;
	case 1:
		fuzz_inner(s, size - 1);
		break;
	case 3:
		fuzz_request(s, size - 1, NULL);
		break;
	case 4:
		fuzz_request(s, size - 1, RENEW_NODE);
		break;
	default:
		fuzz_address(s);
		break;
	}
	free(s);
	return 0;
}
