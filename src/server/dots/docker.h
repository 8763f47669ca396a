/*
 * docker.h - a small client of the Docker Engine API over its unix socket
 * (podman serves the same API), for what dm needs of containers: which use
 * a volume, and stopping and starting them around a reset or checkout.
 *
 * Every call has a deadline and fails with a message naming the socket
 * when the engine is not there; dm keeps working without one (containers
 * are then only known through the plugin's mounts).
 */
#ifndef DM_SERVER_DOTS_DOCKER_H
#define DM_SERVER_DOTS_DOCKER_H

#include <stdbool.h>
#include <stddef.h>

struct dm_err;
struct dm_docker;

struct dm_container {
	char id[65];
	char name[256];
	bool running;
};

/* socket_path: e.g. /var/run/docker.sock. Never connects here. */
int dm_docker_new(struct dm_docker **out, const char *socket_path, struct dm_err *err);
void dm_docker_free(struct dm_docker *d);
const char *dm_docker_socket(const struct dm_docker *d);

/* Containers (running or not) with a volume of the dm driver named `volume`
 * ("shop", "shop@b1", "shop.db"...) mounted. *out is malloc'ed. */
int dm_docker_containers_using(struct dm_docker *d, const char *volume,
			       struct dm_container **out, size_t *n, struct dm_err *err);
/* The name of container `id` (without the leading '/'). */
int dm_docker_container_name(struct dm_docker *d, const char *id, char *out, size_t size,
			     struct dm_err *err);
int dm_docker_stop(struct dm_docker *d, const char *id, int timeout_s, struct dm_err *err);
int dm_docker_start(struct dm_docker *d, const char *id, struct dm_err *err);

#endif
