/*
 * session.h - the web page's login sessions (docs/ui.md, "Sessions").
 *
 * Logging in with a user name and API key opens a session: a random token
 * that travels in the dm_ui cookie (HttpOnly, SameSite=Strict, Secure over
 * HTTPS), and a second random token, the CSRF token, that the page sends
 * in the X-DM-CSRF header of every change. A session ends at logout, after
 * idle_s seconds without use, or DM_UI_SESSION_MAX_S after login,
 * whichever comes first. dmd keeps sessions in memory only: a restart logs
 * everyone out.
 *
 * The table is an actor ("uisessions"): every call is a message to it, so
 * it is touched by its handler only. It holds at most DM_UI_SESSIONS_MAX
 * sessions; a new one past that pushes out the least recently used.
 */
#ifndef DM_SERVER_API_UI_SESSION_H
#define DM_SERVER_API_UI_SESSION_H

#include <stdbool.h>

#include "server/dots/caller.h"
#include "util/id.h"

struct dm_err;
struct dm_sched;
struct dm_ui_sessions;

#define DM_UI_TOKEN_LEN        DM_API_KEY_LEN /* hex digits of a session or CSRF token */
#define DM_UI_SESSIONS_MAX     4096
#define DM_UI_SESSION_IDLE_S   1800        /* unused this long: gone (the default) */
#define DM_UI_SESSION_MAX_S    (12 * 3600) /* this long after login: gone */
#define DM_UI_SESSION_GONE_MSG "not logged in, or the session expired; log in again"

/* What a session says of its caller. */
struct dm_ui_session {
	struct dm_caller caller;
	char csrf[DM_UI_TOKEN_LEN + 1];
};

/* idle_s: how long an unused session lives (0: DM_UI_SESSION_IDLE_S). */
int dm_ui_sessions_open(struct dm_ui_sessions **out, struct dm_sched *sched, unsigned idle_s,
			struct dm_err *err);
/* After the scheduler stopped; accepts NULL. */
void dm_ui_sessions_free(struct dm_ui_sessions *ss);

/* A new session for caller: its token and CSRF token into token and csrf
 * (DM_UI_TOKEN_LEN + 1 bytes each). */
int dm_ui_session_open(struct dm_ui_sessions *ss, const struct dm_caller *caller, char *token,
		       char *csrf, struct dm_err *err);
/* The session of token into out, marked used now. DM_EPERM
 * DM_UI_SESSION_GONE_MSG when there is none (unknown, ended or expired). */
int dm_ui_session_find(struct dm_ui_sessions *ss, const char *token, struct dm_ui_session *out,
		       struct dm_err *err);
/* Ends the session of token; no error when there is none. */
int dm_ui_session_end(struct dm_ui_sessions *ss, const char *token, struct dm_err *err);

#endif
