/*
 * fork.h - `dm dot fork`: a dot copied into another name, sharing its
 * origin's history (fork.c).
 */
#ifndef DM_SERVER_DOTS_FORK_H
#define DM_SERVER_DOTS_FORK_H

#include <jansson.h>

#include "server/dots/dot.h"
#include "util/err.h"
#include "util/names.h"

struct dm_registry;

/*
 * Makes dot `name` (which must not exist; the caller checked it may
 * create it) a fork of origin: a new id, every branch of origin at its
 * head, the history shared in the store, its origin recorded (the view's
 * fork_of). *result: the fork's DOT object. Each step waits up to
 * timeout_ms. A fork that cannot be finished is deleted again.
 */
int dm_dot_fork(json_t **result, struct dm_registry *r, struct dm_dot_handle *origin,
		const struct dm_dot_name *name, int timeout_ms, struct dm_err *err);

#endif
