/*
 * fuzz_etcd.c - libFuzzer target for what dm reads from etcd's JSON
 * gateway (kv/etcd_json.h): range, txn, header, lease and error answers,
 * and watch stream lines. The input's first byte picks the decoder, the
 * rest is the message. Whatever a decoder accepts must hold its promises:
 * keys of 1..DM_KV_KEY_MAX bytes without NUL, values within
 * DM_KV_VALUE_MAX and NUL-terminated, sorted ranges, watch events whose
 * revisions never go back, error codes from dm's table; whatever it
 * refuses leaves nothing allocated (ASan's leak check sees to that).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kv/backend.h"
#include "kv/etcd_json.h"
#include "kv/kv.h"
#include "util/err.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_kv(const struct dm_kv_kv *kv, bool whole)
{
	if (!kv->key || kv->key_len == 0 || kv->key_len > DM_KV_KEY_MAX ||
	    memchr(kv->key, '\0', kv->key_len) || kv->key[kv->key_len] != '\0')
		abort();
	if (!kv->value || kv->value_len > DM_KV_VALUE_MAX || kv->value[kv->value_len] != '\0')
		abort();
	if (kv->mod_revision < 1 || kv->create_revision > kv->mod_revision || kv->lease < 0)
		abort();
	if (whole && (kv->create_revision < 1 || kv->version < 1))
		abort();
}

static void check_code(int code)
{
	if (strcmp(dm_err_name(code), dm_err_name(DM_EINTERNAL)) == 0 && code != DM_EINTERNAL)
		abort();
}

static void check_error(const struct dm_etcd_error *e)
{
	bool transient, not_applied;

	if (strnlen(e->message, sizeof(e->message)) == sizeof(e->message))
		abort();
	check_code(dm_etcd_error_code(e, &transient, &not_applied));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data + 1;
	struct dm_etcd_error e;
	struct dm_err err;
	size_t len;

	if (size < 1)
		return 0;
	len = size - 1;
	switch (data[0] % 8) {
	case 0: {
		struct dm_kv_kvs l;
		int64_t count;

		if (dm_etcd_parse_range(&l, &count, msg, len, &err) == 0) {
			if (l.revision < 1 || count < 0)
				abort();
			for (size_t i = 0; i < l.len; i++) {
				check_kv(&l.items[i], true);
				if (i && dm_kv_key_cmp(l.items[i - 1].key, l.items[i - 1].key_len,
				                       l.items[i].key, l.items[i].key_len) >= 0)
					abort();
			}
			dm_kv_kvs_release(&l);
		} else if (l.len || l.items) {
			abort();
		}
		break;
	}
	case 1: {
		struct dm_etcd_txn t;

		if (dm_etcd_parse_txn(&t, msg, len, &err) == 0 &&
		    (t.revision < 1 || t.nranges > t.nresponses ||
		     t.nresponses > DM_KV_TXN_MAX_OPS))
			abort();
		break;
	}
	case 2: {
		int64_t rev;

		if (dm_etcd_parse_header(&rev, msg, len, &err) == 0 && rev < 1)
			abort();
		break;
	}
	case 3: {
		int64_t id, ttl;

		if (dm_etcd_parse_lease_grant(&id, &ttl, msg, len, &err) == 0 && (id < 1 || ttl < 1))
			abort();
		break;
	}
	case 4: {
		int64_t ttl;
		int rc = dm_etcd_parse_keepalive(&ttl, &e, msg, len, &err);

		if (rc == 0 && ttl < 0)
			abort();
		if (rc == 1)
			check_error(&e);
		break;
	}
	case 5: {
		struct dm_etcd_wmsg m;

		if (dm_etcd_parse_watch(&m, msg, len, &err) == 0) {
			if (m.kind == DM_ETCD_WMSG_ERROR)
				check_error(&m.error);
			for (size_t i = 0; i < m.nevents; i++) {
				check_kv(&m.events[i].kv, m.events[i].put);
				if (i && m.events[i].kv.mod_revision < m.events[i - 1].kv.mod_revision)
					abort();
			}
			dm_etcd_wmsg_release(&m);
		} else if (m.events || m.nevents) {
			abort();
		}
		break;
	}
	case 6:
		if (dm_etcd_parse_error(&e, msg, len, &err) == 0)
			check_error(&e);
		break;
	default: {
		char *out = NULL;
		size_t n = 0;

		if (dm_etcd_b64_decode(&out, &n, msg, len, 64, &err) == 0) {
			if (!out || n > 64 || out[n] != '\0' || n > len)
				abort();
			free(out);
		} else if (out) {
			abort();
		}
		break;
	}
	}
	return 0;
}
