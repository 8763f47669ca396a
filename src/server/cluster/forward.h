/*
 * forward.h - a request for a branch another node masters, served by that
 * node (docs/internals/cluster.md, "Requests on a node that is not the
 * master").
 *
 * The forwarding node calls the master's API as itself (its node
 * certificate, dm_cluster_node_cred: a node may do what an admin may) on
 * behalf of its caller (DM_ON_BEHALF_HEADER), who is checked again there;
 * the call has the method's deadline, so it ends with the master's answer, an
 * error, or "timed out" — never a hang. A master that is down is refused
 * at once, with the command that moves the branch.
 */
#ifndef DM_SERVER_CLUSTER_FORWARD_H
#define DM_SERVER_CLUSTER_FORWARD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/dots/caller.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/names.h"

struct dm_cluster_env;

/*
 * The master of (dot_id, branch) into master_out (DM_UUID_LEN + 1): ""
 * when the cluster records none (one node, or a branch not yet recorded),
 * which means "this node".
 */
int dm_forward_master(const struct dm_cluster_env *env, char *master_out, const char *dot_id,
		      const char *branch, struct dm_err *err);

/*
 * When another node masters (dot_id, branch): calls method there with
 * params (branch set in them) and sets *forwarded; the return is the
 * call's, which has deadline_ms. Otherwise returns 0 with *forwarded
 * false: serve it here.
 * shown names the dot in messages.
 */
int dm_forward_to_master(const struct dm_cluster_env *env, const struct dm_caller *caller,
			 int deadline_ms, const char *method, json_t *params, const char *dot_id,
			 const char *shown, const char *branch, json_t **result, bool *forwarded,
			 struct dm_err *err);

/* What the master answered a forwarded HTTP request (dm_forward_http). */
#define DM_FORWARD_REPLY_MAX (64u * 1024)
struct dm_forward_reply {
	long status;
	char header[256];   /* the value of the header asked for, or "" */
	char ctype[128];    /* its Content-Type, or "" */
	struct dm_buf body; /* at most DM_FORWARD_REPLY_MAX bytes (dm_buf_release it) */
};

/*
 * An HTTP request for (dot_id, branch) that another node masters (dotmesh's
 * S3 PUT and DELETE): sent there as it came, as this node on behalf of
 * caller: method to path (percent-encoded, from the root), with header
 * (one "Name: value", or NULL) and, when body_fd >= 0, the body_len bytes
 * of the file open on body_fd (read from its start). Sets *forwarded and
 * fills out (initialised here) with the master's status, its header
 * `want` and its body, within deadline_ms. Otherwise returns 0 with
 * *forwarded false: serve it here.
 */
int dm_forward_http(const struct dm_cluster_env *env, const struct dm_caller *caller,
		    const char *dot_id, const char *shown, const char *branch, const char *method,
		    const char *path, const char *header, int body_fd, uint64_t body_len,
		    const char *want, int deadline_ms, struct dm_forward_reply *out,
		    bool *forwarded, struct dm_err *err);

/*
 * Handoff: makes this node the master of (dot_id, branch), for a container
 * about to use the branch here. The master commits what is uncommitted
 * (refusing while a container of its own uses the dot) and gives the
 * branch to this node, which then pulls the branch from it, so the
 * container starts on the latest data. Nothing to do when this node
 * masters the branch already (or the cluster records no master).
 */
int dm_forward_take_master(const struct dm_cluster_env *env, const char *dot_id, const char *shown,
			   const char *branch, struct dm_err *err);

/*
 * A push that reached this node for a branch another node masters: the
 * objects it brought (all in this node's store, complete below the
 * commits) are sent on to the master, then the update itself (doc, as the
 * pusher sent it), which the master applies. *forwarded says whether that
 * happened; when not, this node applies it. Both go on behalf of the
 * pusher (caller), whom the master checks again; an update forwarded here
 * already is not forwarded again.
 */
int dm_forward_update(const struct dm_cluster_env *env, const struct dm_caller *caller, json_t *doc,
		      const char *dot_id, const char *shown, const char *branch,
		      const dm_oid *commits, size_t n, json_t **result, bool *forwarded,
		      struct dm_err *err);

/*
 * Starts a pull of dot name (branch, or every branch as a clone when
 * branch is NULL) from the node at host:port, as the admin, stashing this
 * node's diverged commits; xid_out (DM_UUID_LEN + 1) gets the transfer's
 * id, to wait for with dm_transfers_wait.
 */
int dm_forward_pull_begin(const struct dm_cluster_env *env, const char *host, int port,
			  const char *node_id, const struct dm_dot_name *name, const char *branch,
			  char *xid_out, struct dm_err *err);

#endif
