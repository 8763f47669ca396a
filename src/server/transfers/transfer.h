/*
 * transfer.h - the transfers a dmd runs as the initiator of push, pull
 * and clone (docs/internals/transfer.md, docs/api.md `transfers.*`).
 *
 * One actor, the transfers actor, owns the record of every transfer
 * (state, progress counters, message, error) and publishes an immutable
 * snapshot of them after every change; transfers.show and .list read it.
 * Each transfer runs as a job owned by that actor, reporting progress by
 * messages. The actor and its jobs have a scheduler of their own, so a
 * long transfer never takes a worker from the dots, and a transfer waiting
 * for a dot to apply what it fetched cannot wait for itself.
 */
#ifndef DM_SERVER_TRANSFERS_TRANSFER_H
#define DM_SERVER_TRANSFERS_TRANSFER_H

#include <jansson.h>
#include <stdbool.h>

#include "server/dots/dot.h"
#include "util/err.h"
#include "util/id.h"
#include "util/names.h"

struct dm_registry;
struct dm_store;
struct dm_transfers;

/* What the transfers may touch: the local store and the dots. */
struct dm_transfers_env {
	struct dm_store *store;
	struct dm_registry *registry;
};

enum dm_transfer_direction { DM_TRANSFER_PUSH = 1, DM_TRANSFER_PULL = 2 };

#define DM_TRANSFER_JOBS 4   /* transfers that run at once; more wait */
#define DM_TRANSFER_KEEP 100 /* finished transfers remembered */

/* What to do; every string is copied by dm_transfers_begin. */
struct dm_transfer_spec {
	int direction;
	const char *host; /* the remote dmd */
	int port;
	const char *user;
	const char *api_key;
	const char *ca; /* the remote's pinned CA (PEM), or NULL: plain http */
	/* a node of the cluster pulling from another with its certificate
	 * instead of user and api_key (util/curl.h; copied, its PEM must live
	 * as long as the transfers), or NULL */
	const struct dm_curl_node *node;
	const char *remote_name;       /* for messages: the client's name for the remote, or NULL */
	struct dm_dot_name dot;        /* the local dot */
	struct dm_dot_name remote_dot; /* the dot on the remote */
	const char *branch;            /* NULL: push the current branch, pull every branch */
	bool stash;                    /* keep the receiver's diverged commits on a branch */
	bool clone;                    /* pull into a dot that must not exist yet */
	const char *caller;            /* who asked (transfers are shown to them and admins) */
	/* the caller is an admin: a pull keeps setuid/setgid bits in the
	 * working copy, unless the remote dot strips them itself (dot.h,
	 * RECEIVE's `trusted`) */
	bool trusted;
};

/* Starts the transfers actor (env's registry and store must be open; env
 * is copied). */
int dm_transfers_start(struct dm_transfers **out, const struct dm_transfers_env *env,
		       struct dm_err *err);
/* Cancels running transfers, waits for their jobs, frees; accepts NULL. */
void dm_transfers_free(struct dm_transfers *t);

/* Starts a transfer; id_out (DM_UUID_LEN + 1) gets its id at once. */
int dm_transfers_begin(struct dm_transfers *t, const struct dm_transfer_spec *spec, char *id_out,
		       struct dm_err *err);
/* The TRANSFER object of id (a new reference), as docs/api.md shows it,
 * when user (NULL: anyone) may see it; DM_ENOTFOUND otherwise. */
int dm_transfers_show(struct dm_transfers *t, const char *id, const char *user, json_t **out,
		      struct dm_err *err);
/* Waits up to timeout_ms for transfer id to end: 0 when it is done, its
 * error (code and message) when it failed, DM_ETIMEOUT. */
int dm_transfers_wait(struct dm_transfers *t, const char *id, int timeout_ms, struct dm_err *err);

/* {"transfers":[TRANSFER…]}, recent ones first, those user may see. */
json_t *dm_transfers_list(struct dm_transfers *t, const char *user);

#endif
