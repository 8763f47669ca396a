/*
 * pool.c - jobs: slow functions run off the actor, on a worker pool, that
 * report back to their actor only through messages.
 *
 * Invariants:
 *   - Every started job ends with exactly one DM_MSG_JOB_DONE message to
 *     its owner, posted by whoever ran it, after run() has returned (or
 *     instead of running it, when it was cancelled before it started). That
 *     post is the runner's last use of the job: the DONE message owns the
 *     job and frees it (and its arg) when the message is freed.
 *   - Progress messages are posted by the job's own thread before its DONE
 *     message, so the owner sees them first (FIFO mailbox).
 *   - nlive counts jobs from dm_job_start until their DONE is posted.
 *   - Threaded mode: sched->jobs is the FIFO of jobs not started yet.
 *   - Deterministic mode: sched->jobs holds every live job in start order.
 *     A started job runs on its own thread, but only while it holds the
 *     turn (job->turn == TURN_JOB) and the stepping thread waits; it gives
 *     the turn back in dm_job_progress and when run() returns. So at most
 *     one of them runs at any time, and the seeded step decides which.
 */
#include <pthread.h>
#include <stdlib.h>

#include "actor/actor.h"
#include "actor/internal.h"
#include "metrics/catalog.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

int dm_job_cancelled(struct dm_job *job)
{
	return atomic_load(&job->cancelled) || atomic_load(&job->sched->stopping) ||
	       atomic_load(&job->owner->stopped);
}

void dm_job_cancel(struct dm_job *job)
{
	atomic_store(&job->cancelled, 1);
}

void *dm_job_arg(const struct dm_job *job)
{
	return job->arg;
}

uint64_t dm_job_id(const struct dm_job *job)
{
	return job->id;
}

void dm_job_set_result(struct dm_job *job, int status, void *payload,
		       void (*free_payload)(void *))
{
	if (job->result && job->free_result)
		job->free_result(job->result);
	job->result_set = 1;
	job->status = status;
	job->result = payload;
	job->free_result = free_payload;
}

void dm_job_set_kind(struct dm_job *job, const char *kind)
{
	atomic_store(&job->kind, kind);
}

void dm_job_free_done(struct dm_job *job)
{
	if (job->arg && job->free_arg)
		job->free_arg(job->arg);
	free(job);
}

int dm_job_start(struct dm_job **out, struct dm_actor *owner, void (*run)(struct dm_job *job),
		 void *arg, void (*free_arg)(void *arg), struct dm_err *err)
{
	struct dm_sched *s = owner->sched;
	struct dm_job *job = dm_xcalloc(1, sizeof(*job));

	if (out)
		*out = NULL;
	job->sched = s;
	job->owner = owner;
	job->run = run;
	job->arg = arg;
	job->free_arg = free_arg;
	job->start_ns = dm_now_monotonic_ns();
	atomic_init(&job->kind, owner->kind);
	atomic_init(&job->cancelled, 0);
	pthread_mutex_lock(&s->lock);
	if (atomic_load(&s->stopping) || atomic_load(&owner->stopped)) {
		pthread_mutex_unlock(&s->lock);
		dm_job_free_done(job);
		return dm_err_set(err, DM_ECANCELED, "cannot start a job for actor '%s': stopped",
				  owner->name);
	}
	job->id = ++s->next_job_id;
	dm_actor_ref(owner);
	link_add_tail(&s->jobs, &job->link);
	s->njobq++;
	s->nlive++;
	pthread_cond_signal(&s->job_cv);
	if (out)
		*out = job;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* Posts job's DONE message and drops the job's reference on its owner. */
static void complete(struct dm_sched *s, struct dm_job *job)
{
	struct dm_actor *owner = job->owner;
	struct dm_msg *m = dm_msg_new(DM_MSG_JOB_DONE, job->result, job->free_result);

	if (job->result_set)
		m->status = job->status;
	else if (dm_job_cancelled(job))
		m->status = DM_ECANCELED;
	job->result = NULL;
	dm_metric_observe_since(&dm_m_job_duration, atomic_load(&job->kind), NULL, job->start_ns);
	m->cookie = job->id;
	m->job = job;
	m->owns_job = 1;
	dm_actor_post(owner, m);
	dm_actor_unref(owner);
	pthread_mutex_lock(&s->lock);
	s->nlive--;
	dm_sched_check_idle(s);
	pthread_mutex_unlock(&s->lock);
}

/* Deterministic mode, on the job's thread: gives the turn back and waits
 * for it again. */
static void yield_turn(struct dm_sched *s, struct dm_job *job, int finished)
{
	pthread_mutex_lock(&s->lock);
	job->finished = finished;
	job->turn = TURN_SCHED;
	pthread_cond_broadcast(&s->baton_cv);
	while (!finished && job->turn != TURN_JOB)
		pthread_cond_wait(&s->baton_cv, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

void dm_job_progress(struct dm_job *job, void *payload, void (*free_payload)(void *))
{
	struct dm_msg *m = dm_msg_new(DM_MSG_JOB_PROGRESS, payload, free_payload);

	m->cookie = job->id;
	m->job = job;
	dm_actor_post(job->owner, m);
	if (job->sched->det)
		yield_turn(job->sched, job, 0);
}

int dm_job_yield(struct dm_job *job)
{
	if (!job->sched->det)
		return 0;
	yield_turn(job->sched, job, 0);
	return 1;
}

static void *det_job_main(void *arg)
{
	struct dm_job *job = arg;

	job->run(job); /* the turn is ours from the start */
	yield_turn(job->sched, job, 1);
	return NULL;
}

void dm_pool_det_step(struct dm_sched *s, struct dm_job *job)
{
	job->turn = TURN_JOB;
	if (!job->started) {
		if (dm_job_cancelled(job)) {
			job->finished = 1;
		} else if (pthread_create(&job->thread, NULL, det_job_main, job) == 0) {
			job->started = 1;
		} else {
			job->finished = 1;
			job->result_set = 1;
			job->status = DM_EUNAVAILABLE;
		}
		if (job->finished)
			job->turn = TURN_SCHED;
	} else {
		pthread_cond_broadcast(&s->baton_cv);
	}
	while (job->turn == TURN_JOB)
		pthread_cond_wait(&s->baton_cv, &s->lock);
	if (!job->finished) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	link_del(&job->link);
	s->njobq--;
	pthread_mutex_unlock(&s->lock);
	if (job->started)
		pthread_join(job->thread, NULL);
	complete(s, job);
}

static void *job_worker_main(void *arg)
{
	struct dm_sched *s = arg;
	struct dm_job *job;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (link_empty(&s->jobs) && !atomic_load(&s->stopping))
			pthread_cond_wait(&s->job_cv, &s->lock);
		if (link_empty(&s->jobs))
			break;
		job = link_entry(s->jobs.next, struct dm_job, link);
		link_del(&job->link);
		s->njobq--;
		pthread_mutex_unlock(&s->lock);
		if (!dm_job_cancelled(job))
			job->run(job);
		complete(s, job);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int dm_pool_start(struct dm_sched *s, struct dm_err *err)
{
	int n = s->njob_workers, rc;

	s->job_workers = dm_xcalloc((size_t)n, sizeof(*s->job_workers));
	for (s->njob_workers = 0; s->njob_workers < n; s->njob_workers++) {
		rc = pthread_create(&s->job_workers[s->njob_workers], NULL, job_worker_main, s);
		if (rc)
			return dm_err_errno(err, rc, "cannot start job worker thread");
	}
	return 0;
}

void dm_pool_stop(struct dm_sched *s)
{
	pthread_mutex_lock(&s->lock);
	if (s->det) {
		/* Every job now sees itself cancelled; run each to its end. */
		while (!link_empty(&s->jobs)) {
			dm_pool_det_step(s, link_entry(s->jobs.next, struct dm_job, link));
			pthread_mutex_lock(&s->lock);
		}
	}
	pthread_cond_broadcast(&s->job_cv);
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; i < s->njob_workers; i++)
		pthread_join(s->job_workers[i], NULL);
	s->njob_workers = 0;
}
