/*
 * server.h - one running dmd: the process that opens every subsystem from
 * its data directory (datadir.h) in order, hands each its narrow
 * environment (dots/, transfers/, cluster/, api/), and shuts them down in
 * the reverse order.
 *
 * Lifetime: dm_server_open opens and starts everything and returns a
 * serving server; dm_server_free shuts it down cleanly in reverse order.
 * Between the two, every field below is set and constant, so request
 * handlers on any thread may read them without locking. Only the process
 * files (server.c, main.c) see this struct; a subsystem sees its env.
 */
#ifndef DM_SERVER_SERVER_H
#define DM_SERVER_SERVER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/api/api.h"
#include "server/cluster/cluster.h"
#include "server/certs.h"
#include "server/datadir.h"
#include "util/err.h"
#include "util/id.h"

struct dm_cluster;
struct dm_cluster_token;
struct dm_docker;
struct dm_freezer;
struct dm_engine;
struct dm_etcd_member;
struct dm_http;
struct dm_kv;
struct dm_plugin;
struct dm_csi;
struct dm_registry;
struct dm_replicator;
struct dm_sessions;
struct dm_ui_sessions;
struct dm_transfers;
struct dm_sched;
struct dm_store;

struct dm_server_opts {
	const char *data_dir;      /* an initialised data directory */
	int port;                  /* 0: the port in config.json */
	int actor_threads;         /* 0: 2 */
	int job_threads;           /* 0: the number of CPUs, at least 2 */
	int shutdown_grace_ms;     /* how long shutdown lets requests finish (0: 10 s) */
	const char *plugin_socket; /* the Docker volume plugin's socket; NULL: no plugin */
	bool plugin_optional;      /* a plugin socket that cannot be served only warns */
	const char *docker_socket; /* the Docker Engine API; NULL, or absent at start: none */
	const char *csi_socket;    /* the CSI driver's socket (api/csi/csi.h); NULL: none */
	/* automatic garbage collection after this many bytes of deletes: 0 for
	 * the default (DM_SPACE_AUTO_BYTES_DEFAULT), UINT64_MAX for never */
	uint64_t gc_auto_bytes;
	bool metrics_public; /* GET /metrics without credentials */
	unsigned ui_idle_s;  /* the web page's sessions end unused this long (0: 30 min) */
};

struct dm_server {
	char *data_dir; /* absolute */
	char node_id[DM_UUID_LEN + 1];
	char engine_name[32];
	int port;
	char address[64];          /* "127.0.0.1:32607": where clients reach us */
	char advertise[256];       /* "http://127.0.0.1:32607": where other nodes do */
	char kv_name[8];           /* "lmdb" or "etcd" */
	char etcd_endpoints[1024]; /* etcd's client URLs, or "" */
	char cluster_id[DM_UUID_LEN + 1];
	bool node_certs; /* a node of a cluster on etcd: it calls the others with its certificate */
	char ca_key_path[PATH_MAX]; /* DIR/ca-key.pem, which a rotation of the CA replaces */
	char kv_root[64];                   /* "/dm/n/NODE/" on etcd; "" on one node (dot.h) */
	struct dm_cluster *cluster;         /* this node's record and liveness lease */
	int shutdown_grace_ms;
	struct dm_kv *kv;
	struct dm_store *store;
	struct dm_engine *engine;
	struct dm_sched *sched;             /* threaded */
	struct dm_registry *registry;       /* the dots (registry.c) */
	struct dm_wcwatch *wcwatch;         /* working copies' change signal, or NULL */
	struct dm_transfers *transfers;     /* push, pull, clone we run (transfer.c) */
	struct dm_sessions *sessions;       /* transfers others run here (api/sessions.c) */
	struct dm_ui_sessions *ui_sessions; /* the web page's logins (api/ui/session.c) */
	struct dm_space *space;             /* garbage collection (space/space.c) */
	char mount_warning[PATH_MAX + 256]; /* the working copies lack nosuid,nodev; or "" */
	char uploads[PATH_MAX];             /* DIR/uploads (S3 PUT bodies) */
	bool metrics_public;                /* GET /metrics without credentials */
	bool tls;                           /* the TCP port speaks HTTPS */
	struct dm_certs certs;              /* what it serves, and the CA (certs.h) */
	struct dm_replicator *replicator;   /* a cluster's copies kept in step, or NULL */
	struct dm_docker *docker;           /* the container engine's API, or NULL */
	struct dm_freezer *freezer;         /* freezes containers for commits (with docker) */
	char volume_driver[256];            /* the plugin's name, "" without one */
	struct dm_http *http;
	struct dm_plugin *plugin;           /* the Docker volume plugin, or NULL */
	struct dm_csi *csi;                 /* the CSI driver, or NULL */
	char *pool_mount;                   /* the loop pool we mounted, or NULL */
	struct dm_etcd_member *etcd_member; /* the local etcd we run, or NULL */
	struct dm_etcd_access etcd_access;  /* how we reach etcd (join tokens carry it) */
	/* what each subsystem may touch (set once everything is open) */
	struct dm_cluster_env cluster_env;
	struct dm_api_env api_env;
};

/*
 * Opens everything in opts->data_dir and starts serving: KV, store, engine,
 * scheduler, the Docker API client, listening sockets (the TCP port and
 * DIR/dmd.sock), registry, the Docker volume plugin, then the HTTP daemons. On success the server
 * answers requests when this returns. The caller must hold the pid file lock (daemon.h).
 */
int dm_server_open(struct dm_server **out, const struct dm_server_opts *opts, struct dm_err *err);

/*
 * Clean shutdown; accepts NULL. Stops accepting connections, lets requests
 * in flight finish (up to shutdown_grace_ms, after which the scheduler is
 * stopped so that they are answered `canceled`), frees the registry, then
 * the scheduler, engine, store (flushed) and KV.
 */
void dm_server_free(struct dm_server *srv);

#endif
