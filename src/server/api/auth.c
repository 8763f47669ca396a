/*
 * auth.c - users and API keys in the KV (see auth.h).
 *
 * Invariants: an API key never reaches the KV or a log line, only its
 * SHA-256; every refusal of a caller has the same code and message, and
 * the comparison that decides it is constant-time (CRYPTO_memcmp) and runs
 * whether or not the user exists.
 */
#include "server/api/auth.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/names.h"

#include "util/banned.h"

#define USER_KEY_MAX (sizeof(DM_KV_USERS) + DM_NAME_PART_MAX)

static int user_key(char *out, size_t size, const char *name, struct dm_err *err)
{
	if (!name || !dm_name_part_valid(name, strlen(name)))
		return dm_err_set(err, DM_EINVAL, "invalid user name '%s'", name ? name : "");
	snprintf(out, size, "%s%s", DM_KV_USERS, name);
	return 0;
}

static void hash_key(dm_oid *out, const char *key)
{
	dm_hash(out, key, strlen(key));
}

/* The user's record as stored; a new reference. */
static json_t *user_record(const char *name, const dm_oid *key_hash, bool admin)
{
	char hex[DM_OID_HEXSZ + 1];

	dm_oid_hex(hex, key_hash);
	return json_pack("{s:s, s:s, s:b}", "name", name, "key_sha256", hex, "admin", admin);
}

static int put_user(struct dm_kv *kv, const char *path, int64_t expected, json_t *rec,
		    struct dm_err *err)
{
	char *text = json_dumps(rec, JSON_COMPACT);
	int rc;

	if (!text)
		return dm_err_set(err, DM_ENOMEM, "cannot encode user record");
	rc = dm_kv_cas(kv, NULL, path, expected, text, strlen(text), 0, err);
	free(text);
	return rc;
}

int dm_auth_user_create(struct dm_kv *kv, char *key_out, const char *name, bool admin,
			struct dm_err *err)
{
	char path[USER_KEY_MAX];
	json_t *rec = NULL;
	dm_oid h;
	int rc;

	rc = user_key(path, sizeof(path), name, err);
	if (rc)
		return rc;
	rc = dm_id_api_key(key_out, err);
	if (rc)
		return rc;
	hash_key(&h, key_out);
	rec = user_record(name, &h, admin);
	if (!rec) {
		rc = dm_err_set(err, DM_ENOMEM, "cannot encode user record");
		goto done;
	}
	rc = put_user(kv, path, 0, rec, err);
	if (rc == DM_ECONFLICT)
		rc = dm_err_set(err, DM_EEXISTS, "user '%s' already exists", name);
	if (!rc)
		dm_info("created user '%s'%s", name, admin ? " (admin)" : "");
done:
	json_decref(rec);
	if (rc)
		memset(key_out, 0, DM_API_KEY_LEN + 1);
	return rc;
}

/* Reads the stored hash and admin flag of a user record; -1 when malformed. */
static int parse_record(const struct dm_kv_kv *kv, const char *name, dm_oid *hash_out,
			bool *admin_out)
{
	json_error_t jerr;
	json_t *doc = json_loadb(kv->value, kv->value_len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *hex = json_object_get(doc, "key_sha256");
	json_t *admin = json_object_get(doc, "admin");
	json_t *stored_name = json_object_get(doc, "name");
	int rc = -1;

	if (json_is_string(hex) && json_is_string(stored_name) &&
	    strcmp(json_string_value(stored_name), name) == 0 &&
	    dm_oid_from_hex(hash_out, json_string_value(hex), json_string_length(hex)) == 0 &&
	    (!admin || json_is_boolean(admin))) {
		*admin_out = json_is_true(admin);
		rc = 0;
	}
	json_decref(doc);
	return rc;
}

int dm_auth_lookup(struct dm_kv *kv, struct dm_caller *out, const char *name,
		   struct dm_err *err)
{
	char path[USER_KEY_MAX];
	struct dm_kv_kv rec;
	dm_oid hash;
	bool admin = false;
	int rc;

	if (user_key(path, sizeof(path), name, NULL))
		return dm_err_set(err, DM_EPERM, DM_AUTH_DENIED_MSG);
	dm_kv_kv_init(&rec);
	rc = dm_kv_get(kv, &rec, path, err);
	if (rc == DM_ENOTFOUND || (!rc && parse_record(&rec, name, &hash, &admin)))
		rc = dm_err_set(err, DM_EPERM, DM_AUTH_DENIED_MSG);
	dm_kv_kv_release(&rec);
	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	snprintf(out->user, sizeof(out->user), "%s", name);
	out->admin = admin;
	return 0;
}

int dm_auth_verify(struct dm_kv *kv, struct dm_caller *out, const char *name, const char *key,
		   struct dm_err *err)
{
	char path[USER_KEY_MAX];
	struct dm_kv_kv rec;
	dm_oid given, stored;
	bool known = false, admin = false;
	int rc;

	dm_kv_kv_init(&rec);
	/* A hash that no key has (all bits set), for unknown users. */
	memset(&stored, 0xff, sizeof(stored));
	hash_key(&given, key ? key : "");
	if (name && user_key(path, sizeof(path), name, NULL) == 0) {
		rc = dm_kv_get(kv, &rec, path, err);
		if (rc && rc != DM_ENOTFOUND)
			goto done;
		if (rc == 0) {
			if (parse_record(&rec, name, &stored, &admin) == 0)
				known = true;
			else
				dm_error("user record '%s' is malformed; refusing its key", path);
		}
	}
	if (CRYPTO_memcmp(given.b, stored.b, sizeof(given.b)) != 0 || !known || !key ||
	    strlen(key) != DM_API_KEY_LEN) {
		rc = dm_err_set(err, DM_EPERM, DM_AUTH_DENIED_MSG);
		goto done;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->user, sizeof(out->user), "%s", name);
	out->admin = admin;
	rc = 0;
done:
	dm_kv_kv_release(&rec);
	return rc;
}

int dm_auth_key_reset(struct dm_kv *kv, char *key_out, const char *name, struct dm_err *err)
{
	char path[USER_KEY_MAX];
	struct dm_kv_kv rec;
	json_t *doc = NULL;
	dm_oid h;
	bool admin = false;
	int rc;

	dm_kv_kv_init(&rec);
	rc = user_key(path, sizeof(path), name, err);
	if (rc)
		goto done;
	rc = dm_kv_get(kv, &rec, path, err);
	if (rc == DM_ENOTFOUND)
		rc = dm_err_set(err, DM_ENOTFOUND, "no such user '%s'", name);
	if (rc)
		goto done;
	if (parse_record(&rec, name, &h, &admin)) {
		rc = dm_err_set(err, DM_ECORRUPT, "user record '%s' is malformed", path);
		goto done;
	}
	rc = dm_id_api_key(key_out, err);
	if (rc)
		goto done;
	hash_key(&h, key_out);
	doc = user_record(name, &h, admin);
	if (!doc) {
		rc = dm_err_set(err, DM_ENOMEM, "cannot encode user record");
		goto done;
	}
	rc = put_user(kv, path, rec.mod_revision, doc, err);
	if (rc == DM_ECONFLICT)
		rc = dm_err_set(err, DM_ECONFLICT, "user '%s' changed meanwhile; try again", name);
	if (!rc)
		dm_info("new API key for user '%s'", name);
done:
	json_decref(doc);
	dm_kv_kv_release(&rec);
	if (rc)
		memset(key_out, 0, DM_API_KEY_LEN + 1);
	return rc;
}

int dm_auth_user_list(struct dm_kv *kv, struct dm_auth_user **out, size_t *n_out,
		      struct dm_err *err)
{
	const size_t plen = strlen(DM_KV_USERS);
	struct dm_auth_user *users = NULL;
	struct dm_kv_kvs recs;
	size_t n = 0;
	int rc;

	*out = NULL;
	*n_out = 0;
	dm_kv_kvs_init(&recs);
	rc = dm_kv_range(kv, &recs, DM_KV_USERS, 0, err);
	if (rc)
		goto done;
	users = dm_xcalloc(recs.len ? recs.len : 1, sizeof(*users));
	for (size_t i = 0; i < recs.len; i++) {
		const char *name = recs.items[i].key + plen;
		dm_oid h;
		bool admin = false;

		if (!dm_name_part_valid(name, strlen(name)) ||
		    parse_record(&recs.items[i], name, &h, &admin)) {
			dm_error("user record '%s' is malformed; not listing it",
				 recs.items[i].key);
			continue;
		}
		snprintf(users[n].name, sizeof(users[n].name), "%s", name);
		users[n].admin = admin;
		n++;
	}
	/* the KV's order is bytewise by key, and every key has the same prefix */
	*out = users;
	*n_out = n;
	users = NULL;
done:
	free(users);
	dm_kv_kvs_release(&recs);
	return rc;
}
