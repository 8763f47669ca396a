/*
 * space.c - the space actor: one garbage collection at a time, as a job
 * (space.h).
 *
 * States: IDLE --GC--> COLLECTING --job done--> IDLE, and IDLE --GARBAGE
 * past the threshold--> COLLECTING (automatic: no request waits). A GC
 * request in COLLECTING is answered `busy` at once; LAST (what the last
 * collection found) is answered at once in both; GARBAGE only counts in
 * COLLECTING. The request that started the job
 * is kept and answered with the job's figures when its DONE message
 * arrives; a stopped scheduler answers it `canceled`.
 *
 * Invariant: `running`, `waiting` and `last` are touched by the handler only.
 */
#include "server/space/space.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

enum { SP_GC = 1, SP_LAST = 2, SP_GARBAGE = 3 };

struct gc_args {
	struct dm_store *store;
	bool dry_run;
};

struct gc_result {
	struct dm_store_gc_stats st;
	char msg[DM_ERR_MSG_MAX];
};

struct state {
	struct dm_space_env env;
	struct dm_job *running;
	struct dm_msg *waiting; /* the request the running job answers */
	bool running_dry;
	struct dm_space_last last;
};

struct dm_space {
	struct dm_actor *actor;
	struct dm_store *store; /* constant after open */
};

static void run_gc(struct dm_job *job)
{
	struct gc_args *a = dm_job_arg(job);
	struct gc_result *res = calloc(1, sizeof(*res));
	struct dm_store_gc_opts o;
	struct dm_err err;
	int rc;

	if (!res) {
		dm_job_set_result(job, DM_ENOMEM, NULL, NULL);
		return;
	}
	dm_err_clear(&err);
	dm_store_gc_opts_default(&o);
	o.dry_run = a->dry_run;
	rc = dm_store_gc(a->store, &o, &res->st, &err);
	if (rc)
		snprintf(res->msg, sizeof(res->msg), "%s", err.msg);
	if (rc)
		dm_warn("garbage collection failed: %s", err.msg);
	else
		dm_info("garbage collection%s: %llu of %llu objects %s (%llu bytes), %llu packs "
			"rewritten (%llu bytes copied), %llu bytes of disk %s, %llu ms, %llu bytes "
			"of mark sets",
			a->dry_run ? " (dry run)" : "", (unsigned long long)res->st.freed,
			(unsigned long long)res->st.objects, a->dry_run ? "unreachable" : "freed",
			(unsigned long long)res->st.freed_bytes, (unsigned long long)res->st.packs,
			(unsigned long long)res->st.copied_bytes,
			(unsigned long long)res->st.disk_freed,
			a->dry_run ? "would be freed" : "freed", (unsigned long long)res->st.ms,
			(unsigned long long)res->st.mark_bytes);
	dm_job_set_result(job, rc, res, free);
}

/* Starts the job of a collection (a, taken); msg, the request it answers,
 * may be NULL (an automatic one). */
static int start_gc(struct state *st, struct dm_actor *self, struct gc_args *a, struct dm_msg *msg,
		    struct dm_err *err)
{
	bool dry = a->dry_run;
	int rc = dm_job_start(&st->running, self, run_gc, a, free, err);

	if (rc) {
		st->running = NULL;
		return rc;
	}
	st->waiting = msg;
	st->running_dry = dry;
	if (!dry)
		st->last.garbage = 0; /* what is garbage now, this one frees */
	return 0;
}

static int on_gc(struct state *st, struct dm_actor *self, struct dm_msg *msg)
{
	struct gc_args *a = msg->payload;
	struct dm_err err;

	if (st->running) {
		dm_msg_reply_err(msg, DM_EBUSY, "a garbage collection is running already");
		return 0;
	}
	msg->payload = NULL; /* the job owns it now */
	if (start_gc(st, self, a, msg, &err)) {
		dm_msg_reply_err(msg, DM_EINTERNAL, "%s", err.msg);
		return 0;
	}
	return DM_ACTOR_KEEP;
}

/* GARBAGE: counts it; past the threshold, and with none running, starts
 * an automatic collection (one running now frees it anyway, or the next
 * delete starts one). */
static int on_garbage(struct state *st, struct dm_actor *self, struct dm_msg *msg)
{
	struct gc_args *a;
	struct dm_err err;

	st->last.garbage += *(uint64_t *)msg->payload;
	if (!st->env.auto_bytes || st->last.garbage < st->env.auto_bytes || st->running)
		return 0;
	a = dm_xcalloc(1, sizeof(*a));
	a->store = st->env.store;
	dm_info("automatic garbage collection: deletes made about %llu bytes of garbage since "
		"the last one (threshold %llu)",
		(unsigned long long)st->last.garbage, (unsigned long long)st->env.auto_bytes);
	if (start_gc(st, self, a, NULL, &err))
		dm_warn("automatic garbage collection: %s", err.msg);
	else
		st->last.automatic++;
	return 0;
}

static int on_last(struct state *st, struct dm_msg *msg)
{
	struct dm_space_last *copy = dm_xcalloc(1, sizeof(*copy));

	*copy = st->last;
	dm_msg_reply(msg, 0, copy, free);
	return 0;
}

static void on_done(struct state *st, struct dm_msg *msg)
{
	struct gc_result *res = msg->payload;
	struct dm_msg *req = st->waiting;

	st->running = NULL;
	st->waiting = NULL;
	if (!msg->status && res) {
		st->last.when_ns = dm_now_realtime_ns();
		st->last.dry_run = st->running_dry;
		st->last.st = res->st;
	}
	if (!req)
		return;
	if (msg->status)
		dm_msg_reply_err(req, msg->status, "%s",
				 res && res->msg[0] ? res->msg : dm_err_name(msg->status));
	else {
		msg->payload = NULL;
		dm_msg_reply(req, 0, res, free);
	}
	dm_msg_free(req);
}

static int handle(struct dm_actor *self, struct dm_msg *msg)
{
	struct state *st = dm_actor_user(self);

	switch (msg->type) {
	case SP_GC:
		return on_gc(st, self, msg);
	case SP_LAST:
		return on_last(st, msg);
	case SP_GARBAGE:
		return on_garbage(st, self, msg);
	case DM_MSG_JOB_DONE:
		on_done(st, msg);
		return 0;
	default:
		return 0;
	}
}

static void state_free(void *p)
{
	struct state *st = p;

	dm_msg_free(st->waiting); /* answered `canceled` */
	free(st);
}

int dm_space_open(struct dm_space **out, const struct dm_space_env *env, struct dm_err *err)
{
	struct dm_space *sp = dm_xcalloc(1, sizeof(*sp));
	struct state *st = dm_xcalloc(1, sizeof(*st));
	int rc;

	st->env = *env;
	st->last.auto_bytes = env->auto_bytes;
	sp->store = env->store;
	rc = dm_actor_new(&sp->actor, env->sched, "space", handle, st, state_free, err);
	if (rc) {
		free(st);
		free(sp);
		return rc;
	}
	*out = sp;
	return 0;
}

void dm_space_free(struct dm_space *sp)
{
	if (!sp)
		return;
	dm_actor_unref(sp->actor);
	free(sp);
}

int dm_space_gc(struct dm_space *sp, bool dry_run, int timeout_ms, struct dm_store_gc_stats *out,
		struct dm_err *err)
{
	struct gc_args *a = dm_xcalloc(1, sizeof(*a));
	struct dm_msg *reply = NULL;
	int rc;

	a->store = sp->store;
	a->dry_run = dry_run;
	rc = dm_actor_call(&reply, sp->actor, dm_msg_new(SP_GC, a, free), timeout_ms, err);
	if (!rc && reply && reply->payload)
		*out = ((struct gc_result *)reply->payload)->st;
	dm_msg_free(reply);
	return rc;
}

int dm_space_last(struct dm_space *sp, struct dm_space_last *out, struct dm_err *err)
{
	struct dm_msg *reply = NULL;
	int rc = dm_actor_call(&reply, sp->actor, dm_msg_new(SP_LAST, NULL, NULL), 10 * 1000, err);

	if (!rc && reply && reply->payload)
		*out = *(struct dm_space_last *)reply->payload;
	dm_msg_free(reply);
	return rc;
}

void dm_space_note_garbage(void *ctx, uint64_t bytes)
{
	struct dm_space *sp = ctx;
	uint64_t *b = dm_xmalloc(sizeof(*b));

	*b = bytes;
	dm_actor_post(sp->actor, dm_msg_new(SP_GARBAGE, b, free));
}
