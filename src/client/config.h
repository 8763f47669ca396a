/*
 * config.h - the client's configuration file: remotes, their API keys and
 * the current dot of each, in ~/.dm/config (or $DM_CONFIG), JSON, mode 0600:
 *
 *   {"current_remote": "local",
 *    "remotes": {"local": {"user": "admin", "host": "127.0.0.1", "port": 32607,
 *                          "api_key": "…", "socket": "/data/dmd.sock",
 *                          "data_dir": "/data", "current_dot": "shop"}}}
 *
 * A remote served over HTTPS also has "ca": the PEM of the CA its
 * certificate must chain to, pinned when it was added.
 *
 * Only user, host, port and api_key are required in a remote of dm servers.
 * A remote of another kind says so in "kind" (none means "dmd"); an S3
 * endpoint (`dm s3 remote add`) is
 *
 *   "backup": {"kind": "s3", "key_id": "AKIA…", "secret": "…",
 *              "endpoint": "https://s3.amazonaws.com", "region": "us-east-1"}
 *
 * and is never the current remote (dm_config_remote refuses it). Members this
 * version does not know are kept when the file is written back.
 *
 * Upstreams (`dm dot set-upstream`, `dm clone`) say where a dot of one
 * remote is pushed to and pulled from by default; they sit beside the
 * remotes, keyed by the remote the dot lives on and the dot's full name:
 *
 *   "upstreams": {"local": {"admin/shop": {"remote": "hub", "dot": "bob/shop"}}}
 */
#ifndef DM_CLIENT_CONFIG_H
#define DM_CLIENT_CONFIG_H

#include <stdbool.h>

#include "client/client.h"

struct dm_err;
struct dm_config;

#define DM_CONFIG_MAX_SIZE (1u << 20)

/*
 * The config file's path: $DM_CONFIG when set and not empty, else
 * $HOME/.dm/config. DM_EINVAL when neither can be found.
 */
int dm_config_default_path(char *out, size_t size, struct dm_err *err);

/*
 * Reads the config file at path. A missing file gives an empty config (no
 * remotes; dm_config_exists says false); a file that is not valid JSON or
 * whose members have the wrong types is DM_ECORRUPT with a message naming
 * the file.
 */
int dm_config_load(struct dm_config **out, const char *path, struct dm_err *err);
void dm_config_free(struct dm_config *c);

/* Whether the file existed when loaded. Its path (lives as c). */
bool dm_config_exists(const struct dm_config *c);
const char *dm_config_path(const struct dm_config *c);

/*
 * Writes c to its path atomically with mode 0600, making the directory
 * (mode 0700) when missing.
 */
int dm_config_save(struct dm_config *c, struct dm_err *err);

/* The current remote's name, or NULL when none is set. */
const char *dm_config_current_remote(const struct dm_config *c);
/* Sets the current remote (which must exist: DM_ENOTFOUND, and be a dm
 * server: DM_EINVAL for an S3 endpoint). */
int dm_config_set_current_remote(struct dm_config *c, const char *name, struct dm_err *err);

/*
 * Fills out with the remote called name (NULL: the current remote). The
 * strings are borrowed from c and live until c changes or is freed.
 * DM_ENOTFOUND "no remote configured; run 'dm cluster init' first" when
 * there is no remote at all, "no remote named 'X'" otherwise.
 */
int dm_config_remote(struct dm_remote *out, const struct dm_config *c, const char *name,
		     struct dm_err *err);
/* (An S3 remote there is DM_EUNSUPPORTED: "remote 'X' is an S3 endpoint".) */

/* The kinds of remote a config holds. */
enum dm_remote_kind {
	DM_REMOTE_NONE, /* no remote of that name */
	DM_REMOTE_DMD,
	DM_REMOTE_S3,
};

/* The kind of remote name. */
enum dm_remote_kind dm_config_remote_kind(const struct dm_config *c, const char *name);

/* An S3 endpoint as a remote; strings borrowed as dm_config_remote's. */
struct dm_s3_remote {
	const char *name;
	const char *key_id;
	const char *secret;
	const char *endpoint; /* "https://HOST[:PORT]" */
	const char *region;   /* or NULL */
};

/* Fills out with S3 remote name: DM_ENOTFOUND when there is none, DM_EINVAL
 * when name is a dm server. */
int dm_config_s3_remote(struct dm_s3_remote *out, const struct dm_config *c, const char *name,
			struct dm_err *err);
/* Adds or replaces S3 remote r->name. */
int dm_config_set_s3_remote(struct dm_config *c, const struct dm_s3_remote *r,
			    struct dm_err *err);

/* Adds or replaces the remote r->name with exactly r's fields (members
 * this version does not know are dropped on replace). */
int dm_config_set_remote(struct dm_config *c, const struct dm_remote *r, struct dm_err *err);

/* Sets (dot not NULL) or clears (NULL) the current dot of remote name. */
int dm_config_set_current_dot(struct dm_config *c, const char *name, const char *dot,
			      struct dm_err *err);

/*
 * The names of the remotes, sorted, into *out (malloc'ed array of n_out
 * strings borrowed from c, which live until c changes; free() the array).
 */
void dm_config_remote_names(const struct dm_config *c, const char ***out, size_t *n_out);

/*
 * Removes remote name, its upstreams, and the upstreams of other remotes'
 * dots that pointed to it. DM_ENOTFOUND "no remote named 'X'".
 */
int dm_config_remove_remote(struct dm_config *c, const char *name, struct dm_err *err);

/* Where a dot is pushed to and pulled from by default. Strings borrowed
 * from the config (they live until it changes). */
struct dm_upstream {
	const char *remote; /* a remote's name */
	const char *dot;    /* "ns/name" on that remote */
};

/*
 * The upstream of dot ("[ns/]name") on remote name into out: 0, or
 * DM_ENOTFOUND when it has none (without touching err), DM_EINVAL for a bad
 * dot name.
 */
int dm_config_upstream(struct dm_upstream *out, const struct dm_config *c, const char *name,
		       const char *dot, struct dm_err *err);

/*
 * Sets the upstream of dot on remote name to up_dot on remote up_remote
 * (both names checked; up_remote must exist, DM_ENOTFOUND), or clears it
 * when up_remote is NULL.
 */
int dm_config_set_upstream(struct dm_config *c, const char *name, const char *dot,
			   const char *up_remote, const char *up_dot, struct dm_err *err);

#endif
