/*
 * docker.h - a small client of the Docker Engine API over its unix socket
 * (podman serves the same API), for what dm needs of containers: which use
 * a volume, stopping and starting them around a reset or checkout, pausing
 * them for a one-instant commit, and running a command in one (a hook).
 *
 * Every call has a deadline and fails with a message naming the socket
 * when the engine is not there; dm keeps working without one (containers
 * are then only known through the plugin's mounts).
 */
#ifndef DM_SERVER_DOTS_DOCKER_H
#define DM_SERVER_DOTS_DOCKER_H

#include <stdbool.h>
#include <stddef.h>

struct dm_buf;
struct dm_err;
struct dm_docker;

struct dm_container {
	char id[65];
	char name[256];
	bool running;
};

/* Whether the len bytes at s are spelt as Docker spells a container's name
 * or id: [A-Za-z0-9][A-Za-z0-9_.-]* (len 0: no). Lengths are the caller's
 * rule. */
bool dm_docker_name_chars_ok(const char *s, size_t len);

/* socket_path: e.g. /var/run/docker.sock. Never connects here. */
int dm_docker_new(struct dm_docker **out, const char *socket_path, struct dm_err *err);
void dm_docker_free(struct dm_docker *d);
const char *dm_docker_socket(const struct dm_docker *d);

/* Containers (running or not) with a volume of the dm driver named `volume`
 * ("shop", "shop@b1", "shop.db"...) mounted. *out is malloc'ed. */
int dm_docker_containers_using(struct dm_docker *d, const char *volume,
			       struct dm_container **out, size_t *n, struct dm_err *err);
/* A volume a running container has mounted. */
struct dm_docker_mount {
	char id[65];      /* the container's */
	char name[256];   /* the container's, without the leading '/' */
	char volume[256]; /* the volume's name */
};

/* Every volume of driver `driver` (e.g. "dm") that a running container has
 * mounted, one entry per container and volume: what the engine itself
 * says, whatever dmd has learnt through the plugin. *out is malloc'ed. */
int dm_docker_running_mounts(struct dm_docker *d, const char *driver,
			     struct dm_docker_mount **out, size_t *n, struct dm_err *err);

/* The name of container `id` (without the leading '/'). */
int dm_docker_container_name(struct dm_docker *d, const char *id, char *out, size_t size,
			     struct dm_err *err);
int dm_docker_stop(struct dm_docker *d, const char *id, int timeout_s, struct dm_err *err);
int dm_docker_start(struct dm_docker *d, const char *id, struct dm_err *err);

/*
 * Pausing (the cgroup freezer) and unpausing, each within a few seconds.
 * id: a container id or name ([A-Za-z0-9][A-Za-z0-9_.-]*, at most 128
 * bytes; DM_EINVAL otherwise).
 *
 * pause: DM_ECONFLICT when the container is already paused (someone else
 * paused it: whoever pauses must not unpause it later) or is not running;
 * DM_ENOTFOUND when there is no such container; DM_ETIMEOUT when the
 * engine did not answer in time (the container may then be paused or not).
 * unpause: success when the container is not paused (thawing is
 * idempotent; Docker and podman both answer 500 there, so the state is
 * asked); DM_ENOTFOUND when there is no such container.
 */
int dm_docker_pause(struct dm_docker *d, const char *id, struct dm_err *err);
int dm_docker_unpause(struct dm_docker *d, const char *id, struct dm_err *err);

/* What dm_docker_exec keeps of a command's output: the last 64 KiB. */
#define DM_DOCKER_EXEC_OUTPUT_MAX (64u * 1024)

/*
 * Runs argv (argv[0] the program, NULL-terminated, no shell) in running
 * container id, as `docker exec` does: no TTY, no stdin, env ("K=V"
 * strings, NULL-terminated; NULL for none) added to the container's.
 *
 * On success (the command ran, whatever its exit status) *exit_code is its
 * exit status (126/127 when it could not be started: the reason is then in
 * the output). stdout and stderr, interleaved as the engine sent them (it
 * copies the two apart: a line of one may come before a line of the other
 * written earlier), are appended to output (may be NULL): at most
 * DM_DOCKER_EXEC_OUTPUT_MAX bytes, the last
 * ones, after a line "[N bytes of earlier output dropped]" when there was
 * more; give a buffer whose max leaves room for that.
 *
 * timeout_ms (> 0) bounds the whole call: past it, DM_ETIMEOUT. The Docker
 * API cannot stop an exec; when dmd sees the engine's processes (it shares
 * the engine's pid namespace, checked through the socket's peer) the
 * command's process group is killed (after checking that the process is in
 * the container's cgroup), which takes at most 1 s more, and the message
 * says so; otherwise the message says that the command may still be running.
 * DM_ENOTFOUND: no container id; DM_ECONFLICT: it is paused or not running.
 */
int dm_docker_exec(struct dm_docker *d, const char *id, char *const argv[], char *const env[],
		   int timeout_ms, int *exit_code, struct dm_buf *output, struct dm_err *err);

#endif
