/*
 * config.c - reading, checking and writing the client's config file.
 *
 * Invariants: c->root is always a JSON object whose "remotes" member, when
 * present, is an object of remotes that passed check_remote, and whose
 * "upstreams" member passed check_upstreams (so accessors may read their
 * members without checking types again); upstreams are keyed by full dot
 * names ("admin/shop"), so two spellings of one dot find one entry; the
 * file is only ever replaced whole, atomically, with mode 0600.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client/config.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/names.h"

#include "util/banned.h"

struct dm_config {
	char *path;
	json_t *root;
	bool exists;
};

int dm_config_default_path(char *out, size_t size, struct dm_err *err)
{
	const char *env = getenv("DM_CONFIG");
	const char *home = getenv("HOME");
	int n;

	if (env && *env)
		n = snprintf(out, size, "%s", env);
	else if (home && *home)
		n = snprintf(out, size, "%s/.dm/config", home);
	else
		return dm_err_set(err, DM_EINVAL,
				  "cannot find the config file: neither DM_CONFIG nor HOME is set");
	if (n < 0 || (size_t)n >= size)
		return dm_err_set(err, DM_ETOOBIG, "config file path too long");
	return 0;
}

static int corrupt(const struct dm_config *c, struct dm_err *err, const char *what,
		   const char *name)
{
	if (name)
		return dm_err_set(err, DM_ECORRUPT, "config file '%s' is corrupt: remote '%s': %s",
				  c->path, name, what);
	return dm_err_set(err, DM_ECORRUPT, "config file '%s' is corrupt: %s", c->path, what);
}

static bool opt_string(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return !v || json_is_string(v) || json_is_null(v);
}

static int check_strings(const struct dm_config *c, const char *name, json_t *r,
			 const char *const *required, const char *const *optional,
			 struct dm_err *err)
{
	for (size_t i = 0; required[i]; i++)
		if (!json_is_string(json_object_get(r, required[i]))) {
			char what[64];

			snprintf(what, sizeof(what), "'%s' must be a string", required[i]);
			return corrupt(c, err, what, name);
		}
	for (size_t i = 0; optional[i]; i++)
		if (!opt_string(r, optional[i])) {
			char what[64];

			snprintf(what, sizeof(what), "'%s' must be a string", optional[i]);
			return corrupt(c, err, what, name);
		}
	return 0;
}

static int check_dmd(const struct dm_config *c, const char *name, json_t *r, struct dm_err *err)
{
	static const char *const required[] = {"user", "host", "api_key", NULL};
	static const char *const optional[] = {"socket", "data_dir", "current_dot", "ca", NULL};
	json_t *port;
	int rc = check_strings(c, name, r, required, optional, err);

	if (rc)
		return rc;
	port = json_object_get(r, "port");
	if (!json_is_integer(port) || json_integer_value(port) < 1 ||
	    json_integer_value(port) > 65535)
		return corrupt(c, err, "'port' must be a number from 1 to 65535", name);
	return 0;
}

static int check_s3(const struct dm_config *c, const char *name, json_t *r, struct dm_err *err)
{
	static const char *const required[] = {"key_id", "secret", "endpoint", NULL};
	static const char *const optional[] = {"region", NULL};

	return check_strings(c, name, r, required, optional, err);
}

/* The kinds of remote, by their "kind" member (none: "dmd"). */
static const struct {
	const char *name;
	enum dm_remote_kind kind;
	int (*check)(const struct dm_config *c, const char *name, json_t *r, struct dm_err *err);
} kinds[] = {
	{"dmd", DM_REMOTE_DMD, check_dmd},
	{"s3", DM_REMOTE_S3, check_s3},
};

/* The row of r's kind in kinds[], or -1 when it names none. */
static int kind_row(json_t *r)
{
	json_t *k = json_object_get(r, "kind");

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (k ? json_is_string(k) && !strcmp(json_string_value(k), kinds[i].name)
		      : kinds[i].kind == DM_REMOTE_DMD)
			return (int)i;
	return -1;
}

static int check_remote(const struct dm_config *c, const char *name, json_t *r,
			struct dm_err *err)
{
	int row;

	if (!json_is_object(r))
		return corrupt(c, err, "not an object", name);
	row = kind_row(r);
	if (row < 0)
		return corrupt(c, err, "'kind' must be \"dmd\" or \"s3\"", name);
	return kinds[row].check(c, name, r, err);
}

/* "upstreams": {REMOTE: {DOT: {"remote": S, "dot": S}}} */
static int check_upstreams(const struct dm_config *c, struct dm_err *err)
{
	json_t *ups = json_object_get(c->root, "upstreams");
	const char *remote, *dot;
	json_t *per_remote, *u;

	if (!ups)
		return 0;
	if (!json_is_object(ups))
		return corrupt(c, err, "'upstreams' must be an object", NULL);
	json_object_foreach(ups, remote, per_remote) {
		if (!json_is_object(per_remote))
			return corrupt(c, err, "'upstreams' must hold an object per remote", NULL);
		json_object_foreach(per_remote, dot, u) {
			if (!json_is_object(u) || !json_is_string(json_object_get(u, "remote")) ||
			    !json_is_string(json_object_get(u, "dot"))) {
				char what[DM_ERR_MSG_MAX / 2];

				snprintf(what, sizeof(what),
					 "the upstream of dot '%.64s' of remote '%.64s' needs the "
					 "strings 'remote' and 'dot'",
					 dot, remote);
				return corrupt(c, err, what, NULL);
			}
		}
	}
	return 0;
}

static int check_root(const struct dm_config *c, struct dm_err *err)
{
	json_t *remotes = json_object_get(c->root, "remotes");
	const char *name;
	json_t *r;
	int rc;

	if (!opt_string(c->root, "current_remote"))
		return corrupt(c, err, "'current_remote' must be a string", NULL);
	rc = check_upstreams(c, err);
	if (rc)
		return rc;
	if (!remotes)
		return 0;
	if (!json_is_object(remotes))
		return corrupt(c, err, "'remotes' must be an object", NULL);
	json_object_foreach(remotes, name, r) {
		rc = check_remote(c, name, r, err);
		if (rc)
			return rc;
	}
	return 0;
}

int dm_config_load(struct dm_config **out, const char *path, struct dm_err *err)
{
	struct dm_config *c = dm_xcalloc(1, sizeof(*c));
	struct dm_buf b = DM_BUF_INIT;
	json_error_t jerr;
	struct dm_err rerr;
	int rc = 0;

	*out = NULL;
	c->path = dm_xstrdup(path);
	rc = dm_read_file(&b, path, DM_CONFIG_MAX_SIZE, &rerr);
	if (rc == DM_ENOTFOUND) {
		rc = 0;
		c->root = json_object();
		goto done;
	}
	if (rc) {
		if (rc == DM_ETOOBIG)
			rc = dm_err_set(err, DM_ECORRUPT, "config file '%s' is larger than %u KiB",
					path, DM_CONFIG_MAX_SIZE >> 10);
		else
			rc = dm_err_set(err, rc, "%s", rerr.msg);
		goto done;
	}
	c->exists = true;
	c->root = json_loadb((const char *)b.data, b.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!c->root) {
		rc = dm_err_set(err, DM_ECORRUPT,
				"config file '%s' is not valid JSON: line %d column %d: %s", path,
				jerr.line, jerr.column, jerr.text);
		goto done;
	}
	if (!json_is_object(c->root)) {
		rc = corrupt(c, err, "not a JSON object", NULL);
		goto done;
	}
	rc = check_root(c, err);
done:
	dm_buf_release(&b);
	if (!rc && !c->root)
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (rc) {
		dm_config_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void dm_config_free(struct dm_config *c)
{
	if (!c)
		return;
	json_decref(c->root);
	free(c->path);
	free(c);
}

bool dm_config_exists(const struct dm_config *c)
{
	return c->exists;
}

const char *dm_config_path(const struct dm_config *c)
{
	return c->path;
}

/* The directory of path, made (0700) when missing. */
static int make_dir_of(const char *path, struct dm_err *err)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;
	int n;

	if (!slash || slash == path)
		return 0;
	n = snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return dm_err_set(err, DM_ETOOBIG, "path too long: '%s'", path);
	if (stat(dir, &st) == 0)
		return 0;
	return dm_mkdir_p(dir, 0700, err);
}

int dm_config_save(struct dm_config *c, struct dm_err *err)
{
	char *text = NULL;
	int rc = 0;

	text = json_dumps(c->root, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text)
		return dm_err_set(err, DM_ENOMEM, "cannot encode the config");
	rc = make_dir_of(c->path, err);
	if (rc)
		goto done;
	{
		size_t len = strlen(text);
		char *nl = dm_xmalloc(len + 2);

		memcpy(nl, text, len);
		nl[len] = '\n';
		nl[len + 1] = '\0';
		rc = dm_write_file_atomic(c->path, nl, len + 1, 0600, err);
		memset(nl, 0, len);
		free(nl);
	}
	if (rc)
		dm_err_prefix(err, "cannot write config file '%s'", c->path);
	else
		c->exists = true;
done:
	memset(text, 0, strlen(text));
	free(text);
	return rc;
}

const char *dm_config_current_remote(const struct dm_config *c)
{
	return json_string_value(json_object_get(c->root, "current_remote"));
}

static json_t *remote_obj(const struct dm_config *c, const char *name)
{
	return json_object_get(json_object_get(c->root, "remotes"), name);
}

int dm_config_set_current_remote(struct dm_config *c, const char *name, struct dm_err *err)
{
	json_t *r = remote_obj(c, name);

	if (!r)
		return dm_err_set(err, DM_ENOTFOUND, "no remote named '%s'", name);
	if (kinds[kind_row(r)].kind != DM_REMOTE_DMD)
		return dm_err_set(err, DM_EINVAL,
				  "remote '%s' is an S3 endpoint: only a dm server can be the "
				  "current remote",
				  name);
	if (json_object_set_new(c->root, "current_remote", json_string(name)))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}

int dm_config_remote(struct dm_remote *out, const struct dm_config *c, const char *name,
		     struct dm_err *err)
{
	json_t *remotes = json_object_get(c->root, "remotes");
	json_t *r;

	memset(out, 0, sizeof(*out));
	if (!remotes || json_object_size(remotes) == 0)
		return dm_err_set(err, DM_ENOTFOUND,
				  "no remote configured; run 'dm cluster init' first");
	if (!name)
		name = dm_config_current_remote(c);
	if (!name)
		return dm_err_set(err, DM_ENOTFOUND,
				  "no current remote in config file '%s'; use --remote NAME",
				  c->path);
	r = json_object_get(remotes, name);
	if (!r)
		return dm_err_set(err, DM_ENOTFOUND, "no remote named '%s' in config file '%s'",
				  name, c->path);
	if (kinds[kind_row(r)].kind != DM_REMOTE_DMD)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "remote '%s' is an S3 endpoint, not a dm server (dm clone, pull "
				  "and push with S3 endpoints are not there yet)",
				  name);
	out->name = json_object_iter_key(json_object_iter_at(remotes, name)); /* lives as r */
	out->user = json_string_value(json_object_get(r, "user"));
	out->host = json_string_value(json_object_get(r, "host"));
	out->port = (int)json_integer_value(json_object_get(r, "port"));
	out->api_key = json_string_value(json_object_get(r, "api_key"));
	out->socket = json_string_value(json_object_get(r, "socket"));
	out->data_dir = json_string_value(json_object_get(r, "data_dir"));
	out->current_dot = json_string_value(json_object_get(r, "current_dot"));
	out->ca = json_string_value(json_object_get(r, "ca"));
	if (out->ca && !*out->ca)
		out->ca = NULL;
	if (out->current_dot && !*out->current_dot)
		out->current_dot = NULL;
	return 0;
}

static int set_str(json_t *obj, const char *key, const char *value)
{
	if (!value)
		return 0;
	return json_object_set_new(obj, key, json_string(value));
}

int dm_config_set_remote(struct dm_config *c, const struct dm_remote *r, struct dm_err *err)
{
	json_t *remotes = json_object_get(c->root, "remotes");
	json_t *o = json_object();

	if (!r->name || !*r->name || !r->user || !r->host || !r->api_key || r->port < 1 ||
	    r->port > 65535) {
		json_decref(o);
		return dm_err_set(err, DM_EINVAL, "incomplete remote '%s'",
				  r->name ? r->name : "");
	}
	if (!remotes) {
		remotes = json_object();
		if (!remotes || json_object_set_new(c->root, "remotes", remotes))
			goto nomem;
	}
	if (!o || set_str(o, "user", r->user) || set_str(o, "host", r->host) ||
	    json_object_set_new(o, "port", json_integer(r->port)) ||
	    set_str(o, "api_key", r->api_key) || set_str(o, "socket", r->socket) ||
	    set_str(o, "data_dir", r->data_dir) || set_str(o, "current_dot", r->current_dot) ||
	    set_str(o, "ca", r->ca))
		goto nomem;
	if (json_object_set_new(remotes, r->name, o))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
nomem:
	json_decref(o);
	return dm_err_set(err, DM_ENOMEM, "out of memory");
}

int dm_config_set_current_dot(struct dm_config *c, const char *name, const char *dot,
			      struct dm_err *err)
{
	json_t *r = remote_obj(c, name);

	if (!r)
		return dm_err_set(err, DM_ENOTFOUND, "no remote named '%s'", name);
	if (!dot) {
		json_object_del(r, "current_dot");
		return 0;
	}
	if (json_object_set_new(r, "current_dot", json_string(dot)))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}

enum dm_remote_kind dm_config_remote_kind(const struct dm_config *c, const char *name)
{
	json_t *r = remote_obj(c, name);

	return r ? kinds[kind_row(r)].kind : DM_REMOTE_NONE;
}

int dm_config_s3_remote(struct dm_s3_remote *out, const struct dm_config *c, const char *name,
			struct dm_err *err)
{
	json_t *r = remote_obj(c, name);

	memset(out, 0, sizeof(*out));
	if (!r)
		return dm_err_set(err, DM_ENOTFOUND, "no remote named '%s' in config file '%s'",
				  name, c->path);
	if (kinds[kind_row(r)].kind != DM_REMOTE_S3)
		return dm_err_set(err, DM_EINVAL,
				  "remote '%s' is a dm server, not an S3 endpoint (see 'dm remote -v')",
				  name);
	out->name = json_object_iter_key(json_object_iter_at(json_object_get(c->root, "remotes"),
							     name));
	out->key_id = json_string_value(json_object_get(r, "key_id"));
	out->secret = json_string_value(json_object_get(r, "secret"));
	out->endpoint = json_string_value(json_object_get(r, "endpoint"));
	out->region = json_string_value(json_object_get(r, "region"));
	return 0;
}

int dm_config_set_s3_remote(struct dm_config *c, const struct dm_s3_remote *r,
			    struct dm_err *err)
{
	json_t *remotes = json_object_get(c->root, "remotes");
	json_t *o;

	if (!r->name || !*r->name || !r->key_id || !r->secret || !r->endpoint)
		return dm_err_set(err, DM_EINVAL, "incomplete S3 remote '%s'",
				  r->name ? r->name : "");
	if (!remotes) {
		remotes = json_object();
		if (!remotes || json_object_set_new(c->root, "remotes", remotes))
			return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	o = json_pack("{s:s, s:s, s:s, s:s}", "kind", "s3", "key_id", r->key_id, "secret",
		      r->secret, "endpoint", r->endpoint);
	if (!o || set_str(o, "region", r->region) || json_object_set_new(remotes, r->name, o))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void dm_config_remote_names(const struct dm_config *c, const char ***out, size_t *n_out)
{
	json_t *remotes = json_object_get(c->root, "remotes");
	size_t n = json_object_size(remotes), i = 0;
	const char **names = dm_xcalloc(n ? n : 1, sizeof(*names));
	const char *name;
	json_t *r;

	json_object_foreach(remotes, name, r) {
		names[i++] = name;
	}
	qsort(names, i, sizeof(*names), cmp_str);
	*out = names;
	*n_out = i;
}

int dm_config_remove_remote(struct dm_config *c, const char *name, struct dm_err *err)
{
	json_t *ups = json_object_get(c->root, "upstreams");
	const char *remote, *dot;
	json_t *per_remote, *u;
	void *tmp;

	if (!remote_obj(c, name))
		return dm_err_set(err, DM_ENOTFOUND, "no remote named '%s'", name);
	json_object_del(json_object_get(c->root, "remotes"), name);
	json_object_del(ups, name);
	json_object_foreach(ups, remote, per_remote) {
		json_object_foreach_safe(per_remote, tmp, dot, u) {
			if (!strcmp(json_string_value(json_object_get(u, "remote")), name))
				json_object_del(per_remote, dot);
		}
	}
	return 0;
}

/* "ns/name" of a dot name, checked. */
static int full_dot_name(char out[DM_DOT_NAME_TEXT_MAX], const char *dot, struct dm_err *err)
{
	struct dm_dot_name n;
	int rc = dm_dot_name_parse(&n, dot, err);

	if (!rc)
		snprintf(out, DM_DOT_NAME_TEXT_MAX, "%s/%s", n.ns, n.name);
	return rc;
}

int dm_config_upstream(struct dm_upstream *out, const struct dm_config *c, const char *name,
		       const char *dot, struct dm_err *err)
{
	char key[DM_DOT_NAME_TEXT_MAX];
	json_t *u;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = full_dot_name(key, dot, err);
	if (rc)
		return rc;
	u = json_object_get(json_object_get(json_object_get(c->root, "upstreams"), name), key);
	if (!u)
		return DM_ENOTFOUND;
	out->remote = json_string_value(json_object_get(u, "remote"));
	out->dot = json_string_value(json_object_get(u, "dot"));
	return 0;
}

int dm_config_set_upstream(struct dm_config *c, const char *name, const char *dot,
			   const char *up_remote, const char *up_dot, struct dm_err *err)
{
	char key[DM_DOT_NAME_TEXT_MAX], up_key[DM_DOT_NAME_TEXT_MAX];
	json_t *ups, *per_remote;
	int rc;

	rc = full_dot_name(key, dot, err);
	if (rc)
		return rc;
	if (!remote_obj(c, name))
		return dm_err_set(err, DM_ENOTFOUND, "no remote named '%s'", name);
	ups = json_object_get(c->root, "upstreams");
	per_remote = json_object_get(ups, name);
	if (!up_remote) {
		json_object_del(per_remote, key);
		if (per_remote && json_object_size(per_remote) == 0)
			json_object_del(ups, name);
		return 0;
	}
	rc = full_dot_name(up_key, up_dot, err);
	if (rc)
		return rc;
	if (!remote_obj(c, up_remote))
		return dm_err_set(err, DM_ENOTFOUND, "no remote named '%s'", up_remote);
	if (!ups) {
		ups = json_object();
		if (!ups || json_object_set_new(c->root, "upstreams", ups))
			return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	if (!per_remote) {
		per_remote = json_object();
		if (!per_remote || json_object_set_new(ups, name, per_remote))
			return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	if (json_object_set_new(per_remote, key,
				json_pack("{s:s, s:s}", "remote", up_remote, "dot", up_key)))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}
