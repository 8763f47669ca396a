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

#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "metrics/catalog.h"
#include "store/oidmap.h"
#include "util/names.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

enum { SP_GC = 1, SP_LAST = 2, SP_GARBAGE = 3, SP_ACCT = 4, SP_FSCK = 5, SP_FSCK_POLL = 6 };

struct gc_args {
	struct dm_store *store;
	bool dry_run;
};

struct gc_result {
	struct dm_store_gc_stats st;
	char msg[DM_ERR_MSG_MAX];
};

/* An accounting job's input and output. */
struct acct_job {
	struct dm_store *store;
	struct dm_space_acct_in in;
	struct dm_oidmap *cache; /* the state's: only the running job touches it */
	json_t *figures;         /* {DOT_ID: {...}} */
	int64_t t0, t1;
	char msg[DM_ERR_MSG_MAX];
};

struct state {
	struct dm_space_env env;
	struct dm_job *running;
	struct dm_msg *waiting; /* the request the running job answers */
	bool running_dry;
	struct dm_space_last last;
	/* accounting: the figures of input `acct_key` (none: all zero),
	 * computed at acct_as_of; one job at a time, of input acct_next */
	struct dm_job *acct_job;
	json_t *acct;
	dm_oid acct_key, acct_next;
	int64_t acct_as_of, acct_ended, acct_took;
	struct dm_oidmap acct_cache; /* a head's written bytes (account.c) */
	/* dm fsck: the running job (of run fsck_run), the last report */
	struct dm_job *fsck_job;
	uint64_t fsck_run;
	json_t *fsck_report; /* of run fsck_run, once it ended */
	struct dm_fsck_progress *progress; /* the space's: the job writes it */
};

struct dm_space {
	struct dm_actor *actor;
	struct dm_store *store; /* constant after open */
	struct dm_fsck_progress progress; /* the running fsck's (atomic fields) */
};

static int job_yield(void *job)
{
	return dm_job_yield(job);
}

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
	dm_job_set_kind(job, a->dry_run ? "gc_dry_run" : "gc");
	dm_store_gc_opts_default(&o);
	o.dry_run = a->dry_run;
	o.yield = job_yield;
	o.yield_ctx = job;
	rc = dm_store_gc(a->store, &o, &res->st, &err);
	if (!a->dry_run) {
		dm_metric_add(&dm_m_gc_runs, rc ? dm_err_json_name(rc) : "ok", NULL, 1);
		dm_metric_observe(&dm_m_gc_duration, NULL, NULL, (int64_t)res->st.ms * 1000000);
		dm_metric_add(&dm_m_gc_freed_bytes, NULL, NULL, (int64_t)res->st.disk_freed);
	}
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
	if (st->fsck_job) {
		dm_msg_reply_err(msg, DM_EBUSY, "dm fsck is running; collect when it is done");
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
	if (!st->env.auto_bytes || st->last.garbage < st->env.auto_bytes || st->running ||
	    st->fsck_job)
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
	if (!st->running_dry) /* packs moved: count again */
		memset(&st->acct_key, 0, sizeof(st->acct_key));
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

/* ---- accounting ---- */

void dm_space_acct_in_free(struct dm_space_acct_in *in)
{
	if (!in)
		return;
	for (size_t i = 0; i < in->ndots; i++) {
		struct dm_acct_dot *d = &in->dots[i];

		for (size_t b = 0; b < d->nbranches; b++) {
			free((char *)(uintptr_t)d->names[b]);
			free((char *)(uintptr_t)d->heads[b]);
		}
		free((void *)(uintptr_t)d->names);
		free((void *)(uintptr_t)d->heads);
		free((char *)(uintptr_t)d->id);
		free((char *)(uintptr_t)d->current);
	}
	free(in->dots);
	memset(in, 0, sizeof(*in));
}

static void acct_job_free(void *p)
{
	struct acct_job *a = p;

	dm_space_acct_in_free(&a->in);
	json_decref(a->figures);
	free(a);
}

static json_t *figures_json(const struct dm_acct_figures *f)
{
	return json_pack("{s:I, s:I, s:I}", "referenced", (json_int_t)f->referenced, "unique",
			 (json_int_t)f->unique, "written", (json_int_t)f->written);
}

static bool acct_cancelled(void *job)
{
	return dm_job_cancelled(job) != 0;
}

static void run_acct(struct dm_job *job)
{
	struct acct_job *a = dm_job_arg(job);
	struct dm_acct_result *out = dm_xcalloc(a->in.ndots + 1, sizeof(*out));
	struct dm_err err;
	int rc;

	dm_job_set_kind(job, "account");
	a->t0 = dm_now_monotonic_ns();
	for (size_t i = 0; i < a->in.ndots; i++)
		out[i].branches = dm_xcalloc(a->in.dots[i].nbranches + 1, sizeof(*out[i].branches));
	rc = dm_store_account(a->store, a->in.dots, a->in.ndots, out, a->cache, acct_cancelled, job,
			      &err);
	if (rc) {
		snprintf(a->msg, sizeof(a->msg), "%s", err.msg);
		dm_warn("accounting the dots' space failed: %s", err.msg);
	} else {
		a->figures = json_object();
		for (size_t i = 0; i < a->in.ndots; i++) {
			const struct dm_acct_dot *d = &a->in.dots[i];
			json_t *dj = figures_json(&out[i].dot), *bj = json_object();

			for (size_t b = 0; b < d->nbranches; b++)
				if (out[i].branches[b].known)
					json_object_set_new(bj, d->names[b],
							    figures_json(&out[i].branches[b]));
			json_object_set_new(dj, "branches", bj);
			json_object_set_new(a->figures, d->id, dj);
		}
	}
	for (size_t i = 0; i < a->in.ndots; i++)
		free(out[i].branches);
	free(out);
	a->t1 = dm_now_monotonic_ns();
	dm_job_set_result(job, rc, NULL, NULL);
}

/* Starts an accounting of in (taken) unless one runs or the last one
 * ended too recently: a walk that took T waits 4 T after it, so that
 * accounting never takes more than a fifth of a core. */
static void maybe_account(struct state *st, struct dm_actor *self, struct dm_space_acct_in *in)
{
	struct acct_job *a;
	struct dm_err err;

	if (st->acct_job || (st->acct_ended && st->acct_took > 1000000000LL &&
			     dm_now_monotonic_ns() - st->acct_ended < 4 * st->acct_took)) {
		dm_space_acct_in_free(in);
		return;
	}
	a = dm_xcalloc(1, sizeof(*a));
	a->store = st->env.store;
	a->in = *in;
	memset(in, 0, sizeof(*in));
	if (st->acct_cache.count > 65536) /* heads of long ago: start again */
		dm_oidmap_clear(&st->acct_cache);
	a->cache = &st->acct_cache;
	st->acct_next = a->in.key;
	if (dm_job_start(&st->acct_job, self, run_acct, a, acct_job_free, &err)) {
		st->acct_job = NULL;
		dm_warn("cannot account the dots' space: %s", err.msg);
	}
}

struct acct_req {
	struct dm_space_acct_in in;
	char dot[DM_NAME_PART_MAX * 2 + 2];
};

struct acct_answer {
	json_t *figures; /* or NULL */
	bool fresh;
	int64_t as_of_ns;
};

static void acct_answer_free(void *p)
{
	struct acct_answer *a = p;

	json_decref(a->figures);
	free(a);
}

static void acct_req_free(void *p)
{
	struct acct_req *r = p;

	dm_space_acct_in_free(&r->in);
	free(r);
}

static int on_acct(struct state *st, struct dm_actor *self, struct dm_msg *msg)
{
	struct acct_req *r = msg->payload;
	struct acct_answer *a = dm_xcalloc(1, sizeof(*a));
	json_t *f = st->acct ? json_object_get(st->acct, r->dot) : NULL;

	a->fresh = st->acct && !dm_oid_cmp(&st->acct_key, &r->in.key);
	a->figures = f ? json_deep_copy(f) : NULL;
	a->as_of_ns = st->acct_as_of;
	if (!a->fresh && !(st->acct_job && !dm_oid_cmp(&st->acct_next, &r->in.key)))
		maybe_account(st, self, &r->in);
	dm_msg_reply(msg, 0, a, acct_answer_free);
	return 0;
}

static void on_acct_done(struct state *st, struct dm_msg *msg)
{
	struct acct_job *a = dm_job_arg(msg->job);

	st->acct_job = NULL;
	st->acct_ended = dm_now_monotonic_ns();
	st->acct_took = a->t1 > a->t0 ? a->t1 - a->t0 : 0;
	if (msg->status || !a->figures)
		return;
	json_decref(st->acct);
	st->acct = a->figures;
	a->figures = NULL;
	st->acct_key = a->in.key;
	st->acct_as_of = dm_now_realtime_ns();
	/* a collection that ended meanwhile moved packs: not current */
	if (st->running && !st->running_dry)
		memset(&st->acct_key, 0, sizeof(st->acct_key));
}

int dm_space_account(struct dm_space *sp, struct dm_space_acct_in *in, const char *dot_id,
		     json_t **out, bool *fresh, int64_t *as_of_ns, struct dm_err *err)
{
	struct acct_req *r = dm_xcalloc(1, sizeof(*r));
	struct dm_msg *reply = NULL;
	int rc;

	r->in = *in;
	memset(in, 0, sizeof(*in));
	snprintf(r->dot, sizeof(r->dot), "%s", dot_id);
	*out = NULL;
	*fresh = false;
	*as_of_ns = 0;
	rc = dm_actor_call(&reply, sp->actor, dm_msg_new(SP_ACCT, r, acct_req_free), 10 * 1000,
			   err);
	if (!rc && reply && reply->payload) {
		struct acct_answer *a = reply->payload;

		*out = a->figures;
		a->figures = NULL;
		*fresh = a->fresh;
		*as_of_ns = a->as_of_ns;
	}
	dm_msg_free(reply);
	return rc;
}

/* ---- dm fsck ---- */

struct fsck_job {
	struct dm_store *store;
	bool repair;
	json_t *dots;
	struct dm_fsck_progress *progress;
	json_t *report;
};

static void fsck_job_free(void *p)
{
	struct fsck_job *f = p;

	json_decref(f->dots);
	json_decref(f->report);
	free(f);
}

static bool fsck_cancelled(void *job)
{
	return dm_job_cancelled(job) != 0;
}

/* The dots' side: heads in the store, working copies there. */
static void check_dots(json_t *dots, struct dm_store *store, json_t *report, json_t *msgs)
{
	uint64_t ndots = 0, nbranches = 0, heads = 0, wcs = 0;
	json_t *d, *b;
	size_t i, j;

	json_array_foreach(dots, i, d)
	{
		const char *id = json_string_value(json_object_get(d, "id"));
		const char *name = json_string_value(json_object_get(d, "name"));

		ndots++;
		json_array_foreach(json_object_get(d, "branches"), j, b)
		{
			const char *bn = json_string_value(json_object_get(b, "name"));
			const char *head = json_string_value(json_object_get(b, "head"));
			const char *path = json_string_value(json_object_get(b, "path"));
			struct stat st;
			char msg[DM_FSCK_MSG_LEN];

			nbranches++;
			if (head && head[0] && !json_is_true(json_object_get(b, "pending")) &&
			    dm_store_commit_info(store, id, head, NULL, NULL, NULL)) {
				heads++;
				snprintf(msg, sizeof(msg),
					 "branch '%s' of dot '%s': its head %s is not in the store", bn,
					 name, head);
				dm_warn("fsck: %s", msg);
				if (json_array_size(msgs) < DM_FSCK_MSGS)
					json_array_append_new(msgs, json_string(msg));
			}
			if (path && (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))) {
				wcs++;
				snprintf(msg, sizeof(msg),
					 "branch '%s' of dot '%s': its working copy '%s' is missing", bn,
					 name, path);
				dm_warn("fsck: %s", msg);
				if (json_array_size(msgs) < DM_FSCK_MSGS)
					json_array_append_new(msgs, json_string(msg));
			}
		}
	}
	json_object_set_new(report, "dots", json_integer((json_int_t)ndots));
	json_object_set_new(report, "branches", json_integer((json_int_t)nbranches));
	json_object_set_new(report, "heads_missing", json_integer((json_int_t)heads));
	json_object_set_new(report, "working_copies_missing", json_integer((json_int_t)wcs));
	json_object_set_new(report, "problems",
			    json_integer(json_integer_value(json_object_get(report, "problems")) +
					 (json_int_t)(heads + wcs)));
}

static void run_fsck(struct dm_job *job)
{
	struct fsck_job *f = dm_job_arg(job);
	struct dm_store_fsck_report *r = dm_xcalloc(1, sizeof(*r));
	struct dm_err err;
	json_t *msgs;
	int64_t t0 = dm_now_monotonic_ns();
	int rc;

	dm_job_set_kind(job, "fsck");
	dm_info("fsck%s of the store begins", f->repair ? " --repair" : "");
	rc = dm_store_fsck(f->store, f->repair, f->progress, fsck_cancelled, job, r, &err);
	if (rc) {
		f->report = json_pack("{s:s}", "error", err.msg);
		dm_warn("fsck failed: %s", err.msg);
		free(r);
		dm_job_set_result(job, rc, NULL, NULL);
		return;
	}
	msgs = json_array();
	for (size_t i = 0; i < r->nmsgs; i++)
		json_array_append_new(msgs, json_string(r->msgs[i]));
	f->report = json_pack(
		"{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
		"s:I, s:I}",
		"repair", f->repair, "objects", (json_int_t)r->objects, "bytes",
		(json_int_t)r->bytes, "bad_objects", (json_int_t)r->bad, "missing_refs",
		(json_int_t)r->missing_refs, "dangling", (json_int_t)r->dangling, "packs",
		(json_int_t)r->packs, "pack_problems", (json_int_t)r->pack_problems, "unknown_packs",
		(json_int_t)r->unknown_packs, "commits", (json_int_t)r->commits, "lost_commits",
		(json_int_t)r->lost_commits, "damaged_commits", (json_int_t)r->damaged,
		"unmarked_damaged", (json_int_t)r->unmarked, "dropped", (json_int_t)r->dropped,
		"restored", (json_int_t)r->restored, "marked", (json_int_t)r->marked, "problems",
		(json_int_t)r->problems, "ms",
		(json_int_t)((dm_now_monotonic_ns() - t0) / 1000000));
	check_dots(f->dots, f->store, f->report, msgs);
	json_object_set_new(f->report, "messages", msgs);
	dm_info("fsck: %llu objects, %llu commits checked; %lld problems",
		(unsigned long long)r->objects, (unsigned long long)r->commits,
		(long long)json_integer_value(json_object_get(f->report, "problems")));
	free(r);
	dm_job_set_result(job, 0, NULL, NULL);
}

struct fsck_req {
	bool repair;
	json_t *dots;
	uint64_t run;
};

static void fsck_req_free(void *p)
{
	struct fsck_req *r = p;

	json_decref(r->dots);
	free(r);
}

static int on_fsck(struct state *st, struct dm_actor *self, struct dm_msg *msg)
{
	struct fsck_req *r = msg->payload;
	struct fsck_job *f;
	struct dm_err err;
	uint64_t *run;

	if (st->running) {
		dm_msg_reply_err(msg, DM_EBUSY,
				 "a garbage collection is running; run dm fsck when it is done");
		return 0;
	}
	if (!st->fsck_job) {
		f = dm_xcalloc(1, sizeof(*f));
		f->store = st->env.store;
		f->repair = r->repair;
		f->dots = r->dots;
		r->dots = NULL;
		f->progress = st->progress;
		memset(st->progress, 0, sizeof(*st->progress));
		if (dm_job_start(&st->fsck_job, self, run_fsck, f, fsck_job_free, &err)) {
			st->fsck_job = NULL;
			dm_msg_reply_err(msg, DM_EINTERNAL, "%s", err.msg);
			return 0;
		}
		st->fsck_run++;
		json_decref(st->fsck_report);
		st->fsck_report = NULL;
	}
	run = dm_xmalloc(sizeof(*run));
	*run = st->fsck_run;
	dm_msg_reply(msg, 0, run, free);
	return 0;
}

static int on_fsck_poll(struct state *st, struct dm_msg *msg)
{
	struct fsck_req *r = msg->payload;

	if (!r->run || r->run != st->fsck_run) {
		dm_msg_reply_err(msg, DM_ENOTFOUND, "no dm fsck run %llu (the last is %llu)",
				 (unsigned long long)r->run, (unsigned long long)st->fsck_run);
		return 0;
	}
	if (st->fsck_job) {
		dm_msg_reply(msg, 0, NULL, NULL);
		return 0;
	}
	dm_msg_reply(msg, 0, json_deep_copy(st->fsck_report), (void (*)(void *))json_decref);
	return 0;
}

static void on_fsck_done(struct state *st, struct dm_msg *msg)
{
	struct fsck_job *f = dm_job_arg(msg->job);

	st->fsck_job = NULL;
	st->fsck_report = f->report ? f->report : json_pack("{s:s}", "error", "dm fsck failed");
	f->report = NULL;
	/* a repair may have changed what the dots' figures rest on */
	memset(&st->acct_key, 0, sizeof(st->acct_key));
}

int dm_space_fsck_start(struct dm_space *sp, bool repair, json_t *dots, uint64_t *run,
			struct dm_err *err)
{
	struct fsck_req *r = dm_xcalloc(1, sizeof(*r));
	struct dm_msg *reply = NULL;
	int rc;

	r->repair = repair;
	r->dots = dots;
	rc = dm_actor_call(&reply, sp->actor, dm_msg_new(SP_FSCK, r, fsck_req_free), 10 * 1000,
			   err);
	if (!rc && reply && reply->payload)
		*run = *(uint64_t *)reply->payload;
	dm_msg_free(reply);
	return rc;
}

int dm_space_fsck_poll(struct dm_space *sp, uint64_t run, json_t **report,
		       struct dm_fsck_progress *progress, struct dm_err *err)
{
	struct fsck_req *r = dm_xcalloc(1, sizeof(*r));
	struct dm_msg *reply = NULL;
	int rc;

	r->run = run;
	*report = NULL;
	rc = dm_actor_call(&reply, sp->actor, dm_msg_new(SP_FSCK_POLL, r, fsck_req_free),
			   10 * 1000, err);
	if (!rc && reply && reply->payload) {
		*report = reply->payload;
		reply->payload = NULL;
	}
	dm_msg_free(reply);
	progress->phase = __atomic_load_n(&sp->progress.phase, __ATOMIC_RELAXED);
	progress->done = __atomic_load_n(&sp->progress.done, __ATOMIC_RELAXED);
	progress->total = __atomic_load_n(&sp->progress.total, __ATOMIC_RELAXED);
	return rc;
}

static int handle(struct dm_actor *self, struct dm_msg *msg)
{
	struct state *st = dm_actor_user(self);

	switch (msg->type) {
	case SP_FSCK:
		return on_fsck(st, self, msg);
	case SP_FSCK_POLL:
		return on_fsck_poll(st, msg);
	case SP_ACCT:
		return on_acct(st, self, msg);
	case SP_GC:
		return on_gc(st, self, msg);
	case SP_LAST:
		return on_last(st, msg);
	case SP_GARBAGE:
		return on_garbage(st, self, msg);
	case DM_MSG_JOB_DONE:
		if (msg->job == st->acct_job)
			on_acct_done(st, msg);
		else if (msg->job == st->fsck_job)
			on_fsck_done(st, msg);
		else
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
	json_decref(st->acct);
	json_decref(st->fsck_report);
	dm_oidmap_release(&st->acct_cache);
	free(st);
}

int dm_space_open(struct dm_space **out, const struct dm_space_env *env, struct dm_err *err)
{
	struct dm_space *sp = dm_xcalloc(1, sizeof(*sp));
	struct state *st = dm_xcalloc(1, sizeof(*st));
	int rc;

	st->env = *env;
	st->progress = &sp->progress;
	st->last.auto_bytes = env->auto_bytes;
	dm_oidmap_init(&st->acct_cache, sizeof(uint64_t));
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

/* The request for one collection. */
static struct dm_msg *gc_request(struct dm_space *sp, bool dry_run)
{
	struct gc_args *a = dm_xcalloc(1, sizeof(*a));

	a->store = sp->store;
	a->dry_run = dry_run;
	return dm_msg_new(SP_GC, a, free);
}

int dm_space_gc_send(struct dm_space *sp, bool dry_run, struct dm_ticket **t)
{
	return dm_actor_send_request(t, sp->actor, gc_request(sp, dry_run));
}

int dm_space_gc(struct dm_space *sp, bool dry_run, int timeout_ms, struct dm_store_gc_stats *out,
		struct dm_err *err)
{
	struct dm_msg *reply = NULL;
	int rc;

	rc = dm_actor_call(&reply, sp->actor, gc_request(sp, dry_run), timeout_ms, err);
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
