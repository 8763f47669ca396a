/*
 * server.c - a dmd's data directory (`dmd init`) and the opening and
 * orderly shutdown of everything a running dmd holds (see server.h).
 *
 * Invariants: a data directory is initialised exactly when its config.json
 * exists, and config.json is written last by dm_server_init_data_dir, so a
 * failed init never leaves a directory that looks initialised. Shutdown
 * first ends the node's liveness lease (other nodes of a cluster see it
 * down at once), then releases in the reverse order of opening: HTTP and
 * the Docker volume plugin (no new request reaches the registry), the
 * replicator and transfers, registry (stops the dots, their actors and
 * jobs), scheduler, Docker API client, engine, store, KV, and last the
 * local etcd member when the data directory has one (it was started first,
 * before the KV was opened).
 */
#include "server/server.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "actor/actor.h"
#include "engine/engine.h"
#include "engine/pool.h"
#include "kv/kv.h"
#include "server/auth.h"
#include "server/cluster.h"
#include "server/docker.h"
#include "server/etcd_member.h"
#include "server/http.h"
#include "server/plugin.h"
#include "server/replicate.h"
#include "server/transfer.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define CONFIG_MAX (64 * 1024)
#define CONFIG_FORMAT 1

/*
 * Modes of what init creates. The data directory and dots/ may be traversed
 * but not listed by anyone (0711): a database in a working copy runs as its
 * own user (PostgreSQL refuses root), which must reach DIR/dots/<id>/<branch>/wc
 * by path. What holds secrets or history stays the owner's alone: kv/ and
 * store/ 0700, the admin key 0400, the socket 0600, the log 0600.
 */
#define DATA_TRAVERSE_MODE 0711
#define DATA_PRIVATE_MODE 0700

static int path_in(char *out, size_t size, const char *dir, const char *name, struct dm_err *err)
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

struct config {
	int port;
	char node_id[DM_UUID_LEN + 1];
	char engine[32];
	/* btrfs: an existing mount (pool_dir, absolute), or a loop-mounted file
	 * DIR/pool.img (pool_size > 0) mounted at DIR/pool; neither for dir */
	char pool_dir[PATH_MAX];
	uint64_t pool_size;
	char kv[8];                /* "lmdb" or "etcd" */
	char etcd_endpoints[DM_CLUSTER_ENDPOINTS_MAX]; /* etcd: "http://h:p,..." */
	char cluster_id[DM_UUID_LEN + 1];
	char advertise[DM_CLUSTER_ADDRESS_MAX]; /* where other nodes reach us, or "" */
	/* a local etcd member's ports ("etcd_local"), or 0: etcd is elsewhere */
	int etcd_client_port, etcd_peer_port;
};

static int write_config(const char *dir, const struct config *c, struct dm_err *err)
{
	char path[PATH_MAX], created[40];
	struct timespec ts;
	struct tm tm;
	json_t *doc = NULL;
	char *text = NULL;
	int rc;

	rc = path_in(path, sizeof(path), dir, DM_DATA_CONFIG, err);
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
	if (doc && c->etcd_client_port)
		json_object_set_new(doc, "etcd_local",
				    json_pack("{s:i, s:i}", "client_port", c->etcd_client_port,
					      "peer_port", c->etcd_peer_port));
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

/* The KV and cluster part of the config: absent in data directories made
 * before clusters, which are single nodes on the embedded KV. */
static int read_cluster_config(struct config *out, json_t *doc, const char *path,
			       struct dm_err *err)
{
	json_t *local = json_object_get(doc, "etcd_local");

	if (local && (port_member(&out->etcd_client_port, local, "client_port") ||
		      port_member(&out->etcd_peer_port, local, "peer_port")))
		return dm_err_set(err, DM_ECORRUPT,
				  "'%s' has an invalid etcd_local: it needs a client_port and a "
				  "peer_port",
				  path);
	if (opt_string(out->kv, sizeof(out->kv), doc, "kv") ||
	    opt_string(out->etcd_endpoints, sizeof(out->etcd_endpoints), doc, "etcd_endpoints") ||
	    opt_string(out->cluster_id, sizeof(out->cluster_id), doc, "cluster_id") ||
	    opt_string(out->advertise, sizeof(out->advertise), doc, "advertise"))
		return dm_err_set(err, DM_ECORRUPT,
				  "'%s' has an invalid kv, etcd_endpoints, cluster_id or advertise",
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

static int read_config(struct config *out, const char *dir, struct dm_err *err)
{
	char path[PATH_MAX];
	struct dm_buf b = DM_BUF_INIT;
	json_error_t jerr;
	json_t *doc = NULL, *port, *node, *engine, *pool_dir, *pool_size;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = path_in(path, sizeof(path), dir, DM_DATA_CONFIG, err);
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
	port = json_object_get(doc, "port");
	node = json_object_get(doc, "node_id");
	engine = json_object_get(doc, "engine");
	pool_dir = json_object_get(doc, "pool_dir");
	pool_size = json_object_get(doc, "pool_size");
	if (!json_is_integer(port) || json_integer_value(port) < 1 ||
	    json_integer_value(port) > 65535 || !json_is_string(node) ||
	    json_string_length(node) != DM_UUID_LEN || (engine && !json_is_string(engine)) ||
	    (engine && json_string_length(engine) >= sizeof(out->engine))) {
		rc = dm_err_set(err, DM_ECORRUPT,
				"'%s' lacks a valid port, node_id or engine", path);
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
	snprintf(out->engine, sizeof(out->engine), "%s", engine ? json_string_value(engine) : "dir");
	rc = read_cluster_config(out, doc, path, err);
done:
	json_decref(doc);
	dm_buf_release(&b);
	return rc;
}

int dm_server_check_data_dir(const char *data_dir, struct dm_err *err)
{
	char path[PATH_MAX];
	struct stat st;
	int rc;

	if (stat(data_dir, &st) < 0) {
		if (errno == ENOENT)
			return dm_err_set(err, DM_ENOTFOUND,
					  "no data directory '%s'; run 'dmd init --data-dir %s' first",
					  data_dir, data_dir);
		return dm_err_errno(err, errno, "cannot open data directory '%s'", data_dir);
	}
	if (!S_ISDIR(st.st_mode))
		return dm_err_set(err, DM_EINVAL, "'%s' is not a directory", data_dir);
	rc = path_in(path, sizeof(path), data_dir, DM_DATA_CONFIG, err);
	if (rc)
		return rc;
	if (!exists(path))
		return dm_err_set(err, DM_ENOTFOUND,
				  "'%s' is not a dm data directory; run 'dmd init --data-dir %s' first",
				  data_dir, data_dir);
	return 0;
}

int dm_server_config_port(int *out, const char *data_dir, struct dm_err *err)
{
	struct config c;
	int rc = read_config(&c, data_dir, err);

	*out = rc ? 0 : c.port;
	return rc;
}

/* ---- dmd init ---- */

/* Removes what a failed init made; dir was empty or made by init, and so
 * was c's loop pool or the dots directory in c's pool_dir. */
static void undo_init(const char *dir, bool created, const struct config *c)
{
	static const char *const made[] = {DM_DATA_CONFIG,   DM_DATA_ADMIN_KEY, DM_DATA_KV,
					   DM_DATA_STORE,    DM_DATA_DOTS,      DM_DATA_POOL,
					   DM_DATA_POOL_IMAGE, DM_DATA_ETCD,   DM_DATA_ETCD_PID,
					   DM_DATA_ETCD_LOG};
	char path[PATH_MAX];
	struct dm_err err;

	if (c->pool_size && path_in(path, sizeof(path), dir, DM_DATA_POOL, NULL) == 0 &&
	    dm_pool_unmount(path, &err))
		dm_warn("%s", err.msg);
	if (c->pool_dir[0] && path_in(path, sizeof(path), c->pool_dir, DM_DATA_DOTS, NULL) == 0)
		dm_remove_tree(path, NULL);
	if (created) {
		dm_remove_tree(dir, NULL);
		return;
	}
	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++)
		if (path_in(path, sizeof(path), dir, made[i], NULL) == 0)
			dm_remove_tree(path, NULL);
}

/*
 * Where the engine keeps working copies: DIR/dots for the dir engine; for
 * btrfs the pool's dots/, with DIR/dots a symlink to it so that working
 * copies are where they always are.
 */
static int pool_dots(char *out, size_t size, const char *dir, const struct config *c,
		     struct dm_err *err)
{
	char mnt[PATH_MAX];
	int rc;

	if (c->pool_dir[0])
		return path_in(out, size, c->pool_dir, DM_DATA_DOTS, err);
	if (!c->pool_size)
		return path_in(out, size, dir, DM_DATA_DOTS, err);
	rc = path_in(mnt, sizeof(mnt), dir, DM_DATA_POOL, err);
	return rc ? rc : path_in(out, size, mnt, DM_DATA_DOTS, err);
}

/* Makes the dots directory: in DIR, or in the btrfs pool (made now when it
 * is a loop pool), linked from DIR/dots. */
static int init_dots(const char *dir, const struct config *c, struct dm_err *err)
{
	char path[PATH_MAX], dots[PATH_MAX], image[PATH_MAX], mnt[PATH_MAX];
	int rc;

	rc = path_in(path, sizeof(path), dir, DM_DATA_DOTS, err);
	if (!rc)
		rc = pool_dots(dots, sizeof(dots), dir, c, err);
	if (rc)
		return rc;
	if (strcmp(c->engine, "btrfs") != 0)
		return dm_mkdir_p(path, DATA_TRAVERSE_MODE, err);
	if (c->pool_size) {
		rc = path_in(image, sizeof(image), dir, DM_DATA_POOL_IMAGE, err);
		if (!rc)
			rc = path_in(mnt, sizeof(mnt), dir, DM_DATA_POOL, err);
		if (!rc)
			rc = dm_pool_create(image, mnt, c->pool_size, err);
		if (!rc)
			rc = chmod(mnt, DATA_TRAVERSE_MODE) < 0
				     ? dm_err_errno(err, errno, "cannot set the mode of '%s'", mnt)
				     : 0;
		if (rc)
			return dm_err_prefix(err, "cannot make a btrfs pool");
	}
	rc = dm_mkdir_p(dots, DATA_TRAVERSE_MODE, err);
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
static int check_pool(struct config *c, const struct dm_server_init_opts *o, struct dm_err *err)
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
	rc = path_in(dots, sizeof(dots), c->pool_dir, DM_DATA_DOTS, err);
	if (!rc && exists(dots))
		rc = dm_err_set(err, DM_EEXISTS,
				"'%s' exists already: another data directory uses this pool", dots);
	return rc;
}

/* Opens the KV c names: the embedded one in DIR/kv, or etcd, whose local
 * member (when c has one) is started first, into *member: the caller stops
 * it after it freed the KV, whether this failed or not. */
static int open_kv(struct dm_kv **out, struct dm_etcd_member **member, const char *dir,
		   const struct config *c, struct dm_err *err)
{
	char path[PATH_MAX];
	int rc;

	if (!strcmp(c->kv, "etcd")) {
		if (c->etcd_client_port) {
			rc = dm_etcd_member_start(member, dir, c->etcd_client_port,
						  c->etcd_peer_port, err);
			if (rc)
				return rc;
		}
		rc = dm_kv_open_etcd(out, c->etcd_endpoints, NULL, err);
		return rc ? dm_err_prefix(err, "cannot reach etcd") : 0;
	}
	rc = path_in(path, sizeof(path), dir, DM_DATA_KV, err);
	return rc ? rc : dm_kv_open_lmdb(out, path, err);
}

/*
 * The KV's part of init: a new cluster (its record and admin user), or,
 * joining, the check that the KV holds the token's cluster and that the
 * token's key is its admin key. *made_cluster tells a failed init what to
 * take back out of a shared KV.
 */
static int init_kv(char *key_out, struct dm_kv *kv, struct config *c,
		   const struct dm_cluster_token *join, bool *made_cluster, struct dm_err *err)
{
	struct dm_caller who;
	int rc;

	if (!join) {
		rc = dm_cluster_create(kv, c->cluster_id, err);
		if (rc)
			return rc;
		*made_cluster = true;
		return dm_auth_user_create(kv, key_out, DM_ADMIN_USER, true, err);
	}
	rc = dm_cluster_id(kv, c->cluster_id, err);
	if (rc == DM_ENOTFOUND)
		return dm_err_set(err, DM_ENOTFOUND,
				  "etcd at %s holds no dm cluster; make one with "
				  "'dm cluster init --kv etcd' first",
				  c->etcd_endpoints);
	if (!rc && strcmp(c->cluster_id, join->cluster_id) != 0)
		return dm_err_set(err, DM_EINVAL,
				  "etcd at %s holds cluster %s, not the token's %s",
				  c->etcd_endpoints, c->cluster_id, join->cluster_id);
	if (!rc)
		rc = dm_auth_verify(kv, &who, DM_ADMIN_USER, join->api_key, err);
	if (rc == DM_EPERM)
		return dm_err_set(err, DM_EPERM,
				  "the join token's key is not the cluster's admin key (reset since?); "
				  "print a new token with 'dm cluster join-token' on a node");
	if (!rc)
		memcpy(key_out, join->api_key, DM_API_KEY_LEN + 1);
	return rc;
}

static int init_contents(char *key_out, const char *dir, struct config *c,
			 const struct dm_cluster_token *join, struct dm_err *err)
{
	char path[PATH_MAX], line[DM_API_KEY_LEN + 2];
	struct dm_kv *kv = NULL;
	struct dm_etcd_member *member = NULL;
	struct dm_store *store = NULL;
	bool made_cluster = false;
	int rc;

	rc = path_in(path, sizeof(path), dir, DM_DATA_STORE, err);
	if (!rc)
		rc = dm_mkdir_p(path, DATA_PRIVATE_MODE, err);
	if (!rc)
		rc = dm_store_open(&store, path, NULL, err);
	dm_store_free(store);
	if (!rc)
		rc = init_dots(dir, c, err);
	if (!rc)
		rc = open_kv(&kv, &member, dir, c, err);
	if (!rc)
		rc = init_kv(key_out, kv, c, join, &made_cluster, err);
	if (!rc)
		rc = path_in(path, sizeof(path), dir, DM_DATA_ADMIN_KEY, err);
	if (!rc) {
		snprintf(line, sizeof(line), "%s\n", key_out);
		rc = dm_write_file_atomic(path, line, strlen(line), 0400, err);
	}
	if (!rc)
		rc = write_config(dir, c, err);
	if (rc && made_cluster && !strcmp(c->kv, "etcd")) {
		/* a shared KV outlives the directory: take back what we wrote */
		dm_kv_delete(kv, NULL, DM_KV_USERS DM_ADMIN_USER, NULL);
		dm_kv_delete(kv, NULL, DM_KV_CLUSTER, NULL);
	}
	dm_kv_free(kv);
	/* a local member runs only while dmd does: dmd start starts it again */
	dm_etcd_member_stop(member);
	return rc;
}

/* The KV and cluster options of init into c. */
static int check_cluster_opts(struct config *c, const struct dm_server_init_opts *o,
			      struct dm_err *err)
{
	const char *kv = o->kv ? o->kv : o->join ? "etcd" : "lmdb";
	const char *endpoints = o->join ? o->join->endpoints : o->etcd_endpoints;

	bool local = !strcmp(kv, "etcd") && (!endpoints || !*endpoints);
	char url[64];
	int rc;

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
		dm_etcd_member_url(url, sizeof(url), c->etcd_client_port);
		endpoints = url;
	}
	if (strcmp(kv, "etcd") && endpoints && *endpoints)
		return dm_err_set(err, DM_EINVAL, "--etcd-endpoints is for --kv etcd");
	if (endpoints && strlen(endpoints) >= sizeof(c->etcd_endpoints))
		return dm_err_set(err, DM_ETOOBIG, "--etcd-endpoints is too long");
	if (o->advertise && (strncmp(o->advertise, "http://", 7) != 0 || !o->advertise[7] ||
			     strlen(o->advertise) >= sizeof(c->advertise)))
		return dm_err_set(err, DM_EINVAL,
				  "invalid --advertise '%s': give the URL other nodes reach this "
				  "one at, such as http://10.0.0.5:32607",
				  o->advertise);
	snprintf(c->kv, sizeof(c->kv), "%s", kv);
	snprintf(c->etcd_endpoints, sizeof(c->etcd_endpoints), "%s", endpoints ? endpoints : "");
	snprintf(c->advertise, sizeof(c->advertise), "%s", o->advertise ? o->advertise : "");
	return 0;
}

int dm_server_init_data_dir(char *key_out, const char *data_dir, int port, struct dm_err *err)
{
	struct dm_server_init_opts o;

	memset(&o, 0, sizeof(o));
	o.port = port;
	return dm_server_init_data_dir_opts(key_out, data_dir, &o, err);
}

int dm_server_init_data_dir_opts(char *key_out, const char *data_dir,
				 const struct dm_server_init_opts *o, struct dm_err *err)
{
	char path[PATH_MAX];
	struct config c;
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
	if (rc)
		return rc;
	if (stat(data_dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return dm_err_set(err, DM_EEXISTS, "'%s' exists and is not a directory",
					  data_dir);
		rc = path_in(path, sizeof(path), data_dir, DM_DATA_CONFIG, err);
		if (rc)
			return rc;
		if (exists(path))
			return dm_err_set(err, DM_EEXISTS, "'%s' is already initialised", data_dir);
		rc = dir_is_empty(data_dir, err);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return dm_err_set(err, DM_EEXISTS,
					  "'%s' is not empty and not a dm data directory", data_dir);
	} else if (errno == ENOENT) {
		rc = dm_mkdir_p(data_dir, DATA_TRAVERSE_MODE, err);
		if (rc)
			return rc;
		created = true;
	} else {
		return dm_err_errno(err, errno, "cannot open '%s'", data_dir);
	}
	rc = dm_id_uuid4(c.node_id, err);
	if (!rc)
		rc = init_contents(key_out, data_dir, &c, o->join, err);
	if (rc) {
		undo_init(data_dir, created, &c);
		memset(key_out, 0, DM_API_KEY_LEN + 1);
		return rc;
	}
	dm_info("initialised data directory '%s' (node %s, port %d, engine %s, kv %s, cluster %s)",
		data_dir, c.node_id, c.port, c.engine, c.kv, c.cluster_id);
	return 0;
}

/* ---- a running server ---- */

static int cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 2 ? 2 : n > 64 ? 64 : (int)n;
}

/* The Docker Engine API, when its socket is there at start; dm works
 * without one (containers are then known only from their mounts). */
static int open_docker(struct dm_server *srv, const char *path, struct dm_err *err)
{
	struct stat st;

	if (!path || !*path)
		return 0;
	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		dm_info("no Docker API at '%s': containers are known only from their mounts", path);
		return 0;
	}
	dm_info("Docker API at '%s'", path);
	return dm_docker_new(&srv->docker, path, err);
}

/* The Docker volume plugin, once the registry runs. */
static int start_plugin(struct dm_server *srv, const struct dm_server_opts *opts,
			struct dm_err *err)
{
	struct dm_plugin_opts po;
	int rc;

	if (!opts->plugin_socket || !*opts->plugin_socket)
		return 0;
	memset(&po, 0, sizeof(po));
	po.registry = srv->registry;
	po.kv = srv->kv;
	po.docker = srv->docker;
	po.cluster_node = srv->kv_root[0] ? srv : NULL;
	rc = dm_plugin_new(&srv->plugin, &po, err);
	if (!rc)
		rc = dm_plugin_listen(srv->plugin, srv, opts->plugin_socket, err);
	if (!rc)
		return 0;
	dm_plugin_free(srv->plugin, 0);
	srv->plugin = NULL;
	if (opts->plugin_optional) {
		dm_warn("no docker volume plugin: %s", err->msg);
		return 0;
	}
	return dm_err_prefix(err, "cannot start the docker volume plugin");
}

/* Mounts c's loop pool (unless it is mounted already); unmounted again by
 * dm_server_free. A pool directory must still be a btrfs mount. */
static int mount_pool(struct dm_server *srv, const struct config *c, struct dm_err *err)
{
	char image[PATH_MAX], mnt[PATH_MAX];
	int rc;

	if (c->pool_dir[0])
		return dm_pool_check_dir(c->pool_dir, err);
	if (!c->pool_size)
		return 0;
	rc = path_in(image, sizeof(image), srv->data_dir, DM_DATA_POOL_IMAGE, err);
	if (!rc)
		rc = path_in(mnt, sizeof(mnt), srv->data_dir, DM_DATA_POOL, err);
	if (!rc)
		rc = dm_pool_mount(image, mnt, err);
	if (rc)
		return dm_err_prefix(err, "cannot mount the btrfs pool");
	srv->pool_mount = dm_xstrdup(mnt);
	return 0;
}

/* The admin's API key from DIR/admin-api-key into out (DM_API_KEY_LEN + 1). */
static int read_admin_key(char *out, const char *data_dir, struct dm_err *err)
{
	char path[PATH_MAX];
	struct dm_buf b;
	int rc = path_in(path, sizeof(path), data_dir, DM_DATA_ADMIN_KEY, err);

	if (rc)
		return rc;
	dm_buf_init(&b, DM_API_KEY_LEN + 2);
	rc = dm_read_file(&b, path, DM_API_KEY_LEN + 2, err);
	while (!rc && b.len && b.data[b.len - 1] == '\n')
		b.data[--b.len] = '\0';
	if (!rc && b.len != DM_API_KEY_LEN)
		rc = dm_err_set(err, DM_ECORRUPT, "'%s' holds no API key", path);
	if (!rc)
		memcpy(out, b.data, DM_API_KEY_LEN + 1);
	if (b.data)
		explicit_bzero(b.data, b.len);
	dm_buf_release(&b);
	return rc;
}

/*
 * Takes this node's place in the cluster: the KV must hold the cluster the
 * data directory was made for (a data directory made before clusters had
 * ids gets one now), then the node's record and liveness lease.
 */
static int join_cluster(struct dm_server *srv, struct config *c, struct dm_err *err)
{
	struct dm_cluster_self self;
	int rc = dm_cluster_id(srv->kv, srv->cluster_id, err);

	if (rc == DM_ENOTFOUND && !c->cluster_id[0] && !strcmp(c->kv, "lmdb"))
		rc = dm_cluster_create(srv->kv, srv->cluster_id, err);
	if (rc)
		return rc;
	if (c->cluster_id[0] && strcmp(c->cluster_id, srv->cluster_id) != 0)
		return dm_err_set(err, DM_ECONFLICT,
				  "the KV holds cluster %s, but this data directory belongs to "
				  "cluster %s; check --etcd-endpoints",
				  srv->cluster_id, c->cluster_id);
	memset(&self, 0, sizeof(self));
	self.node_id = srv->node_id;
	self.address = srv->advertise;
	self.engine = srv->engine_name;
	self.version = DM_VERSION;
	return dm_cluster_start(&srv->cluster, srv->kv, &self, err);
}

static const char *listen_host(const char *advertise)
{
	char host[DM_CLUSTER_ADDRESS_MAX];
	int port;

	if (dm_cluster_address_parse(host, sizeof(host), &port, advertise) ||
	    !strcmp(host, "127.0.0.1") || !strcmp(host, "localhost") || !strcmp(host, "[::1]"))
		return DM_SERVER_HOST;
	return "0.0.0.0";
}

int dm_server_open(struct dm_server **out, const struct dm_server_opts *opts, struct dm_err *err)
{
	struct dm_server *srv;
	struct dm_sched_opts so;
	struct dm_http_opts ho;
	struct config c;
	char path[PATH_MAX], sock[PATH_MAX];
	int rc;

	*out = NULL;
	rc = dm_server_check_data_dir(opts->data_dir, err);
	if (rc)
		return rc;
	srv = dm_xcalloc(1, sizeof(*srv));
	srv->data_dir = realpath(opts->data_dir, NULL);
	if (!srv->data_dir) {
		rc = dm_err_errno(err, errno, "cannot resolve '%s'", opts->data_dir);
		goto done;
	}
	rc = read_config(&c, srv->data_dir, err);
	if (rc)
		goto done;
	snprintf(srv->node_id, sizeof(srv->node_id), "%s", c.node_id);
	snprintf(srv->engine_name, sizeof(srv->engine_name), "%s", c.engine);
	srv->port = opts->port ? opts->port : c.port;
	snprintf(srv->address, sizeof(srv->address), "%s:%d", DM_SERVER_HOST, srv->port);
	srv->shutdown_grace_ms = opts->shutdown_grace_ms > 0 ? opts->shutdown_grace_ms : 10000;

	snprintf(srv->kv_name, sizeof(srv->kv_name), "%s", c.kv);
	if (!strcmp(c.kv, "etcd")) {
		snprintf(srv->kv_root, sizeof(srv->kv_root), DM_KV_NODE_ROOT "%s/", srv->node_id);
		rc = read_admin_key(srv->admin_key, srv->data_dir, err);
		if (rc)
			goto done;
	}
	snprintf(srv->etcd_endpoints, sizeof(srv->etcd_endpoints), "%s", c.etcd_endpoints);
	if (c.advertise[0])
		snprintf(srv->advertise, sizeof(srv->advertise), "%s", c.advertise);
	else
		snprintf(srv->advertise, sizeof(srv->advertise), "http://%s", srv->address);
	rc = open_kv(&srv->kv, &srv->etcd_member, srv->data_dir, &c, err);
	if (!rc)
		rc = join_cluster(srv, &c, err);
	if (!rc)
		rc = path_in(path, sizeof(path), srv->data_dir, DM_DATA_STORE, err);
	if (!rc)
		rc = dm_store_open(&srv->store, path, NULL, err);
	if (!rc)
		rc = mount_pool(srv, &c, err);
	if (!rc)
		rc = pool_dots(path, sizeof(path), srv->data_dir, &c, err);
	if (!rc)
		rc = dm_mkdir_p(path, DATA_TRAVERSE_MODE, err);
	if (!rc)
		rc = dm_engine_open(&srv->engine, srv->engine_name, path, srv->store, err);
	if (rc)
		goto done;
	memset(&so, 0, sizeof(so));
	so.threads = opts->actor_threads > 0 ? opts->actor_threads : 2;
	so.job_threads = opts->job_threads > 0 ? opts->job_threads : cpus();
	rc = dm_sched_new(&srv->sched, &so, err);
	if (rc)
		goto done;
	rc = open_docker(srv, opts->docker_socket, err);
	if (rc)
		goto done;

	memset(&ho, 0, sizeof(ho));
	/* a node other machines reach (advertised on a non-loopback address)
	 * listens on every interface; otherwise on loopback only */
	ho.host = listen_host(srv->advertise);
	ho.port = srv->port;
	rc = path_in(sock, sizeof(sock), srv->data_dir, DM_DATA_SOCKET, err);
	if (rc)
		goto done;
	ho.socket_path = sock;
	rc = dm_http_bind(&srv->http, srv, &ho, err);
	if (rc)
		goto done;
	rc = dm_registry_start(&srv->registry, srv, err);
	if (rc) {
		dm_err_prefix(err, "cannot start the dots");
		goto done;
	}
	rc = dm_transfers_start(&srv->transfers, srv, err);
	if (rc)
		goto done;
	if (srv->kv_root[0]) {
		rc = dm_replicator_start(&srv->replicator, srv, err);
		if (rc)
			goto done;
	}
	rc = start_plugin(srv, opts, err);
	if (rc)
		goto done;
	rc = dm_http_start(srv->http, err);
	if (rc)
		goto done;
	dm_info("dmd %s serving '%s' on %s and %s (node %s, engine %s)", DM_VERSION,
		srv->data_dir, srv->address, sock, srv->node_id, srv->engine_name);
done:
	if (rc)
		dm_server_free(srv);
	else
		*out = srv;
	return rc;
}

void dm_server_free(struct dm_server *srv)
{
	if (!srv)
		return;
	/* other nodes see this one down at once, not when its lease runs out */
	dm_cluster_free(srv->cluster);
	srv->cluster = NULL;
	dm_plugin_quiesce(srv->plugin);
	if (srv->http) {
		dm_http_quiesce(srv->http);
		if (dm_http_wait_idle(srv->http, srv->shutdown_grace_ms) == DM_ETIMEOUT) {
			dm_warn("requests still running after %d ms; canceling them",
				srv->shutdown_grace_ms);
			/* Answers every pending request `canceled`, so their
			 * handlers return; the registry is still there for them. */
			dm_sched_stop(srv->sched);
		}
		dm_http_free(srv->http);
		srv->http = NULL;
	}
	dm_plugin_free(srv->plugin, srv->shutdown_grace_ms);
	srv->plugin = NULL;
	/* the replicator waits for transfers: it stops first */
	dm_replicator_free(srv->replicator);
	srv->replicator = NULL;
	/* transfers may wait for dots: they stop before the registry */
	dm_transfers_free(srv->transfers);
	srv->transfers = NULL;
	if (srv->registry) {
		dm_registry_free(srv->registry);
		srv->registry = NULL;
	}
	dm_sched_free(srv->sched);
	dm_docker_free(srv->docker);
	dm_engine_free(srv->engine);
	dm_store_free(srv->store);
	dm_kv_free(srv->kv);
	dm_etcd_member_stop(srv->etcd_member);
	if (srv->pool_mount) {
		struct dm_err err;

		if (dm_pool_unmount(srv->pool_mount, &err))
			dm_warn("%s", err.msg);
		free(srv->pool_mount);
	}
	explicit_bzero(srv->admin_key, sizeof(srv->admin_key));
	free(srv->data_dir);
	free(srv);
}

int dm_server_release_pool(const char *data_dir, struct dm_err *err)
{
	char mnt[PATH_MAX];
	struct config c;
	int rc = read_config(&c, data_dir, err);

	if (rc || !c.pool_size)
		return rc;
	rc = path_in(mnt, sizeof(mnt), data_dir, DM_DATA_POOL, err);
	return rc ? rc : dm_pool_unmount(mnt, err);
}
