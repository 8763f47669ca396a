/*
 * actor.h - dm's actor runtime: actors with mailboxes, requests that are
 * always answered exactly once, slow jobs on a worker pool, and a scheduler
 * that is either threaded or deterministic (single thread, seeded choice).
 *
 * Ownership in one paragraph: a message belongs to whoever holds it. Posting
 * (dm_actor_post, dm_actor_request, dm_actor_send_request, dm_actor_call)
 * always takes the message, also when it fails. A handler borrows the message
 * it is given; the runtime frees it when the handler returns, unless the
 * handler returns DM_ACTOR_KEEP, in which case the handler owns it and must
 * dm_msg_free it later. A message owns its payload (freed with
 * free_payload); take the payload by setting msg->payload to NULL.
 * A request that is freed without an answer is answered automatically with
 * an error, so every request is answered exactly once. A handler may pass a
 * request on: it posts the message to another actor and returns
 * DM_ACTOR_KEEP; the answer still goes to the original requester.
 *
 * Threads: every function here may be called from any thread, including
 * handlers and jobs, except where a comment says otherwise. Handlers never
 * block; they start jobs for slow work. In deterministic mode only the
 * thread that calls dm_sched_step (and the jobs it runs) may post, or the
 * order is no longer the seed's alone.
 */
#ifndef DM_ACTOR_ACTOR_H
#define DM_ACTOR_ACTOR_H

#include <stdint.h>

struct dm_err;
struct dm_sched;
struct dm_actor;
struct dm_job;
struct dm_ticket;

/* Message types below 0 are the runtime's; users number theirs from 0. */
enum {
	DM_MSG_REPLY = -1,        /* an answer to a request (see dm_actor_request) */
	DM_MSG_JOB_PROGRESS = -2, /* payload: what dm_job_progress was given */
	DM_MSG_JOB_DONE = -3,     /* status and payload: see dm_job_set_result */
};

/* A handler returns 0, a negative DM_E* code (logged; an unanswered request
 * is answered with it), or DM_ACTOR_KEEP to take ownership of the message. */
#define DM_ACTOR_KEEP 1

struct dm_msg {
	int type;
	int status;          /* replies and DM_MSG_JOB_DONE: 0 or a DM_E* code */
	uint64_t cookie;     /* replies: the requester's cookie; job messages: job id */
	void *payload;       /* owned by the message */
	void (*free_payload)(void *payload); /* NULL: payload is not freed */
	char *detail;        /* error replies: the message, owned; else NULL */
	struct dm_job *job;  /* job messages: the job (see dm_job_start) */
	/* private to the runtime */
	struct dm_msg *next;
	struct dm_ticket *ticket; /* set while this is an unanswered request */
	int owns_job;
};

/* A new message of a user type (>= 0). Never NULL (aborts when out of
 * memory). The message takes payload; free_payload may be NULL. */
struct dm_msg *dm_msg_new(int type, void *payload, void (*free_payload)(void *payload));
/* Frees m and its payload; accepts NULL. An unanswered request is first
 * answered DM_ECANCELED ("request dropped without an answer"). */
void dm_msg_free(struct dm_msg *m);
/* 1 when m is a request that still waits for its answer, else 0. */
int dm_msg_is_request(const struct dm_msg *m);
/* Answers request req (the answer takes payload). Does not free req. Returns
 * DM_EINVAL (and frees payload) when req is not an unanswered request. */
int dm_msg_reply(struct dm_msg *req, int status, void *payload, void (*free_payload)(void *));
/* Answers req with error code and a printf-style message (the reply's detail). */
int dm_msg_reply_err(struct dm_msg *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- scheduler ---- */

struct dm_sched_opts {
	int deterministic;  /* 1: single-threaded, the caller drives dm_sched_step */
	uint64_t seed;      /* deterministic mode: the same seed gives the same order */
	int threads;        /* threaded mode: actor worker threads (0: 2) */
	int job_threads;    /* threaded mode: job worker threads (0: 2) */
};

/* Creates a scheduler; a threaded one starts its threads now. The caller
 * owns *out and frees it with dm_sched_free. */
int dm_sched_new(struct dm_sched **out, const struct dm_sched_opts *opts, struct dm_err *err);
/*
 * Shuts down: stops every actor (their pending requests are answered
 * DM_ECANCELED), cancels jobs and waits for them (queued jobs that never
 * started complete as cancelled without running), joins all threads. New
 * actors, posts and jobs are refused from then on. Idempotent. Not from a
 * handler or a job.
 */
void dm_sched_stop(struct dm_sched *s);
/* Stops (if needed) and frees s; accepts NULL. Actor references may still be
 * dropped afterwards, but nothing else may be called on them. */
void dm_sched_free(struct dm_sched *s);
/*
 * Deterministic mode only: runs one step, chosen among the runnable ones by
 * the seeded generator: one message delivered to one queued actor, or one
 * job run up to its next dm_job_progress call (or to its end). Returns 1 if
 * a step ran, 0 when idle, DM_EINVAL in threaded mode.
 */
int dm_sched_step(struct dm_sched *s);
/*
 * Idle means: no actor queued or running, and no job queued, running or
 * paused. Deterministic mode: steps until idle. Threaded mode: waits until
 * idle. DM_ETIMEOUT when not idle within timeout_ms (< 0: no deadline).
 * Not from a handler or a job (it would wait for itself).
 */
int dm_sched_run_until_idle(struct dm_sched *s, int timeout_ms);

/* ---- actors ---- */

typedef int (*dm_actor_handler)(struct dm_actor *self, struct dm_msg *msg);

/*
 * Creates an actor named name (copied, for logs) in s. *out is the caller's
 * reference (dm_actor_unref); the scheduler holds its own until the actor is
 * stopped, so an actor lives until it is stopped and unreferenced. handle
 * runs one message at a time, on one thread at a time. user is the actor's
 * state; free_user(user), if not NULL, runs exactly once, after the actor is
 * stopped and its last handler has returned. DM_ECANCELED once s is stopping
 * (user then stays the caller's).
 */
int dm_actor_new(struct dm_actor **out, struct dm_sched *s, const char *name,
		 dm_actor_handler handle, void *user, void (*free_user)(void *user),
		 struct dm_err *err);
void dm_actor_ref(struct dm_actor *a);
/* Drops a reference; accepts NULL. */
void dm_actor_unref(struct dm_actor *a);
/* Borrowed; live as long as the actor. user is meant for its handler. */
void *dm_actor_user(const struct dm_actor *a);
const char *dm_actor_name(const struct dm_actor *a);
/* Appends m to a's mailbox (takes m). DM_ECANCELED when a is stopped: m is
 * then freed, and if it is a request it is answered DM_ECANCELED. */
int dm_actor_post(struct dm_actor *a, struct dm_msg *m);
/*
 * Stops a: no handler runs after the current one (if any) returns; pending
 * messages are dropped and pending requests answered DM_ECANCELED; later
 * posts are refused. Running jobs of a see dm_job_cancelled() true. The
 * caller must hold a reference. Idempotent; may be called from a's own
 * handler.
 */
void dm_actor_stop(struct dm_actor *a);

/* ---- requests ---- */

/*
 * Sends req to a as a request (takes req). *out is the caller's ticket, to
 * wait on or poll with dm_ticket_wait and to free with dm_ticket_free.
 * Always 0 for a valid request: a refused post answers the ticket with the
 * error. DM_EINVAL (req freed, *out NULL) if req already is a request.
 */
int dm_actor_send_request(struct dm_ticket **out, struct dm_actor *a, struct dm_msg *req);
/*
 * Waits up to timeout_ms (0: just poll; < 0: no deadline) for the answer.
 * DM_ETIMEOUT if none yet (the ticket stays usable). Otherwise *out is the
 * reply (the caller frees it) and the return value is its status, with err
 * filled from the reply when that is an error. DM_EINVAL if already taken.
 */
int dm_ticket_wait(struct dm_msg **out, struct dm_ticket *t, int timeout_ms,
		   struct dm_err *err);
/* Gives the ticket up; a reply that comes later is freed. Accepts NULL. */
void dm_ticket_free(struct dm_ticket *t);
/*
 * Sends req to a and waits for the answer: dm_actor_send_request,
 * dm_ticket_wait, dm_ticket_free. Takes req. Returns DM_ETIMEOUT ("timed
 * out", *out NULL; a late reply is discarded) or the reply's status with
 * *out set. DM_EUNSUPPORTED in deterministic mode and DM_EINVAL inside a
 * handler, since both would block the only thread that can answer.
 */
int dm_actor_call(struct dm_msg **out, struct dm_actor *a, struct dm_msg *req, int timeout_ms,
		  struct dm_err *err);
/*
 * Asynchronous request between actors: sends req to a (takes req); the
 * answer is posted to reply_to as a DM_MSG_REPLY message carrying cookie.
 * Holds a reference on reply_to until then. 0 or DM_EINVAL as above.
 */
int dm_actor_request(struct dm_actor *a, struct dm_msg *req, struct dm_actor *reply_to,
		     uint64_t cookie);

/* ---- jobs ---- */

/*
 * Starts run(job) on the worker pool for owner. The job owns arg (freed with
 * free_arg when the job is freed). The job reports with DM_MSG_JOB_PROGRESS
 * messages and always ends with exactly one DM_MSG_JOB_DONE message to owner,
 * cancelled or not; msg->job is the job in both. *out (may be NULL) stays
 * valid until that DONE message is freed; start jobs from owner's handler so
 * that this cannot happen before *out is stored. DM_ECANCELED (arg freed) if
 * owner or the scheduler is stopped.
 */
int dm_job_start(struct dm_job **out, struct dm_actor *owner, void (*run)(struct dm_job *job),
		 void *arg, void (*free_arg)(void *arg), struct dm_err *err);
/* Asks the job to stop; it sees dm_job_cancelled() true from now on. */
void dm_job_cancel(struct dm_job *job);
/* For the job: 1 when cancelled (or its owner or the scheduler stopped). */
int dm_job_cancelled(struct dm_job *job);
/* For the job: posts DM_MSG_JOB_PROGRESS with payload (taken) to the owner.
 * In deterministic mode this is where the scheduler may switch away. */
void dm_job_progress(struct dm_job *job, void *payload, void (*free_payload)(void *));
/* For the job: lets others run where it may wait for them. In
 * deterministic mode it gives the turn back and returns 1 once the
 * scheduler gives it again; in threaded mode it returns 0 at once (the
 * caller then sleeps on whatever it waits for, as usual). */
int dm_job_yield(struct dm_job *job);
/* For the job: the status and payload (taken) of its DONE message. Without
 * it the status is 0, or DM_ECANCELED if the job was cancelled. */
void dm_job_set_result(struct dm_job *job, int status, void *payload,
		       void (*free_payload)(void *));
/* For the job: what kind of job it is, for its duration in
 * dm_job_duration_seconds (a string that lives as long as the process;
 * a small fixed set); without it, its owner's kind (the first word of the
 * owner's name). */
void dm_job_set_kind(struct dm_job *job, const char *kind);
/* Borrowed; live as long as the job. */
void *dm_job_arg(const struct dm_job *job);
/* Unique within the scheduler, counting from 1 in start order. */
uint64_t dm_job_id(const struct dm_job *job);

#endif
