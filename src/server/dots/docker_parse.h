/*
 * docker_parse.h - reading the Docker Engine API's answers, apart from the
 * requests that fetch them (docker.c): the container list, a container's
 * inspect, an exec's create and inspect answers, an error's message, and
 * an exec's multiplexed output stream. Internal to server/dots; exposed
 * for docker.c and for the fuzz target (tests/fuzz/fuzz_dots.c).
 *
 * Every function takes untrusted bytes (text, len: not NUL-terminated) and
 * either fills its out-parameters with bounded, NUL-terminated strings or
 * fails with DM_EPROTO and leaves nothing allocated; the caller words the
 * message (it knows the HTTP status and which container it asked about).
 */
#ifndef DM_SERVER_DOTS_DOCKER_PARSE_H
#define DM_SERVER_DOTS_DOCKER_PARSE_H

#include "server/dots/docker.h"
#include "util/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest container or exec id or name that goes into a URL. */
#define DM_DOCKER_ID_MAX 128

/* Whether id may go into a URL: [A-Za-z0-9][A-Za-z0-9_.-]*, at most
 * DM_DOCKER_ID_MAX bytes. */
bool dm_docker_id_ok(const char *id);

/* GET /containers/json: the entries with an "Id" (cut to fit), named by
 * their first name without its '/' (by the id when they have none).
 * *out is malloc'ed (never NULL on success). */
int dm_docker_parse_containers(struct dm_container **out, size_t *n, const char *text, size_t len);

/* GET /containers/json: every mount of driver `driver` of every entry, when
 * the container's id and the volume's name fit. *out is malloc'ed (NULL
 * when there is none). */
int dm_docker_parse_mounts(struct dm_docker_mount **out, size_t *n, const char *driver,
			   const char *text, size_t len);

/* GET /containers/ID/json: the "Name" without its leading '/', cut to size. */
int dm_docker_parse_name(char *out, size_t size, const char *text, size_t len);

/* GET /containers/ID/json: "State"'s "Running" and "Paused" (both needed). */
int dm_docker_parse_state(bool *running, bool *paused, const char *text, size_t len);

/* POST /containers/ID/exec (201): the new exec's id, which dm_docker_id_ok. */
int dm_docker_parse_exec_id(char out[DM_DOCKER_ID_MAX + 1], const char *text, size_t len);

/* What GET /exec/ID/json says. */
struct dm_docker_exec_state {
	bool running;
	bool has_exit; /* exit_code is known */
	int exit_code;
	long pid;           /* 0, or 2 .. 2^30-1 */
	char container[65]; /* "", or a full id (64 bytes, dm_docker_id_ok) */
};

/* GET /exec/ID/json (200): needs a boolean "Running"; the rest when sound. */
int dm_docker_parse_exec_state(struct dm_docker_exec_state *out, const char *text, size_t len);

/* The "message" of an error answer, cut to size (size >= 1) and with
 * control characters as '?', into out ("" when there is none); out. */
const char *dm_docker_parse_message(char *out, size_t size, const char *text, size_t len);

/*
 * An exec's output: the last DM_DOCKER_EXEC_OUTPUT_MAX bytes of a stream,
 * appended into a buffer of twice that, which keeps only its last half when
 * it fills, so each byte is moved at most once more. Start with
 * dm_docker_tail_init, end with dm_buf_release(&t->b).
 */
struct dm_docker_tail {
	struct dm_buf b;
	uint64_t dropped;
};

void dm_docker_tail_init(struct dm_docker_tail *t);
int dm_docker_tail_add(struct dm_docker_tail *t, const unsigned char *data, size_t len);
/* Appends the tail to out (may be NULL): at most DM_DOCKER_EXEC_OUTPUT_MAX
 * bytes, from a line start when the start was dropped (and the line starts
 * within 4 KiB), after a line "[N bytes of earlier output dropped]". */
int dm_docker_tail_finish(struct dm_docker_tail *t, struct dm_buf *out);

/*
 * Docker's stream format without a TTY: frames of an 8-byte header (stream
 * 0, 1 or 2; three zero bytes; a big-endian length) and that many bytes,
 * whose payloads go to out. Fed in pieces as they arrive; zero-fill it and
 * set out before the first.
 */
struct dm_docker_frames {
	unsigned char hdr[8];
	size_t hdr_len;
	uint32_t left;
	struct dm_docker_tail *out;
};

/* 0, or DM_EPROTO for a header that is not one (the stream is then
 * unusable), or the tail's error. */
int dm_docker_frames_feed(struct dm_docker_frames *f, const unsigned char *data, size_t len);

#endif
