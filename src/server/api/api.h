/*
 * api.h - what the API's parts may touch (struct dm_api_env): the front
 * that users, other nodes and the container engine talk to. api/ owns the
 * HTTP server (http.c), JSON-RPC dispatch (rpc.c) and its resources
 * (rpc_*.c, one per method group), authentication (auth.c), the /objects
 * endpoints other dmds transfer through (objects_http.c) and the Docker
 * volume plugin (plugin.c), the CSI driver (csi/), dotmesh's S3 paths
 * (s3_*.c), GET /metrics (metrics_http.c) and the web page (ui/); later
 * also the standard S3 endpoint.
 *
 * The process (server.c) fills one env before anything is served; it is
 * constant after, so handlers on any thread read it without locking. A
 * handler never touches a dot's state: it asks the dot's actor (dots/).
 */
#ifndef DM_SERVER_API_API_H
#define DM_SERVER_API_API_H

#include <stdbool.h>

struct dm_cluster_env;
struct dm_etcd_access;
struct dm_kv;
struct dm_registry;
struct dm_sessions;
struct dm_space;
struct dm_store;
struct dm_transfers;
struct dm_ui_sessions;

struct dm_api_env {
	struct dm_kv *kv;
	struct dm_store *store;
	struct dm_registry *registry;   /* the dots */
	struct dm_transfers *transfers; /* push, pull, clone this node runs */
	struct dm_sessions *sessions;   /* what other dmds' transfers may see (sessions.h) */
	struct dm_space *space;         /* garbage collection of the store (space/space.h) */
	struct dm_ui_sessions *ui_sessions; /* the web page's logins (ui/session.h) */
	/* the cluster's parts (forwarding to a branch's master, replicas) */
	const struct dm_cluster_env *cluster;
	const char *node_id;
	const char *cluster_id;
	const char *kv_root;        /* "/dm/n/NODE/" on etcd; "" on one node */
	const char *kv_name;        /* "lmdb" or "etcd" */
	const char *etcd_endpoints; /* etcd's client URLs, or "" */
	/* how this node reaches etcd (its CA, user, password): join tokens
	 * carry it to the nodes that join */
	const struct dm_etcd_access *etcd_access;
	const char *ca;            /* the cluster's CA (PEM), or NULL: plain HTTP */
	/* its key, on the node that made it (it signs joining nodes'
	 * certificates, POST /join), or NULL */
	const char *ca_key;
	const char *ca_key_path;   /* the file of that key (a rotation of the CA replaces it) */
	const char *address;       /* "127.0.0.1:32607": where clients reach us */
	const char *advertise;     /* "https://10.0.0.5:32607": where other nodes reach us */
	const char *mount_warning; /* the working copies' file system lacks nosuid,nodev; or "" */
	const char *data_dir;      /* absolute; where dm mount's links lead (server.version) */
	const char *uploads;       /* where S3 PUT bodies wait for their job (DIR/uploads) */
	bool metrics_public;       /* GET /metrics without credentials (--metrics-public) */
};

#endif
