/*
 * server.h - one dmd: its data directory and everything opened from it
 * (KV, store, engine, actor scheduler, the lead's dot registry, HTTP).
 *
 * Layout of a data directory (DESIGN.md §2):
 *     DIR/config.json      port, node id, engine, creation time (dmd init)
 *     DIR/admin-api-key    the admin user's API key, mode 0400
 *     DIR/kv/              the embedded KV (LMDB)
 *     DIR/store/           the object store
 *     DIR/dots/            the engine's working copies
 *     DIR/dmd.pid          pid of the running dmd, flock'ed while it runs
 *     DIR/dmd.sock         the API on a unix socket, mode 0600
 *     DIR/dmd.log          the daemon's log
 *     DIR/etcd/            a local etcd member's data (kv etcd without
 *                          endpoints; etcd_member.h), DIR/etcd.pid its pid
 *                          while it runs, DIR/etcd.log its output
 *
 * Lifetime: dm_server_open opens and starts everything and returns a
 * serving server; dm_server_free shuts it down cleanly in reverse order.
 * Between the two, every field below is set and constant, so request
 * handlers on any thread may read them without locking.
 */
#ifndef DM_SERVER_SERVER_H
#define DM_SERVER_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "util/id.h"

struct dm_cluster;
struct dm_cluster_token;
struct dm_docker;
struct dm_engine;
struct dm_etcd_member;
struct dm_http;
struct dm_kv;
struct dm_plugin;
struct dm_registry;
struct dm_replicator;
struct dm_transfers;
struct dm_sched;
struct dm_store;

#define DM_DEFAULT_PORT 32607
#define DM_SERVER_HOST "127.0.0.1"

#define DM_DATA_CONFIG "config.json"
#define DM_DATA_ADMIN_KEY "admin-api-key"
#define DM_DATA_KV "kv"
#define DM_DATA_STORE "store"
#define DM_DATA_DOTS "dots"
#define DM_DATA_PID "dmd.pid"
#define DM_DATA_SOCKET "dmd.sock"
#define DM_DATA_LOG "dmd.log"
#define DM_DATA_ETCD "etcd"           /* a local etcd member's data */
#define DM_DATA_ETCD_PID "etcd.pid"   /* its pid while it runs */
#define DM_DATA_ETCD_LOG "etcd.log"   /* its output */
#define DM_DATA_POOL "pool"           /* a loop pool's mount point (btrfs) */
#define DM_DATA_POOL_IMAGE "pool.img" /* a loop pool's file (btrfs) */

#define DM_ADMIN_USER "admin"

struct dm_server_opts {
	const char *data_dir; /* an initialised data directory */
	int port;             /* 0: the port in config.json */
	int actor_threads;    /* 0: 2 */
	int job_threads;      /* 0: the number of CPUs, at least 2 */
	int shutdown_grace_ms; /* how long shutdown lets requests finish (0: 10 s) */
	const char *plugin_socket; /* the Docker volume plugin's socket; NULL: no plugin */
	bool plugin_optional;      /* a plugin socket that cannot be served only warns */
	const char *docker_socket; /* the Docker Engine API; NULL, or absent at start: none */
};

struct dm_server {
	char *data_dir;                /* absolute */
	char node_id[DM_UUID_LEN + 1];
	char engine_name[32];
	int port;
	char address[64];              /* "127.0.0.1:32607": where clients reach us */
	char advertise[256];           /* "http://127.0.0.1:32607": where other nodes do */
	char kv_name[8];               /* "lmdb" or "etcd" */
	char etcd_endpoints[1024];     /* etcd's client URLs, or "" */
	char cluster_id[DM_UUID_LEN + 1];
	char admin_key[DM_API_KEY_LEN + 1]; /* how this node calls the others (cluster) */
	char kv_root[64];              /* "/dm/n/NODE/" on etcd; "" on one node (dot.h) */
	struct dm_cluster *cluster;    /* this node's record and liveness lease */
	int shutdown_grace_ms;
	struct dm_kv *kv;
	struct dm_store *store;
	struct dm_engine *engine;
	struct dm_sched *sched;        /* threaded */
	struct dm_registry *registry;  /* the dots (registry.c) */
	struct dm_transfers *transfers; /* push, pull, clone we run (transfer.c) */
	struct dm_replicator *replicator; /* a cluster's copies kept in step, or NULL */
	struct dm_docker *docker;      /* the container engine's API, or NULL */
	struct dm_http *http;
	struct dm_plugin *plugin;      /* the Docker volume plugin, or NULL */
	char *pool_mount;              /* the loop pool we mounted, or NULL */
	struct dm_etcd_member *etcd_member; /* the local etcd we run, or NULL */
};

/* The dot registry (registry.c): started once everything above it is
 * open, freed first at shutdown (it stops the dots' actors and jobs). */
int dm_registry_start(struct dm_registry **out, struct dm_server *srv, struct dm_err *err);
void dm_registry_free(struct dm_registry *r);

/*
 * `dmd init`: makes data_dir an initialised data directory (creating it, or
 * using it when empty) with its config (port; 0: DM_DEFAULT_PORT), KV,
 * store and the admin user, whose fresh API key goes to key_out
 * (DM_API_KEY_LEN + 1 bytes) and to DIR/admin-api-key. DM_EEXISTS for a
 * directory already initialised or not empty; nothing is left behind on
 * failure.
 */
int dm_server_init_data_dir(char *key_out, const char *data_dir, int port, struct dm_err *err);

/*
 * The same with the engine: "dir" (NULL: the default) or "btrfs", which
 * needs pool_dir (an existing btrfs mount; its dots/ holds the working
 * copies) or pool_size (DIR/pool.img of that many bytes, formatted and
 * loop-mounted at DIR/pool; needs root, btrfs and loop devices). What the
 * machine lacks for a pool is said before anything is made. DIR/dots is
 * then a symlink to the pool's dots/.
 */
struct dm_server_init_opts {
	int port;
	const char *engine;
	const char *pool_dir;
	uint64_t pool_size;
	const char *kv;             /* "lmdb" (NULL: the default) or "etcd" */
	/* kv etcd: "http://h:p[,...]"; NULL or "": a local etcd member that
	 * dmd runs in DIR/etcd (etcd_member.h) */
	const char *etcd_endpoints;
	const char *advertise;      /* the URL other nodes reach this one at, or NULL */
	/* joining a cluster: its token (kv etcd, endpoints and the admin key
	 * come from it), or NULL to make a new cluster */
	const struct dm_cluster_token *join;
};
int dm_server_init_data_dir_opts(char *key_out, const char *data_dir,
				 const struct dm_server_init_opts *o, struct dm_err *err);

/* Unmounts data_dir's loop pool when it has one and it is mounted (after
 * its dmd stopped, or died); its loop device is freed with it. */
int dm_server_release_pool(const char *data_dir, struct dm_err *err);

/* 0 when data_dir is an initialised data directory; DM_ENOTFOUND with a
 * message that says to run `dmd init` otherwise. */
int dm_server_check_data_dir(const char *data_dir, struct dm_err *err);

/* Reads the port of an initialised data directory's config. */
int dm_server_config_port(int *out, const char *data_dir, struct dm_err *err);

/*
 * Opens everything in opts->data_dir and starts serving: KV, store, engine,
 * scheduler, the Docker API client, listening sockets (the TCP port and
 * DIR/dmd.sock), registry, the Docker volume plugin, then the HTTP daemons. On success the server answers requests when this
 * returns. The caller must hold the pid file lock (daemon.h).
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
