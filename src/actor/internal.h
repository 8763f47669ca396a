/*
 * internal.h - the actor runtime's shared structures, private to src/actor/.
 *
 * One mutex, sched->lock, guards everything mutable in a scheduler: the run
 * queue, every actor's mailbox and scheduling state, the job queue and the
 * counters. Handlers and jobs run without it. Tickets have their own lock,
 * and no code holds a ticket's lock and sched->lock at the same time.
 */
#ifndef DM_ACTOR_INTERNAL_H
#define DM_ACTOR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "actor/actor.h"

/* A circular doubly-linked list; a head is a link to itself when empty. */
struct dm_link {
	struct dm_link *prev, *next;
};

static inline void link_init(struct dm_link *l)
{
	l->prev = l->next = l;
}

static inline int link_empty(const struct dm_link *head)
{
	return head->next == head;
}

static inline void link_add_tail(struct dm_link *head, struct dm_link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static inline void link_del(struct dm_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	link_init(l);
}

#define link_entry(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

enum actor_state { ACTOR_IDLE, ACTOR_QUEUED, ACTOR_RUNNING, ACTOR_STOPPED };

struct dm_sched {
	pthread_mutex_t lock;
	pthread_cond_t work_cv;  /* actor workers: run queue not empty, or stopping */
	pthread_cond_t job_cv;   /* job workers: job queue not empty, or stopping */
	pthread_cond_t idle_cv;  /* the scheduler became idle */
	pthread_cond_t baton_cv; /* deterministic mode: a job took or gave back the turn */
	int det;
	uint64_t rng;
	atomic_int stopping;
	int stopped;             /* dm_sched_stop has finished */
	struct dm_link actors;   /* actors not yet stopped (each holds a reference) */
	struct dm_link runq;     /* QUEUED actors, in the order they became runnable */
	size_t nrunq;
	int nrunning;            /* actors in RUNNING */
	struct dm_link jobs;     /* threaded: jobs not started; det: all live jobs */
	size_t njobq;            /* length of jobs */
	size_t nlive;            /* jobs started whose DONE is not posted yet */
	uint64_t next_job_id;
	pthread_t *workers;
	int nworkers;
	pthread_t *job_workers;
	int njob_workers;
};

struct dm_actor {
	struct dm_sched *sched;
	char name[160];          /* "namespace/name" of a dot fits */
	const char *kind;        /* its name's first word, interned (metrics) */
	dm_actor_handler handle;
	void *user;
	void (*free_user)(void *user);
	atomic_int refs;
	atomic_int stopped;      /* written under sched->lock, read anywhere */
	/* under sched->lock */
	enum actor_state state;
	struct dm_msg *head, *tail;
	struct dm_link rq_link;
	struct dm_link list_link;
};

enum job_turn { TURN_SCHED, TURN_JOB };

struct dm_job {
	struct dm_sched *sched;
	struct dm_actor *owner;  /* a reference, until the DONE message is posted */
	uint64_t id;
	int64_t start_ns;           /* when it was started (dm_now_monotonic_ns) */
	_Atomic(const char *) kind; /* dm_job_set_kind's; else its owner's kind */
	void (*run)(struct dm_job *job);
	void *arg;
	void (*free_arg)(void *arg);
	atomic_int cancelled;
	int result_set;
	int status;
	void *result;
	void (*free_result)(void *result);
	struct dm_link link;     /* in sched->jobs */
	/* deterministic mode, under sched->lock */
	pthread_t thread;
	int started;
	int finished;
	enum job_turn turn;
};

/* actor.c: with s->lock held, a was just taken off the run queue; delivers
 * its next message. Returns with s->lock released. */
void dm_actor_run_one(struct dm_sched *s, struct dm_actor *a);

/* sched.c: a condition variable on CLOCK_MONOTONIC, and the deadline
 * timeout_ms from now on that clock (timeout_ms < 0: unused). */
void dm_actor_cond_init(pthread_cond_t *cv);
void dm_actor_deadline(struct timespec *out, int timeout_ms);

/* sched.c, with s->lock held */
void dm_sched_enqueue(struct dm_sched *s, struct dm_actor *a);
void dm_sched_dequeue(struct dm_sched *s, struct dm_actor *a);
void dm_sched_check_idle(struct dm_sched *s);

/* pool.c */
int dm_pool_start(struct dm_sched *s, struct dm_err *err);
/* With s->lock held (det mode): runs job up to its next yield or its end.
 * Returns with s->lock released. */
void dm_pool_det_step(struct dm_sched *s, struct dm_job *job);
/* After s->stopping is set and actors are stopped: ends every job, joins
 * the job workers. */
void dm_pool_stop(struct dm_sched *s);
/* Frees a job whose DONE message is being freed. */
void dm_job_free_done(struct dm_job *job);

#endif
