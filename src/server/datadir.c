/*
 * datadir.c - a dmd's data directory: config.json, and `dmd init` (see
 * datadir.h).
 *
 * Invariants: a data directory is initialised exactly when its config.json
 * exists, and config.json is written last by dm_datadir_init, so a failed
 * init never leaves a directory that looks initialised; a failed init
 * removes what it made (undo_init), and takes back what it wrote into a
 * shared KV.
 */
#include "server/datadir.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "engine/pool.h"
#include "kv/kv.h"
#include "server/api/auth.h"
#include "server/certs.h"
#include "server/cluster/backup.h"
#include "server/cluster/etcd_member.h"
#include "server/daemon.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define CONFIG_MAX    (64 * 1024)
#define CONFIG_FORMAT 1

int dm_datadir_path(char *out, size_t size, const char *dir, const char *name, struct dm_err *err)
{
	if (snprintf(out, size, "%s/%s", dir, name) >= (int)size)
		return dm_err_set(err, DM_ETOOBIG, "path too long: '%s/%s'", dir, name);
	return 0;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* 1 when dir has no entries, 0 when it has, or a DM_E* code. */
static int dir_is_empty(const char *dir, struct dm_err *err)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int empty = 1;

	if (!d)
		return dm_err_errno(err, errno, "cannot read '%s'", dir);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	return empty;
}

/* ---- config.json ---- */

static int write_config(const char *dir, const struct dm_datadir_config *c, struct dm_err *err)
{
	char path[PATH_MAX], created[40];
	struct timespec ts;
	struct tm tm;
	json_t *doc = NULL;
	char *text = NULL;
	int rc;

	rc = dm_datadir_path(path, sizeof(path), dir, DM_DATA_CONFIG, err);
	if (rc)
		return rc;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	doc = json_pack("{s:i, s:i, s:s, s:s, s:s}", "format", CONFIG_FORMAT, "port", c->port,
			"node_id", c->node_id, "engine", c->engine, "created", created);
	if (doc && c->pool_dir[0])
		json_object_set_new(doc, "pool_dir", json_string(c->pool_dir));
	if (doc && c->pool_size) {
		json_object_set_new(doc, "pool_image", json_string(DM_DATA_POOL_IMAGE));
		json_object_set_new(doc, "pool_size", json_integer((json_int_t)c->pool_size));
	}
	if (doc) {
		json_object_set_new(doc, "kv", json_string(c->kv));
		json_object_set_new(doc, "cluster_id", json_string(c->cluster_id));
	}
	if (doc && c->etcd_endpoints[0])
		json_object_set_new(doc, "etcd_endpoints", json_string(c->etcd_endpoints));
	if (doc && c->advertise[0])
		json_object_set_new(doc, "advertise", json_string(c->advertise));
	if (doc) {
		json_object_set_new(doc, "tls", json_string(c->tls));
		if (c->tls_cert[0])
			json_object_set_new(doc, "tls_cert", json_string(c->tls_cert));
		if (c->tls_key[0])
			json_object_set_new(doc, "tls_key", json_string(c->tls_key));
		if (c->tls_ca[0])
			json_object_set_new(doc, "tls_ca", json_string(c->tls_ca));
	}
	if (doc && c->etcd_client_port)
		json_object_set_new(doc, "etcd_local",
				    json_pack("{s:i, s:i, s:b}", "client_port", c->etcd_client_port,
					      "peer_port", c->etcd_peer_port, "tls",
					      c->etcd_local_tls));
	if (doc && (c->etcd_access.ca || c->etcd_access.cert || c->etcd_access.user[0]))
		json_object_set_new(doc, "etcd_client",
				    json_pack("{s:b, s:b, s:s}", "ca", c->etcd_access.ca, "cert",
					      c->etcd_access.cert, "user", c->etcd_access.user));
	text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
	if (!text) {
		rc = dm_err_set(err, DM_ENOMEM, "cannot encode '%s'", path);
		goto done;
	}
	{
		size_t len = strlen(text);

		/* json_dumps ends without a newline; files end with one. */
		char *line = dm_xmalloc(len + 2);

		memcpy(line, text, len);
		line[len] = '\n';
		line[len + 1] = '\0';
		rc = dm_write_file_atomic(path, line, len + 1, 0600, err);
		free(line);
	}
done:
	free(text);
	json_decref(doc);
	return rc;
}

/* An optional string member of doc into out; -1 when present and not a
 * string that fits. */
static int opt_string(char *out, size_t size, json_t *doc, const char *name)
{
	json_t *v = json_object_get(doc, name);

	if (!v)
		return 0;
	if (!json_is_string(v) || json_string_length(v) >= size)
		return -1;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

/* A port (1..65535) member of obj into out; -1 when absent or not one. */
static int port_member(int *out, json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);

	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
		return -1;
	*out = (int)json_integer_value(v);
	return 0;
}

/* An optional boolean member of obj into out; -1 when present and not one. */
static int opt_bool(bool *out, json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);

	if (v && !json_is_boolean(v))
		return -1;
	*out = json_is_true(v);
	return 0;
}

/* "etcd_client": how etcd is reached (absent: plainly, with no user). */
static int read_etcd_client(struct dm_etcd_access_config *out, json_t *doc, const char *path,
			    struct dm_err *err)
{
	json_t *client = json_object_get(doc, "etcd_client");

	if (client && (!json_is_object(client) || opt_bool(&out->ca, client, "ca") ||
		       opt_bool(&out->cert, client, "cert") ||
		       opt_string(out->user, sizeof(out->user), client, "user")))
		return dm_err_set(err, DM_ECORRUPT,
				  "'%s' has an invalid etcd_client: it holds booleans ca and cert "
				  "and a user name",
				  path);
	return 0;
}

/* The KV and cluster part of the config: absent in data directories made
 * before clusters, which are single nodes on the embedded KV. */
static int read_cluster_config(struct dm_datadir_config *out, json_t *doc, const char *path,
			       struct dm_err *err)
{
	json_t *local = json_object_get(doc, "etcd_local");

	if (local && (port_member(&out->etcd_client_port, local, "client_port") ||
		      port_member(&out->etcd_peer_port, local, "peer_port") ||
		      opt_bool(&out->etcd_local_tls, local, "tls")))
		return dm_err_set(err, DM_ECORRUPT,
				  "'%s' has an invalid etcd_local: it needs a client_port and a "
				  "peer_port",
				  path);
	if (read_etcd_client(&out->etcd_access, doc, path, err))
		return err->code;
	if (out->etcd_local_tls && (!out->etcd_access.ca || !out->etcd_access.user[0]))
		return dm_err_set(err, DM_ECORRUPT,
				  "'%s' has a local etcd with TLS but no etcd_client CA and user",
				  path);
	if (opt_string(out->kv, sizeof(out->kv), doc, "kv") ||
	    opt_string(out->etcd_endpoints, sizeof(out->etcd_endpoints), doc, "etcd_endpoints") ||
	    opt_string(out->cluster_id, sizeof(out->cluster_id), doc, "cluster_id") ||
	    opt_string(out->advertise, sizeof(out->advertise), doc, "advertise"))
		return dm_err_set(err, DM_ECORRUPT,
				  "'%s' has an invalid kv, etcd_endpoints, cluster_id or advertise",
				  path);
	if (opt_string(out->tls, sizeof(out->tls), doc, "tls") ||
	    opt_string(out->tls_cert, sizeof(out->tls_cert), doc, "tls_cert") ||
	    opt_string(out->tls_key, sizeof(out->tls_key), doc, "tls_key") ||
	    opt_string(out->tls_ca, sizeof(out->tls_ca), doc, "tls_ca"))
		return dm_err_set(err, DM_ECORRUPT,
				  "'%s' has an invalid tls, tls_cert, tls_key or tls_ca", path);
	/* made before TLS: plain HTTP, as it was */
	if (!out->tls[0])
		snprintf(out->tls, sizeof(out->tls), "%s", DM_TLS_OFF);
	if (strcmp(out->tls, DM_TLS_SELF) && strcmp(out->tls, DM_TLS_FILES) &&
	    strcmp(out->tls, DM_TLS_OFF))
		return dm_err_set(err, DM_ECORRUPT, "'%s' names an unknown tls '%s'", path,
				  out->tls);
	if (!strcmp(out->tls, DM_TLS_FILES) && (!out->tls_cert[0] || !out->tls_key[0]))
		return dm_err_set(err, DM_ECORRUPT, "'%s' has tls files but no tls_cert or tls_key",
				  path);
	if (!out->kv[0])
		snprintf(out->kv, sizeof(out->kv), "lmdb");
	if (strcmp(out->kv, "lmdb") && strcmp(out->kv, "etcd"))
		return dm_err_set(err, DM_ECORRUPT, "'%s' names an unknown kv '%s'", path, out->kv);
	if (!strcmp(out->kv, "etcd") && !out->etcd_endpoints[0])
		return dm_err_set(err, DM_ECORRUPT, "'%s' has kv etcd but no etcd_endpoints", path);
	if (local && strcmp(out->kv, "etcd"))
		return dm_err_set(err, DM_ECORRUPT, "'%s' has an etcd_local but kv %s", path,
				  out->kv);
	return 0;
}

int dm_datadir_read_config(struct dm_datadir_config *out, const char *dir, struct dm_err *err)
{
	char path[PATH_MAX];
	struct dm_buf b = DM_BUF_INIT;
	json_error_t jerr;
	json_t *doc = NULL, *port, *node, *engine, *pool_dir, *pool_size;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = dm_datadir_path(path, sizeof(path), dir, DM_DATA_CONFIG, err);
	if (rc)
		return rc;
	rc = dm_read_file(&b, path, CONFIG_MAX, err);
	if (rc)
		goto done;
	doc = json_loadb((const char *)b.data, b.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		rc = dm_err_set(err, DM_ECORRUPT, "cannot parse '%s': %s (line %d)", path,
				jerr.text, jerr.line);
		goto done;
	}
	/* a data directory made by a newer dm is not misread (formats.md) */
	if (json_integer_value(json_object_get(doc, "format")) > CONFIG_FORMAT) {
		rc = dm_err_set(err, DM_EUNSUPPORTED,
				"'%s' has format %lld, newer than this dm reads (%d): run a newer dm",
				path, (long long)json_integer_value(json_object_get(doc, "format")),
				CONFIG_FORMAT);
		goto done;
	}
	port = json_object_get(doc, "port");
	node = json_object_get(doc, "node_id");
	engine = json_object_get(doc, "engine");
	pool_dir = json_object_get(doc, "pool_dir");
	pool_size = json_object_get(doc, "pool_size");
	if (!json_is_integer(port) || json_integer_value(port) < 1 ||
	    json_integer_value(port) > 65535 || !json_is_string(node) ||
	    json_string_length(node) != DM_UUID_LEN || (engine && !json_is_string(engine)) ||
	    (engine && json_string_length(engine) >= sizeof(out->engine))) {
		rc = dm_err_set(err, DM_ECORRUPT, "'%s' lacks a valid port, node_id or engine",
				path);
		goto done;
	}
	if ((pool_dir && (!json_is_string(pool_dir) || json_string_value(pool_dir)[0] != '/' ||
			  json_string_length(pool_dir) >= sizeof(out->pool_dir))) ||
	    (pool_size && (!json_is_integer(pool_size) || json_integer_value(pool_size) <= 0))) {
		rc = dm_err_set(err, DM_ECORRUPT, "'%s' has an invalid pool_dir or pool_size",
				path);
		goto done;
	}
	if (pool_dir)
		snprintf(out->pool_dir, sizeof(out->pool_dir), "%s", json_string_value(pool_dir));
	if (pool_size)
		out->pool_size = (uint64_t)json_integer_value(pool_size);
	out->port = (int)json_integer_value(port);
	snprintf(out->node_id, sizeof(out->node_id), "%s", json_string_value(node));
	snprintf(out->engine, sizeof(out->engine), "%s",
		 engine ? json_string_value(engine) : "dir");
	rc = read_cluster_config(out, doc, path, err);
done:
	json_decref(doc);
	dm_buf_release(&b);
	return rc;
}

int dm_datadir_check(const char *data_dir, struct dm_err *err)
{
	char path[PATH_MAX];
	struct stat st;
	int rc;

	if (stat(data_dir, &st) < 0) {
		if (errno == ENOENT)
			return dm_err_set(
				err, DM_ENOTFOUND,
				"no data directory '%s'; run 'dmd init --data-dir %s' first",
				data_dir, data_dir);
		return dm_err_errno(err, errno, "cannot open data directory '%s'", data_dir);
	}
	if (!S_ISDIR(st.st_mode))
		return dm_err_set(err, DM_EINVAL, "'%s' is not a directory", data_dir);
	rc = dm_datadir_path(path, sizeof(path), data_dir, DM_DATA_CONFIG, err);
	if (rc)
		return rc;
	if (!exists(path))
		return dm_err_set(
			err, DM_ENOTFOUND,
			"'%s' is not a dm data directory; run 'dmd init --data-dir %s' first",
			data_dir, data_dir);
	return 0;
}

int dm_datadir_port(int *out, const char *data_dir, struct dm_err *err)
{
	struct dm_datadir_config c;
	int rc = dm_datadir_read_config(&c, data_dir, err);

	*out = rc ? 0 : c.port;
	return rc;
}

/* ---- dmd init ---- */

/* Removes what a failed init made; dir was empty or made by init, and so
 * was c's loop pool or the dots directory in c's pool_dir. */
static void undo_init(const char *dir, bool created, const struct dm_datadir_config *c)
{
	static const char *const made[] = {
		DM_DATA_CONFIG,        DM_DATA_ADMIN_KEY,   DM_DATA_KV,
		DM_DATA_STORE,         DM_DATA_DOTS,        DM_DATA_POOL,
		DM_DATA_POOL_IMAGE,    DM_DATA_ETCD,        DM_DATA_ETCD_PID,
		DM_DATA_ETCD_LOG,      DM_DATA_CA,          DM_DATA_CA_KEY,
		DM_DATA_TLS_CERT,      DM_DATA_TLS_KEY,     DM_DATA_ETCD_CA,
		DM_DATA_ETCD_CA_KEY,   DM_DATA_ETCD_CERT,   DM_DATA_ETCD_KEY,
		DM_DATA_ETCD_PASSWORD, DM_DATA_ETCD_SERVER, DM_DATA_ETCD_SERVER_KEY,
	};
	char path[PATH_MAX];
	struct dm_err err;

	if (c->pool_size && dm_datadir_path(path, sizeof(path), dir, DM_DATA_POOL, NULL) == 0 &&
	    dm_pool_unmount(path, &err))
		dm_warn("%s", err.msg);
	if (c->pool_dir[0] &&
	    dm_datadir_path(path, sizeof(path), c->pool_dir, DM_DATA_DOTS, NULL) == 0)
		dm_remove_tree(path, NULL);
	if (created) {
		dm_remove_tree(dir, NULL);
		return;
	}
	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++)
		if (dm_datadir_path(path, sizeof(path), dir, made[i], NULL) == 0)
			dm_remove_tree(path, NULL);
}

/*
 * Where the engine keeps working copies: DIR/dots for the dir engine; for
 * btrfs the pool's dots/, with DIR/dots a symlink to it so that working
 * copies are where they always are.
 */
int dm_datadir_dots_path(char *out, size_t size, const char *dir, const struct dm_datadir_config *c,
			 struct dm_err *err)
{
	char mnt[PATH_MAX];
	int rc;

	if (c->pool_dir[0])
		return dm_datadir_path(out, size, c->pool_dir, DM_DATA_DOTS, err);
	if (!c->pool_size)
		return dm_datadir_path(out, size, dir, DM_DATA_DOTS, err);
	rc = dm_datadir_path(mnt, sizeof(mnt), dir, DM_DATA_POOL, err);
	return rc ? rc : dm_datadir_path(out, size, mnt, DM_DATA_DOTS, err);
}

/* Makes the dots directory: in DIR, or in the btrfs pool (made now when it
 * is a loop pool), linked from DIR/dots. */
static int init_dots(const char *dir, const struct dm_datadir_config *c, struct dm_err *err)
{
	char path[PATH_MAX], dots[PATH_MAX], image[PATH_MAX], mnt[PATH_MAX];
	int rc;

	rc = dm_datadir_path(path, sizeof(path), dir, DM_DATA_DOTS, err);
	if (!rc)
		rc = dm_datadir_dots_path(dots, sizeof(dots), dir, c, err);
	if (rc)
		return rc;
	if (strcmp(c->engine, "btrfs") != 0)
		return dm_mkdir_p(path, DM_DATADIR_TRAVERSE_MODE, err);
	if (c->pool_size) {
		rc = dm_datadir_path(image, sizeof(image), dir, DM_DATA_POOL_IMAGE, err);
		if (!rc)
			rc = dm_datadir_path(mnt, sizeof(mnt), dir, DM_DATA_POOL, err);
		if (!rc)
			rc = dm_pool_create(image, mnt, c->pool_size, err);
		if (!rc)
			rc = chmod(mnt, DM_DATADIR_TRAVERSE_MODE) < 0
				     ? dm_err_errno(err, errno, "cannot set the mode of '%s'", mnt)
				     : 0;
		if (rc)
			return dm_err_prefix(err, "cannot make a btrfs pool");
	}
	rc = dm_mkdir_p(dots, DM_DATADIR_TRAVERSE_MODE, err);
	if (!rc && symlink(c->pool_size ? DM_DATA_POOL "/" DM_DATA_DOTS : dots, path) < 0)
		rc = dm_err_errno(err, errno, "cannot link '%s' to '%s'", path, dots);
	return rc;
}

/* Ends err's message with the way out: the dir engine. */
static int suggest_dir_engine(struct dm_err *err)
{
	char msg[DM_ERR_MSG_MAX];

	snprintf(msg, sizeof(msg), "%s", err->msg);
	return dm_err_set(err, err->code,
			  "%s; use --engine dir instead (it needs no root, btrfs or loop devices)",
			  msg);
}

/* Whether this machine can hold c's btrfs pool, before anything is made. */
static int check_pool(struct dm_datadir_config *c, const struct dm_datadir_init_opts *o,
		      struct dm_err *err)
{
	char dots[PATH_MAX], *abs = NULL;
	int rc;

	if (strcmp(c->engine, "btrfs") != 0) {
		if (o->pool_dir || o->pool_size)
			return dm_err_set(err, DM_EINVAL,
					  "--pool-dir and --pool-size are for --engine btrfs");
		return 0;
	}
	if (!!o->pool_dir == !!o->pool_size)
		return dm_err_set(err, DM_EINVAL,
				  "--engine btrfs needs --pool-dir PATH (an existing btrfs mount) "
				  "or --pool-size SIZE (a pool file dmd makes), one of them");
	if (o->pool_size) {
		c->pool_size = o->pool_size;
		if (o->pool_size < DM_POOL_MIN_SIZE)
			return dm_err_set(err, DM_EINVAL, "--pool-size must be at least %llu MiB",
					  (unsigned long long)(DM_POOL_MIN_SIZE >> 20));
		rc = dm_pool_can_loop(err);
		if (rc)
			dm_err_prefix(err, "cannot make a btrfs pool");
		return rc ? suggest_dir_engine(err) : 0;
	}
	if (geteuid() != 0) {
		dm_err_set(err, DM_EPERM,
			   "the btrfs engine needs root to make subvolumes and snapshots");
		return suggest_dir_engine(err);
	}
	rc = dm_pool_check_dir(o->pool_dir, err);
	if (rc)
		return suggest_dir_engine(err);
	abs = realpath(o->pool_dir, NULL);
	if (!abs || strlen(abs) >= sizeof(c->pool_dir)) {
		free(abs);
		return dm_err_errno(err, errno ? errno : ENAMETOOLONG, "cannot resolve '%s'",
				    o->pool_dir);
	}
	snprintf(c->pool_dir, sizeof(c->pool_dir), "%s", abs);
	free(abs);
	rc = dm_datadir_path(dots, sizeof(dots), c->pool_dir, DM_DATA_DOTS, err);
	if (!rc && exists(dots))
		rc = dm_err_set(err, DM_EEXISTS,
				"'%s' exists already: another data directory uses this pool", dots);
	return rc;
}

/* Opens the KV c names: the embedded one in DIR/kv, or etcd, whose local
 * member (when c has one) is started first, into *member: the caller stops
 * it after it freed the KV, whether this failed or not. */
int dm_datadir_open_kv(struct dm_kv **out, struct dm_etcd_member **member,
		       struct dm_etcd_access *access, const char *dir,
		       const struct dm_datadir_config *c, struct dm_err *err)
{
	struct dm_kv_etcd_opts o;
	char path[PATH_MAX];
	int rc;

	memset(access, 0, sizeof(*access));
	if (!strcmp(c->kv, "etcd")) {
		rc = dm_etcd_access_load(access, dir, &c->etcd_access, err);
		if (!rc && c->etcd_client_port)
			rc = dm_etcd_member_start(member, dir, c->etcd_client_port,
						  c->etcd_peer_port,
						  c->etcd_local_tls ? access : NULL, err);
		if (rc)
			return rc;
		dm_kv_etcd_opts_default(&o);
		dm_etcd_access_kv_opts(&o, access);
		rc = dm_kv_open_etcd(out, c->etcd_endpoints, &o, err);
		return rc ? dm_err_prefix(err, "cannot reach etcd") : 0;
	}
	rc = dm_datadir_path(path, sizeof(path), dir, DM_DATA_KV, err);
	return rc ? rc : dm_kv_open_lmdb(out, path, err);
}

/*
 * The KV's part of init: a new cluster (its record and admin user, whose
 * key goes into key_out), or, joining, the check that the KV holds the
 * token's cluster (a joining node gets no API key: key_out is "").
 * *made_cluster tells a failed init what to take back out of a shared KV.
 */
static int init_kv(char *key_out, struct dm_kv *kv, struct dm_datadir_config *c,
		   const struct dm_cluster_token *join, bool *made_cluster, struct dm_err *err)
{
	int rc;

	key_out[0] = '\0';
	if (!join) {
		rc = dm_cluster_create(kv, c->cluster_id, err);
		if (rc)
			return rc;
		*made_cluster = true;
		return dm_auth_user_create(kv, NULL, key_out, DM_CLUSTER_ADMIN_USER, true, 0, err);
	}
	rc = dm_cluster_id(kv, c->cluster_id, err);
	if (rc == DM_ENOTFOUND)
		return dm_err_set(err, DM_ENOTFOUND,
				  "etcd at %s holds no dm cluster; make one with "
				  "'dm cluster init --kv etcd' first",
				  c->etcd_endpoints);
	if (!rc && strcmp(c->cluster_id, join->cluster_id) != 0)
		return dm_err_set(err, DM_EINVAL, "etcd at %s holds cluster %s, not the token's %s",
				  c->etcd_endpoints, c->cluster_id, join->cluster_id);
	return rc;
}

/* How this node reaches etcd: a local member's own CA and root password,
 * or what the operator gave, or what the join token carries. */
static int init_etcd_access(const char *dir, struct dm_datadir_config *c,
			    const struct dm_etcd_access_opts *o,
			    const struct dm_cluster_token *join, struct dm_err *err)
{
	struct dm_etcd_access_token t = {NULL, NULL, NULL};

	if (strcmp(c->kv, "etcd"))
		return 0;
	if (c->etcd_client_port) {
		c->etcd_local_tls = true;
		return dm_etcd_access_init_local(dir, &c->etcd_access, err);
	}
	if (join) {
		t.ca_pem = join->etcd_ca;
		t.user = join->etcd_user;
		t.password = join->etcd_password;
	}
	return dm_etcd_access_init(dir, &c->etcd_access, o, join ? &t : NULL, err);
}

static int init_contents(char *key_out, const char *dir, struct dm_datadir_config *c,
			 const struct dm_etcd_access_opts *etcd,
			 const struct dm_cluster_token *join, struct dm_err *err)
{
	char path[PATH_MAX], line[DM_API_KEY_LEN + 2];
	struct dm_kv *kv = NULL;
	struct dm_etcd_member *member = NULL;
	struct dm_etcd_access access;
	struct dm_store *store = NULL;
	bool made_cluster = false;
	int rc;

	memset(&access, 0, sizeof(access));
	rc = dm_datadir_path(path, sizeof(path), dir, DM_DATA_STORE, err);
	if (!rc)
		rc = dm_mkdir_p(path, DM_DATADIR_PRIVATE_MODE, err);
	if (!rc)
		rc = dm_store_open(&store, path, NULL, err);
	dm_store_free(store);
	if (!rc)
		rc = init_dots(dir, c, err);
	if (!rc)
		rc = init_etcd_access(dir, c, etcd, join, err);
	if (!rc)
		rc = dm_datadir_open_kv(&kv, &member, &access, dir, c, err);
	if (!rc)
		rc = init_kv(key_out, kv, c, join, &made_cluster, err);
	if (!rc && !join)
		rc = dm_datadir_path(path, sizeof(path), dir, DM_DATA_ADMIN_KEY, err);
	if (!rc && !join) {
		snprintf(line, sizeof(line), "%s\n", key_out);
		rc = dm_write_file_atomic(path, line, strlen(line), 0400, err);
	}
	if (!rc && join)
		rc = dm_certs_init_joined(dir, c->node_id, c->advertise, join, err);
	else if (!rc)
		rc = dm_certs_init(dir, c, c->advertise, err);
	if (!rc)
		rc = write_config(dir, c, err);
	if (rc && made_cluster && !strcmp(c->kv, "etcd")) {
		/* a shared KV outlives the directory: take back what we wrote */
		dm_kv_delete(kv, NULL, DM_KV_USERS DM_CLUSTER_ADMIN_USER, NULL);
		dm_kv_delete(kv, NULL, DM_KV_CLUSTER, NULL);
	}
	dm_kv_free(kv);
	/* a local member runs only while dmd does: dmd start starts it again */
	dm_etcd_member_stop(member);
	dm_etcd_access_release(&access);
	return rc;
}

/* The KV and cluster options of init into c. */
static int check_cluster_opts(struct dm_datadir_config *c, const struct dm_datadir_init_opts *o,
			      struct dm_err *err)
{
	const char *kv = o->kv ? o->kv : o->join ? "etcd" : "lmdb";
	const char *endpoints = o->join ? o->join->endpoints : o->etcd_endpoints;

	bool local = !strcmp(kv, "etcd") && (!endpoints || !*endpoints);
	char url[256];
	int rc, port;

	if (strcmp(kv, "lmdb") && strcmp(kv, "etcd"))
		return dm_err_set(err, DM_EINVAL, "unknown kv '%s': use lmdb or etcd", kv);
	if (o->join && strcmp(kv, "etcd"))
		return dm_err_set(err, DM_EINVAL, "joining a cluster needs the etcd kv");
	if (local) {
		/* no endpoints: dmd runs a member of its own, on ports chosen now */
		rc = dm_etcd_member_check(err);
		if (!rc)
			rc = dm_etcd_member_pick_ports(&c->etcd_client_port, &c->etcd_peer_port,
						       err);
		if (rc)
			return rc;
		dm_etcd_member_url(url, sizeof(url), c->etcd_client_port, true);
		endpoints = url;
	}
	if (strcmp(kv, "etcd") && endpoints && *endpoints)
		return dm_err_set(err, DM_EINVAL, "--etcd-endpoints is for --kv etcd");
	if ((local || strcmp(kv, "etcd")) &&
	    (o->etcd.ca_file || o->etcd.cert_file || o->etcd.key_file || o->etcd.user ||
	     o->etcd.password_file))
		return dm_err_set(err, DM_EINVAL,
				  "--etcd-ca, --etcd-cert, --etcd-key and --etcd-user are for an "
				  "etcd given by --etcd-endpoints (a local etcd makes its own)");
	if (endpoints && strlen(endpoints) >= sizeof(c->etcd_endpoints))
		return dm_err_set(err, DM_ETOOBIG, "--etcd-endpoints is too long");
	if (o->advertise && (dm_cluster_address_parse(url, sizeof(url), &port, o->advertise) ||
			     strlen(o->advertise) >= sizeof(c->advertise)))
		return dm_err_set(err, DM_EINVAL,
				  "invalid --advertise '%s': give the URL other nodes reach this "
				  "one at, such as https://10.0.0.5:32607",
				  o->advertise);
	snprintf(c->kv, sizeof(c->kv), "%s", kv);
	snprintf(c->etcd_endpoints, sizeof(c->etcd_endpoints), "%s", endpoints ? endpoints : "");
	snprintf(c->advertise, sizeof(c->advertise), "%s", o->advertise ? o->advertise : "");
	return 0;
}

/* The scheme of the address this node advertises is the one its TCP port
 * speaks: https unless --insecure-http. */
static void advertise_scheme(struct dm_datadir_config *c)
{
	bool tls = strcmp(c->tls, DM_TLS_OFF) != 0;
	char rest[sizeof(c->advertise)];
	const char *sep = strstr(c->advertise, "://");

	if (!c->advertise[0] || !sep)
		return;
	snprintf(rest, sizeof(rest), "%s", sep + 3);
	snprintf(c->advertise, sizeof(c->advertise), "%s://%.*s", tls ? "https" : "http",
		 (int)(sizeof(c->advertise) - 9), rest);
}

/* An absolute path of a file the operator named, into out. */
static int operator_file(char *out, size_t size, const char *path, const char *flag,
			 struct dm_err *err)
{
	char cwd[PATH_MAX];

	if (access(path, R_OK) < 0)
		return dm_err_errno(err, errno, "%s '%s'", flag, path);
	if (path[0] == '/') {
		if (strlen(path) >= size)
			return dm_err_set(err, DM_ETOOBIG, "%s: path too long", flag);
		snprintf(out, size, "%s", path);
		return 0;
	}
	if (!getcwd(cwd, sizeof(cwd)) || strlen(cwd) + 1 + strlen(path) >= size)
		return dm_err_set(err, DM_ETOOBIG, "%s: path too long", flag);
	memcpy(out, cwd, strlen(cwd));
	out[strlen(cwd)] = '/';
	memcpy(out + strlen(cwd) + 1, path, strlen(path) + 1);
	return 0;
}

/* The TLS options of init into c: dm's own CA unless the operator gave
 * files, or plain HTTP only for a node reached on loopback. */
static int check_tls_opts(struct dm_datadir_config *c, const struct dm_datadir_init_opts *o,
			  struct dm_err *err)
{
	int rc = 0;

	if (o->join && (o->tls_cert || o->tls_key || o->tls_ca || o->insecure_http))
		return dm_err_set(err, DM_EINVAL,
				  "a node joining a cluster speaks as the cluster does (its token "
				  "says): no --tls-cert, --tls-key, --tls-ca or --insecure-http");
	if (o->join) {
		/* a token always has the cluster's CA */
		snprintf(c->tls, sizeof(c->tls), "%s", DM_TLS_SELF);
		return 0;
	}
	if (o->insecure_http) {
		char host[256];
		int port;

		if (o->tls_cert || o->tls_key || o->tls_ca)
			return dm_err_set(
				err, DM_EINVAL,
				"--insecure-http takes no --tls-cert, --tls-key or --tls-ca");
		if (o->advertise &&
		    (dm_cluster_address_parse(host, sizeof(host), &port, o->advertise) ||
		     (strcmp(host, "127.0.0.1") && strcmp(host, "localhost") &&
		      strcmp(host, "[::1]"))))
			return dm_err_set(
				err, DM_EINVAL,
				"--insecure-http is only for a node reached on a loopback "
				"address, not '%s': clear text never reaches the network",
				o->advertise);
		snprintf(c->tls, sizeof(c->tls), "%s", DM_TLS_OFF);
		return 0;
	}
	if (!o->tls_cert != !o->tls_key)
		return dm_err_set(err, DM_EINVAL, "--tls-cert and --tls-key go together");
	if (o->tls_ca && !o->tls_cert)
		return dm_err_set(err, DM_EINVAL, "--tls-ca goes with --tls-cert and --tls-key");
	if (!o->tls_cert) {
		snprintf(c->tls, sizeof(c->tls), "%s", DM_TLS_SELF);
		return 0;
	}
	snprintf(c->tls, sizeof(c->tls), "%s", DM_TLS_FILES);
	rc = operator_file(c->tls_cert, sizeof(c->tls_cert), o->tls_cert, "--tls-cert", err);
	if (!rc)
		rc = operator_file(c->tls_key, sizeof(c->tls_key), o->tls_key, "--tls-key", err);
	if (!rc && o->tls_ca)
		rc = operator_file(c->tls_ca, sizeof(c->tls_ca), o->tls_ca, "--tls-ca", err);
	return rc;
}

int dm_datadir_init(char *key_out, const char *data_dir, int port, struct dm_err *err)
{
	struct dm_datadir_init_opts o;

	memset(&o, 0, sizeof(o));
	o.port = port;
	return dm_datadir_init_opts(key_out, data_dir, &o, err);
}

int dm_datadir_init_opts(char *key_out, const char *data_dir, const struct dm_datadir_init_opts *o,
			 struct dm_err *err)
{
	char path[PATH_MAX];
	struct dm_datadir_config c;
	struct stat st;
	bool created = false;
	int rc;

	memset(key_out, 0, DM_API_KEY_LEN + 1);
	memset(&c, 0, sizeof(c));
	c.port = o->port ? o->port : DM_DEFAULT_PORT;
	snprintf(c.engine, sizeof(c.engine), "%s", o->engine ? o->engine : "dir");
	if (c.port < 1 || c.port > 65535)
		return dm_err_set(err, DM_EINVAL, "invalid port %d", c.port);
	if (strcmp(c.engine, "dir") != 0 && strcmp(c.engine, "btrfs") != 0)
		return dm_err_set(err, DM_EINVAL, "unknown engine '%s': use dir or btrfs",
				  c.engine);
	rc = check_pool(&c, o, err);
	if (!rc)
		rc = check_cluster_opts(&c, o, err);
	if (!rc)
		rc = check_tls_opts(&c, o, err);
	if (!rc)
		advertise_scheme(&c);
	if (rc)
		return rc;
	if (stat(data_dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return dm_err_set(err, DM_EEXISTS, "'%s' exists and is not a directory",
					  data_dir);
		rc = dm_datadir_path(path, sizeof(path), data_dir, DM_DATA_CONFIG, err);
		if (rc)
			return rc;
		if (exists(path))
			return dm_err_set(err, DM_EEXISTS, "'%s' is already initialised", data_dir);
		rc = dir_is_empty(data_dir, err);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return dm_err_set(err, DM_EEXISTS,
					  "'%s' is not empty and not a dm data directory",
					  data_dir);
	} else if (errno == ENOENT) {
		rc = dm_mkdir_p(data_dir, DM_DATADIR_TRAVERSE_MODE, err);
		if (rc)
			return rc;
		created = true;
	} else {
		return dm_err_errno(err, errno, "cannot open '%s'", data_dir);
	}
	rc = dm_id_uuid4(c.node_id, err);
	if (!rc)
		rc = init_contents(key_out, data_dir, &c, &o->etcd, o->join, err);
	if (rc) {
		undo_init(data_dir, created, &c);
		memset(key_out, 0, DM_API_KEY_LEN + 1);
		return rc;
	}
	dm_info("initialised data directory '%s' (node %s, port %d, engine %s, kv %s, cluster %s)",
		data_dir, c.node_id, c.port, c.engine, c.kv, c.cluster_id);
	return 0;
}

int dm_datadir_release_pool(const char *data_dir, struct dm_err *err)
{
	char mnt[PATH_MAX];
	struct dm_datadir_config c;
	int rc = dm_datadir_read_config(&c, data_dir, err);

	if (rc || !c.pool_size)
		return rc;
	rc = dm_datadir_path(mnt, sizeof(mnt), data_dir, DM_DATA_POOL, err);
	return rc ? rc : dm_pool_unmount(mnt, err);
}

int dm_datadir_restore(const char *data_dir, const char *file, FILE *report, struct dm_err *err)
{
	struct dm_datadir_config c;
	struct dm_pidfile *pid = NULL;
	struct dm_etcd_member *member = NULL;
	struct dm_etcd_access access;
	struct dm_kv *kv = NULL;
	struct dm_store *store = NULL;
	struct dm_buf text = DM_BUF_INIT;
	struct dm_restore r;
	json_error_t jerr;
	json_t *backup = NULL, *e;
	char path[PATH_MAX];
	size_t i;
	int rc;

	memset(&r, 0, sizeof(r));
	memset(&access, 0, sizeof(access));
	rc = dm_read_file(&text, file, DM_BACKUP_MAX, err);
	if (!rc) {
		backup = json_loadb((const char *)text.data, text.len, 0, &jerr);
		if (!backup)
			rc = dm_err_set(err, DM_EINVAL, "'%s' is not a backup: %s (line %d)", file,
					jerr.text, jerr.line);
	}
	if (!rc)
		rc = dm_datadir_check(data_dir, err);
	if (!rc)
		rc = dm_datadir_read_config(&c, data_dir, err);
	if (!rc)
		rc = dm_pidfile_lock(&pid, data_dir, err); /* no dmd on it meanwhile */
	if (!rc)
		rc = dm_datadir_open_kv(&kv, &member, &access, data_dir, &c, err);
	if (!rc)
		rc = dm_datadir_path(path, sizeof(path), data_dir, DM_DATA_STORE, err);
	if (!rc)
		rc = dm_store_open(&store, path, NULL, err);
	if (!rc) {
		r.kv = kv;
		r.store = store;
		r.kv_name = c.kv;
		r.cluster_id = c.cluster_id;
		r.node_id = c.node_id;
		rc = dm_cluster_restore(&r, backup, err);
	}
	if (!rc) {
		fprintf(report,
			"Restored %zu users (%zu there already, kept), %zu dots, the records of "
			"%zu dots here already, %zu volume aliases\n",
			r.users, r.users_kept, r.dots, r.merged, r.volumes);
		json_array_foreach(r.skipped, i, e)
			fprintf(report, "Left out dot '%s': %s\n",
				json_string_value(json_object_get(e, "dot")),
				json_string_value(json_object_get(e, "why")));
	}
	json_decref(r.skipped);
	dm_store_free(store);
	dm_kv_free(kv);
	dm_etcd_member_stop(member);
	dm_etcd_access_release(&access);
	dm_pidfile_release(pid);
	json_decref(backup);
	dm_buf_release(&text);
	return rc;
}
