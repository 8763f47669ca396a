/*
 * actor.c - actors, their mailboxes, messages, and requests with tickets.
 *
 * Invariants:
 *   - At most one thread runs a given actor at a time: only the thread that
 *     moves an actor from QUEUED to RUNNING may run its handler, and an
 *     actor is in the run queue at most once (exactly when QUEUED).
 *   - A message is handled at most once and freed exactly once: it leaves
 *     the mailbox either to one handler call or, when the actor stops, to
 *     be refused. Per actor, messages are handled in the order they were
 *     posted (FIFO mailbox, one message per run).
 *   - Every request is answered exactly once: its ticket pointer is cleared
 *     by the one answer, and dm_msg_free answers one that is still set.
 *   - An actor in QUEUED or RUNNING holds one reference for the runtime;
 *     a not-yet-stopped actor holds one more through sched->actors.
 *   - free_user runs exactly once, when the actor is STOPPED and no handler
 *     of it is running.
 *   - "Idle" (for a scheduler) means no actor QUEUED or RUNNING and no job
 *     queued, running or paused; see sched.c.
 *
 * An actor's scheduling state (under sched->lock), one function each:
 *
 *   from      event                               to        function
 *   IDLE      a message is posted                 QUEUED    dm_actor_post
 *   QUEUED    a worker or a step picks it         RUNNING   dm_actor_run_one
 *   RUNNING   handler returns, mailbox empty      IDLE      after_run
 *   RUNNING   handler returns, mailbox not empty  QUEUED    after_run
 *   RUNNING   handler returns, actor stopped      STOPPED   after_run
 *   IDLE      dm_actor_stop                       STOPPED   dm_actor_stop
 *   QUEUED    dm_actor_stop (leaves the run queue) STOPPED  dm_actor_stop
 *   RUNNING   dm_actor_stop: marked, mailbox refused; STOPPED when the
 *             handler returns (after_run)
 *   STOPPED   posts are refused (DM_ECANCELED), nothing runs again
 *
 * A ticket is shared by the request (until it is answered) and the waiter
 * (until dm_ticket_free), and freed by whichever lets go last, together
 * with a reply nobody took: a reply after a timeout is simply freed there.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actor/actor.h"
#include "actor/internal.h"
#include "metrics/catalog.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"

#include "util/banned.h"

struct dm_ticket {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	int refs;                  /* request side (until answered) + waiter side */
	int answered;
	int taken;
	struct dm_msg *reply;      /* until taken or the ticket is freed */
	struct dm_actor *reply_to; /* async requests: a reference, until answered */
	uint64_t cookie;
};

/* The actor whose handler this thread is running, if any. */
static _Thread_local struct dm_actor *current;

/* ---- messages and tickets ---- */

struct dm_msg *dm_msg_new(int type, void *payload, void (*free_payload)(void *payload))
{
	struct dm_msg *m = dm_xcalloc(1, sizeof(*m));

	m->type = type;
	m->payload = payload;
	m->free_payload = free_payload;
	return m;
}

void dm_msg_free(struct dm_msg *m)
{
	if (!m)
		return;
	if (m->ticket)
		dm_msg_reply_err(m, DM_ECANCELED, "request dropped without an answer");
	if (m->payload && m->free_payload)
		m->free_payload(m->payload);
	free(m->detail);
	if (m->owns_job)
		dm_job_free_done(m->job);
	free(m);
}

int dm_msg_is_request(const struct dm_msg *m)
{
	return m && m->ticket;
}

static struct dm_ticket *ticket_new(int refs, struct dm_actor *reply_to, uint64_t cookie)
{
	struct dm_ticket *t = dm_xcalloc(1, sizeof(*t));

	pthread_mutex_init(&t->lock, NULL);
	dm_actor_cond_init(&t->cv);
	t->refs = refs;
	t->reply_to = reply_to;
	t->cookie = cookie;
	return t;
}

static void ticket_unref(struct dm_ticket *t)
{
	int last;

	pthread_mutex_lock(&t->lock);
	last = --t->refs == 0;
	pthread_mutex_unlock(&t->lock);
	if (!last)
		return;
	dm_msg_free(t->reply);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* The one answer to t: keeps reply for the waiter or posts it to reply_to,
 * then drops the request's reference. Called without sched->lock. */
static void ticket_answer(struct dm_ticket *t, struct dm_msg *reply)
{
	struct dm_actor *to;

	pthread_mutex_lock(&t->lock);
	to = t->reply_to;
	t->reply_to = NULL;
	t->answered = 1;
	reply->cookie = t->cookie;
	if (!to) {
		t->reply = reply;
		pthread_cond_broadcast(&t->cv);
	}
	pthread_mutex_unlock(&t->lock);
	if (to) {
		dm_actor_post(to, reply);
		dm_actor_unref(to);
	}
	ticket_unref(t);
}

static int answer(struct dm_msg *req, int status, void *payload, void (*free_payload)(void *),
		  char *detail)
{
	struct dm_ticket *t = req ? req->ticket : NULL;
	struct dm_msg *reply;

	if (!t) {
		if (payload && free_payload)
			free_payload(payload);
		free(detail);
		return DM_EINVAL;
	}
	req->ticket = NULL;
	reply = dm_msg_new(DM_MSG_REPLY, payload, free_payload);
	reply->status = status;
	reply->detail = detail;
	ticket_answer(t, reply);
	return 0;
}

int dm_msg_reply(struct dm_msg *req, int status, void *payload, void (*free_payload)(void *))
{
	return answer(req, status, payload, free_payload, NULL);
}

int dm_msg_reply_err(struct dm_msg *req, int code, const char *fmt, ...)
{
	char text[DM_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return answer(req, code, NULL, NULL, dm_xstrdup(text));
}

int dm_ticket_wait(struct dm_msg **out, struct dm_ticket *t, int timeout_ms,
		   struct dm_err *err)
{
	struct timespec deadline;
	struct dm_msg *r;
	int rc = 0;

	*out = NULL;
	dm_actor_deadline(&deadline, timeout_ms);
	pthread_mutex_lock(&t->lock);
	while (!t->answered && rc != ETIMEDOUT) {
		if (timeout_ms < 0)
			pthread_cond_wait(&t->cv, &t->lock);
		else
			rc = pthread_cond_timedwait(&t->cv, &t->lock, &deadline);
	}
	if (!t->answered || t->taken) {
		pthread_mutex_unlock(&t->lock);
		if (t->taken)
			return dm_err_set(err, DM_EINVAL, "reply already taken");
		return dm_err_set(err, DM_ETIMEOUT, "timed out after %d ms", timeout_ms);
	}
	r = t->reply;
	t->reply = NULL;
	t->taken = 1;
	pthread_mutex_unlock(&t->lock);
	*out = r;
	if (r->status)
		dm_err_set(err, r->status, "%s", r->detail ? r->detail : dm_err_json_name(r->status));
	return r->status;
}

void dm_ticket_free(struct dm_ticket *t)
{
	if (t)
		ticket_unref(t);
}

/* ---- actors ---- */

int dm_actor_new(struct dm_actor **out, struct dm_sched *s, const char *name,
		 dm_actor_handler handle, void *user, void (*free_user)(void *user),
		 struct dm_err *err)
{
	struct dm_actor *a = dm_xcalloc(1, sizeof(*a));

	*out = NULL;
	snprintf(a->name, sizeof(a->name), "%s", name ? name : "actor");
	a->kind = dm_metric_intern(a->name, strcspn(a->name, " "));
	a->sched = s;
	a->handle = handle;
	a->user = user;
	a->free_user = free_user;
	atomic_init(&a->refs, 2); /* the caller's and sched->actors' */
	atomic_init(&a->stopped, 0);
	a->state = ACTOR_IDLE;
	link_init(&a->rq_link);
	link_init(&a->list_link);
	pthread_mutex_lock(&s->lock);
	if (atomic_load(&s->stopping)) {
		pthread_mutex_unlock(&s->lock);
		free(a);
		return dm_err_set(err, DM_ECANCELED, "cannot create actor '%s': scheduler is stopping",
				  name ? name : "actor");
	}
	link_add_tail(&s->actors, &a->list_link);
	pthread_mutex_unlock(&s->lock);
	*out = a;
	return 0;
}

void dm_actor_ref(struct dm_actor *a)
{
	atomic_fetch_add(&a->refs, 1);
}

void dm_actor_unref(struct dm_actor *a)
{
	/* The last reference goes after dm_actor_stop: the mailbox is empty,
	 * free_user has run and the scheduler no longer points here. */
	if (a && atomic_fetch_sub(&a->refs, 1) == 1)
		free(a);
}

void *dm_actor_user(const struct dm_actor *a)
{
	return a->user;
}

const char *dm_actor_name(const struct dm_actor *a)
{
	return a->name;
}

/* Frees a message that a stopped actor will never handle. */
static void refuse(struct dm_actor *a, struct dm_msg *m)
{
	if (m->ticket)
		dm_msg_reply_err(m, DM_ECANCELED, "actor '%s' is stopped", a->name);
	dm_msg_free(m);
}

int dm_actor_post(struct dm_actor *a, struct dm_msg *m)
{
	struct dm_sched *s = a->sched;

	m->next = NULL;
	pthread_mutex_lock(&s->lock);
	if (atomic_load(&a->stopped)) {
		pthread_mutex_unlock(&s->lock);
		refuse(a, m);
		return DM_ECANCELED;
	}
	if (a->tail)
		a->tail->next = m;
	else
		a->head = m;
	a->tail = m;
	dm_metric_add(&dm_m_mailbox, a->kind, NULL, 1);
	if (a->state == ACTOR_IDLE) {
		a->state = ACTOR_QUEUED;
		dm_actor_ref(a);
		dm_sched_enqueue(s, a);
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void dm_actor_stop(struct dm_actor *a)
{
	struct dm_sched *s = a->sched;
	struct dm_msg *pending, *m;
	int fini = 0, drop_run_ref = 0;

	pthread_mutex_lock(&s->lock);
	if (atomic_load(&a->stopped)) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	atomic_store(&a->stopped, 1);
	pending = a->head;
	a->head = a->tail = NULL;
	link_del(&a->list_link);
	if (a->state == ACTOR_QUEUED) {
		dm_sched_dequeue(s, a);
		drop_run_ref = 1;
	}
	if (a->state != ACTOR_RUNNING) {
		a->state = ACTOR_STOPPED;
		fini = 1;
	}
	dm_sched_check_idle(s);
	pthread_mutex_unlock(&s->lock);

	while ((m = pending)) {
		pending = m->next;
		m->next = NULL;
		dm_metric_add(&dm_m_mailbox, a->kind, NULL, -1);
		refuse(a, m);
	}
	if (fini && a->free_user)
		a->free_user(a->user);
	if (drop_run_ref)
		dm_actor_unref(a);
	dm_actor_unref(a); /* sched->actors' reference; the caller still holds one */
}

/* The runtime's part after a handler that did not keep its message. */
static void finish_msg(struct dm_actor *a, struct dm_msg *m, int rc)
{
	if (rc < 0) {
		dm_warn("actor '%s': message type %d failed: %s", a->name, m->type,
			dm_err_name(rc));
		if (m->ticket)
			dm_msg_reply_err(m, rc, "actor '%s' failed on request type %d", a->name,
					 m->type);
	} else if (m->ticket) {
		dm_warn("actor '%s' left request type %d unanswered", a->name, m->type);
		dm_msg_reply_err(m, DM_EINTERNAL, "actor '%s' did not answer request type %d",
				 a->name, m->type);
	}
	dm_msg_free(m);
}

/* RUNNING -> IDLE, QUEUED or STOPPED, once the handler has returned. */
static void after_run(struct dm_sched *s, struct dm_actor *a)
{
	int stopped, requeued = 0;

	pthread_mutex_lock(&s->lock);
	stopped = atomic_load(&a->stopped);
	if (stopped) {
		a->state = ACTOR_STOPPED; /* counted as running until free_user is done */
	} else if (a->head) {
		a->state = ACTOR_QUEUED; /* keeps the runtime's reference */
		requeued = 1;
		dm_sched_enqueue(s, a);
	} else {
		a->state = ACTOR_IDLE;
	}
	if (!stopped) {
		s->nrunning--;
		dm_sched_check_idle(s);
	}
	pthread_mutex_unlock(&s->lock);
	if (stopped) {
		if (a->free_user)
			a->free_user(a->user);
		pthread_mutex_lock(&s->lock);
		s->nrunning--;
		dm_sched_check_idle(s);
		pthread_mutex_unlock(&s->lock);
	}
	if (!requeued)
		dm_actor_unref(a);
}

void dm_actor_run_one(struct dm_sched *s, struct dm_actor *a)
{
	struct dm_msg *m = a->head;
	int rc;

	a->head = m->next;
	if (!a->head)
		a->tail = NULL;
	m->next = NULL;
	dm_metric_add(&dm_m_mailbox, a->kind, NULL, -1);
	a->state = ACTOR_RUNNING;
	s->nrunning++;
	pthread_mutex_unlock(&s->lock);

	current = a;
	rc = a->handle(a, m);
	current = NULL;
	if (rc != DM_ACTOR_KEEP)
		finish_msg(a, m, rc);
	after_run(s, a);
}

/* ---- requests ---- */

int dm_actor_send_request(struct dm_ticket **out, struct dm_actor *a, struct dm_msg *req)
{
	*out = NULL;
	if (req->ticket) {
		dm_msg_free(req);
		return DM_EINVAL;
	}
	req->ticket = ticket_new(2, NULL, 0);
	*out = req->ticket;
	dm_actor_post(a, req); /* a refusal answers the ticket */
	return 0;
}

int dm_actor_request(struct dm_actor *a, struct dm_msg *req, struct dm_actor *reply_to,
		     uint64_t cookie)
{
	if (req->ticket) {
		dm_msg_free(req);
		return DM_EINVAL;
	}
	dm_actor_ref(reply_to);
	req->ticket = ticket_new(1, reply_to, cookie);
	dm_actor_post(a, req);
	return 0;
}

int dm_actor_call(struct dm_msg **out, struct dm_actor *a, struct dm_msg *req, int timeout_ms,
		  struct dm_err *err)
{
	struct dm_ticket *t = NULL;
	int rc;

	*out = NULL;
	if (a->sched->det) {
		dm_msg_free(req);
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "cannot wait for actor '%s' in deterministic mode", a->name);
	}
	if (current) {
		dm_msg_free(req);
		return dm_err_set(err, DM_EINVAL, "actor '%s' cannot wait for actor '%s' in a handler",
				  current->name, a->name);
	}
	rc = dm_actor_send_request(&t, a, req);
	if (rc)
		return dm_err_set(err, rc, "invalid request for actor '%s'", a->name);
	rc = dm_ticket_wait(out, t, timeout_ms, err);
	if (rc == DM_ETIMEOUT && !*out)
		dm_err_set(err, DM_ETIMEOUT, "actor '%s' timed out after %d ms", a->name, timeout_ms);
	dm_ticket_free(t);
	return rc;
}
