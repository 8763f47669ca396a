/*
 * sessions.c - the table of transfer sessions (see sessions.h).
 *
 * Invariants:
 *   - The table (`v`, `waiters`) is touched by the actor's handler only,
 *     and by dm_sessions_free after the actor is gone.
 *   - A session is either in the table and idle (the table's), or taken:
 *     held by exactly one request, which owns it until it gives it back
 *     (SS_GIVE). A hand-over reply that finds its requester gone gives the
 *     session back when it is freed, and a give the table never handles
 *     frees it, so no session stays taken by nobody or leaks at shutdown.
 *   - A request waiting for a taken session is kept in `waiters` and
 *     answered when the session comes back (or when the table stops).
 */
#include "server/api/sessions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actor/actor.h"
#include "sync/reach.h"
#include "util/err.h"
#include "util/id.h"

#include "util/banned.h"

enum { SS_CREATE = 1, SS_TAKE = 2, SS_GIVE = 3 };

struct waiter {
	struct dm_msg *msg; /* an SS_TAKE request, kept */
	struct dm_session *s;
};

struct table {
	struct dm_sessions *ss;
	struct dm_session **v;
	size_t n;
	struct waiter *waiters;
	size_t nwaiters;
};

struct dm_sessions {
	struct dm_actor *actor;
};

struct take_args {
	char token[DM_SESSION_TOKEN_LEN + 1];
	char user[128];
};

/* A session handed to a request: given back if nobody takes it. */
struct handover {
	struct dm_sessions *ss;
	struct dm_session *s;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void session_free(void *p)
{
	struct dm_session *s = p;

	if (!s)
		return;
	dm_reach_free(s->reach);
	explicit_bzero(s->token, sizeof(s->token));
	free(s);
}

static void handover_free(void *p)
{
	struct handover *h = p;

	if (h->s)
		dm_sessions_give(h->ss, h->s);
	free(h);
}

static void hand_to(struct table *t, struct dm_msg *req, struct dm_session *s)
{
	struct handover *h = dm_xcalloc(1, sizeof(*h));

	h->ss = t->ss;
	h->s = s;
	s->taken = true;
	s->last_used_ms = now_ms();
	dm_msg_reply(req, 0, h, handover_free);
}

static void drop(struct table *t, size_t i)
{
	session_free(t->v[i]);
	t->v[i] = t->v[--t->n];
}

/* Idle sessions unused for DM_SESSION_IDLE_MS go. */
static void expire(struct table *t)
{
	long long now = now_ms();

	for (size_t i = t->n; i-- > 0;)
		if (!t->v[i]->taken && now - t->v[i]->last_used_ms > DM_SESSION_IDLE_MS)
			drop(t, i);
}

static int on_create(struct table *t, struct dm_msg *msg)
{
	struct dm_session *s = msg->payload;

	if (t->n == DM_SESSIONS_MAX) {
		size_t oldest = t->n;

		for (size_t i = 0; i < t->n; i++)
			if (!t->v[i]->taken &&
			    (oldest == t->n || t->v[i]->last_used_ms < t->v[oldest]->last_used_ms))
				oldest = i;
		if (oldest == t->n) {
			dm_msg_reply_err(
				msg, DM_EBUSY,
				"this server has %d transfers in progress; try again later",
				DM_SESSIONS_MAX);
			return 0;
		}
		drop(t, oldest);
	}
	if (!t->n || !(t->n & (t->n - 1)))
		t->v = dm_xrealloc(t->v, (t->n ? 2 * t->n : 16) * sizeof(*t->v));
	msg->payload = NULL;
	s->last_used_ms = now_ms();
	t->v[t->n++] = s;
	dm_msg_reply(msg, 0, NULL, NULL);
	return 0;
}

static int on_take(struct table *t, struct dm_msg *msg)
{
	const struct take_args *a = msg->payload;

	for (size_t i = 0; i < t->n; i++) {
		struct dm_session *s = t->v[i];

		if (strcmp(s->token, a->token) || strcmp(s->user, a->user))
			continue;
		if (!s->taken) {
			hand_to(t, msg, s);
			return 0;
		}
		t->waiters = dm_xrealloc(t->waiters, (t->nwaiters + 1) * sizeof(*t->waiters));
		t->waiters[t->nwaiters].msg = msg;
		t->waiters[t->nwaiters].s = s;
		t->nwaiters++;
		return DM_ACTOR_KEEP;
	}
	dm_msg_reply_err(msg, DM_ENOTFOUND,
			 "transfer session expired or unknown; run the transfer again (it "
			 "resumes where it stopped)");
	return 0;
}

static int on_give(struct table *t, struct dm_msg *msg)
{
	struct dm_session *s = msg->payload;

	msg->payload = NULL; /* the table's again */
	s->taken = false;
	s->last_used_ms = now_ms();
	for (size_t i = 0; i < t->nwaiters; i++) {
		struct dm_msg *next = t->waiters[i].msg;

		if (t->waiters[i].s != s)
			continue;
		memmove(t->waiters + i, t->waiters + i + 1,
			(t->nwaiters - i - 1) * sizeof(*t->waiters));
		t->nwaiters--;
		hand_to(t, next, s);
		dm_msg_free(next);
		break;
	}
	return 0;
}

static int handle(struct dm_actor *self, struct dm_msg *msg)
{
	struct table *t = dm_actor_user(self);

	expire(t);
	switch (msg->type) {
	case SS_CREATE:
		return on_create(t, msg);
	case SS_TAKE:
		return on_take(t, msg);
	case SS_GIVE:
		return on_give(t, msg);
	default:
		return 0;
	}
}

static void table_free(void *p)
{
	struct table *t = p;

	for (size_t i = 0; i < t->nwaiters; i++)
		dm_msg_free(t->waiters[i].msg);
	/* a taken session is its holder's: it is freed when given back */
	for (size_t i = 0; i < t->n; i++)
		if (!t->v[i]->taken)
			session_free(t->v[i]);
	free(t->waiters);
	free(t->v);
	free(t);
}

int dm_sessions_open(struct dm_sessions **out, struct dm_sched *sched, struct dm_err *err)
{
	struct dm_sessions *ss = dm_xcalloc(1, sizeof(*ss));
	struct table *t = dm_xcalloc(1, sizeof(*t));
	int rc;

	t->ss = ss;
	rc = dm_actor_new(&ss->actor, sched, "sessions", handle, t, table_free, err);
	if (rc) {
		table_free(t);
		free(ss);
		return rc;
	}
	*out = ss;
	return 0;
}

void dm_sessions_free(struct dm_sessions *ss)
{
	if (!ss)
		return;
	dm_actor_unref(ss->actor);
	free(ss);
}

int dm_sessions_create(struct dm_sessions *ss, const char *user, const char *dot,
		       struct dm_reach *reach, char *token, struct dm_err *err)
{
	struct dm_session *s = dm_xcalloc(1, sizeof(*s));
	unsigned char raw[DM_SESSION_TOKEN_LEN / 2];
	struct dm_msg *reply = NULL;
	int rc;

	s->reach = reach;
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->dot, sizeof(s->dot), "%s", dot);
	rc = dm_random_bytes(raw, sizeof(raw), err);
	if (rc) {
		session_free(s);
		return rc;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(s->token + 2 * i, 3, "%02x", raw[i]);
	explicit_bzero(raw, sizeof(raw));
	memcpy(token, s->token, sizeof(s->token));
	rc = dm_actor_call(&reply, ss->actor, dm_msg_new(SS_CREATE, s, session_free), 10 * 1000,
			   err);
	dm_msg_free(reply);
	if (rc)
		explicit_bzero(token, DM_SESSION_TOKEN_LEN + 1);
	return rc;
}

int dm_sessions_take(struct dm_sessions *ss, const char *token, const char *user, int timeout_ms,
		     struct dm_session **out, struct dm_err *err)
{
	struct take_args *a = dm_xcalloc(1, sizeof(*a));
	struct dm_msg *reply = NULL;
	struct handover *h;
	int rc;

	*out = NULL;
	if (strlen(token) != DM_SESSION_TOKEN_LEN || strlen(user) >= sizeof(a->user)) {
		free(a);
		return dm_err_set(err, DM_ENOTFOUND,
				  "transfer session expired or unknown; run the transfer again");
	}
	memcpy(a->token, token, DM_SESSION_TOKEN_LEN + 1);
	snprintf(a->user, sizeof(a->user), "%s", user);
	rc = dm_actor_call(&reply, ss->actor, dm_msg_new(SS_TAKE, a, free), timeout_ms, err);
	if (rc == DM_ETIMEOUT)
		dm_err_set(err, DM_EBUSY,
			   "another request of this transfer is still running; try again");
	if (rc) {
		dm_msg_free(reply);
		return rc == DM_ETIMEOUT ? DM_EBUSY : rc;
	}
	h = reply->payload;
	*out = h->s;
	h->s = NULL; /* ours now: freeing the reply does not give it back */
	dm_msg_free(reply);
	return 0;
}

void dm_sessions_give(struct dm_sessions *ss, struct dm_session *s)
{
	if (!s)
		return;
	/* a message the table never handles (it stopped) frees the session */
	dm_actor_post(ss->actor, dm_msg_new(SS_GIVE, s, session_free));
}
