/*
 * test_actor.c - the actor runtime: mailbox order, one thread per actor,
 * every request answered exactly once, call deadlines, jobs, seeded
 * deterministic scheduling, shutdown, and a threaded stress run.
 *
 * Invariant: every test frees what it creates, so an ASan run also proves
 * that nothing leaks (late replies, refused messages, cancelled jobs).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "actor/actor.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

static struct dm_sched *new_sched(int det, uint64_t seed, int threads, int job_threads)
{
	struct dm_sched_opts o = {det, seed, threads, job_threads};
	struct dm_sched *s = NULL;
	struct dm_err err;

	assert_int_equal(dm_sched_new(&s, &o, &err), 0);
	return s;
}

static struct dm_actor *new_actor(struct dm_sched *s, const char *name, dm_actor_handler h,
				  void *user, void (*free_user)(void *))
{
	struct dm_actor *a = NULL;
	struct dm_err err;

	assert_int_equal(dm_actor_new(&a, s, name, h, user, free_user, &err), 0);
	return a;
}

static void sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

	nanosleep(&ts, NULL);
}

static atomic_int payload_frees;

static void count_free(void *p)
{
	atomic_fetch_add(&payload_frees, 1);
	free(p);
}

static int *new_int(int v)
{
	int *p = dm_xmalloc(sizeof(*p));

	*p = v;
	return p;
}

/* ---- per-actor FIFO order (threaded) ---- */

#define FIFO_SENDERS 3
#define FIFO_ACTORS 4
#define FIFO_PER 1000

struct fifo_state {
	int next[FIFO_SENDERS];
	int bad;
	int handled;
};

static int fifo_handle(struct dm_actor *self, struct dm_msg *m)
{
	struct fifo_state *st = dm_actor_user(self);
	int sender = m->type / 1000000, seq = m->type % 1000000;

	if (seq != st->next[sender])
		st->bad++;
	st->next[sender] = seq + 1;
	st->handled++;
	return 0;
}

struct fifo_poster {
	int id;
	struct dm_actor **actors;
};

static void *fifo_post_main(void *arg)
{
	struct fifo_poster *p = arg;

	for (int seq = 0; seq < FIFO_PER; seq++)
		for (int i = 0; i < FIFO_ACTORS; i++)
			dm_actor_post(p->actors[i], dm_msg_new(p->id * 1000000 + seq, NULL, NULL));
	return NULL;
}

static void test_mailbox_is_fifo_per_sender(void **state)
{
	struct dm_sched *s = new_sched(0, 0, 4, 1);
	struct fifo_state st[FIFO_ACTORS];
	struct dm_actor *actors[FIFO_ACTORS];
	struct fifo_poster posters[FIFO_SENDERS];
	pthread_t th[FIFO_SENDERS];

	memset(st, 0, sizeof(st));
	for (int i = 0; i < FIFO_ACTORS; i++)
		actors[i] = new_actor(s, "fifo", fifo_handle, &st[i], NULL);
	for (int i = 0; i < FIFO_SENDERS; i++) {
		posters[i] = (struct fifo_poster){i, actors};
		assert_int_equal(pthread_create(&th[i], NULL, fifo_post_main, &posters[i]), 0);
	}
	for (int i = 0; i < FIFO_SENDERS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(dm_sched_run_until_idle(s, 30000), 0);
	for (int i = 0; i < FIFO_ACTORS; i++) {
		assert_int_equal(st[i].bad, 0);
		assert_int_equal(st[i].handled, FIFO_SENDERS * FIFO_PER);
		for (int k = 0; k < FIFO_SENDERS; k++)
			assert_int_equal(st[i].next[k], FIFO_PER);
	}
	for (int i = 0; i < FIFO_ACTORS; i++)
		dm_actor_unref(actors[i]);
	dm_sched_free(s);
}

/* ---- never two threads inside one actor ---- */

#define EXCL_ACTORS 16
#define EXCL_PER 300

struct excl_state {
	atomic_int inside;
	int handled; /* written only inside the handler */
};

static atomic_int excl_overlaps, excl_parallel, excl_max_parallel;

static int excl_handle(struct dm_actor *self, struct dm_msg *m)
{
	struct excl_state *st = dm_actor_user(self);
	int now, max;

	if (atomic_fetch_add(&st->inside, 1) != 0)
		atomic_fetch_add(&excl_overlaps, 1);
	now = atomic_fetch_add(&excl_parallel, 1) + 1;
	max = atomic_load(&excl_max_parallel);
	while (now > max && !atomic_compare_exchange_weak(&excl_max_parallel, &max, now))
		;
	/* Widen the window in which an overlap would show, and wait (boundedly)
	 * until two handlers have run at once, so the test has teeth. */
	for (int i = 0; i < 3 || (i < 2000 && atomic_load(&excl_max_parallel) < 2); i++)
		sched_yield();
	st->handled++;
	atomic_fetch_sub(&excl_parallel, 1);
	atomic_fetch_sub(&st->inside, 1);
	return 0;
}

static void *excl_post_main(void *arg)
{
	struct dm_actor **actors = arg;

	for (int k = 0; k < EXCL_PER / 2; k++)
		for (int i = 0; i < EXCL_ACTORS; i++)
			dm_actor_post(actors[i], dm_msg_new(k, NULL, NULL));
	return NULL;
}

static void test_one_thread_inside_an_actor_at_a_time(void **state)
{
	struct dm_sched *s = new_sched(0, 0, 8, 1);
	struct excl_state st[EXCL_ACTORS];
	struct dm_actor *actors[EXCL_ACTORS];
	pthread_t th[2];

	memset(st, 0, sizeof(st));
	atomic_store(&excl_overlaps, 0);
	atomic_store(&excl_max_parallel, 0);
	for (int i = 0; i < EXCL_ACTORS; i++)
		actors[i] = new_actor(s, "excl", excl_handle, &st[i], NULL);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, excl_post_main, actors), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(dm_sched_run_until_idle(s, 60000), 0);
	assert_int_equal(atomic_load(&excl_overlaps), 0);
	/* The workers did run handlers in parallel, so an overlap could show. */
	assert_true(atomic_load(&excl_max_parallel) >= 2);
	for (int i = 0; i < EXCL_ACTORS; i++)
		assert_int_equal(st[i].handled, EXCL_PER);
	for (int i = 0; i < EXCL_ACTORS; i++)
		dm_actor_unref(actors[i]);
	dm_sched_free(s);
}

/* ---- every request is answered exactly once ---- */

enum { REQ_ECHO, REQ_NOANSWER, REQ_FAIL, REQ_TWICE, REQ_KEEP, REQ_RELEASE };

struct target_state {
	struct dm_msg *kept;
	atomic_int nkept;
	int second_reply_rc;
	int frees;
};

static void target_free(void *user)
{
	struct target_state *st = user;

	st->frees++;
	dm_msg_free(st->kept); /* an unanswered request: answered by the runtime */
	st->kept = NULL;
}

static int target_handle(struct dm_actor *self, struct dm_msg *m)
{
	struct target_state *st = dm_actor_user(self);

	switch (m->type) {
	case REQ_ECHO:
		return dm_msg_reply(m, 0, new_int(m->payload ? *(int *)m->payload : 7), count_free);
	case REQ_NOANSWER:
		return 0;
	case REQ_FAIL:
		return DM_EIO;
	case REQ_TWICE:
		dm_msg_reply(m, 0, NULL, NULL);
		st->second_reply_rc = dm_msg_reply(m, 0, new_int(1), count_free);
		return 0;
	case REQ_KEEP:
		st->kept = m;
		atomic_fetch_add(&st->nkept, 1);
		return DM_ACTOR_KEEP;
	case REQ_RELEASE:
		dm_msg_reply(st->kept, 0, new_int(99), count_free);
		dm_msg_free(st->kept);
		st->kept = NULL;
		return 0;
	}
	return DM_EINVAL;
}

#define COOKIES 16

struct client_state {
	int count[COOKIES];
	int status[COOKIES];
	int other;
};

static int client_handle(struct dm_actor *self, struct dm_msg *m)
{
	struct client_state *st = dm_actor_user(self);

	if (m->type != DM_MSG_REPLY || m->cookie >= COOKIES) {
		st->other++;
		return 0;
	}
	st->count[m->cookie]++;
	st->status[m->cookie] = m->status;
	return 0;
}

static void test_every_request_answered_once_even_when_stopped(void **state)
{
	struct dm_sched *s = new_sched(1, 42, 0, 0);
	struct target_state ts = {0};
	struct client_state cs = {0};
	struct dm_actor *target = new_actor(s, "target", target_handle, &ts, target_free);
	struct dm_actor *client = new_actor(s, "client", client_handle, &cs, NULL);
	struct dm_ticket *t1 = NULL, *t2 = NULL;
	struct dm_msg *reply = NULL;
	struct dm_err err;
	int before = atomic_load(&payload_frees);

	assert_int_equal(dm_actor_request(target, dm_msg_new(REQ_ECHO, NULL, NULL), client, 1), 0);
	assert_int_equal(dm_actor_request(target, dm_msg_new(REQ_NOANSWER, NULL, NULL), client, 2), 0);
	assert_int_equal(dm_actor_request(target, dm_msg_new(REQ_FAIL, NULL, NULL), client, 3), 0);
	assert_int_equal(dm_actor_request(target, dm_msg_new(REQ_TWICE, NULL, NULL), client, 4), 0);
	assert_int_equal(dm_actor_request(target, dm_msg_new(REQ_KEEP, NULL, NULL), client, 5), 0);
	assert_int_equal(dm_sched_run_until_idle(s, 10000), 0);
	assert_int_equal(cs.status[1], 0);
	assert_int_equal(cs.status[2], DM_EINTERNAL);
	assert_int_equal(cs.status[3], DM_EIO);
	assert_int_equal(cs.status[4], 0);
	assert_int_equal(ts.second_reply_rc, DM_EINVAL);
	assert_int_equal(cs.count[5], 0); /* kept, not answered yet */

	/* Pending when the actor stops: async requests and tickets. */
	for (uint64_t c = 6; c < COOKIES; c++)
		assert_int_equal(dm_actor_request(target, dm_msg_new(REQ_ECHO, NULL, NULL), client, c), 0);
	assert_int_equal(dm_actor_send_request(&t1, target, dm_msg_new(REQ_ECHO, NULL, NULL)), 0);
	assert_int_equal(dm_ticket_wait(&reply, t1, 0, &err), DM_ETIMEOUT);
	dm_actor_stop(target);
	dm_actor_stop(target); /* idempotent */
	assert_int_equal(ts.frees, 1);
	assert_int_equal(dm_sched_run_until_idle(s, 10000), 0);

	assert_int_equal(cs.status[5], DM_ECANCELED);
	for (int c = 6; c < COOKIES; c++)
		assert_int_equal(cs.status[c], DM_ECANCELED);
	for (int c = 1; c < COOKIES; c++)
		assert_int_equal(cs.count[c], 1);
	assert_int_equal(cs.other, 0);

	assert_int_equal(dm_ticket_wait(&reply, t1, 0, &err), DM_ECANCELED);
	assert_non_null(reply);
	assert_non_null(strstr(err.msg, "stopped"));
	dm_msg_free(reply);
	assert_int_equal(dm_ticket_wait(&reply, t1, 0, &err), DM_EINVAL); /* only one answer */
	dm_ticket_free(t1);

	/* After the stop: refused at once, still answered exactly once. */
	assert_int_equal(dm_actor_post(target, dm_msg_new(REQ_ECHO, NULL, NULL)), DM_ECANCELED);
	assert_int_equal(dm_actor_send_request(&t2, target, dm_msg_new(REQ_ECHO, NULL, NULL)), 0);
	assert_int_equal(dm_ticket_wait(&reply, t2, 0, &err), DM_ECANCELED);
	dm_msg_free(reply);
	dm_ticket_free(t2);

	/* The echo's payload and the rejected second reply's were freed. */
	assert_int_equal(atomic_load(&payload_frees) - before, 2);
	assert_int_equal(ts.frees, 1);
	dm_actor_unref(target);
	dm_actor_unref(client);
	dm_sched_free(s);
}

static atomic_int gate_entered, gate_open;

/* The first request holds the actor inside its handler until the test has
 * stopped it; the others are then still in the mailbox. */
static int gated_echo_handle(struct dm_actor *self, struct dm_msg *m)
{
	atomic_store(&gate_entered, 1);
	for (int i = 0; i < 10000 && !atomic_load(&gate_open); i++)
		sleep_us(1000);
	return dm_msg_reply(m, 0, NULL, NULL);
}

#define STOP_REQS 300

static void test_threaded_stop_answers_pending_requests(void **state)
{
	struct dm_sched *s = new_sched(0, 0, 1, 1);
	struct dm_actor *a = new_actor(s, "gated", gated_echo_handle, NULL, NULL);
	struct dm_ticket *t[STOP_REQS];
	struct dm_msg *reply;
	struct dm_err err;
	int ok = 0, canceled = 0;

	atomic_store(&gate_entered, 0);
	atomic_store(&gate_open, 0);
	for (int i = 0; i < STOP_REQS; i++)
		assert_int_equal(dm_actor_send_request(&t[i], a, dm_msg_new(0, NULL, NULL)), 0);
	for (int i = 0; i < 10000 && !atomic_load(&gate_entered); i++)
		sleep_us(1000);
	dm_actor_stop(a); /* while its handler runs */
	atomic_store(&gate_open, 1);
	for (int i = 0; i < STOP_REQS; i++) {
		int rc = dm_ticket_wait(&reply, t[i], 5000, &err);

		assert_true(rc == 0 || rc == DM_ECANCELED);
		assert_non_null(reply);
		ok += rc == 0;
		canceled += rc == DM_ECANCELED;
		dm_msg_free(reply);
		dm_ticket_free(t[i]);
	}
	/* The running handler still answered its request; the rest were refused. */
	assert_int_equal(ok, 1);
	assert_int_equal(canceled, STOP_REQS - 1);
	dm_actor_unref(a);
	dm_sched_free(s);
}

/* ---- call deadlines ---- */

static int call_inside_rc = 1;

static int caller_handle(struct dm_actor *self, struct dm_msg *m)
{
	struct dm_actor *other = m->payload;
	struct dm_msg *reply = NULL;
	struct dm_err err;

	call_inside_rc = dm_actor_call(&reply, other, dm_msg_new(REQ_ECHO, NULL, NULL), 100, &err);
	if (reply)
		call_inside_rc = 1;
	dm_msg_free(reply);
	return 0;
}

static void test_call_timeout_and_late_reply_discarded(void **state)
{
	struct dm_sched *s = new_sched(0, 0, 2, 1);
	struct target_state ts = {0};
	struct dm_actor *a = new_actor(s, "target", target_handle, &ts, target_free);
	struct dm_actor *b = new_actor(s, "caller", caller_handle, NULL, NULL);
	struct dm_msg *reply = NULL;
	struct dm_err err;
	int64_t t0, ms;
	int before = atomic_load(&payload_frees);

	/* A plain call gets its reply and owns it. */
	assert_int_equal(dm_actor_call(&reply, a, dm_msg_new(REQ_ECHO, new_int(5), free), 5000, &err), 0);
	assert_non_null(reply);
	assert_int_equal(reply->type, DM_MSG_REPLY);
	assert_int_equal(*(int *)reply->payload, 5);
	dm_msg_free(reply);
	assert_int_equal(atomic_load(&payload_frees) - before, 1);

	/* The actor keeps the request: the caller gives up at its deadline. */
	t0 = dm_now_monotonic_ns();
	assert_int_equal(dm_actor_call(&reply, a, dm_msg_new(REQ_KEEP, NULL, NULL), 50, &err),
			 DM_ETIMEOUT);
	ms = (dm_now_monotonic_ns() - t0) / 1000000;
	assert_null(reply);
	assert_int_equal(err.code, DM_ETIMEOUT);
	assert_non_null(strstr(err.msg, "timed out"));
	assert_true(ms >= 45 && ms < 5000);

	/* The late reply (with a payload) is freed, not delivered, not leaked. */
	assert_int_equal(dm_actor_post(a, dm_msg_new(REQ_RELEASE, NULL, NULL)), 0);
	assert_int_equal(dm_sched_run_until_idle(s, 5000), 0);
	assert_null(ts.kept);
	assert_int_equal(atomic_load(&payload_frees) - before, 2);

	/* Waiting from inside a handler is refused instead of deadlocking. */
	assert_int_equal(dm_actor_post(b, dm_msg_new(0, a, NULL)), 0);
	assert_int_equal(dm_sched_run_until_idle(s, 5000), 0);
	assert_int_equal(call_inside_rc, DM_EINVAL);

	/* A stopped actor answers at once. */
	dm_actor_stop(a);
	assert_int_equal(dm_actor_call(&reply, a, dm_msg_new(REQ_ECHO, NULL, NULL), 5000, &err),
			 DM_ECANCELED);
	dm_msg_free(reply);
	dm_actor_unref(a);
	dm_actor_unref(b);
	dm_sched_free(s);
}

/* ---- jobs ---- */

enum { JOB_START_COUNT, JOB_START_SPIN };

struct owner_state {
	struct dm_job *spin;
	uint64_t count_id, spin_id;
	int progress[8];
	int nprogress;
	int no_cancel;
	atomic_int spin_progress;
	int count_done, spin_done;
	int count_status, spin_status;
	int count_result;
	int start_rc;
};

static atomic_int arg_frees;

static void count_arg_free(void *p)
{
	atomic_fetch_add(&arg_frees, 1);
	free(p);
}

static void count_job(struct dm_job *job)
{
	int base = *(int *)dm_job_arg(job);

	for (int i = 1; i <= 3; i++)
		dm_job_progress(job, new_int(base + i), free);
	dm_job_set_result(job, 0, new_int(42), free);
}

static void spin_job(struct dm_job *job)
{
	dm_job_progress(job, NULL, NULL);
	for (int i = 0; i < 10000 && !dm_job_cancelled(job); i++)
		sleep_us(1000);
}

static int owner_handle(struct dm_actor *self, struct dm_msg *m)
{
	struct owner_state *st = dm_actor_user(self);
	struct dm_job *job = NULL;

	switch (m->type) {
	case JOB_START_COUNT:
		st->start_rc = dm_job_start(&job, self, count_job, new_int(10), count_arg_free, NULL);
		if (job)
			st->count_id = dm_job_id(job);
		return 0;
	case JOB_START_SPIN:
		st->start_rc = dm_job_start(&st->spin, self, spin_job, new_int(0), count_arg_free, NULL);
		if (st->spin)
			st->spin_id = dm_job_id(st->spin);
		return 0;
	case DM_MSG_JOB_PROGRESS:
		if (m->cookie == st->spin_id) {
			atomic_fetch_add(&st->spin_progress, 1);
			if (!st->no_cancel)
				dm_job_cancel(m->job);
		} else if (st->nprogress < 8) {
			st->progress[st->nprogress++] = *(int *)m->payload;
		}
		return 0;
	case DM_MSG_JOB_DONE:
		if (m->cookie == st->spin_id) {
			st->spin_done++;
			st->spin_status = m->status;
			st->spin = NULL;
		} else {
			st->count_done++;
			st->count_status = m->status;
			st->count_result = m->payload ? *(int *)m->payload : -1;
		}
		return 0;
	}
	return DM_EINVAL;
}

static void test_jobs_report_progress_and_done_and_cancel(void **state)
{
	struct dm_sched *s = new_sched(0, 0, 2, 2);
	struct owner_state st = {0};
	struct dm_actor *a = new_actor(s, "owner", owner_handle, &st, NULL);
	int before = atomic_load(&arg_frees);

	assert_int_equal(dm_actor_post(a, dm_msg_new(JOB_START_COUNT, NULL, NULL)), 0);
	assert_int_equal(dm_actor_post(a, dm_msg_new(JOB_START_SPIN, NULL, NULL)), 0);
	assert_int_equal(dm_sched_run_until_idle(s, 20000), 0);
	assert_int_equal(st.start_rc, 0);
	assert_int_equal(st.nprogress, 3);
	assert_int_equal(st.progress[0], 11);
	assert_int_equal(st.progress[1], 12);
	assert_int_equal(st.progress[2], 13);
	assert_int_equal(st.count_done, 1);
	assert_int_equal(st.count_status, 0);
	assert_int_equal(st.count_result, 42);
	assert_int_equal(st.spin_progress, 1);
	assert_int_equal(st.spin_done, 1);
	assert_int_equal(st.spin_status, DM_ECANCELED);
	assert_int_equal(atomic_load(&arg_frees) - before, 2);

	/* A job still running at shutdown is cancelled and its DONE freed. */
	st.no_cancel = 1;
	assert_int_equal(dm_actor_post(a, dm_msg_new(JOB_START_SPIN, NULL, NULL)), 0);
	for (int i = 0; i < 5000 && atomic_load(&st.spin_progress) < 2; i++)
		sleep_us(1000);
	assert_int_equal(atomic_load(&st.spin_progress), 2);
	assert_int_equal(dm_sched_run_until_idle(s, 20), DM_ETIMEOUT); /* the job runs on */
	assert_int_equal(atomic_load(&arg_frees) - before, 2);
	dm_actor_unref(a);
	dm_sched_free(s);
	assert_int_equal(atomic_load(&arg_frees) - before, 3);
}

/* ---- deterministic mode ---- */

struct trace {
	struct dm_buf buf;
	struct dm_actor *actors[3];
};

static struct trace *cur_trace;

static void trace_job(struct dm_job *job)
{
	for (int k = 0; k < 3; k++) {
		dm_buf_addf(&cur_trace->buf, "j%d.%d ", (int)dm_job_id(job), k);
		dm_job_progress(job, NULL, NULL);
	}
}

static int trace_handle(struct dm_actor *self, struct dm_msg *m)
{
	struct trace *t = dm_actor_user(self);
	int idx = dm_actor_name(self)[0] - 'A';

	if (m->type == DM_MSG_JOB_PROGRESS || m->type == DM_MSG_JOB_DONE) {
		dm_buf_addf(&t->buf, "%s:%s%d ", dm_actor_name(self),
			    m->type == DM_MSG_JOB_DONE ? "done" : "prog", (int)m->cookie);
		return 0;
	}
	dm_buf_addf(&t->buf, "%s:%d ", dm_actor_name(self), m->type);
	if (m->type % 3 == 0 && m->type < 100)
		dm_actor_post(t->actors[(idx + 1) % 3], dm_msg_new(m->type + 100, NULL, NULL));
	if (idx == 0 && (m->type == 1 || m->type == 4))
		assert_int_equal(dm_job_start(NULL, self, trace_job, NULL, NULL, NULL), 0);
	return 0;
}

static char *run_trace(uint64_t seed)
{
	struct dm_sched *s = new_sched(1, seed, 0, 0);
	struct trace t;
	static const char *names[] = {"A", "B", "C"};
	char *out;

	dm_buf_init(&t.buf, 0);
	cur_trace = &t;
	for (int i = 0; i < 3; i++)
		t.actors[i] = new_actor(s, names[i], trace_handle, &t, NULL);
	for (int k = 0; k < 6; k++)
		for (int i = 0; i < 3; i++)
			dm_actor_post(t.actors[i], dm_msg_new(k, NULL, NULL));
	assert_int_equal(dm_sched_run_until_idle(s, 30000), 0);
	for (int i = 0; i < 3; i++)
		dm_actor_unref(t.actors[i]);
	dm_sched_free(s);
	cur_trace = NULL;
	out = dm_buf_detach(&t.buf, NULL);
	assert_non_null(out);
	return out;
}

/* 1 when, in trace, actor name's entries for plain messages come in FIFO order. */
static int trace_fifo_ok(const char *trace, char name)
{
	int last = -1, v;
	char pat[4] = {name, ':', 0, 0};

	for (const char *p = strstr(trace, pat); p; p = strstr(p + 1, pat)) {
		if (p[2] < '0' || p[2] > '9')
			continue; /* job messages */
		v = (int)strtol(p + 2, NULL, 10);
		if (v < 100 && v < last)
			return 0;
		if (v < 100)
			last = v;
	}
	return 1;
}

static void test_deterministic_same_seed_same_trace(void **state)
{
	char *a = run_trace(7), *b = run_trace(7), *c = run_trace(8);
	int interleaved = 0;

	assert_string_equal(a, b);
	assert_true(strcmp(a, c) != 0);
	/* Both jobs ran with their progress points, and the runtime
	 * interleaved them with message deliveries under the seed. */
	assert_non_null(strstr(a, "j1.2 "));
	assert_non_null(strstr(a, "j2.2 "));
	assert_non_null(strstr(a, "A:done1 "));
	assert_non_null(strstr(a, "A:done2 "));
	for (const char *p = strstr(a, "j1.0 "); p && !interleaved; p = strchr(p + 1, ' ')) {
		if (!strncmp(p, " j1.2", 5))
			break;
		interleaved = p[1] == 'B' || p[1] == 'C';
	}
	assert_true(interleaved);
	for (char n = 'A'; n <= 'C'; n++)
		assert_true(trace_fifo_ok(a, n) && trace_fifo_ok(c, n));
	free(a);
	free(b);
	free(c);
}

static void test_deterministic_seeds_give_different_traces(void **state)
{
	char *traces[8];
	int distinct = 0;

	for (int i = 0; i < 8; i++)
		traces[i] = run_trace(1000 + (uint64_t)i);
	for (int i = 0; i < 8; i++) {
		int seen = 0;

		for (int j = 0; j < i; j++)
			seen |= !strcmp(traces[i], traces[j]);
		distinct += !seen;
	}
	assert_true(distinct >= 6);
	for (int i = 0; i < 8; i++)
		free(traces[i]);
}

static void test_deterministic_tickets_are_polled(void **state)
{
	struct dm_sched *s = new_sched(1, 3, 0, 0);
	struct target_state ts = {0};
	struct dm_actor *a = new_actor(s, "target", target_handle, &ts, target_free);
	struct dm_ticket *t = NULL;
	struct dm_msg *reply = NULL;
	struct dm_err err;

	assert_int_equal(dm_actor_call(&reply, a, dm_msg_new(REQ_ECHO, NULL, NULL), 10, &err),
			 DM_EUNSUPPORTED);
	assert_int_equal(dm_sched_step(s), 0); /* the refused call left nothing queued */
	assert_int_equal(dm_actor_send_request(&t, a, dm_msg_new(REQ_ECHO, new_int(3), free)), 0);
	assert_int_equal(dm_ticket_wait(&reply, t, 0, &err), DM_ETIMEOUT);
	assert_null(reply);
	assert_int_equal(dm_sched_step(s), 1);
	assert_int_equal(dm_sched_step(s), 0);
	assert_int_equal(dm_ticket_wait(&reply, t, 0, &err), 0);
	assert_int_equal(*(int *)reply->payload, 3);
	dm_msg_free(reply);
	dm_ticket_free(t);
	dm_actor_unref(a);
	dm_sched_free(s);
}

/* ---- shutdown ---- */

struct blocked_call {
	struct dm_actor *a;
	int rc;
	int64_t ms;
};

static void *blocked_call_main(void *arg)
{
	struct blocked_call *bc = arg;
	struct dm_msg *reply = NULL;
	struct dm_err err;
	int64_t t0 = dm_now_monotonic_ns();

	bc->rc = dm_actor_call(&reply, bc->a, dm_msg_new(REQ_KEEP, NULL, NULL), 20000, &err);
	bc->ms = (dm_now_monotonic_ns() - t0) / 1000000;
	dm_msg_free(reply);
	return NULL;
}

static void test_shutdown_answers_cancels_and_frees(void **state)
{
	struct dm_sched *s = new_sched(0, 0, 2, 1);
	struct target_state ts = {0};
	struct owner_state os = {0};
	struct dm_actor *a = new_actor(s, "target", target_handle, &ts, target_free);
	struct dm_actor *o = new_actor(s, "owner", owner_handle, &os, NULL);
	struct blocked_call bc = {a, 1, 0};
	struct dm_actor *late = NULL;
	struct dm_err err;
	pthread_t th;
	int before = atomic_load(&arg_frees);

	os.no_cancel = 1; /* progress does not cancel the job: shutdown must */
	assert_int_equal(pthread_create(&th, NULL, blocked_call_main, &bc), 0);
	assert_int_equal(dm_actor_post(o, dm_msg_new(JOB_START_SPIN, NULL, NULL)), 0);
	for (int i = 0; i < 5000 && (!atomic_load(&ts.nkept) || !atomic_load(&os.spin_progress)); i++)
		sleep_us(1000);
	assert_int_equal(atomic_load(&ts.nkept), 1);
	assert_int_equal(atomic_load(&os.spin_progress), 1); /* the job is running */
	for (int i = 0; i < 20; i++)
		dm_actor_post(a, dm_msg_new(REQ_NOANSWER, NULL, NULL));
	dm_sched_free(s);
	pthread_join(th, NULL);
	assert_int_equal(bc.rc, DM_ECANCELED);
	assert_true(bc.ms < 10000);
	assert_int_equal(ts.frees, 1);
	assert_int_equal(atomic_load(&arg_frees) - before, 1);
	dm_actor_unref(a);
	dm_actor_unref(o);

	/* A stopped scheduler refuses new actors. */
	s = new_sched(1, 0, 0, 0);
	dm_sched_stop(s);
	assert_int_equal(dm_actor_new(&late, s, "late", target_handle, NULL, NULL, &err),
			 DM_ECANCELED);
	assert_null(late);
	dm_sched_free(s);
}

/* ---- stress ---- */

#define STRESS_ACTORS 32
#define STRESS_POSTERS 4
#define STRESS_PER 2500
#define STRESS_HOPS 2

static atomic_int stress_handled, stress_jobs_done, stress_calls_ok;

struct stress_ctx {
	struct dm_actor *actors[STRESS_ACTORS];
};

static void stress_job(struct dm_job *job)
{
	dm_job_progress(job, NULL, NULL);
}

static int stress_handle(struct dm_actor *self, struct dm_msg *m)
{
	struct stress_ctx *ctx = dm_actor_user(self);
	int idx = (int)strtol(dm_actor_name(self), NULL, 10);
	int n;

	if (m->type == DM_MSG_JOB_DONE) {
		atomic_fetch_add(&stress_jobs_done, 1);
		return 0;
	}
	if (m->type == DM_MSG_JOB_PROGRESS)
		return 0;
	n = atomic_fetch_add(&stress_handled, 1);
	if (dm_msg_is_request(m))
		return dm_msg_reply(m, 0, NULL, NULL);
	if (m->type > 0)
		dm_actor_post(ctx->actors[(idx * 7 + 1) % STRESS_ACTORS],
			      dm_msg_new(m->type - 1, NULL, NULL));
	if (n % 500 == 0)
		dm_job_start(NULL, self, stress_job, NULL, NULL, NULL);
	return 0;
}

struct stress_poster {
	struct stress_ctx *ctx;
	unsigned seed;
};

static void *stress_post_main(void *arg)
{
	struct stress_poster *p = arg;
	unsigned x = p->seed;
	struct dm_msg *reply;
	struct dm_err err;

	for (int i = 0; i < STRESS_PER; i++) {
		x = x * 1103515245u + 12345u;
		struct dm_actor *a = p->ctx->actors[(x >> 8) % STRESS_ACTORS];

		if (i % 100 == 0) {
			if (dm_actor_call(&reply, a, dm_msg_new(0, NULL, NULL), 30000, &err) == 0)
				atomic_fetch_add(&stress_calls_ok, 1);
			dm_msg_free(reply);
		} else {
			dm_actor_post(a, dm_msg_new(STRESS_HOPS, NULL, NULL));
		}
	}
	return NULL;
}

static void test_stress_thousands_of_messages(void **state)
{
	struct dm_sched *s = new_sched(0, 0, 8, 2);
	struct stress_ctx ctx;
	struct stress_poster p[STRESS_POSTERS];
	pthread_t th[STRESS_POSTERS];
	int calls = STRESS_POSTERS * (STRESS_PER / 100);
	int posts = STRESS_POSTERS * STRESS_PER - calls;
	char name[16];

	atomic_store(&stress_handled, 0);
	atomic_store(&stress_jobs_done, 0);
	atomic_store(&stress_calls_ok, 0);
	for (int i = 0; i < STRESS_ACTORS; i++) {
		snprintf(name, sizeof(name), "%d", i);
		ctx.actors[i] = new_actor(s, name, stress_handle, &ctx, NULL);
	}
	for (int i = 0; i < STRESS_POSTERS; i++) {
		p[i] = (struct stress_poster){&ctx, 17u * (unsigned)i + 1u};
		assert_int_equal(pthread_create(&th[i], NULL, stress_post_main, &p[i]), 0);
	}
	for (int i = 0; i < STRESS_POSTERS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(dm_sched_run_until_idle(s, 120000), 0);
	assert_int_equal(atomic_load(&stress_calls_ok), calls);
	assert_int_equal(atomic_load(&stress_handled), calls + posts * (STRESS_HOPS + 1));
	assert_true(atomic_load(&stress_jobs_done) > 0);
	for (int i = 0; i < STRESS_ACTORS; i++)
		dm_actor_unref(ctx.actors[i]);
	dm_sched_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mailbox_is_fifo_per_sender),
		cmocka_unit_test(test_one_thread_inside_an_actor_at_a_time),
		cmocka_unit_test(test_every_request_answered_once_even_when_stopped),
		cmocka_unit_test(test_threaded_stop_answers_pending_requests),
		cmocka_unit_test(test_call_timeout_and_late_reply_discarded),
		cmocka_unit_test(test_jobs_report_progress_and_done_and_cancel),
		cmocka_unit_test(test_deterministic_same_seed_same_trace),
		cmocka_unit_test(test_deterministic_seeds_give_different_traces),
		cmocka_unit_test(test_deterministic_tickets_are_polled),
		cmocka_unit_test(test_shutdown_answers_cancels_and_frees),
		cmocka_unit_test(test_stress_thousands_of_messages),
	};

	dm_log_setup(NULL, DM_LOG_ERROR); /* the runtime warns about the tests' bad handlers */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
