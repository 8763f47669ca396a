/*
 * hooks.h - consistency hooks: a command dm runs before or after a commit,
 * on the host or inside a named container (as `docker exec` does), e.g. a
 * CHECKPOINT in a database. One hook is run here; which hooks a dot has and
 * when they run is the dot's business.
 */
#ifndef DM_SERVER_DOTS_HOOKS_H
#define DM_SERVER_DOTS_HOOKS_H

#include <jansson.h>
#include <stddef.h>

struct dm_docker;
struct dm_err;

#define DM_HOOK_ARGS_MAX       64
#define DM_HOOK_ARG_MAX        4096
#define DM_HOOK_CONTAINER_MAX  255
#define DM_HOOK_TIMEOUT_MAX_MS (3600 * 1000)
/* the timeout of a hook whose JSON gives none */
#define DM_HOOK_TIMEOUT_DEFAULT_MS 60000

struct dm_hook {
	char *container; /* NULL: on the host; else a container's name or id */
	char **argv;     /* argc strings and a NULL; argv[0] the program (no shell) */
	size_t argc;
	int timeout_ms; /* 1 .. DM_HOOK_TIMEOUT_MAX_MS */
};

/*
 * JSON: {"argv": ["pg_ctl", "..."], "container": "db", "timeout_ms": 30000}
 * "argv": 1 to DM_HOOK_ARGS_MAX strings of at most DM_HOOK_ARG_MAX bytes,
 * without NUL bytes, argv[0] not empty. "container" (absent, null or "":
 * on the host): a Docker container name or id,
 * [A-Za-z0-9][A-Za-z0-9_.-]+ and at most DM_HOOK_CONTAINER_MAX bytes.
 * "timeout_ms" (absent: DM_HOOK_TIMEOUT_DEFAULT_MS): 1 .. 1 h. No other
 * key. from_json (which does not change j) fills *out (release it with dm_hook_release) or fails
 * with DM_EINVAL, naming what is wrong; to_json gives a new reference
 * (NULL when out of memory).
 */
int dm_hook_from_json(struct dm_hook *out, json_t *j, struct dm_err *err);
json_t *dm_hook_to_json(const struct dm_hook *h);
void dm_hook_release(struct dm_hook *h);

/*
 * Runs h, within its timeout. what names it in messages and in dmd's log
 * ("pre-commit hook of dot shop"). env: "K=V" strings added to the
 * environment (NULL-terminated; NULL for none); on the host the rest is
 * dmd's own, in a container the container's.
 *
 * On the host: argv[0] found through PATH, no shell, in a process group of
 * its own, stdin /dev/null, stdout and stderr into one pipe; at the
 * deadline the whole group is killed (SIGKILL). In a container: through
 * dm_docker_exec (d must then not be NULL).
 *
 * Every line of output is logged as "WHAT: LINE" (at most 1000 bytes a
 * line, 64 KiB in all). Fails with DM_ETIMEOUT past the deadline,
 * DM_ECONFLICT when the command exits with a status other than 0 or is
 * killed by a signal (the message names the status and the last line of
 * output), or with what starting it failed with.
 */
int dm_hook_run(struct dm_docker *d, const struct dm_hook *h, const char *what, char *const env[],
		struct dm_err *err);

#endif
