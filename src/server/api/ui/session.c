/*
 * session.c - the table of the web page's sessions (see session.h).
 *
 * Invariants:
 *   - The table (`v`, `n`) is touched by the actor's handler only, and by
 *     the actor's free function once it is gone.
 *   - Before each message, sessions past their idle time or their whole
 *     life are dropped, so a lookup never answers an expired one.
 *   - Tokens are compared in constant time; a token's bytes are wiped when
 *     its session goes.
 */
#include "server/api/ui/session.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "actor/actor.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

enum { UI_OPEN = 1, UI_FIND = 2, UI_END = 3 };

struct entry {
	char token[DM_UI_TOKEN_LEN + 1];
	struct dm_ui_session s;
	int64_t opened_ns, used_ns;
};

struct table {
	struct entry *v;
	size_t n;
	int64_t idle_ns;
};

struct dm_ui_sessions {
	struct dm_actor *actor;
};

/* Frees what held a token, wiped first: an entry, a session's answer, a
 * token's copy. */
static void wipe(void *p, size_t size)
{
	if (p)
		explicit_bzero(p, size);
	free(p);
}

static void entry_free(void *p)
{
	wipe(p, sizeof(struct entry));
}

static void session_free(void *p)
{
	wipe(p, sizeof(struct dm_ui_session));
}

static void token_free(void *p)
{
	wipe(p, DM_UI_TOKEN_LEN + 1);
}

static void drop(struct table *t, size_t i)
{
	explicit_bzero(&t->v[i], sizeof(t->v[i]));
	t->v[i] = t->v[--t->n];
}

static void expire(struct table *t, int64_t now)
{
	for (size_t i = t->n; i-- > 0;)
		if (now - t->v[i].used_ns > t->idle_ns ||
		    now - t->v[i].opened_ns > (int64_t)DM_UI_SESSION_MAX_S * 1000000000LL)
			drop(t, i);
}

/* The entry of token, or NULL. */
static struct entry *find(struct table *t, const char *token)
{
	if (strlen(token) != DM_UI_TOKEN_LEN)
		return NULL;
	for (size_t i = 0; i < t->n; i++)
		if (CRYPTO_memcmp(t->v[i].token, token, DM_UI_TOKEN_LEN) == 0)
			return &t->v[i];
	return NULL;
}

static void on_open(struct table *t, struct dm_msg *msg, int64_t now)
{
	struct entry *e = msg->payload;

	if (t->n == DM_UI_SESSIONS_MAX) {
		size_t oldest = 0;

		for (size_t i = 1; i < t->n; i++)
			if (t->v[i].used_ns < t->v[oldest].used_ns)
				oldest = i;
		drop(t, oldest);
	}
	if (!t->n || !(t->n & (t->n - 1)))
		t->v = dm_xrealloc(t->v, (t->n ? 2 * t->n : 16) * sizeof(*t->v));
	e->opened_ns = e->used_ns = now;
	t->v[t->n++] = *e;
	dm_msg_reply(msg, 0, NULL, NULL);
}

static void on_find(struct table *t, struct dm_msg *msg, int64_t now)
{
	struct entry *e = find(t, msg->payload);
	struct dm_ui_session *out;

	if (!e) {
		dm_msg_reply_err(msg, DM_EPERM, DM_UI_SESSION_GONE_MSG);
		return;
	}
	e->used_ns = now;
	out = dm_xmalloc(sizeof(*out));
	*out = e->s;
	dm_msg_reply(msg, 0, out, session_free);
}

static void on_end(struct table *t, struct dm_msg *msg)
{
	struct entry *e = find(t, msg->payload);

	if (e)
		drop(t, (size_t)(e - t->v));
	dm_msg_reply(msg, 0, NULL, NULL);
}

static int handle(struct dm_actor *self, struct dm_msg *msg)
{
	struct table *t = dm_actor_user(self);
	int64_t now = dm_now_monotonic_ns();

	expire(t, now);
	if (msg->type == UI_OPEN)
		on_open(t, msg, now);
	else if (msg->type == UI_FIND)
		on_find(t, msg, now);
	else if (msg->type == UI_END)
		on_end(t, msg);
	return 0;
}

static void table_free(void *p)
{
	struct table *t = p;

	if (t->v)
		explicit_bzero(t->v, t->n * sizeof(*t->v));
	free(t->v);
	free(t);
}

int dm_ui_sessions_open(struct dm_ui_sessions **out, struct dm_sched *sched, unsigned idle_s,
			struct dm_err *err)
{
	struct dm_ui_sessions *ss = dm_xcalloc(1, sizeof(*ss));
	struct table *t = dm_xcalloc(1, sizeof(*t));
	int rc;

	*out = NULL;
	t->idle_ns = (int64_t)(idle_s ? idle_s : DM_UI_SESSION_IDLE_S) * 1000000000LL;
	rc = dm_actor_new(&ss->actor, sched, "uisessions", handle, t, table_free, err);
	if (rc) {
		table_free(t);
		free(ss);
		return rc;
	}
	*out = ss;
	return 0;
}

void dm_ui_sessions_free(struct dm_ui_sessions *ss)
{
	if (!ss)
		return;
	dm_actor_unref(ss->actor);
	free(ss);
}

/* Sends the table a message with payload (taken) and waits for its answer;
 * out (may be NULL) takes the answer's payload. */
static int call(struct dm_ui_sessions *ss, int type, void *payload, void (*free_payload)(void *),
		void **out, struct dm_err *err)
{
	struct dm_msg *reply = NULL;
	int rc = dm_actor_call(&reply, ss->actor, dm_msg_new(type, payload, free_payload),
			       10 * 1000, err);

	if (!rc && out && reply) {
		*out = reply->payload;
		reply->payload = NULL;
	}
	dm_msg_free(reply);
	return rc;
}

/* A copy of token the table may keep until the message goes (wiped). */
static char *token_copy(const char *token)
{
	char *c = dm_xcalloc(1, DM_UI_TOKEN_LEN + 1);

	snprintf(c, DM_UI_TOKEN_LEN + 1, "%s", token);
	return c;
}

int dm_ui_session_open(struct dm_ui_sessions *ss, const struct dm_caller *caller, char *token,
		       char *csrf, struct dm_err *err)
{
	struct entry *e = dm_xcalloc(1, sizeof(*e));
	int rc;

	e->s.caller = *caller;
	rc = dm_id_api_key(e->token, err);
	if (!rc)
		rc = dm_id_api_key(e->s.csrf, err);
	if (!rc) {
		memcpy(token, e->token, DM_UI_TOKEN_LEN + 1);
		memcpy(csrf, e->s.csrf, DM_UI_TOKEN_LEN + 1);
		return call(ss, UI_OPEN, e, entry_free, NULL, err);
	}
	entry_free(e);
	return rc;
}

int dm_ui_session_find(struct dm_ui_sessions *ss, const char *token, struct dm_ui_session *out,
		       struct dm_err *err)
{
	struct dm_ui_session *s = NULL;
	int rc = call(ss, UI_FIND, token_copy(token), token_free, (void **)&s, err);

	if (!rc && s)
		*out = *s;
	else if (!rc)
		rc = dm_err_set(err, DM_EINTERNAL, "the session table answered nothing");
	session_free(s);
	return rc;
}

int dm_ui_session_end(struct dm_ui_sessions *ss, const char *token, struct dm_err *err)
{
	return call(ss, UI_END, token_copy(token), token_free, NULL, err);
}
