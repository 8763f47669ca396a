/*
 * server.c - the opening and orderly shutdown of everything a running dmd
 * holds (see server.h); the data directory itself is datadir.c's.
 *
 * Invariants: shutdown first ends the node's liveness lease (other nodes
 * of a cluster see it down at once), then releases in the reverse order of
 * opening: HTTP and the Docker volume plugin (no new request reaches the
 * registry), the replicator and transfers, registry (stops the dots, their
 * actors and jobs), scheduler (it waits for a running garbage
 * collection), Docker API client, engine, store, KV, and last the local
 * etcd member when the data directory has one (it was started first,
 * before the KV was opened).
 */
#include "server/server.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "actor/actor.h"
#include "engine/engine.h"
#include "engine/pool.h"
#include "kv/kv.h"
#include "server/api/api.h"
#include "server/api/csi/csi.h"
#include "server/api/http.h"
#include "server/api/plugin.h"
#include "server/api/sessions.h"
#include "server/api/ui/session.h"
#include "server/certs.h"
#include "server/cluster/cluster.h"
#include "server/cluster/etcd_member.h"
#include "server/cluster/nodecred.h"
#include "server/cluster/replicate.h"
#include "server/dots/docker.h"
#include "server/dots/freezer.h"
#include "server/dots/wcwatch.h"
#include "server/dots/registry.h"
#include "server/space/space.h"
#include "server/transfers/transfer.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/tls.h"

#include "util/banned.h"

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

/* Working copies hold files that anyone who may push to a dot chose: on a
 * file system mounted without nosuid and nodev, a setuid file or a device
 * node there would serve whoever runs it. Said once, at start. */
/* Says once, in the log and in out (for dm dot show), when the working
 * copies are on a file system without nosuid,nodev; out stays "" else. */
static void warn_unless_nosuid(char *out, size_t size, const char *path)
{
	struct statvfs vfs;

	out[0] = '\0';
	if (statvfs(path, &vfs) < 0)
		return;
	if (!(vfs.f_flag & ST_NOSUID) || !(vfs.f_flag & ST_NODEV)) {
		snprintf(out, size,
			 "the working copies in '%s' are on a file system mounted without%s%s: "
			 "mount the data directory's file system nosuid,nodev (README, "
			 "\"Security\")",
			 path, vfs.f_flag & ST_NOSUID ? "" : " nosuid",
			 vfs.f_flag & ST_NODEV ? "" : " nodev");
		dm_warn("%s", out);
	}
}

/* The volume driver's name the container engine knows the plugin by: its
 * socket's name without ".sock" (/run/docker/plugins/dm.sock: "dm"). */
static void volume_driver_of(char *out, size_t size, const char *socket)
{
	const char *base = strrchr(socket, '/');
	size_t len;

	base = base ? base + 1 : socket;
	len = strlen(base);
	if (len > 5 && !strcmp(base + len - 5, ".sock"))
		len -= 5;
	snprintf(out, size, "%.*s", (int)len, base);
}

/* What freezes containers for a commit; first, it thaws what a dmd that
 * died during a freeze left frozen. */
static int open_freezer(struct dm_server *srv, struct dm_err *err)
{
	char dir[PATH_MAX];
	struct dm_err rerr;
	int rc;

	if (!srv->docker)
		return 0;
	rc = dm_datadir_path(dir, sizeof(dir), srv->data_dir, DM_DATA_FREEZES, err);
	if (!rc)
		rc = dm_freezer_open(&srv->freezer, srv->docker, dir, err);
	if (!rc && dm_freezer_recover(srv->freezer, &rerr))
		dm_warn("cannot thaw every container a freeze left frozen: %s", rerr.msg);
	return rc;
}

/* DIR/uploads, empty: what a PUT left when dmd stopped is not wanted. */
static int open_uploads(struct dm_server *srv, struct dm_err *err)
{
	int rc = dm_datadir_path(srv->uploads, sizeof(srv->uploads), srv->data_dir,
				 DM_DATA_UPLOADS, err);

	if (!rc)
		rc = dm_remove_tree(srv->uploads, err);
	if (!rc && mkdir(srv->uploads, DM_DATADIR_PRIVATE_MODE) < 0)
		rc = dm_err_errno(err, errno, "cannot make '%s'", srv->uploads);
	return rc;
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
	po.cluster_node = srv->kv_root[0] ? &srv->cluster_env : NULL;
	rc = dm_plugin_new(&srv->plugin, &po, err);
	if (!rc)
		rc = dm_plugin_listen(srv->plugin, &srv->api_env, opts->plugin_socket, err);
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

/* The CSI driver, when asked for (--csi-socket); Probe says ready once
 * dm_server_open is done. dots_dir: where the working copies are. */
static int start_csi(struct dm_server *srv, const struct dm_server_opts *opts,
		     const char *dots_dir, struct dm_err *err)
{
	if (!opts->csi_socket || !*opts->csi_socket)
		return 0;
	return dm_csi_start(&srv->csi, &srv->api_env, opts->csi_socket, dots_dir, err);
}

/* Mounts c's loop pool (unless it is mounted already); unmounted again by
 * dm_server_free. A pool directory must still be a btrfs mount. */
static int mount_pool(struct dm_server *srv, const struct dm_datadir_config *c, struct dm_err *err)
{
	char image[PATH_MAX], mnt[PATH_MAX];
	int rc;

	if (c->pool_dir[0])
		return dm_pool_check_dir(c->pool_dir, err);
	if (!c->pool_size)
		return 0;
	rc = dm_datadir_path(image, sizeof(image), srv->data_dir, DM_DATA_POOL_IMAGE, err);
	if (!rc)
		rc = dm_datadir_path(mnt, sizeof(mnt), srv->data_dir, DM_DATA_POOL, err);
	if (!rc)
		rc = dm_pool_mount(image, mnt, err);
	if (rc)
		return dm_err_prefix(err, "cannot mount the btrfs pool");
	srv->pool_mount = dm_xstrdup(mnt);
	return 0;
}

/*
 * Takes this node's place in the cluster: the KV must hold the cluster the
 * data directory was made for (a data directory made before clusters had
 * ids gets one now), then the node's record and liveness lease.
 */
/*
 * For tests of a failed sync (t0737): with $DM_TEST_FAIL_SYNC naming a
 * file, every sync of a pack fails with EIO while that file exists, as a
 * disk that lost the data would. Never set outside tests.
 */
static char fail_sync_path[512];

static int fail_sync(int fd)
{
	if (fail_sync_path[0] && access(fail_sync_path, F_OK) == 0) {
		errno = EIO;
		return -1;
	}
	return fdatasync(fd);
}

static void fail_sync_setup(struct dm_store_opts *o)
{
	const char *path = getenv("DM_TEST_FAIL_SYNC");

	if (!path || !path[0])
		return;
	snprintf(fail_sync_path, sizeof(fail_sync_path), "%s", path);
	o->sync_fn = fail_sync;
	dm_warn("DM_TEST_FAIL_SYNC is set: syncs fail while '%s' exists", fail_sync_path);
}

/*
 * Nodes of a cluster on etcd with dm's own CA call each other with their
 * certificates, which name them (cluster/nodecred.h). A data directory
 * made before that has a certificate that does not: refused, saying how
 * to renew it.
 */
static int check_node_cert(struct dm_server *srv, const struct dm_datadir_config *c,
			   struct dm_err *err)
{
	srv->node_certs = !strcmp(c->kv, "etcd") && !strcmp(c->tls, DM_TLS_SELF);
	if (!srv->node_certs ||
	    !dm_tls_names_node((const char *)srv->certs.chain.data, srv->node_id))
		return 0;
	return dm_err_set(err, DM_EUNSUPPORTED,
			  "this node's certificate (%s/%s) does not name node %s: an older dm "
			  "made it, when nodes called each other with the admin key; with "
			  "dmd stopped, run 'dmd renew-cert --data-dir %s' (which needs the "
			  "CA's key, %s, as older nodes all have), then start it",
			  srv->data_dir, DM_DATA_TLS_CERT, srv->node_id, srv->data_dir,
			  DM_DATA_CA_KEY);
}

/*
 * For tests of a crash in the middle of an in-place reset or receive
 * (t0382): with $DM_TEST_STALL_IN_PLACE naming a file, every in-place
 * change of a working copy after its first waits while that file exists
 * (dm_engine_set_test_stall). Never set outside tests.
 */
static void stall_setup(void)
{
	const char *path = getenv("DM_TEST_STALL_IN_PLACE");

	if (!path || !path[0])
		return;
	dm_engine_set_test_stall(path);
	dm_warn("DM_TEST_STALL_IN_PLACE is set: in-place writes stall while '%s' exists", path);
}

static int join_cluster(struct dm_server *srv, struct dm_datadir_config *c, struct dm_err *err)
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
	rc = dm_nodecred_check_not_removed(srv->kv, srv->node_id, err);
	if (rc)
		return rc;
	memset(&self, 0, sizeof(self));
	self.node_id = srv->node_id;
	self.address = srv->advertise;
	self.engine = srv->engine_name;
	self.version = DM_VERSION;
	return dm_cluster_start(&srv->cluster, srv->kv, &self, err);
}

/* The dots: their registry and actors, with what a dot may touch. */
static int start_dots(struct dm_server *srv, struct dm_err *err)
{
	struct dm_dot_env env;

	memset(&env, 0, sizeof(env));
	env.kv = srv->kv;
	env.store = srv->store;
	env.engine = srv->engine;
	env.sched = srv->sched;
	env.server = srv->address;
	env.docker = srv->docker;
	env.freezer = srv->freezer;
	env.volume_driver = srv->volume_driver[0] ? srv->volume_driver : NULL;
	env.kv_root = srv->kv_root[0] ? srv->kv_root : NULL;
	env.node_id = srv->node_id;
	env.garbage = dm_space_note_garbage;
	env.garbage_ctx = srv->space;
	{
		struct dm_err werr;

		if (dm_wcwatch_new(&srv->wcwatch, &werr))
			dm_warn("%s: dm list measures dirty bytes at most every %d ms instead",
				werr.msg, DM_DOT_UNWATCHED_MS);
	}
	env.wcwatch = srv->wcwatch;
	return dm_registry_open(&srv->registry, &env, err);
}

/* The push, pull and clone this node runs, once the dots run. */
static int start_transfers(struct dm_server *srv, struct dm_err *err)
{
	struct dm_transfers_env env;

	memset(&env, 0, sizeof(env));
	env.store = srv->store;
	env.registry = srv->registry;
	return dm_transfers_start(&srv->transfers, &env, err);
}

/* What the cluster's parts and the API may touch, once all of it is open;
 * the HTTP server bound before holds &srv->api_env but serves nothing
 * until dm_http_start. */
static void set_envs(struct dm_server *srv)
{
	struct dm_cluster_env *c = &srv->cluster_env;
	struct dm_api_env *a = &srv->api_env;

	c->kv = srv->kv;
	c->store = srv->store;
	c->registry = srv->registry;
	c->transfers = srv->transfers;
	c->node_id = srv->node_id;
	c->kv_root = srv->kv_root;
	c->ca = srv->tls && srv->certs.ca.len ? (const char *)srv->certs.ca.data : NULL;
	if (srv->node_certs) {
		c->node_cert = (const char *)srv->certs.chain.data;
		c->node_key = (const char *)srv->certs.key.data;
	}
	a->kv = srv->kv;
	a->store = srv->store;
	a->registry = srv->registry;
	a->transfers = srv->transfers;
	a->sessions = srv->sessions;
	a->ui_sessions = srv->ui_sessions;
	a->space = srv->space;
	a->mount_warning = srv->mount_warning;
	a->data_dir = srv->data_dir;
	a->metrics_public = srv->metrics_public;
	a->cluster = c;
	a->node_id = srv->node_id;
	a->cluster_id = srv->cluster_id;
	a->kv_root = srv->kv_root;
	a->kv_name = srv->kv_name;
	a->etcd_endpoints = srv->etcd_endpoints;
	a->etcd_access = &srv->etcd_access;
	a->ca = c->ca;
	a->ca_key = srv->tls && srv->certs.ca_key.len ? (const char *)srv->certs.ca_key.data : NULL;
	a->address = srv->address;
	a->uploads = srv->uploads;
	a->advertise = srv->advertise;
	a->ca_key_path = srv->ca_key_path;
}

static const char *listen_host(const char *advertise)
{
	char host[DM_CLUSTER_ADDRESS_MAX];
	int port;

	if (dm_cluster_address_parse(host, sizeof(host), &port, advertise) ||
	    !strcmp(host, "127.0.0.1") || !strcmp(host, "localhost") || !strcmp(host, "[::1]"))
		return DM_HTTP_HOST;
	return "0.0.0.0";
}

int dm_server_open(struct dm_server **out, const struct dm_server_opts *opts, struct dm_err *err)
{
	struct dm_server *srv;
	struct dm_sched_opts so;
	struct dm_http_opts ho;
	struct dm_datadir_config c;
	char path[PATH_MAX], sock[PATH_MAX];
	int rc;

	*out = NULL;
	rc = dm_datadir_check(opts->data_dir, err);
	if (rc)
		return rc;
	srv = dm_xcalloc(1, sizeof(*srv));
	srv->data_dir = realpath(opts->data_dir, NULL);
	if (!srv->data_dir) {
		rc = dm_err_errno(err, errno, "cannot resolve '%s'", opts->data_dir);
		goto done;
	}
	rc = dm_datadir_read_config(&c, srv->data_dir, err);
	if (rc)
		goto done;
	snprintf(srv->node_id, sizeof(srv->node_id), "%s", c.node_id);
	snprintf(srv->engine_name, sizeof(srv->engine_name), "%s", c.engine);
	srv->port = opts->port ? opts->port : c.port;
	snprintf(srv->address, sizeof(srv->address), "%s:%d", DM_HTTP_HOST, srv->port);
	srv->shutdown_grace_ms = opts->shutdown_grace_ms > 0 ? opts->shutdown_grace_ms : 10000;
	srv->metrics_public = opts->metrics_public;

	snprintf(srv->kv_name, sizeof(srv->kv_name), "%s", c.kv);
	if (!strcmp(c.kv, "etcd"))
		snprintf(srv->kv_root, sizeof(srv->kv_root), DM_KV_NODE_ROOT "%s/", srv->node_id);
	snprintf(srv->etcd_endpoints, sizeof(srv->etcd_endpoints), "%s", c.etcd_endpoints);
	rc = dm_certs_load(&srv->certs, srv->data_dir, &c, err);
	if (rc)
		goto done;
	srv->tls = strcmp(c.tls, DM_TLS_OFF) != 0;
	rc = check_node_cert(srv, &c, err);
	if (rc)
		goto done;
	if (c.advertise[0])
		snprintf(srv->advertise, sizeof(srv->advertise), "%s", c.advertise);
	else
		snprintf(srv->advertise, sizeof(srv->advertise), "%s://%s",
			 srv->tls ? "https" : "http", srv->address);
	rc = dm_datadir_open_kv(&srv->kv, &srv->etcd_member, &srv->etcd_access, srv->data_dir, &c,
				err);
	if (!rc)
		rc = join_cluster(srv, &c, err);
	if (!rc)
		rc = dm_certs_rotation(&srv->certs, srv->data_dir, &c, srv->kv, err);
	if (!rc)
		rc = dm_datadir_path(srv->ca_key_path, sizeof(srv->ca_key_path), srv->data_dir,
				     DM_DATA_CA_KEY, err);
	if (!rc)
		rc = dm_datadir_path(path, sizeof(path), srv->data_dir, DM_DATA_STORE, err);
	if (!rc) {
		struct dm_store_opts sopts;

		dm_store_opts_default(&sopts);
		fail_sync_setup(&sopts);
		rc = dm_store_open(&srv->store, path, &sopts, err);
	}
	if (!rc)
		rc = mount_pool(srv, &c, err);
	if (!rc)
		rc = dm_datadir_dots_path(path, sizeof(path), srv->data_dir, &c, err);
	if (!rc)
		rc = dm_mkdir_p(path, DM_DATADIR_TRAVERSE_MODE, err);
	if (!rc) {
		stall_setup();
		rc = dm_engine_open(&srv->engine, srv->engine_name, path, srv->store, err);
	}
	if (rc)
		goto done;
	warn_unless_nosuid(srv->mount_warning, sizeof(srv->mount_warning), path);
	memset(&so, 0, sizeof(so));
	so.threads = opts->actor_threads > 0 ? opts->actor_threads : 2;
	so.job_threads = opts->job_threads > 0 ? opts->job_threads : cpus();
	rc = dm_sched_new(&srv->sched, &so, err);
	if (rc)
		goto done;
	rc = dm_sessions_open(&srv->sessions, srv->sched, err);
	if (!rc)
		rc = dm_ui_sessions_open(&srv->ui_sessions, srv->sched, opts->ui_idle_s, err);
	if (!rc) {
		struct dm_space_env se = {srv->store, srv->sched, DM_SPACE_AUTO_BYTES_DEFAULT};

		if (opts->gc_auto_bytes == UINT64_MAX)
			se.auto_bytes = 0;
		else if (opts->gc_auto_bytes)
			se.auto_bytes = opts->gc_auto_bytes;
		rc = dm_space_open(&srv->space, &se, err);
	}
	if (!rc)
		rc = open_docker(srv, opts->docker_socket, err);
	if (!rc)
		rc = open_freezer(srv, err);
	if (!rc)
		rc = open_uploads(srv, err);
	if (!rc && opts->plugin_socket && *opts->plugin_socket)
		volume_driver_of(srv->volume_driver, sizeof(srv->volume_driver),
				 opts->plugin_socket);
	if (rc)
		goto done;

	memset(&ho, 0, sizeof(ho));
	/* a node other machines reach (advertised on a non-loopback address)
	 * listens on every interface; otherwise on loopback only */
	ho.host = listen_host(srv->advertise);
	ho.port = srv->port;
	rc = dm_datadir_path(sock, sizeof(sock), srv->data_dir, DM_DATA_SOCKET, err);
	if (rc)
		goto done;
	ho.socket_path = sock;
	if (srv->tls) {
		ho.tls_cert_pem = (const char *)srv->certs.chain.data;
		ho.tls_key_pem = (const char *)srv->certs.key.data;
		if (srv->node_certs)
			ho.tls_trust_pem = (const char *)srv->certs.ca.data;
	}
	rc = dm_http_bind(&srv->http, &srv->api_env, &ho, err);
	if (rc)
		goto done;
	rc = start_dots(srv, err);
	if (rc) {
		dm_err_prefix(err, "cannot start the dots");
		goto done;
	}
	rc = start_transfers(srv, err);
	if (rc)
		goto done;
	set_envs(srv);
	if (srv->kv_root[0]) {
		rc = dm_replicator_start(&srv->replicator, &srv->cluster_env, err);
		if (rc)
			goto done;
	}
	rc = start_plugin(srv, opts, err);
	if (!rc)
		rc = start_csi(srv, opts, path, err);
	if (rc)
		goto done;
	rc = dm_http_start(srv->http, err);
	if (rc)
		goto done;
	dm_csi_set_ready(srv->csi, true);
	dm_info("dmd %s serving '%s' on %s and %s (node %s, engine %s)", DM_VERSION, srv->data_dir,
		srv->address, sock, srv->node_id, srv->engine_name);
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
	dm_csi_quiesce(srv->csi);
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
	dm_csi_free(srv->csi, srv->shutdown_grace_ms);
	srv->csi = NULL;
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
	dm_wcwatch_unref(srv->wcwatch);
	dm_space_free(srv->space);
	dm_sessions_free(srv->sessions);
	dm_ui_sessions_free(srv->ui_sessions);
	dm_freezer_free(srv->freezer);
	dm_docker_free(srv->docker);
	dm_engine_free(srv->engine);
	dm_store_free(srv->store);
	dm_kv_free(srv->kv);
	dm_etcd_member_stop(srv->etcd_member);
	dm_etcd_access_release(&srv->etcd_access);
	if (srv->pool_mount) {
		struct dm_err err;

		if (dm_pool_unmount(srv->pool_mount, &err))
			dm_warn("%s", err.msg);
		free(srv->pool_mount);
	}
	dm_certs_release(&srv->certs);
	free(srv->data_dir);
	free(srv);
}
