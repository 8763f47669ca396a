/*
 * sched.c - the scheduler: the run queue, the actor worker threads, the
 * deterministic single-threaded mode, idleness and shutdown.
 *
 * Invariants:
 *   - sched->runq holds exactly the QUEUED actors, each once, in the order
 *     they became runnable; nrunq is its length.
 *   - Threaded mode: worker threads take actors off the run queue and run
 *     one message each; they exit once stopping is set and the queue is
 *     empty (after dm_sched_stop has stopped every actor, nothing can join it).
 *   - Deterministic mode: there are no worker threads. Each step draws a
 *     number from a splitmix64 generator seeded by the caller and picks by
 *     it among [queued actors in run-queue order] + [live jobs in start
 *     order]. Everything that decides the order happens on one logical
 *     thread (job threads only run while the stepping thread waits for
 *     them), so the same seed and the same inputs give the same order.
 *   - Idle: nrunq == 0, nrunning == 0 and nlive == 0 (no job queued,
 *     running or paused). idle_cv is broadcast whenever that becomes true.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "actor/actor.h"
#include "actor/internal.h"
#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

void dm_actor_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &attr);
	pthread_condattr_destroy(&attr);
}

void dm_actor_deadline(struct timespec *out, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, out);
	if (timeout_ms <= 0)
		return;
	out->tv_sec += timeout_ms / 1000;
	out->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (out->tv_nsec >= 1000000000L) {
		out->tv_sec++;
		out->tv_nsec -= 1000000000L;
	}
}

static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void dm_sched_enqueue(struct dm_sched *s, struct dm_actor *a)
{
	link_add_tail(&s->runq, &a->rq_link);
	s->nrunq++;
	pthread_cond_signal(&s->work_cv);
}

void dm_sched_dequeue(struct dm_sched *s, struct dm_actor *a)
{
	link_del(&a->rq_link);
	s->nrunq--;
}

static int is_idle(const struct dm_sched *s)
{
	return s->nrunq == 0 && s->nrunning == 0 && s->nlive == 0;
}

void dm_sched_check_idle(struct dm_sched *s)
{
	if (is_idle(s))
		pthread_cond_broadcast(&s->idle_cv);
}

static void *worker_main(void *arg)
{
	struct dm_sched *s = arg;
	struct dm_actor *a;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (link_empty(&s->runq) && !atomic_load(&s->stopping))
			pthread_cond_wait(&s->work_cv, &s->lock);
		if (link_empty(&s->runq))
			break;
		a = link_entry(s->runq.next, struct dm_actor, rq_link);
		dm_sched_dequeue(s, a);
		dm_actor_run_one(s, a); /* releases the lock */
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int dm_sched_new(struct dm_sched **out, const struct dm_sched_opts *opts, struct dm_err *err)
{
	static const struct dm_sched_opts defaults;
	struct dm_sched *s = dm_xcalloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!opts)
		opts = &defaults;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work_cv, NULL);
	pthread_cond_init(&s->job_cv, NULL);
	pthread_cond_init(&s->baton_cv, NULL);
	dm_actor_cond_init(&s->idle_cv);
	s->det = opts->deterministic != 0;
	s->rng = opts->seed;
	atomic_init(&s->stopping, 0);
	link_init(&s->actors);
	link_init(&s->runq);
	link_init(&s->jobs);
	if (!s->det) {
		int n = opts->threads > 0 ? opts->threads : 2;

		s->workers = dm_xcalloc((size_t)n, sizeof(*s->workers));
		for (; s->nworkers < n; s->nworkers++) {
			rc = pthread_create(&s->workers[s->nworkers], NULL, worker_main, s);
			if (rc) {
				dm_sched_free(s);
				return dm_err_errno(err, rc, "cannot start actor worker thread");
			}
		}
		s->njob_workers = opts->job_threads > 0 ? opts->job_threads : 2;
		rc = dm_pool_start(s, err);
		if (rc) {
			dm_sched_free(s);
			return rc;
		}
	}
	*out = s;
	return 0;
}

int dm_sched_step(struct dm_sched *s)
{
	struct dm_link *l;
	size_t k;

	if (!s->det)
		return DM_EINVAL;
	pthread_mutex_lock(&s->lock);
	if (s->nrunq + s->njobq == 0) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	k = (size_t)(rng_next(&s->rng) % (s->nrunq + s->njobq));
	if (k < s->nrunq) {
		struct dm_actor *a;

		for (l = s->runq.next; k > 0; k--)
			l = l->next;
		a = link_entry(l, struct dm_actor, rq_link);
		dm_sched_dequeue(s, a);
		dm_actor_run_one(s, a); /* releases the lock */
	} else {
		for (l = s->jobs.next, k -= s->nrunq; k > 0; k--)
			l = l->next;
		dm_pool_det_step(s, link_entry(l, struct dm_job, link)); /* releases the lock */
	}
	return 1;
}

int dm_sched_run_until_idle(struct dm_sched *s, int timeout_ms)
{
	struct timespec deadline, now;
	int rc = 0;

	dm_actor_deadline(&deadline, timeout_ms);
	if (s->det) {
		while (dm_sched_step(s) == 1) {
			if (timeout_ms < 0)
				continue;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > deadline.tv_sec ||
			    (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec))
				return DM_ETIMEOUT;
		}
		return 0;
	}
	pthread_mutex_lock(&s->lock);
	while (!is_idle(s) && rc != ETIMEDOUT) {
		if (timeout_ms < 0)
			pthread_cond_wait(&s->idle_cv, &s->lock);
		else
			rc = pthread_cond_timedwait(&s->idle_cv, &s->lock, &deadline);
	}
	rc = is_idle(s) ? 0 : DM_ETIMEOUT;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void dm_sched_stop(struct dm_sched *s)
{
	struct dm_actor *a;

	if (atomic_exchange(&s->stopping, 1))
		return;
	pthread_mutex_lock(&s->lock);
	while (!link_empty(&s->actors)) {
		a = link_entry(s->actors.next, struct dm_actor, list_link);
		dm_actor_ref(a);
		pthread_mutex_unlock(&s->lock);
		dm_actor_stop(a);
		dm_actor_unref(a);
		pthread_mutex_lock(&s->lock);
	}
	pthread_cond_broadcast(&s->work_cv);
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	s->nworkers = 0;
	dm_pool_stop(s);
}

void dm_sched_free(struct dm_sched *s)
{
	if (!s)
		return;
	dm_sched_stop(s);
	free(s->workers);
	free(s->job_workers);
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->job_cv);
	pthread_cond_destroy(&s->idle_cv);
	pthread_cond_destroy(&s->baton_cv);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
