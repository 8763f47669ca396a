/*
 * transfer.c - the initiator's side of push, pull and clone: the transfers
 * actor that owns every transfer's record, and the job that runs one
 * (docs/internals/transfer.md; the object walks are in sync/walk.c,
 * the remote behind remote/remote.h).
 *
 * transfers/ owns the push, pull and clone this node runs, as the
 * initiator: what moves (negotiation with the remote's refs), the sync
 * walk against the remote, the update that ends it, and each transfer's
 * progress. It sees the node through struct dm_transfers_env (the store
 * and the dots) and reaches remotes only through remote.h's table.
 *
 * Invariants:
 *   - `recs` is touched only by the transfers actor's handler; readers use
 *     the published snapshot (immutable JSON, replaced whole). No JSON
 *     value is shared between threads: progress messages carry their own,
 *     and each snapshot is built from deep copies, so reference counts are
 *     only ever touched by one thread.
 *   - A job owns copies of everything it uses (its job_arg) and tells the
 *     actor about itself only by progress messages and its DONE message;
 *     there are no shared counters.
 *   - Jobs run on the transfers' own scheduler (DM_TRANSFER_JOBS threads),
 *     never on the dots' workers: a job may wait for a dot, and a dot's
 *     job never waits for a transfer.
 *   - Nothing about a transfer outlives it but its record: a re-run
 *     negotiates from scratch (resuming is the store invariant's work).
 *
 * States of a transfer record (each row is a function below):
 *
 *   state        event                         transition     next
 *   -----------  ----------------------------  -------------  ------------
 *   -            START request                 on_start       negotiating
 *   negotiating  progress (moving)             on_progress    sending | receiving
 *   any running  progress (applying)           on_progress    applying
 *   any running  job DONE, status 0            on_done        done
 *   any running  job DONE, status != 0         on_done        failed
 */
#include "server/transfers/transfer.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actor/actor.h"
#include "metrics/catalog.h"
#include "remote/remote.h"
#include "server/transfers/chain.h"
#include "server/dots/registry.h"
#include "store/store.h"
#include "sync/walk.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define APPLY_DEADLINE_MS (3600 * 1000)
#define REPORT_EVERY_NS   (200 * 1000000LL)

enum { XF_START = 1 };

enum xstate { XS_NEGOTIATING, XS_SENDING, XS_RECEIVING, XS_APPLYING, XS_DONE, XS_FAILED };

static const char *const state_names[] = {"negotiating", "sending", "receiving",
					  "applying",    "done",    "failed"};

/* ---- records and snapshots ---- */

struct xfer {
	char id[DM_UUID_LEN + 1];
	int direction;
	int state;
	char dot[DM_DOT_NAME_TEXT_MAX];
	char remote_dot[DM_DOT_NAME_TEXT_MAX];
	char remote[200]; /* user@host:port */
	char caller[128];
	json_t *branches; /* array of names; owned */
	struct dm_sync_counts counts;
	uint64_t wire_bytes, rate;
	int64_t started_ns;   /* wall clock */
	int64_t moving_since; /* monotonic, when the data started moving */
	uint64_t moving_base; /* bytes_done then */
	char message[DM_ERR_MSG_MAX];
	int err_code;
	char err_msg[DM_ERR_MSG_MAX];
	struct dm_job *job; /* while running */
};

struct snap {
	atomic_int refs;
	json_t *list;    /* TRANSFER objects, recent first; never changed */
	json_t *callers; /* parallel: who started each */
};

struct dm_transfers {
	struct dm_transfers_env env;
	struct dm_sched *sched;
	struct dm_actor *actor;
	/* the actor's */
	struct xfer *recs; /* oldest first */
	size_t n;
	/* the published snapshot; mu guards only the pointer swap */
	pthread_mutex_t mu;
	struct snap *snap;
};

static void snap_unref(struct snap *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	json_decref(s->list);
	json_decref(s->callers);
	free(s);
}

static struct snap *snap_get(struct dm_transfers *t)
{
	struct snap *s;

	pthread_mutex_lock(&t->mu);
	s = t->snap;
	atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&t->mu);
	return s;
}

static json_t *xfer_json(const struct xfer *x)
{
	char started[32];
	time_t secs = (time_t)(x->started_ns / 1000000000LL);
	struct tm tm;
	json_t *error = json_null();

	gmtime_r(&secs, &tm);
	strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (x->state == XS_FAILED)
		error = json_pack("{s:s, s:s}", "code", dm_err_json_name(x->err_code), "message",
				  x->err_msg);
	return json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:s, "
		"s:s, s:o}",
		"id", x->id, "direction", x->direction == DM_TRANSFER_PUSH ? "push" : "pull",
		"state", state_names[x->state], "dot", x->dot, "remote_dot", x->remote_dot,
		"remote", x->remote, "branches", json_deep_copy(x->branches), "objects_done",
		(json_int_t)x->counts.objects_done, "objects_total",
		(json_int_t)x->counts.objects_total, "bytes_done", (json_int_t)x->counts.bytes_done,
		"bytes_total", (json_int_t)x->counts.bytes_total, "wire_bytes",
		(json_int_t)x->wire_bytes, "rate", (json_int_t)x->rate, "started", started,
		"message", x->message, "error", error);
}

/* Publishes a new snapshot of every record (recent first). */
static void publish(struct dm_transfers *t)
{
	struct snap *s = dm_xcalloc(1, sizeof(*s)), *old;

	atomic_init(&s->refs, 1);
	s->list = json_array();
	s->callers = json_array();
	for (size_t i = t->n; i-- > 0;) {
		json_array_append_new(s->list, xfer_json(&t->recs[i]));
		json_array_append_new(s->callers, json_string(t->recs[i].caller));
	}
	pthread_mutex_lock(&t->mu);
	old = t->snap;
	t->snap = s;
	pthread_mutex_unlock(&t->mu);
	snap_unref(old);
}

static struct xfer *find_rec(struct dm_transfers *t, const struct dm_job *job)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->recs[i].job == job)
			return &t->recs[i];
	return NULL;
}

/* Forgets the oldest finished records past DM_TRANSFER_KEEP. */
static void trim(struct dm_transfers *t)
{
	size_t finished = 0;

	for (size_t i = 0; i < t->n; i++)
		finished += t->recs[i].job == NULL;
	for (size_t i = 0; i < t->n && finished > DM_TRANSFER_KEEP;) {
		if (t->recs[i].job) {
			i++;
			continue;
		}
		json_decref(t->recs[i].branches);
		memmove(&t->recs[i], &t->recs[i + 1], (t->n - i - 1) * sizeof(*t->recs));
		t->n--;
		finished--;
	}
}

/* ---- the job ---- */

struct job_arg {
	const struct dm_transfers_env *env;
	char id[DM_UUID_LEN + 1];
	int direction;
	char *host, *user, *key, *remote_name, *ca;
	bool is_node;
	struct dm_curl_node node;
	int port;
	struct dm_dot_name dot, remote_dot;
	char *branch;
	bool stash, clone, trusted;
	char caller[128];
};

static void job_arg_free(void *p)
{
	struct job_arg *a = p;

	if (!a)
		return;
	free(a->host);
	free(a->user);
	free(a->ca);
	if (a->key) {
		explicit_bzero(a->key, strlen(a->key));
		free(a->key);
	}
	free(a->remote_name);
	free(a->branch);
	free(a);
}

struct progress {
	int state;
	struct dm_sync_counts counts;
	uint64_t wire;
	json_t *branches; /* set once, when the branches are known */
};

static void progress_free(void *p)
{
	struct progress *pr = p;

	if (pr)
		json_decref(pr->branches);
	free(pr);
}

struct result {
	char message[DM_ERR_MSG_MAX];
	uint64_t wire;
};

/* Sets what a finished transfer says (cut to fit). */
static void say(struct result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
}

/* One running transfer, on its job's thread. */
struct run {
	struct dm_job *job;
	struct job_arg *a;
	struct dm_remote_conn *conn;
	struct dm_sync_walk walk;
	char where[200];                          /* the remote, as messages name it */
	char dot[DM_DOT_NAME_TEXT_MAX];           /* the local dot, as messages name it */
	char rdot[DM_DOT_NAME_TEXT_MAX];          /* the remote dot, as messages name it */
	char rdot_full[DM_DOT_NAME_TEXT_MAX + 2]; /* ns/name, for requests */
	bool remote_strips;                       /* the remote dot strips setuid/setgid */
	struct dm_oidmap records_only; /* commits that move without their data (pruned) */
	int state;
	int64_t last_report;
	struct result *res;
};

static void report(struct run *r, int state, bool force, json_t *branches)
{
	int64_t now = dm_now_monotonic_ns();
	struct progress *p;

	if (!force && state == r->state && now - r->last_report < REPORT_EVERY_NS)
		return;
	r->state = state;
	r->last_report = now;
	p = dm_xcalloc(1, sizeof(*p));
	p->state = state;
	p->counts = r->walk.counts;
	p->wire = r->conn ? dm_remote_wire_bytes(r->conn) : 0;
	p->branches = branches;
	dm_job_progress(r->job, p, progress_free);
}

static void on_walk_progress(void *ctx, const struct dm_sync_counts *c)
{
	struct run *r = ctx;
	int state = c->phase == DM_SYNC_NEGOTIATING       ? XS_NEGOTIATING
		    : r->a->direction == DM_TRANSFER_PUSH ? XS_SENDING
							  : XS_RECEIVING;

	report(r, state, state != r->state, NULL);
}

static bool run_cancelled(void *ctx)
{
	struct run *r = ctx;

	return dm_job_cancelled(r->job) != 0;
}

static void on_ack(void *ctx, uint64_t objects, uint64_t bytes)
{
	struct run *r = ctx;

	dm_sync_acked(&r->walk, objects, bytes);
}

/* the walk's peer: the remote dmd */
static int rp_missing(void *ctx, const dm_oid *ids, size_t n, struct dm_buf *out,
		      struct dm_err *err)
{
	return dm_remote_missing(((struct run *)ctx)->conn, ids, n, out, err);
}

static int rp_put(void *ctx, const struct dm_pack_rec *rec, const void *bytes, struct dm_err *err)
{
	return dm_remote_put_add(((struct run *)ctx)->conn, rec, bytes, err);
}

static int rp_sync(void *ctx, struct dm_err *err)
{
	return dm_remote_put_sync(((struct run *)ctx)->conn, err);
}

static int rp_get(void *ctx, const dm_oid *ids, size_t n, dm_wire_rec_fn fn, void *fnctx,
		  struct dm_err *err)
{
	struct run *r = ctx;

	return dm_remote_get(r->conn, r->rdot_full, ids, n, fn, fnctx, err);
}

/* ---- deciding what moves ---- */

/* ---- push ---- */

struct local_dot {
	char id[DM_DOT_ID_MAX + 1];
	char branch[DM_NAME_PART_MAX + 1];
	char head[DM_COMMIT_ID_LEN_MAX + 1];
	struct dm_dot_view *view;
	struct dm_dot_handle *h;
};

static void local_dot_release(struct local_dot *l)
{
	dm_dot_view_unref(l->view);
	dm_dot_handle_unref(l->h);
	memset(l, 0, sizeof(*l));
}

/* The local dot (DM_ENOTFOUND when missing): a handle and its view. */
static int find_local(struct local_dot *out, struct run *r, struct dm_err *err)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(r->a->env->registry);
	const struct dm_registry_entry *e = dm_registry_find(snap, &r->a->dot);

	int rc;

	memset(out, 0, sizeof(*out));
	if (e) {
		out->h = e->dot;
		dm_dot_handle_ref(e->dot);
	}
	dm_registry_snap_unref(snap);
	if (!e)
		return dm_err_set(err, DM_ENOTFOUND, "no such dot '%s'", r->dot);
	/* the history a transfer reads must be indexed (two-step commits) */
	rc = dm_dot_wait_sealed(out->h, 3600 * 1000, err);
	if (rc)
		return rc;
	out->view = dm_dot_handle_view(out->h);
	snprintf(out->id, sizeof(out->id), "%s", out->view->id);
	return 0;
}

static json_t *one_branch(const char *b)
{
	return json_pack("[s]", b);
}

static int do_push(struct run *r, struct dm_err *err)
{
	struct dm_store *store = r->a->env->store;
	struct local_dot l;
	struct dm_chain mine = {0}, theirs = {0};
	json_t *refs = NULL, *rb = NULL, *req = NULL, *answer = NULL;
	json_t *commits = NULL, *objects = NULL;
	dm_oid *oids = NULL;
	const char *rhead = "";
	const struct dm_branch_view *bv;
	enum dm_chain_verdict v;
	size_t take = 0;
	int rc;

	rc = find_local(&l, r, err);
	if (rc)
		return rc;
	snprintf(l.branch, sizeof(l.branch), "%s", r->a->branch ? r->a->branch : l.view->current);
	bv = dm_dot_view_branch(l.view, l.branch);
	if (!bv) {
		rc = dm_err_set(err, DM_ENOTFOUND, "dot '%s' has no branch '%s'", r->dot, l.branch);
		goto done;
	}
	snprintf(l.head, sizeof(l.head), "%s", bv->head);
	report(r, XS_NEGOTIATING, true, one_branch(l.branch));
	if (!l.head[0]) {
		rc = dm_err_set(err, DM_EINVAL,
				"nothing to push: branch '%s' of '%s' has no commits", l.branch,
				r->dot);
		goto done;
	}
	rc = dm_remote_refs(r->conn, r->rdot_full, true, &refs, err);
	if (rc == DM_ENOTFOUND) {
		rc = 0; /* the remote dot is made by the update */
	} else if (rc) {
		goto done;
	} else {
		const char *rid = json_string_value(json_object_get(refs, "id"));

		if (!rid || strcmp(rid, l.id)) {
			rc = dm_err_set(err, DM_EEXISTS,
					"remote dot '%s' is a different dot (id %.40s); push under "
					"another name with --remote-name",
					r->rdot, rid ? rid : "?");
			goto done;
		}
		rb = json_object_get(json_object_get(refs, "branches"), l.branch);
		if (rb) {
			rhead = json_string_value(json_object_get(rb, "head"));
			rc = dm_chain_from_json(&theirs, json_object_get(rb, "chain"), r->where,
						err);
			if (rc)
				goto done;
			if (!rhead)
				rhead = "";
		}
	}
	rc = dm_dot_chain(&mine.ids, &mine.n, store, l.id, l.head, DM_CHAIN_MAX, err);
	if (rc)
		goto done;
	dm_chain_index(&mine);
	v = dm_chain_decide(&mine, rhead, &theirs, &take);
	if (v == DM_CHAIN_UP_TO_DATE) {
		say(r->res, "everything up to date");
		goto done;
	}
	if (v == DM_CHAIN_RECEIVER_AHEAD) {
		rc = dm_err_set(err, DM_ECONFLICT,
				"'%s' on '%s' has commits you do not have; pull first", r->rdot,
				r->where);
		goto done;
	}
	if (v == DM_CHAIN_DIVERGED && !r->a->stash) {
		rc = dm_err_set(
			err, DM_EDIVERGED,
			"branch '%s' of '%s' has diverged from '%s' on '%s': both sides "
			"committed since they were the same; pull first, or push with "
			"--stash-on-divergence to keep their commits on a branch of their own",
			l.branch, r->dot, r->rdot, r->where);
		goto done;
	}
	oids = dm_xcalloc(take ? take : 1, sizeof(*oids));
	commits = json_array();
	objects = json_array();
	for (size_t i = 0; i < take; i++) {
		char hex[DM_OID_HEXSZ + 1];
		unsigned flags = 0;

		rc = dm_store_commit_info(store, l.id, mine.ids[i], &oids[i], &flags, err);
		if (rc)
			goto done;
		/* its data is gone here: its record goes alone, and is
		 * pruned there too (the head is never pruned) */
		if (i > 0 && (flags & (DM_COMMIT_PRUNED | DM_COMMIT_DAMAGED)))
			dm_oidmap_put(&r->records_only, &oids[i], NULL);
		if (i == 0 && (flags & (DM_COMMIT_PRUNED | DM_COMMIT_DAMAGED))) {
			rc = dm_err_set(err, DM_ENOTFOUND,
					"commit %s, the head of '%s', is damaged here: its data "
					"cannot be sent",
					mine.ids[i], r->dot);
			goto done;
		}
		dm_oid_hex(hex, &oids[i]);
		json_array_append_new(commits, json_string(mine.ids[i]));
		json_array_append_new(objects, json_string(hex));
	}
	dm_remote_put_begin(r->conn, l.id, on_ack, r);
	rc = dm_sync_push(&r->walk, oids, take, err);
	if (rc)
		goto done;
	report(r, XS_APPLYING, true, NULL);
	req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:O, s:b}", "dot", r->rdot_full, "id", l.id,
			"branch", l.branch, "old_head", rhead, "new_head", mine.ids[0], "commits",
			commits, "objects", objects, "stash", r->a->stash);
	rc = dm_remote_update(r->conn, req, &answer, err);
	if (rc)
		goto done;
	{
		const char *stashed = json_string_value(json_object_get(answer, "stashed"));

		say(r->res, "pushed %zu commit%s of '%s' to '%s' on '%s'%s%s%s", take,
		    take == 1 ? "" : "s", l.branch, r->rdot, r->where,
		    stashed ? "; their diverged commits are on branch '" : "",
		    stashed ? stashed : "", stashed ? "'" : "");
	}
done:
	json_decref(refs);
	json_decref(req);
	json_decref(answer);
	json_decref(commits);
	json_decref(objects);
	free(oids);
	dm_chain_release(&mine);
	dm_chain_release(&theirs);
	local_dot_release(&l);
	return rc;
}

/* ---- pull and clone ---- */

struct plan {
	char branch[DM_NAME_PART_MAX + 1];
	char old_head[DM_COMMIT_ID_LEN_MAX + 1];
	size_t n;
	struct dm_dot_commit_ref *commits; /* newest first */
};

static void plans_free(struct plan *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].commits);
	free(p);
}

/* Works out what branch b of the remote (rb, from refs) brings here. */
static int plan_branch(struct run *r, const struct local_dot *l, const char *b, json_t *rb,
		       struct plan *out, bool *moves, struct dm_err *err)
{
	const struct dm_branch_view *bv = l->view ? dm_dot_view_branch(l->view, b) : NULL;
	const char *lhead = bv ? bv->head : "";
	json_t *objects = json_object_get(rb, "objects");
	struct dm_chain theirs = {0}, mine = {0};
	enum dm_chain_verdict v;
	size_t take = 0;
	int rc;

	*moves = false;
	rc = dm_chain_from_json(&theirs, json_object_get(rb, "chain"), r->where, err);
	if (rc)
		return rc;
	if (!json_is_array(objects) || json_array_size(objects) != theirs.n) {
		rc = dm_err_set(err, DM_EPROTO, "dm server at %s sent a bad history", r->where);
		goto done;
	}
	if (lhead[0]) {
		rc = dm_dot_chain(&mine.ids, &mine.n, r->a->env->store, l->id, lhead, DM_CHAIN_MAX,
				  err);
		if (rc)
			goto done;
	}
	dm_chain_index(&mine);
	v = dm_chain_decide(&theirs, lhead, &mine, &take);
	if (v == DM_CHAIN_UP_TO_DATE || v == DM_CHAIN_RECEIVER_AHEAD)
		goto done;
	if (v == DM_CHAIN_DIVERGED && !r->a->stash) {
		rc = dm_err_set(err, DM_EDIVERGED,
				"branch '%s' of '%s' has diverged from '%s' on '%s': both sides "
				"committed since they were the same; use --stash-on-divergence to "
				"keep your commits on a branch of their own",
				b, r->dot, r->rdot, r->where);
		goto done;
	}
	/* commits the remote pruned come as records only, and are pruned
	 * here too; not the head, which the working copy needs */
	for (size_t i = 0; i < take; i++) {
		json_t *p;
		size_t k;

		json_array_foreach(json_object_get(rb, "pruned"), k, p)
		{
			if (!json_is_string(p) || strcmp(json_string_value(p), theirs.ids[i]))
				continue;
			if (i == 0) {
				rc = dm_err_set(err, DM_ENOTFOUND,
						"commit %s, the head of '%s' on '%s', has no data "
						"there: it cannot be pulled",
						theirs.ids[i], r->rdot, r->where);
				goto done;
			}
		}
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->branch, sizeof(out->branch), "%s", b);
	snprintf(out->old_head, sizeof(out->old_head), "%s", lhead);
	out->n = take;
	out->commits = dm_xcalloc(take ? take : 1, sizeof(*out->commits));
	for (size_t i = 0; i < take; i++) {
		json_t *o = json_array_get(objects, i), *p;
		size_t k;

		snprintf(out->commits[i].id, sizeof(out->commits[i].id), "%s", theirs.ids[i]);
		if (!json_is_string(o) ||
		    dm_oid_from_hex(&out->commits[i].oid, json_string_value(o),
				    json_string_length(o))) {
			free(out->commits);
			out->commits = NULL;
			rc = dm_err_set(err, DM_EPROTO, "dm server at %s sent a bad object id",
					r->where);
			goto done;
		}
		json_array_foreach(json_object_get(rb, "pruned"), k, p)
			if (json_is_string(p) && !strcmp(json_string_value(p), theirs.ids[i]))
				dm_oidmap_put(&r->records_only, &out->commits[i].oid, NULL);
	}
	*moves = take > 0;
done:
	dm_chain_release(&theirs);
	dm_chain_release(&mine);
	return rc;
}

static int oid_cmp(const void *a, const void *b)
{
	return dm_oid_cmp(a, b);
}

/* The dot a clone makes, with the remote's id. */
static int make_clone(struct local_dot *l, struct run *r, const char *rid, struct dm_err *err)
{
	json_t *made = NULL;
	int rc = dm_registry_create(r->a->env->registry, &made, &r->a->dot, rid,
				    DM_DOT_CALL_DEADLINE_MS, err);

	json_decref(made);
	if (rc)
		return rc;
	return find_local(l, r, err);
}

static int apply_plans(struct run *r, struct local_dot *l, const struct plan *plans, size_t n,
		       struct dm_err *err)
{
	for (size_t i = 0; i < n; i++) {
		struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_RECEIVE);
		json_t *answer = NULL;
		int rc;

		req->branch = dm_xstrdup(plans[i].branch);
		req->old_head = dm_xstrdup(plans[i].old_head);
		req->ncommits = plans[i].n;
		req->commits = dm_xcalloc(plans[i].n, sizeof(*req->commits));
		memcpy(req->commits, plans[i].commits, plans[i].n * sizeof(*req->commits));
		req->stash = r->a->stash;
		req->trusted = r->a->trusted && !r->remote_strips;
		rc = dm_dot_call(&answer, l->h, req, APPLY_DEADLINE_MS, err);
		json_decref(answer);
		if (rc)
			return rc;
	}
	return 0;
}

static int do_pull(struct run *r, struct dm_err *err)
{
	struct local_dot l = {0};
	struct plan *plans = NULL;
	size_t nplans = 0, ncommits = 0;
	json_t *refs = NULL, *rbs, *rb, *names = json_array();
	dm_oid *oids = NULL;
	const char *rid, *b;
	int rc;

	rc = dm_remote_refs(r->conn, r->rdot_full, false, &refs, err);
	if (rc == DM_ENOTFOUND)
		dm_err_prefix(err, "dm server at %s", r->where);
	if (rc)
		goto done;
	r->remote_strips = json_is_true(json_object_get(refs, "strip_setid"));
	rid = json_string_value(json_object_get(refs, "id"));
	rbs = json_object_get(refs, "branches");
	if (!rid || !dm_name_part_valid(rid, strlen(rid)) || strlen(rid) > DM_DOT_ID_MAX ||
	    !json_is_object(rbs)) {
		rc = dm_err_set(err, DM_EPROTO, "dm server at %s sent bad refs", r->where);
		goto done;
	}
	rc = find_local(&l, r, err);
	if (r->a->clone && !rc) {
		rc = dm_err_set(err, DM_EEXISTS,
				"dot '%s' exists here; clone into another name with --local-name",
				r->dot);
		goto done;
	}
	if (r->a->clone) {
		struct dm_registry_snap *snap = dm_registry_snapshot(r->a->env->registry);
		const struct dm_registry_entry *e = dm_registry_find_id(snap, rid);
		char other[DM_DOT_NAME_TEXT_MAX];

		rc = 0;
		local_dot_release(&l);
		if (e)
			rc = dm_err_set(
				err, DM_EEXISTS,
				"'%s' on '%s' is already here as '%s'; pull into that instead",
				r->rdot, r->where, dm_dot_name_text(other, &e->name));
		dm_registry_snap_unref(snap);
		if (rc)
			goto done;
	} else if (rc) {
		dm_err_set(err, DM_ENOTFOUND, "no such dot '%s' here; use 'dm clone' to make it",
			   r->dot);
		goto done;
	} else if (strcmp(l.id, rid)) {
		rc = dm_err_set(err, DM_EEXISTS,
				"dot '%s' here is a different dot from '%s' on '%s' (id %s); pull "
				"into another name",
				r->dot, r->rdot, r->where, rid);
		goto done;
	}
	if (r->a->branch && !json_object_get(rbs, r->a->branch)) {
		rc = dm_err_set(err, DM_ENOTFOUND, "'%s' on '%s' has no branch '%s'", r->rdot,
				r->where, r->a->branch);
		goto done;
	}
	plans = dm_xcalloc(json_object_size(rbs) + 1, sizeof(*plans));
	json_object_foreach(rbs, b, rb)
	{
		bool moves = false;

		if (r->a->branch && strcmp(b, r->a->branch))
			continue;
		if (!dm_name_part_valid(b, strlen(b))) {
			rc = dm_err_set(err, DM_EPROTO, "dm server at %s sent a bad branch name",
					r->where);
			goto done;
		}
		json_array_append_new(names, json_string(b));
		rc = plan_branch(r, &l, b, rb, &plans[nplans], &moves, err);
		if (rc)
			goto done;
		if (moves)
			ncommits += plans[nplans++].n;
	}
	report(r, XS_NEGOTIATING, true, json_deep_copy(names));
	if (!nplans && !r->a->clone) {
		say(r->res, "everything up to date");
		goto done;
	}
	oids = dm_xcalloc(ncommits ? ncommits : 1, sizeof(*oids));
	ncommits = 0;
	for (size_t i = 0; i < nplans; i++)
		for (size_t k = 0; k < plans[i].n; k++)
			oids[ncommits++] = plans[i].commits[k].oid;
	/* branches share commits: fetch (and count) each once */
	qsort(oids, ncommits, sizeof(*oids), oid_cmp);
	{
		size_t u = 0;

		for (size_t i = 0; i < ncommits; i++)
			if (!u || dm_oid_cmp(&oids[u - 1], &oids[i]))
				oids[u++] = oids[i];
		ncommits = u;
	}
	r->walk.dot_id = rid;
	rc = dm_sync_pull(&r->walk, oids, ncommits, err);
	if (rc)
		goto done;
	report(r, XS_APPLYING, true, NULL);
	if (r->a->clone) {
		rc = make_clone(&l, r, rid, err);
		if (rc)
			goto done;
	}
	rc = apply_plans(r, &l, plans, nplans, err);
	if (rc)
		goto done;
	if (r->a->clone)
		say(r->res, "cloned '%s' from '%s' as '%s': %zu commit%s on %zu branch%s", r->rdot,
		    r->where, r->dot, ncommits, ncommits == 1 ? "" : "s", nplans,
		    nplans == 1 ? "" : "es");
	else
		say(r->res, "pulled %zu commit%s into '%s' from '%s' on '%s'", ncommits,
		    ncommits == 1 ? "" : "s", r->dot, r->rdot, r->where);
done:
	plans_free(plans, nplans);
	free(oids);
	json_decref(names);
	json_decref(refs);
	local_dot_release(&l);
	return rc;
}

/* One transfer that ended with rc, in the transfer metrics: its bytes on
 * the wire and its time since t0. */
static void count_transfer(int direction, int rc, uint64_t wire, int64_t t0)
{
	const char *dir = direction == DM_TRANSFER_PUSH ? "push" : "pull";
	const char *outcome = rc ? dm_err_json_name(rc) : "ok";

	dm_metric_add(&dm_m_transfers, dir, outcome, 1);
	dm_metric_add(&dm_m_transfer_bytes, dir, outcome, (int64_t)wire);
	dm_metric_observe_since(&dm_m_transfer_duration, dir, outcome, t0);
}

static void run_transfer(struct dm_job *job)
{
	struct job_arg *a = dm_job_arg(job);
	struct dm_remote_addr addr = {a->host, a->port, a->user, a->key,
				      NULL,    a->ca,   a->is_node ? &a->node : NULL};
	struct result *res = dm_xcalloc(1, sizeof(*res));
	struct run r;
	struct dm_err err;
	int64_t t0 = dm_now_monotonic_ns();
	int rc;

	memset(&r, 0, sizeof(r));
	dm_err_clear(&err);
	r.job = job;
	r.a = a;
	r.res = res;
	r.state = -1;
	dm_dot_name_text(r.dot, &a->dot);
	dm_dot_name_text(r.rdot, &a->remote_dot);
	snprintf(r.rdot_full, sizeof(r.rdot_full), "%s/%s", a->remote_dot.ns, a->remote_dot.name);
	r.walk.store = a->env->store;
	r.walk.peer = (struct dm_sync_peer){&r, rp_missing, rp_put, rp_sync, rp_get};
	r.walk.progress = on_walk_progress;
	r.walk.cancelled = run_cancelled;
	r.walk.ctx = &r;
	dm_oidmap_init(&r.records_only, 0);
	r.walk.records_only = &r.records_only;
	rc = dm_remote_open(&r.conn, &addr, &err);
	if (!rc) {
		snprintf(r.where, sizeof(r.where), "%s",
			 a->remote_name ? a->remote_name : dm_remote_where(r.conn));
		dm_remote_set_cancel(r.conn, run_cancelled, &r);
		report(&r, XS_NEGOTIATING, true, a->branch ? one_branch(a->branch) : NULL);
		rc = dm_remote_hello(r.conn, &err);
	}
	if (!rc && a->direction == DM_TRANSFER_PUSH) {
		rc = do_push(&r, &err);
	} else if (!rc) {
		/* what a pull fetches is kept by garbage collection until the
		 * dot has indexed it (store.h, "Holds and pins") */
		uint64_t hold = dm_store_hold(a->env->store);

		rc = do_pull(&r, &err);
		dm_store_unhold(a->env->store, hold);
	}
	if (!rc && dm_job_cancelled(job))
		rc = dm_err_set(&err, DM_ECANCELED, "transfer canceled");
	res->wire = r.conn ? dm_remote_wire_bytes(r.conn) : 0;
	if (rc) {
		say(res, "%s", err.msg);
		dm_info("transfer %s failed: %s", a->id, err.msg);
	} else {
		dm_info("transfer %s: %s (%llu bytes on the wire)", a->id, res->message,
			(unsigned long long)res->wire);
	}
	report(&r, r.state < 0 ? XS_NEGOTIATING : r.state, true, NULL);
	count_transfer(a->direction, rc, res->wire, t0);
	dm_remote_free(r.conn);
	dm_oidmap_release(&r.records_only);
	dm_job_set_result(job, rc, res, free);
}

/* ---- the actor ---- */

/* START: a new record, and the job that runs it. */
static int on_start(struct dm_transfers *t, struct dm_msg *msg)
{
	struct job_arg *a = msg->payload;
	struct xfer *x;
	struct dm_job *job = NULL;
	struct dm_err err;
	char id[DM_UUID_LEN + 1];
	int rc = dm_id_uuid7(id, dm_now_realtime_ns() / 1000000, &err);

	if (rc) {
		dm_msg_reply_err(msg, rc, "%s", err.msg);
		return 0;
	}
	t->recs = dm_xrealloc(t->recs, (t->n + 1) * sizeof(*t->recs));
	x = &t->recs[t->n];
	memset(x, 0, sizeof(*x));
	snprintf(x->id, sizeof(x->id), "%s", id);
	snprintf(a->id, sizeof(a->id), "%s", id);
	x->direction = a->direction;
	x->state = XS_NEGOTIATING;
	dm_dot_name_text(x->dot, &a->dot);
	dm_dot_name_text(x->remote_dot, &a->remote_dot);
	snprintf(x->remote, sizeof(x->remote), strchr(a->host, ':') ? "%s@[%s]:%d" : "%s@%s:%d",
		 a->user, a->host, a->port);
	x->branches = a->branch ? one_branch(a->branch) : json_array();
	x->started_ns = dm_now_realtime_ns();
	snprintf(x->caller, sizeof(x->caller), "%s", a->caller);
	msg->payload = NULL; /* the job owns it now (freed even if it cannot start) */
	rc = dm_job_start(&job, t->actor, run_transfer, a, job_arg_free, &err);
	if (rc) {
		json_decref(x->branches);
		dm_msg_reply_err(msg, rc, "%s", err.msg);
		return 0;
	}
	x->job = job;
	t->n++;
	trim(t);
	publish(t);
	dm_msg_reply(msg, 0, dm_xstrdup(id), free);
	return 0;
}

static void on_progress(struct dm_transfers *t, struct dm_msg *msg)
{
	struct xfer *x = find_rec(t, msg->job);
	struct progress *p = msg->payload;
	int64_t now = dm_now_monotonic_ns();

	if (!x || !p)
		return;
	if ((p->state == XS_SENDING || p->state == XS_RECEIVING) && !x->moving_since) {
		x->moving_since = now;
		x->moving_base = p->counts.bytes_done;
	}
	/* the rate: average since the data started moving, kept once it stops */
	if (x->moving_since && now > x->moving_since &&
	    (x->state == XS_SENDING || x->state == XS_RECEIVING))
		x->rate = (uint64_t)((double)(p->counts.bytes_done - x->moving_base) * 1e9 /
				     (double)(now - x->moving_since));
	x->state = p->state;
	x->counts = p->counts;
	x->wire_bytes = p->wire;
	if (p->branches) {
		json_decref(x->branches);
		x->branches = p->branches;
		p->branches = NULL;
	}
	publish(t);
}

static void on_done(struct dm_transfers *t, struct dm_msg *msg)
{
	struct xfer *x = find_rec(t, msg->job);
	struct result *res = msg->payload;

	if (!x)
		return;
	x->job = NULL;
	x->state = msg->status ? XS_FAILED : XS_DONE;
	if (res) {
		x->wire_bytes = res->wire;
		if (msg->status) {
			snprintf(x->err_msg, sizeof(x->err_msg), "%s", res->message);
		} else {
			snprintf(x->message, sizeof(x->message), "%s", res->message);
		}
	}
	if (msg->status) {
		x->err_code = msg->status;
		if (!x->err_msg[0])
			snprintf(x->err_msg, sizeof(x->err_msg), "%s",
				 msg->status == DM_ECANCELED ? "transfer canceled"
							     : dm_err_json_name(msg->status));
	}
	trim(t);
	publish(t);
}

static int handle(struct dm_actor *self, struct dm_msg *msg)
{
	struct dm_transfers *t = dm_actor_user(self);

	switch (msg->type) {
	case XF_START:
		return on_start(t, msg);
	case DM_MSG_JOB_PROGRESS:
		on_progress(t, msg);
		return 0;
	case DM_MSG_JOB_DONE:
		on_done(t, msg);
		return 0;
	default:
		return 0;
	}
}

/* ---- the API ---- */

int dm_transfers_start(struct dm_transfers **out, const struct dm_transfers_env *env,
		       struct dm_err *err)
{
	struct dm_transfers *t = dm_xcalloc(1, sizeof(*t));
	struct dm_sched_opts so;
	int rc;

	memset(&so, 0, sizeof(so));
	so.threads = 1;
	so.job_threads = DM_TRANSFER_JOBS;
	t->env = *env;
	pthread_mutex_init(&t->mu, NULL);
	publish(t);
	rc = dm_sched_new(&t->sched, &so, err);
	if (!rc)
		rc = dm_actor_new(&t->actor, t->sched, "transfers", handle, t, NULL, err);
	if (rc) {
		dm_transfers_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void dm_transfers_free(struct dm_transfers *t)
{
	if (!t)
		return;
	/* cancels the jobs (their curl calls notice within a second) and waits */
	dm_sched_stop(t->sched);
	dm_actor_unref(t->actor);
	dm_sched_free(t->sched);
	for (size_t i = 0; i < t->n; i++)
		json_decref(t->recs[i].branches);
	free(t->recs);
	snap_unref(t->snap);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static char *dup_or_null(const char *s)
{
	return s ? dm_xstrdup(s) : NULL;
}

int dm_transfers_begin(struct dm_transfers *t, const struct dm_transfer_spec *spec, char *id_out,
		       struct dm_err *err)
{
	struct job_arg *a = dm_xcalloc(1, sizeof(*a));
	struct dm_msg *msg, *reply = NULL;
	int rc;

	a->env = &t->env;
	a->direction = spec->direction;
	a->host = dm_xstrdup(spec->host);
	a->port = spec->port;
	a->user = dm_xstrdup(spec->user);
	a->key = dm_xstrdup(spec->api_key);
	a->ca = spec->ca ? dm_xstrdup(spec->ca) : NULL;
	if (spec->node) {
		a->is_node = true;
		a->node = *spec->node;
	}
	a->remote_name = dup_or_null(spec->remote_name);
	a->dot = spec->dot;
	a->remote_dot = spec->remote_dot;
	a->branch = dup_or_null(spec->branch);
	a->stash = spec->stash;
	a->clone = spec->clone;
	a->trusted = spec->trusted;
	snprintf(a->caller, sizeof(a->caller), "%s", spec->caller ? spec->caller : "");
	msg = dm_msg_new(XF_START, a, job_arg_free);
	rc = dm_actor_call(&reply, t->actor, msg, DM_DOT_CALL_DEADLINE_MS, err);
	if (!rc)
		snprintf(id_out, DM_UUID_LEN + 1, "%s", (const char *)reply->payload);
	dm_msg_free(reply);
	return rc;
}

static bool may_see(json_t *callers, size_t i, const char *user)
{
	return !user || !strcmp(json_string_value(json_array_get(callers, i)), user);
}

int dm_transfers_show(struct dm_transfers *t, const char *id, const char *user, json_t **out,
		      struct dm_err *err)
{
	struct snap *s = snap_get(t);
	size_t i;
	json_t *v;

	json_array_foreach(s->list, i, v)
	{
		if (strcmp(json_string_value(json_object_get(v, "id")), id) ||
		    !may_see(s->callers, i, user))
			continue;
		*out = json_deep_copy(v);
		snap_unref(s);
		return 0;
	}
	snap_unref(s);
	return dm_err_set(err, DM_ENOTFOUND, "no such transfer '%.64s'", id);
}

int dm_transfers_wait(struct dm_transfers *t, const char *id, int timeout_ms, struct dm_err *err)
{
	for (int waited = 0; waited < timeout_ms; waited += 20) {
		struct timespec ts = {0, 20 * 1000000L};
		json_t *x = NULL, *e;
		const char *state;
		int rc = dm_transfers_show(t, id, NULL, &x, err);

		if (rc)
			return rc;
		state = json_string_value(json_object_get(x, "state"));
		e = json_object_get(x, "error");
		if (state && !strcmp(state, "done"))
			rc = 1;
		else if (state && !strcmp(state, "failed")) {
			const char *code = json_string_value(json_object_get(e, "code"));
			const char *msg = json_string_value(json_object_get(e, "message"));
			int c = code ? dm_err_from_json_name(code) : DM_EIO;

			rc = dm_err_set(err, c < 0 ? c : DM_EIO, "%s",
					msg ? msg : "the transfer failed");
		}
		json_decref(x);
		if (rc)
			return rc == 1 ? 0 : rc;
		nanosleep(&ts, NULL);
	}
	return dm_err_set(err, DM_ETIMEOUT, "transfer %s did not end within %d s", id,
			  timeout_ms / 1000);
}

json_t *dm_transfers_list(struct dm_transfers *t, const char *user)
{
	struct snap *s = snap_get(t);
	json_t *list = json_array(), *v;
	size_t i;

	json_array_foreach(s->list, i, v) if (may_see(s->callers, i, user))
		json_array_append_new(list, json_deep_copy(v));
	snap_unref(s);
	return json_pack("{s:o}", "transfers", list);
}
