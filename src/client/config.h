/*
 * config.h - the client's configuration file: remotes, their API keys and
 * the current dot of each, in ~/.dm/config (or $DM_CONFIG), JSON, mode 0600:
 *
 *   {"current_remote": "local",
 *    "remotes": {"local": {"user": "admin", "host": "127.0.0.1", "port": 32607,
 *                          "api_key": "…", "socket": "/data/dmd.sock",
 *                          "data_dir": "/data", "current_dot": "shop"}}}
 *
 * Only user, host, port and api_key are required in a remote. Members this
 * version does not know are kept when the file is written back.
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
/* Sets the current remote (which must exist: DM_ENOTFOUND). */
int dm_config_set_current_remote(struct dm_config *c, const char *name, struct dm_err *err);

/*
 * Fills out with the remote called name (NULL: the current remote). The
 * strings are borrowed from c and live until c changes or is freed.
 * DM_ENOTFOUND "no remote configured; run 'dm cluster init' first" when
 * there is no remote at all, "no remote named 'X'" otherwise.
 */
int dm_config_remote(struct dm_remote *out, const struct dm_config *c, const char *name,
		     struct dm_err *err);

/* Adds or replaces the remote r->name with exactly r's fields (members
 * this version does not know are dropped on replace). */
int dm_config_set_remote(struct dm_config *c, const struct dm_remote *r, struct dm_err *err);

/* Sets (dot not NULL) or clears (NULL) the current dot of remote name. */
int dm_config_set_current_dot(struct dm_config *c, const char *name, const char *dot,
			      struct dm_err *err);

#endif
