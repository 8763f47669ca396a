/*
 * test_cluster.c - the cluster's record, join tokens and node liveness on
 * the embedded KV (the etcd backend has the same semantics; the e2e tests
 * run the same code on a real etcd cluster).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kv/kv.h"
#include "server/cluster/cluster.h"
#include "util/base64.h"
#include "util/fsutil.h"

#include "util/banned.h"

struct fx {
	char dir[64];
	struct dm_kv *kv;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct dm_err err;

	snprintf(f->dir, sizeof(f->dir), "/tmp/dm-test-cluster-XXXXXX");
	if (!mkdtemp(f->dir) || dm_kv_open_lmdb(&f->kv, f->dir, &err)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	dm_kv_free(f->kv);
	dm_remove_tree(f->dir, NULL);
	free(f);
	return 0;
}

static void sample_token(struct dm_cluster_token *t)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->cluster_id, sizeof(t->cluster_id), "0b5c2a58-5b8e-4d55-9f0e-1f6bdc1d3a77");
	snprintf(t->endpoints, sizeof(t->endpoints), "http://127.0.0.1:2379,http://10.0.0.2:2379");
	snprintf(t->signer, sizeof(t->signer), "https://10.0.0.1:32607");
	memset(t->secret, 's', DM_API_KEY_LEN);
	snprintf(t->ca, sizeof(t->ca), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
}

/* The members every token has, as JSON, before any other. */
#define TOKEN_BASE                                                                                 \
	"{\"cluster\":\"0b5c2a58-5b8e-4d55-9f0e-1f6bdc1d3a77\",\"etcd\":\"https://x:1\","            \
	"\"signer\":\"https://10.0.0.1:32607\",\"secret\":\""                                          \
	"ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss\","                          \
	"\"ca\":\"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"" 

static void token_round_trip(void **state)
{
	struct dm_cluster_token t, back;
	struct dm_err err;
	char *text;

	sample_token(&t);
	assert_int_equal(dm_cluster_token_encode(&text, &t, &err), 0);
	assert_memory_equal(text, DM_CLUSTER_TOKEN_PREFIX, strlen(DM_CLUSTER_TOKEN_PREFIX));
	/* URL-safe: it survives shells and copy-paste */
	assert_int_equal(strspn(text + 5, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					  "0123456789-_"),
			 strlen(text + 5));
	assert_int_equal(dm_cluster_token_decode(&back, text, &err), 0);
	assert_string_equal(back.cluster_id, t.cluster_id);
	assert_string_equal(back.endpoints, t.endpoints);
	assert_string_equal(back.signer, t.signer);
	assert_string_equal(back.secret, t.secret);
	assert_string_equal(back.ca, t.ca);
	assert_string_equal(back.etcd_user, "");
	/* no API key and no CA key travel in a token */
	assert_null(strstr(text, "key"));
	free(text);
}

/* The token of JSON text: "dmj1." + base64url(json). */
static char *token_of(const char *json)
{
	struct dm_buf b = DM_BUF_INIT;

	dm_buf_adds(&b, DM_CLUSTER_TOKEN_PREFIX);
	dm_base64_encode(&b, json, strlen(json), true);
	return dm_buf_detach(&b, NULL);
}

/* A token of an older dm carried the admin key and the CA's key: refused,
 * saying how to get a new one. */
static void old_tokens_refused(void **state)
{
	struct dm_cluster_token back;
	struct dm_err err;
	char *text = token_of(
		"{\"cluster\":\"0b5c2a58-5b8e-4d55-9f0e-1f6bdc1d3a77\",\"etcd\":"
		"\"https://x:1\",\"key\":\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
		"kkkkkkkkkkkkkkk\"}");

	assert_int_equal(dm_cluster_token_decode(&back, text, &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "older dm"));
	assert_non_null(strstr(err.msg, "dm cluster join-token"));
	free(text);
}

/* etcd's CA, user and password go with the token, and only in pairs. */
static void token_carries_etcd_access(void **state)
{
	struct dm_cluster_token t, back;
	struct dm_err err;
	char *text;

	sample_token(&t);
	snprintf(t.etcd_ca, sizeof(t.etcd_ca),
		 "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
	snprintf(t.etcd_user, sizeof(t.etcd_user), "root");
	snprintf(t.etcd_password, sizeof(t.etcd_password), "s3cret pass");
	assert_int_equal(dm_cluster_token_encode(&text, &t, &err), 0);
	assert_int_equal(dm_cluster_token_decode(&back, text, &err), 0);
	assert_string_equal(back.etcd_ca, t.etcd_ca);
	assert_string_equal(back.etcd_user, "root");
	assert_string_equal(back.etcd_password, "s3cret pass");
	free(text);
	/* a user without its password is a damaged token */
	t.etcd_password[0] = '\0';
	assert_int_equal(dm_cluster_token_encode(&text, &t, &err), 0);
	assert_int_equal(dm_cluster_token_decode(&back, text, &err), 0);
	assert_string_equal(back.etcd_user, ""); /* encode writes both or none */
	free(text);
	text = token_of(TOKEN_BASE "}");
	assert_int_equal(dm_cluster_token_decode(&back, text, &err), 0);
	free(text);
	text = token_of(TOKEN_BASE ",\"etcd_user\":\"root\"}");
	assert_int_equal(dm_cluster_token_decode(&back, text, &err), DM_EINVAL);
	free(text);
	text = token_of(TOKEN_BASE ",\"etcd_ca\":\"not a certificate\"}");
	assert_int_equal(dm_cluster_token_decode(&back, text, &err), DM_EINVAL);
	free(text);
}

static void damaged_tokens(void **state)
{
	static const char *const bad_json[] = {
		"{}",
		"[1,2,3]",
		"{\"cluster\":\"short\",\"etcd\":\"http://x:1\"}",
		TOKEN_BASE ",\"extra\":1}",
		"{\"cluster\":\"0b5c2a58-5b8e-4d55-9f0e-1f6bdc1d3a77\",\"etcd\":\"https://x:1\","
		"\"signer\":\"https://10.0.0.1:32607\",\"secret\":\"ssss\",\"ca\":\"-----BEGIN "
		"CERTIFICATE-----\"}",
		"{\"cluster\":\"0b5c2a58-5b8e-4d55-9f0e-1f6bdc1d3a77\",\"etcd\":\"https://x:1\","
		"\"signer\":\"https://10.0.0.1:32607\",\"secret\":"
		"\"ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss\"}",
		"not json",
	};
	struct dm_cluster_token t;
	struct dm_err err;

	assert_int_equal(dm_cluster_token_decode(&t, "hello", &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "not a join token"));
	assert_int_equal(dm_cluster_token_decode(&t, "dmj1.!!!", &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "damaged"));
	for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
		char *text = token_of(bad_json[i]);

		assert_int_equal(dm_cluster_token_decode(&t, text, &err), DM_EINVAL);
		assert_non_null(strstr(err.msg, "damaged"));
		assert_string_equal(t.secret, ""); /* nothing half-filled */
		free(text);
	}
}

static void one_cluster_per_kv(void **state)
{
	struct fx *f = *state;
	char id[DM_UUID_LEN + 1], again[DM_UUID_LEN + 1], read[DM_UUID_LEN + 1];
	struct dm_err err;

	assert_int_equal(dm_cluster_id(f->kv, read, &err), DM_ENOTFOUND);
	assert_int_equal(dm_cluster_create(f->kv, id, &err), 0);
	assert_int_equal(dm_cluster_id(f->kv, read, &err), 0);
	assert_string_equal(read, id);
	assert_int_equal(dm_cluster_create(f->kv, again, &err), DM_EEXISTS);
	assert_non_null(strstr(err.msg, id));
	assert_non_null(strstr(err.msg, "dm cluster join"));
	assert_int_equal(dm_cluster_id(f->kv, read, &err), 0);
	assert_string_equal(read, id);
}

static const struct dm_cluster_node *find(const struct dm_cluster_node *list, size_t n,
					  const char *id)
{
	static const struct dm_cluster_node none;

	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i].id, id))
			return &list[i];
	fail_msg("node %s not listed", id);
	return &none;
}

static void nodes_up_and_down(void **state)
{
	struct fx *f = *state;
	struct dm_cluster_self a = {"11111111-1111-4111-8111-111111111111",
				    "http://127.0.0.1:40001", "dir", "9.9.9"};
	struct dm_cluster_self b = {"22222222-2222-4222-8222-222222222222",
				    "http://127.0.0.1:40002", "btrfs", "9.9.9"};
	struct dm_cluster *ca, *cb;
	struct dm_cluster_node *list, one;
	size_t n;
	struct dm_err err;

	assert_int_equal(dm_cluster_start(&ca, f->kv, &a, &err), 0);
	assert_int_equal(dm_cluster_start(&cb, f->kv, &b, &err), 0);
	assert_int_equal(dm_cluster_nodes(f->kv, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_true(find(list, n, a.node_id)->alive);
	assert_true(find(list, n, b.node_id)->alive);
	assert_string_equal(find(list, n, b.node_id)->address, b.address);
	assert_string_equal(find(list, n, b.node_id)->engine, "btrfs");
	free(list);

	/* a node that stops is down at once, and still listed */
	dm_cluster_free(cb);
	assert_int_equal(dm_cluster_nodes(f->kv, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_true(find(list, n, a.node_id)->alive);
	assert_false(find(list, n, b.node_id)->alive);
	free(list);

	/* it keeps its join time when it comes back */
	{
		static const char old[] = "{\"id\":\"22222222-2222-4222-8222-222222222222\","
					  "\"address\":\"http://127.0.0.1:40002\",\"version\":"
					  "\"9.9.9\",\"engine\":\"btrfs\","
					  "\"joined\":\"2001-01-01T00:00:00Z\"}";

		assert_int_equal(dm_kv_put(f->kv, NULL,
					   DM_KV_NODES "22222222-2222-4222-8222-222222222222", old,
					   strlen(old), 0, &err),
				 0);
	}
	assert_int_equal(dm_cluster_start(&cb, f->kv, &b, &err), 0);
	assert_int_equal(dm_cluster_node(f->kv, &one, b.node_id, &err), 0);
	assert_string_equal(one.joined, "2001-01-01T00:00:00Z");
	assert_true(one.alive);
	/* sorted by join time: b joined first now */
	assert_int_equal(dm_cluster_nodes(f->kv, &list, &n, &err), 0);
	assert_string_equal(list[0].id, b.node_id);
	free(list);

	assert_int_equal(dm_cluster_node(f->kv, &one, "nope", &err), DM_ENOTFOUND);
	assert_non_null(strstr(err.msg, "no node 'nope'"));

	/* a malformed record is left out, not fatal */
	assert_int_equal(dm_kv_put(f->kv, NULL, DM_KV_NODES "zzz", "{", 1, 0, &err), 0);
	assert_int_equal(dm_cluster_nodes(f->kv, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	free(list);
	dm_cluster_free(ca);
	dm_cluster_free(cb);
}

/* A node whose lease expired (the KV out of reach for longer than the
 * TTL) registers again by itself. */
static void lease_lost_and_regained(void **state)
{
	struct fx *f = *state;
	struct dm_cluster_self a = {"33333333-3333-4333-8333-333333333333",
				    "http://127.0.0.1:40003", "dir", "9.9.9"};
	struct dm_cluster *c;
	struct dm_cluster_node one;
	struct dm_kv_kv alive;
	struct dm_err err;

	assert_int_equal(dm_cluster_start(&c, f->kv, &a, &err), 0);
	dm_kv_kv_init(&alive);
	assert_int_equal(
		dm_kv_get(f->kv, &alive, DM_KV_ALIVE "33333333-3333-4333-8333-333333333333", &err),
		0);
	assert_int_equal(dm_kv_lease_revoke(f->kv, alive.lease, &err), 0);
	dm_kv_kv_release(&alive);
	assert_int_equal(dm_cluster_node(f->kv, &one, a.node_id, &err), 0);
	assert_false(one.alive);
	for (int i = 0; i < 60 && !one.alive; i++) {
		struct timespec ts = {0, 100 * 1000000L};

		nanosleep(&ts, NULL);
		assert_int_equal(dm_cluster_node(f->kv, &one, a.node_id, &err), 0);
	}
	assert_true(one.alive);
	dm_cluster_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(token_round_trip),
		cmocka_unit_test(old_tokens_refused),
		cmocka_unit_test(damaged_tokens),
		cmocka_unit_test(token_carries_etcd_access),
		cmocka_unit_test_setup_teardown(one_cluster_per_kv, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(nodes_up_and_down, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(lease_lost_and_regained, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
