/*
 * sessions.h - transfer sessions: what one push, pull or clone from
 * another dmd may see of this node's store (docs/internals/transfer.md,
 * "Who may see an object").
 *
 * `refs` opens a session for the caller and the dot it names, seeded with
 * the dot's commits as they are then, and answers its token in the
 * DM_SESSION_HEADER header; the initiator sends the token back with every
 * later `missing`, `get`, `put` and `update` of the transfer. A session is
 * a reachability set (sync/reach.h) and belongs to one user: a token
 * presented by another user is unknown.
 *
 * The table is an actor: requests take a session (exclusively: a second
 * request for it waits until the first gives it back) and give it back,
 * so a session is touched by one request at a time and the table by its
 * actor only. Idle sessions expire; the table holds a bounded number, the
 * least recently used idle one making room for a new one.
 */
#ifndef DM_SERVER_API_SESSIONS_H
#define DM_SERVER_API_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "sync/wire.h"

#define DM_SESSION_HEADER    DM_WIRE_SESSION_HEADER
#define DM_SESSION_TOKEN_LEN 32 /* hex digits (<= DM_WIRE_SESSION_MAX) */
#define DM_SESSIONS_MAX      1024
#define DM_SESSION_IDLE_MS   (3600 * 1000) /* unused this long: gone */

struct dm_err;
struct dm_reach;
struct dm_sched;
struct dm_sessions;

struct dm_session {
	char token[DM_SESSION_TOKEN_LEN + 1];
	char user[128];
	char dot[256]; /* "NS/NAME" as refs was asked */
	struct dm_reach *reach;
	/* private to sessions.c */
	long long last_used_ms;
	bool taken;
};

int dm_sessions_open(struct dm_sessions **out, struct dm_sched *sched, struct dm_err *err);
/* After the scheduler stopped (its actor is then gone); accepts NULL. */
void dm_sessions_free(struct dm_sessions *ss);

/* Adds a session for user and dot over reach (taken, also on failure);
 * token (DM_SESSION_TOKEN_LEN + 1 bytes) receives its token. DM_EBUSY when
 * the table is full of sessions in use. */
int dm_sessions_create(struct dm_sessions *ss, const char *user, const char *dot,
		       struct dm_reach *reach, char *token, struct dm_err *err);
/* The session of token, for user, held by the caller alone until it gives
 * it back; waits up to timeout_ms while another request holds it.
 * DM_ENOTFOUND "transfer session expired …" when there is none (also for
 * another user's token). */
int dm_sessions_take(struct dm_sessions *ss, const char *token, const char *user, int timeout_ms,
		     struct dm_session **out, struct dm_err *err);
/* Gives a taken session back; accepts NULL. */
void dm_sessions_give(struct dm_sessions *ss, struct dm_session *s);

#endif
