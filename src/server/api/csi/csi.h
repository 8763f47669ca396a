/*
 * csi.h - dmd's Container Storage Interface driver (CSI spec v1.9.0): the
 * Identity, Controller and Node services on a unix socket (--csi-socket),
 * spoken as gRPC (grpc.h), so that Kubernetes' sidecars (external-
 * provisioner, external-snapshotter, node-driver-registrar) and the
 * kubelet drive dm. docs/internals/csi.md has the mapping:
 *
 *   a volume    a branch of a dot: a new dot's master, or a new branch of
 *               an existing dot (from a snapshot, a volume, or the
 *               StorageClass's fromDot/fromCommit); its id "DOTID:BRANCH"
 *   a snapshot  a commit of the volume's branch; its id "DOTID:COMMIT"
 *   publishing  a bind mount of the branch's working copy at the target
 *               path, recorded with the dot as a user of it
 *
 * The CO's names (idempotency) and what each volume and snapshot is are
 * kept in the KV under DM_KV_CSI, which every node of a cluster shares.
 */
#ifndef DM_SERVER_API_CSI_CSI_H
#define DM_SERVER_API_CSI_CSI_H

#include <stdbool.h>

#include "util/err.h"

struct dm_api_env;
struct dm_csi;

#define DM_CSI_DRIVER_NAME "dm.csi.dotmesh.io"
/* The topology key of NodeGetInfo in a cluster: the node's id. */
#define DM_CSI_TOPOLOGY_KEY "dm.node"
#define DM_KV_CSI           "/dm/csi/"

/*
 * Serves CSI on socket_path (mode 0600; missing parent directories are
 * made; a socket another process serves is DM_EBUSY, a stale one is
 * replaced). dots_dir: where the working copies are (GetCapacity). env:
 * borrowed, as long as the driver. Probe answers not ready until
 * dm_csi_set_ready.
 */
int dm_csi_start(struct dm_csi **out, const struct dm_api_env *env, const char *socket_path,
		 const char *dots_dir, struct dm_err *err);
/* Probe's answer from now on. */
void dm_csi_set_ready(struct dm_csi *c, bool ready);
/* Stops accepting (the socket file goes); calls in flight are answered. */
void dm_csi_quiesce(struct dm_csi *c);
/* Waits up to timeout_ms for calls in flight, then frees; accepts NULL.
 * Before the registry is freed. */
void dm_csi_free(struct dm_csi *c, int timeout_ms);

#endif
