/*
 * etcd_access.h - how a node reaches etcd safely: the TLS files and the
 * credentials a data directory keeps for it (docs/internals/security.md).
 *
 * The files, in the data directory DIR, each present only when used:
 *
 *   etcd-ca.pem          the CA that signed etcd's certificates (0644)
 *   etcd-client.pem      a client certificate, for an etcd that asks (0644)
 *   etcd-client-key.pem  its key (0600)
 *   etcd-password        the password of config.json's etcd user (0600)
 *
 * and for the local member that dmd runs itself (etcd_member.h), made at
 * init: its own CA's key (etcd-ca-key.pem, 0600) and its certificate for
 * 127.0.0.1 and localhost (etcd-server.pem, etcd-server-key.pem 0600); its
 * user is "root" with a random password, so that only who can read the
 * data directory can reach its data.
 *
 * Secrets never come from the command line: a password is read from a
 * file (--etcd-password-file) or $DM_ETCD_PASSWORD, and copied into DIR.
 */
#ifndef DM_SERVER_CLUSTER_ETCD_ACCESS_H
#define DM_SERVER_CLUSTER_ETCD_ACCESS_H

#include <limits.h>
#include <stdbool.h>

#include "util/buf.h"

struct dm_err;
struct dm_kv_etcd_opts;

#define DM_DATA_ETCD_CA         "etcd-ca.pem"
#define DM_DATA_ETCD_CA_KEY     "etcd-ca-key.pem"
#define DM_DATA_ETCD_CERT       "etcd-client.pem"
#define DM_DATA_ETCD_KEY        "etcd-client-key.pem"
#define DM_DATA_ETCD_PASSWORD   "etcd-password"
#define DM_DATA_ETCD_SERVER     "etcd-server.pem"
#define DM_DATA_ETCD_SERVER_KEY "etcd-server-key.pem"

#define DM_ETCD_USER_MAX     64  /* etcd user names dm accepts */
#define DM_ETCD_PASSWORD_MAX 128 /* and passwords */
#define DM_ETCD_LOCAL_USER   "root"
#define DM_ETCD_PASSWORD_ENV "DM_ETCD_PASSWORD"

/* What a data directory's config.json says of them ("etcd_client"). */
struct dm_etcd_access_config {
	bool ca;                         /* DIR/etcd-ca.pem */
	bool cert;                       /* DIR/etcd-client.pem and its key */
	char user[DM_ETCD_USER_MAX + 1]; /* "": etcd's authentication is off */
};

/* What init was given: files and a user (NULL: none), and the password's
 * file (NULL: $DM_ETCD_PASSWORD). */
struct dm_etcd_access_opts {
	const char *ca_file, *cert_file, *key_file, *user, *password_file;
};

/* What a join token carries for etcd: the CA PEM, the user and password
 * ("" each when unused). */
struct dm_etcd_access_token {
	const char *ca_pem, *user, *password;
};

/* Everything, loaded: paths in DIR ("" when absent), the user and its
 * password, and the CA's PEM (NUL-terminated, empty without one) for join
 * tokens. The password is wiped on release. */
struct dm_etcd_access {
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	char user[DM_ETCD_USER_MAX + 1];
	char password[DM_ETCD_PASSWORD_MAX + 1];
	struct dm_buf ca_pem;
};

/*
 * At init, into dir and *c: the operator's files and user from o (copied
 * into dir), else what the join token t carries (may be NULL), o's files
 * winning over t's. A user without a password, a certificate without its
 * key, or a file that is not PEM is refused naming the option.
 */
int dm_etcd_access_init(const char *dir, struct dm_etcd_access_config *c,
			const struct dm_etcd_access_opts *o, const struct dm_etcd_access_token *t,
			struct dm_err *err);

/* At init of a node that runs its own member: its CA, certificate and a
 * random root password, into dir and *c. */
int dm_etcd_access_init_local(const char *dir, struct dm_etcd_access_config *c, struct dm_err *err);

/* At start: the files and password c names, from dir. */
int dm_etcd_access_load(struct dm_etcd_access *out, const char *dir,
			const struct dm_etcd_access_config *c, struct dm_err *err);
void dm_etcd_access_release(struct dm_etcd_access *a);

/* a's files and credentials into the KV's etcd options (pointing into a). */
void dm_etcd_access_kv_opts(struct dm_kv_etcd_opts *o, const struct dm_etcd_access *a);

#endif
