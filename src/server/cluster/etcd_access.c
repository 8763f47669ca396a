/*
 * etcd_access.c - a data directory's files and credentials for etcd (see
 * etcd_access.h).
 *
 * Invariants:
 *   - A key or password file is written only with mode 0600, atomically;
 *     a certificate 0644.
 *   - A password is 1 to DM_ETCD_PASSWORD_MAX printable characters, a
 *     user 1 to DM_ETCD_USER_MAX of [A-Za-z0-9._-]; anything else is
 *     refused before it reaches a request.
 *   - Password bytes in memory are wiped once used.
 */
#include "server/cluster/etcd_access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/id.h"
#include "util/tls.h"

#include "util/banned.h"

static int path_in(char *out, size_t size, const char *dir, const char *name, struct dm_err *err)
{
	if (snprintf(out, size, "%s/%s", dir, name) >= (int)size)
		return dm_err_set(err, DM_ETOOBIG, "path too long: '%s/%s'", dir, name);
	return 0;
}

static int write_in(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
		    struct dm_err *err)
{
	char path[PATH_MAX];
	int rc = path_in(path, sizeof(path), dir, name, err);

	return rc ? rc : dm_write_file_atomic(path, data, len, mode, err);
}

/* A PEM file the operator named, NUL-terminated, into out. */
static int read_pem(struct dm_buf *out, const char *path, const char *what, struct dm_err *err)
{
	int rc = dm_read_file(out, path, DM_TLS_PEM_MAX, err);

	if (rc)
		return dm_err_prefix(err, "%s", what);
	if (dm_buf_add(out, "", 1))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!strstr((const char *)out->data, "-----BEGIN "))
		return dm_err_set(err, DM_EINVAL, "%s '%s' holds no PEM text", what, path);
	return 0;
}

/* Copies the PEM file src (the operator's) into dir as name. */
static int copy_pem(const char *dir, const char *name, const char *src, mode_t mode,
		    const char *what, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	int rc = read_pem(&b, src, what, err);

	if (!rc)
		rc = write_in(dir, name, b.data, b.len - 1, mode, err);
	dm_buf_release_secret(&b);
	return rc;
}

static int check_user(const char *user, struct dm_err *err)
{
	size_t n = strlen(user);

	if (!n || n > DM_ETCD_USER_MAX)
		return dm_err_set(err, DM_EINVAL, "--etcd-user must be 1 to %d characters",
				  DM_ETCD_USER_MAX);
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
			    user[i]))
			return dm_err_set(err, DM_EINVAL,
					  "--etcd-user '%.64s' has a character other than letters, "
					  "digits, '.', '_' and '-'",
					  user);
	return 0;
}

/* A password from text (one trailing newline dropped) into out. */
static int take_password(char *out, const char *text, size_t len, const char *from,
			 struct dm_err *err)
{
	if (len && text[len - 1] == '\n')
		len--;
	if (len && text[len - 1] == '\r')
		len--;
	if (!len || len > DM_ETCD_PASSWORD_MAX)
		return dm_err_set(err, DM_EINVAL,
				  "the etcd password (%s) must be 1 to %d characters", from,
				  DM_ETCD_PASSWORD_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] < ' ' || (unsigned char)text[i] == 0x7f)
			return dm_err_set(err, DM_EINVAL,
					  "the etcd password (%s) holds a control character", from);
	memcpy(out, text, len);
	out[len] = '\0';
	return 0;
}

/* The password from file (or, NULL, $DM_ETCD_PASSWORD) into out. */
static int read_password(char *out, const char *file, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	const char *env;
	int rc;

	if (!file) {
		env = getenv(DM_ETCD_PASSWORD_ENV);
		if (!env)
			return dm_err_set(
				err, DM_EINVAL,
				"--etcd-user needs its password: give "
				"--etcd-password-file FILE or set $" DM_ETCD_PASSWORD_ENV);
		return take_password(out, env, strlen(env), "$" DM_ETCD_PASSWORD_ENV, err);
	}
	rc = dm_read_file(&b, file, DM_ETCD_PASSWORD_MAX + 2, err);
	if (rc)
		rc = dm_err_prefix(err, "--etcd-password-file");
	else
		rc = take_password(out, b.data ? (const char *)b.data : "", b.len,
				   "--etcd-password-file", err);
	dm_buf_release_secret(&b);
	return rc;
}

static int write_password(const char *dir, const char *password, struct dm_err *err)
{
	char line[DM_ETCD_PASSWORD_MAX + 2];
	int rc;

	snprintf(line, sizeof(line), "%s\n", password);
	rc = write_in(dir, DM_DATA_ETCD_PASSWORD, line, strlen(line), 0600, err);
	explicit_bzero(line, sizeof(line));
	return rc;
}

int dm_etcd_access_init(const char *dir, struct dm_etcd_access_config *c,
			const struct dm_etcd_access_opts *o, const struct dm_etcd_access_token *t,
			struct dm_err *err)
{
	char password[DM_ETCD_PASSWORD_MAX + 1];
	const char *user = o->user ? o->user : t && t->user && t->user[0] ? t->user : NULL;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	if (!o->cert_file != !o->key_file)
		return dm_err_set(err, DM_EINVAL, "--etcd-cert and --etcd-key go together");
	if (o->password_file && !o->user)
		return dm_err_set(err, DM_EINVAL, "--etcd-password-file goes with --etcd-user");
	if (o->ca_file)
		rc = copy_pem(dir, DM_DATA_ETCD_CA, o->ca_file, 0644, "--etcd-ca", err);
	else if (t && t->ca_pem && t->ca_pem[0])
		rc = write_in(dir, DM_DATA_ETCD_CA, t->ca_pem, strlen(t->ca_pem), 0644, err);
	c->ca = o->ca_file || (t && t->ca_pem && t->ca_pem[0]);
	if (!rc && o->cert_file) {
		rc = copy_pem(dir, DM_DATA_ETCD_CERT, o->cert_file, 0644, "--etcd-cert", err);
		if (!rc)
			rc = copy_pem(dir, DM_DATA_ETCD_KEY, o->key_file, 0600, "--etcd-key", err);
		c->cert = true;
	}
	if (rc || !user)
		return rc;
	rc = check_user(user, err);
	if (!rc && o->user)
		rc = read_password(password, o->password_file, err);
	else if (!rc)
		rc = take_password(password, t->password, strlen(t->password), "the join token",
				   err);
	if (!rc)
		rc = write_password(dir, password, err);
	if (!rc)
		snprintf(c->user, sizeof(c->user), "%s", user);
	explicit_bzero(password, sizeof(password));
	return rc;
}

int dm_etcd_access_init_local(const char *dir, struct dm_etcd_access_config *c, struct dm_err *err)
{
	static const char *const names[] = {"127.0.0.1", "localhost"};
	struct dm_buf ca = DM_BUF_INIT, ca_key = DM_BUF_INIT, chain = DM_BUF_INIT,
		      key = DM_BUF_INIT;
	unsigned char raw[24];
	char password[2 * sizeof(raw) + 1];
	int rc;

	memset(c, 0, sizeof(*c));
	rc = dm_tls_make_ca(&ca, &ca_key, "local etcd", err);
	if (!rc && (dm_buf_add(&ca, "", 1) || dm_buf_add(&ca_key, "", 1)))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!rc)
		rc = dm_tls_make_server(&chain, &key, (const char *)ca.data,
					(const char *)ca_key.data, names,
					sizeof(names) / sizeof(names[0]), err);
	if (!rc)
		rc = write_in(dir, DM_DATA_ETCD_CA_KEY, ca_key.data, ca_key.len - 1, 0600, err);
	if (!rc)
		rc = write_in(dir, DM_DATA_ETCD_CA, ca.data, ca.len - 1, 0644, err);
	if (!rc)
		rc = write_in(dir, DM_DATA_ETCD_SERVER_KEY, key.data, key.len, 0600, err);
	if (!rc)
		rc = write_in(dir, DM_DATA_ETCD_SERVER, chain.data, chain.len, 0644, err);
	if (!rc)
		rc = dm_random_bytes(raw, sizeof(raw), err);
	for (size_t i = 0; !rc && i < sizeof(raw); i++)
		snprintf(password + 2 * i, 3, "%02x", raw[i]);
	if (!rc)
		rc = write_password(dir, password, err);
	if (!rc) {
		c->ca = true;
		snprintf(c->user, sizeof(c->user), "%s", DM_ETCD_LOCAL_USER);
	}
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(password, sizeof(password));
	dm_buf_release(&ca);
	dm_buf_release_secret(&ca_key);
	dm_buf_release(&chain);
	dm_buf_release_secret(&key);
	return rc;
}

int dm_etcd_access_load(struct dm_etcd_access *out, const char *dir,
			const struct dm_etcd_access_config *c, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	char path[PATH_MAX];
	int rc = 0;

	memset(out, 0, sizeof(*out));
	dm_buf_init(&out->ca_pem, DM_TLS_PEM_MAX + 1);
	if (c->ca) {
		rc = path_in(out->ca, sizeof(out->ca), dir, DM_DATA_ETCD_CA, err);
		if (!rc)
			rc = read_pem(&out->ca_pem, out->ca, "etcd's CA", err);
	}
	if (!rc && c->cert) {
		rc = path_in(out->cert, sizeof(out->cert), dir, DM_DATA_ETCD_CERT, err);
		if (!rc)
			rc = path_in(out->key, sizeof(out->key), dir, DM_DATA_ETCD_KEY, err);
	}
	if (!rc && c->user[0]) {
		snprintf(out->user, sizeof(out->user), "%s", c->user);
		rc = path_in(path, sizeof(path), dir, DM_DATA_ETCD_PASSWORD, err);
		if (!rc)
			rc = dm_read_file(&b, path, DM_ETCD_PASSWORD_MAX + 2, err);
		if (!rc)
			rc = take_password(out->password, b.data ? (const char *)b.data : "", b.len,
					   path, err);
	}
	dm_buf_release_secret(&b);
	if (rc)
		dm_etcd_access_release(out);
	return rc;
}

void dm_etcd_access_release(struct dm_etcd_access *a)
{
	explicit_bzero(a->password, sizeof(a->password));
	dm_buf_release(&a->ca_pem);
	a->ca[0] = a->cert[0] = a->key[0] = a->user[0] = '\0';
}

void dm_etcd_access_kv_opts(struct dm_kv_etcd_opts *o, const struct dm_etcd_access *a)
{
	o->ca_file = a->ca[0] ? a->ca : NULL;
	o->cert_file = a->cert[0] ? a->cert : NULL;
	o->key_file = a->cert[0] ? a->key : NULL;
	o->user = a->user[0] ? a->user : NULL;
	o->password = a->user[0] ? a->password : NULL;
}
