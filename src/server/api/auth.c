/*
 * auth.c - users and API keys in the KV (see auth.h).
 *
 * Invariants: an API key never reaches the KV or a log line, only its
 * SHA-256; every refusal of a caller has the same code and message, and
 * the comparison that decides it is constant-time (CRYPTO_memcmp) and runs
 * whether or not the user exists; the one other refusal, of an expired
 * key, is given only after the right key was shown. A record is changed
 * only by a compare-and-swap on the revision it was read at.
 */
#include "server/api/auth.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void dm_auth_time_text(char *out, size_t size, int64_t t)
{
	time_t secs = (time_t)t;
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The user's record as stored; a new reference. A key that expires gets
 * its expiry from now and the user's lifetime. */
static json_t *user_record(struct dm_auth_user *u, const dm_oid *key_hash)
{
	char hex[DM_OID_HEXSZ + 1];
	json_t *j;

	dm_oid_hex(hex, key_hash);
	j = json_pack("{s:s, s:s, s:b}", "name", u->name, "key_sha256", hex, "admin", u->admin);
	u->expires = u->lifetime ? (int64_t)time(NULL) + u->lifetime : 0;
	if (j && u->lifetime) {
		json_object_set_new(j, "expires", json_integer((json_int_t)u->expires));
		json_object_set_new(j, "lifetime", json_integer((json_int_t)u->lifetime));
	}
	return j;
}

static int lifetime_check(int64_t lifetime, struct dm_err *err)
{
	if (lifetime < 0 || lifetime > DM_AUTH_LIFETIME_MAX)
		return dm_err_set(err, DM_EINVAL,
				  "a key's lifetime is 1 second to 10 years, or 0 for ever");
	return 0;
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

int dm_auth_user_create(struct dm_kv *kv, struct dm_auth_user *out, char *key_out, const char *name,
			bool admin, int64_t lifetime, struct dm_err *err)
{
	char path[USER_KEY_MAX];
	struct dm_auth_user u;
	json_t *rec = NULL;
	dm_oid h;
	int rc;

	memset(key_out, 0, DM_API_KEY_LEN + 1);
	rc = user_key(path, sizeof(path), name, err);
	if (!rc)
		rc = lifetime_check(lifetime, err);
	if (rc)
		return rc;
	rc = dm_id_api_key(key_out, err);
	if (rc)
		return rc;
	hash_key(&h, key_out);
	memset(&u, 0, sizeof(u));
	snprintf(u.name, sizeof(u.name), "%s", name);
	u.admin = admin;
	u.lifetime = lifetime;
	rec = user_record(&u, &h);
	if (!rec) {
		rc = dm_err_set(err, DM_ENOMEM, "cannot encode user record");
		goto done;
	}
	rc = put_user(kv, path, 0, rec, err);
	if (rc == DM_ECONFLICT)
		rc = dm_err_set(err, DM_EEXISTS, "user '%s' already exists", name);
	if (!rc)
		dm_info("created user '%s'%s", name, admin ? " (admin)" : "");
	if (!rc && out)
		*out = u;
done:
	json_decref(rec);
	if (rc)
		memset(key_out, 0, DM_API_KEY_LEN + 1);
	return rc;
}

/* An optional non-negative integer member; false when it is something else. */
static bool opt_seconds(int64_t *out, json_t *v)
{
	*out = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
	return !v || (json_is_integer(v) && *out >= 0);
}

/* Reads the stored hash, admin flag and expiry of a user record into
 * hash_out and out; -1 when malformed. */
static int parse_record(const struct dm_kv_kv *kv, const char *name, dm_oid *hash_out,
			struct dm_auth_user *out)
{
	json_error_t jerr;
	json_t *doc = json_loadb(kv->value, kv->value_len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *hex = json_object_get(doc, "key_sha256");
	json_t *admin = json_object_get(doc, "admin");
	json_t *stored_name = json_object_get(doc, "name");
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (json_is_string(hex) && json_is_string(stored_name) &&
	    strcmp(json_string_value(stored_name), name) == 0 && strlen(name) < sizeof(out->name) &&
	    dm_oid_from_hex(hash_out, json_string_value(hex), json_string_length(hex)) == 0 &&
	    (!admin || json_is_boolean(admin)) &&
	    opt_seconds(&out->expires, json_object_get(doc, "expires")) &&
	    opt_seconds(&out->lifetime, json_object_get(doc, "lifetime"))) {
		snprintf(out->name, sizeof(out->name), "%s", name);
		out->admin = json_is_true(admin);
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
	struct dm_auth_user u;
	dm_oid hash;
	int rc;

	if (user_key(path, sizeof(path), name, NULL))
		return dm_err_set(err, DM_EPERM, DM_AUTH_DENIED_MSG);
	dm_kv_kv_init(&rec);
	rc = dm_kv_get(kv, &rec, path, err);
	if (rc == DM_ENOTFOUND || (!rc && parse_record(&rec, name, &hash, &u)))
		rc = dm_err_set(err, DM_EPERM, DM_AUTH_DENIED_MSG);
	dm_kv_kv_release(&rec);
	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	snprintf(out->user, sizeof(out->user), "%s", name);
	out->admin = u.admin;
	return 0;
}

int dm_auth_verify(struct dm_kv *kv, struct dm_caller *out, const char *name, const char *key,
		   struct dm_err *err)
{
	char path[USER_KEY_MAX];
	struct dm_kv_kv rec;
	struct dm_auth_user u;
	dm_oid given, stored;
	bool known = false;
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
			if (parse_record(&rec, name, &stored, &u) == 0)
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
	/* the caller showed the right key: it may learn that it expired */
	if (u.expires && (int64_t)time(NULL) >= u.expires) {
		char when[32];

		dm_auth_time_text(when, sizeof(when), u.expires);
		rc = dm_err_set(err, DM_EPERM,
				"API key of user '%s' expired at %s; ask an admin for a new one "
				"('dm user reset-key %s')",
				name, when, name);
		goto done;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->user, sizeof(out->user), "%s", name);
	out->admin = u.admin;
	rc = 0;
done:
	dm_kv_kv_release(&rec);
	return rc;
}

int dm_auth_key_reset(struct dm_kv *kv, struct dm_auth_user *out, char *key_out, const char *name,
		      int64_t lifetime, bool may_lengthen, struct dm_err *err)
{
	char path[USER_KEY_MAX];
	struct dm_kv_kv rec;
	struct dm_auth_user u;
	json_t *doc = NULL;
	dm_oid h;
	int rc;

	memset(key_out, 0, DM_API_KEY_LEN + 1);
	dm_kv_kv_init(&rec);
	rc = user_key(path, sizeof(path), name, err);
	if (!rc && lifetime != DM_AUTH_KEEP_LIFETIME)
		rc = lifetime_check(lifetime, err);
	if (rc)
		goto done;
	rc = dm_kv_get(kv, &rec, path, err);
	if (rc == DM_ENOTFOUND)
		rc = dm_err_set(err, DM_ENOTFOUND, "no such user '%s'", name);
	if (rc)
		goto done;
	if (parse_record(&rec, name, &h, &u)) {
		rc = dm_err_set(err, DM_ECORRUPT, "user record '%s' is malformed", path);
		goto done;
	}
	if (lifetime == DM_AUTH_KEEP_LIFETIME)
		lifetime = u.lifetime;
	if (!may_lengthen && u.lifetime && (!lifetime || lifetime > u.lifetime)) {
		rc = dm_err_set(err, DM_EPERM,
				"user '%s' may not give their key a longer life than %lld seconds: "
				"only an admin may (or leave out --expires)",
				name, (long long)u.lifetime);
		goto done;
	}
	u.lifetime = lifetime;
	rc = dm_id_api_key(key_out, err);
	if (rc)
		goto done;
	hash_key(&h, key_out);
	doc = user_record(&u, &h);
	if (!doc) {
		rc = dm_err_set(err, DM_ENOMEM, "cannot encode user record");
		goto done;
	}
	rc = put_user(kv, path, rec.mod_revision, doc, err);
	if (rc == DM_ECONFLICT)
		rc = dm_err_set(err, DM_ECONFLICT, "user '%s' changed meanwhile; try again", name);
	if (!rc)
		dm_info("new API key for user '%s'", name);
	if (!rc && out)
		*out = u;
done:
	json_decref(doc);
	dm_kv_kv_release(&rec);
	if (rc)
		memset(key_out, 0, DM_API_KEY_LEN + 1);
	return rc;
}

int dm_auth_user_remove(struct dm_kv *kv, const char *name, struct dm_err *err)
{
	char path[USER_KEY_MAX];
	int rc = user_key(path, sizeof(path), name, err);

	if (!rc)
		rc = dm_kv_delete(kv, NULL, path, err);
	if (rc == DM_ENOTFOUND)
		rc = dm_err_set(err, DM_ENOTFOUND, "no such user '%s'", name);
	if (!rc)
		dm_info("removed user '%s'", name);
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

		if (!dm_name_part_valid(name, strlen(name)) ||
		    parse_record(&recs.items[i], name, &h, &users[n])) {
			dm_error("user record '%s' is malformed; not listing it",
				 recs.items[i].key);
			continue;
		}
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
