/*
 * fuzz_token.c - libFuzzer target for the join token a user pastes into
 * `dm cluster join` (server/cluster/cluster.h: "dmj1." and the base64url
 * of a small JSON object), and the node addresses ("http://HOST:PORT")
 * dmd reads from the KV. The input's first byte picks what the rest is:
 *     0 a token as typed           1 the JSON inside a token (the
 *     2 a node's address             harness encodes it, so that mutations
 *                                    reach the JSON parser)
 *
 * Whatever decoding accepts must hold its promises: a cluster id of
 * DM_UUID_LEN characters, a key of DM_API_KEY_LEN, NUL-terminated fields,
 * and a token that encodes back to one that decodes to the same; a
 * refusal is DM_EINVAL and leaves the token zeroed. An address accepted
 * gives a port in 1..65535 and a host that fits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/cluster/cluster.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/err.h"

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
	switch (data[0] % 3) {
	case 0:
		fuzz_token(s);
		break;
	case 1:
		fuzz_inner(s, size - 1);
		break;
	default:
		fuzz_address(s);
		break;
	}
	free(s);
	return 0;
}
