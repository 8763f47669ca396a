/*
 * plugin.h - dmd's Docker volume plugin (DESIGN.md §8): Docker's plugin
 * protocol (POST /Plugin.Activate, /VolumeDriver.Create, Remove, Get, List,
 * Path, Mount, Unmount, Capabilities; JSON bodies; errors as {"Err":"..."})
 * on a unix socket, for Docker and podman alike.
 *
 * Volume names are [NS/]DOT[@BRANCH][.SUBDOT] (util/volname.h). podman only
 * accepts names matching [a-zA-Z0-9][a-zA-Z0-9_.-]*, so a volume may also be
 * an alias made at creation: `podman volume create --driver dm -o
 * volume=shop@b1 shop-b1` (kept in the KV under /dm/volumes/ALIAS).
 *
 * Each mount is tracked by the runtime's mount ID and the volume name, and
 * recorded with the dot (DM_DOT_OP_MOUNT) together with the container that
 * uses it, which a background resolver learns from the Docker Engine API
 * after the mount has been answered (podman holds the container's lock
 * while it mounts, so asking then would deadlock). Every call answers within
 * a short deadline (DM_PLUGIN_CALL_MS), also when a dot is busy.
 */
#ifndef DM_SERVER_API_PLUGIN_H
#define DM_SERVER_API_PLUGIN_H

#include <stddef.h>

#include "server/cluster/cluster.h"
#include "util/err.h"

struct dm_docker;
struct dm_kv;
struct dm_plugin;
struct dm_registry;
struct dm_api_env;
struct dm_cluster_env;

#define DM_PLUGIN_DEFAULT_SOCKET "/run/docker/plugins/dm.sock"
#define DM_PLUGIN_CONTENT_TYPE   "application/vnd.docker.plugins.v1.2+json"
/* Runtimes give a plugin a few seconds (podman: 5 s); we answer sooner. */
#define DM_PLUGIN_CALL_MS 3000
/* DM_KV_VOLUMES (aliases): server/cluster/cluster.h */

struct dm_plugin_opts {
	struct dm_registry *registry; /* the dots; borrowed */
	struct dm_kv *kv;             /* volume aliases; borrowed */
	struct dm_docker *docker;     /* NULL: containers are named by their mount IDs */
	int call_ms;                  /* deadline of a call to a dot (0: DM_PLUGIN_CALL_MS) */
	int sweep_ms;                 /* how often shared mounts are re-resolved (0: 5000) */
	/* the node, in a cluster on etcd: a mount of a branch another node
	 * masters takes the branch over first (handoff); NULL: one node */
	const struct dm_cluster_env *cluster_node;
};

/* Makes the plugin (and, with a Docker API, its resolver thread); serves
 * nothing until dm_plugin_listen. */
int dm_plugin_new(struct dm_plugin **out, const struct dm_plugin_opts *opts, struct dm_err *err);

/*
 * Serves the protocol on socket_path (mode 0600; missing parent
 * directories are made). A socket file that another process still serves
 * is DM_EBUSY, a stale one is replaced. env: borrowed by the HTTP server.
 */
int dm_plugin_listen(struct dm_plugin *p, const struct dm_api_env *env, const char *socket_path,
		     struct dm_err *err);

/*
 * One call of the protocol: url ("/VolumeDriver.Mount") and its JSON body.
 * Returns the malloc'ed JSON answer; *status is 200, or 4xx/5xx with
 * {"Err":"message"}. Any thread; what the socket's connections run.
 */
char *dm_plugin_handle(struct dm_plugin *p, const char *url, const char *body, size_t len,
		       unsigned *status);

/* Stops accepting (the socket file goes, so runtimes fail at once) and
 * stops the resolver; calls in flight are still answered. Idempotent. */
void dm_plugin_quiesce(struct dm_plugin *p);
/* Waits for calls in flight (up to timeout_ms), then frees; accepts NULL.
 * Before the registry is freed. */
void dm_plugin_free(struct dm_plugin *p, int timeout_ms);

#endif
