/*
 * commit_job.c - the COMMIT job: the dot's pre-commit hook, the working
 * copy taken as of one instant (an engine snapshot, or the dir engine's
 * passes with the containers that use the branch frozen for the last one),
 * the post-commit hook, and the commit sealed with dm's record of how it
 * was taken (DM_META_* in util/names.h; docs/consistency.md).
 *
 * Invariants: a freeze is ended exactly once, on every path (the engine's
 * thaw callback; the freezer's guard and journal cover a dmd that dies
 * first); the post-commit hook runs exactly once whenever the pre-commit
 * hook was tried, right after the thaw when there was a freeze, so that a
 * database held for the commit is let go before the slow hashing; a failed
 * pre-commit hook, a failed freeze or a freeze past its bound commit
 * nothing. A hook in a container runs only in one that uses the branch.
 */
#include "server/dots/dot_internal.h"
#include "engine/engine.h"
#include "server/dots/docker.h"
#include "server/dots/freezer.h"
#include "server/dots/hooks.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/id.h"
#include "util/log.h"
#include "util/names.h"
#include "util/volname.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/banned.h"

/* One commit under way: what the callbacks and the hooks share. */
struct commit_run {
	struct dm_dot_job_in *in;
	char id[DM_COMMIT_ID_LEN_MAX + 1];
	struct dm_hook pre, post;
	bool has_pre, has_post;
	bool post_ran;
	struct dm_buf hooks_said; /* "pre-commit: ok; post-commit: ..." */
	struct dm_freeze *freeze;
	int64_t frozen_ns;
	int64_t t_pause, t_paused; /* monotonic: where a freeze's time goes */
	int thaw_rc;               /* what ending the freeze said */
	struct dm_err thaw_err;
	json_t *warnings;
};

static void warn(struct commit_run *c, const char *msg)
{
	dm_warn("dot %s: %s", c->in->dot_id, msg);
	if (!c->warnings)
		c->warnings = json_array();
	json_array_append_new(c->warnings, json_string(msg));
}

/* The dot's hooks, from the JSON text the actor gave (checked when set). */
static int load_hooks(struct commit_run *c, struct dm_err *err)
{
	json_t *all, *j;
	int rc = 0;

	if (!c->in->hooks)
		return 0;
	all = json_loads(c->in->hooks, 0, NULL);
	if ((j = json_object_get(all, DM_HOOK_PRE_COMMIT)) &&
	    !(rc = dm_hook_from_json(&c->pre, j, err)))
		c->has_pre = true;
	if (!rc && (j = json_object_get(all, DM_HOOK_POST_COMMIT)) &&
	    !(rc = dm_hook_from_json(&c->post, j, err)))
		c->has_post = true;
	json_decref(all);
	return rc;
}

/* Whether the container a hook names (a name, an id or an id's first 12
 * characters or more) is one that uses the branch. */
static bool uses_branch(const struct dm_dot_job_in *in, const char *container)
{
	size_t len = strlen(container);

	for (size_t i = 0; i < in->ncontainers; i++)
		if (!strcmp(in->container_names[i], container) ||
		    (len >= 12 && !strncmp(in->containers[i], container, len)))
			return true;
	return false;
}

static int run_hook(struct commit_run *c, const char *which, const struct dm_hook *h,
		    struct dm_err *err)
{
	char what[200], e_dot[160], e_branch[96], e_hook[48], e_commit[160];
	char *env[] = {e_dot, e_branch, e_hook, e_commit, NULL};
	int64_t t0 = dm_now_monotonic_ns();
	int rc;

	snprintf(what, sizeof(what), "%s hook of dot %s/%s", which, c->in->name.ns,
		 c->in->name.name);
	snprintf(e_dot, sizeof(e_dot), "DM_DOT=%s/%s", c->in->name.ns, c->in->name.name);
	snprintf(e_branch, sizeof(e_branch), "DM_BRANCH=%s", c->in->branch);
	snprintf(e_hook, sizeof(e_hook), "DM_HOOK=%s", which);
	snprintf(e_commit, sizeof(e_commit), "DM_COMMIT=%s", c->id);
	if (h->container && h->container[0] && !uses_branch(c->in, h->container))
		rc = dm_err_set(err, DM_EPERM,
				"the %s runs in container '%s', which does not use branch '%s' "
				"of the dot",
				what, h->container, c->in->branch);
	else if (h->container && h->container[0] && !c->in->env.docker)
		rc = dm_err_set(err, DM_EUNAVAILABLE,
				"the %s runs in container '%s', but dmd has no container engine "
				"to reach it (--docker-socket)",
				what, h->container);
	else
		rc = dm_hook_run(c->in->env.docker, h, what, env, err);
	if (c->hooks_said.len)
		dm_buf_adds(&c->hooks_said, "; ");
	if (rc)
		dm_buf_addf(&c->hooks_said, "%s: failed (%.300s)", which, err->msg);
	else
		dm_buf_addf(&c->hooks_said, "%s: ok in %lld ms", which,
			    (long long)((dm_now_monotonic_ns() - t0) / 1000000));
	return rc;
}

/* The post-commit hook, once; its failure is a warning, not the commit's. */
static void run_post(struct commit_run *c)
{
	struct dm_err err;

	if (c->post_ran || !c->has_post)
		return;
	c->post_ran = true;
	if (run_hook(c, DM_HOOK_POST_COMMIT, &c->post, &err))
		warn(c, err.msg);
}

/* ---- the freezer the engine calls ---- */

/* Tries to freeze the containers, at most (the bound of the freeze counts
 * from the first). */
#define FREEZE_ATTEMPTS 4

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static int freeze(void *ctx, struct dm_err *err)
{
	struct commit_run *c = ctx;
	char key[DM_DOT_ID_MAX + DM_NAME_PART_MAX + 2];
	int rc;

	snprintf(key, sizeof(key), "%s-%s", c->in->dot_id, c->in->branch);
	c->t_pause = dm_now_monotonic_ns();
	for (int attempt = 1;; attempt++) {
		rc = dm_freeze_begin(c->in->env.freezer, key, (const char(*)[65])c->in->containers,
				     c->in->ncontainers, c->in->max_freeze_ms * 1000000, &c->freeze,
				     err);
		/* the engine may fail to freeze a task caught in uninterruptible
		 * I/O (runc: "unable to freeze"), and has thawed what it froze:
		 * try again a few times; a conflict or a missing container is
		 * not worth another try */
		if (!rc || rc == DM_ECONFLICT || rc == DM_ENOTFOUND || rc == DM_EBUSY ||
		    attempt == FREEZE_ATTEMPTS)
			break;
		dm_info("dot %s: freezing the containers failed (%s); trying again", c->in->dot_id,
			err->msg);
		nap_ms(50 << attempt);
	}
	if (!rc)
		c->t_paused = dm_freeze_frozen_since(c->freeze);
	return rc;
}

static void thaw(void *ctx)
{
	struct commit_run *c = ctx;
	int64_t t_thaw = dm_now_monotonic_ns();

	c->thaw_rc = dm_freeze_end(c->freeze, &c->frozen_ns, &c->thaw_err);
	c->freeze = NULL;
	dm_info("dot %s: branch '%s' frozen for %lld ms: pausing %zu containers %lld ms, the "
		"last pass %lld ms, thawing %lld ms",
		c->in->dot_id, c->in->branch, (long long)(c->frozen_ns / 1000000),
		c->in->ncontainers, (long long)((c->t_paused - c->t_pause) / 1000000),
		(long long)((t_thaw - c->t_paused) / 1000000),
		(long long)((dm_now_monotonic_ns() - t_thaw) / 1000000));
	if (c->thaw_rc && c->thaw_rc != DM_ETIMEOUT)
		warn(c, c->thaw_err.msg); /* the capture was made; the containers may not run */
	run_post(c);
}

/* ---- the record of how the commit was taken ---- */

static json_t *capture_meta(struct commit_run *c, const struct dm_engine_capture *cap, bool frozen)
{
	json_t *m = json_object();
	char text[DM_META_VALUE_MAX + 1];
	struct dm_buf names = DM_BUF_INIT;

	json_object_set_new(m, DM_META_CAPTURE, json_string(dm_capture_kind_name(cap->kind)));
	if (frozen) {
		snprintf(text, sizeof(text), "%lld", (long long)(c->frozen_ns / 1000000));
		json_object_set_new(m, DM_META_FREEZE_MS, json_string(text));
		for (size_t i = 0; i < c->in->ncontainers && names.len < 2000; i++)
			dm_buf_addf(&names, "%s%s", i ? ", " : "", c->in->container_names[i]);
		json_object_set_new(m, DM_META_FROZEN,
				    json_stringn((const char *)names.data, names.len));
	}
	if (cap->kind == DM_CAPTURE_NOT_INSTANT) {
		snprintf(text, sizeof(text),
			 "%llu entries changed while it was read, the first: %s",
			 (unsigned long long)cap->changed, cap->changed_path);
		json_object_set_new(m, DM_META_CHANGED, json_string(text));
	}
	if (c->hooks_said.len)
		json_object_set_new(m, DM_META_HOOKS,
				    json_stringn((const char *)c->hooks_said.data,
						 c->hooks_said.len < DM_META_VALUE_MAX
							 ? c->hooks_said.len
							 : DM_META_VALUE_MAX));
	dm_buf_release(&names);
	return m;
}

/*
 * Adds to in->containers the running containers that the engine says have
 * a volume of this dot's branch mounted (the plugin's records may not know
 * them yet, or any more after dmd restarted): a volume of the dot pinned
 * to the branch, or following the dot when the branch is the current one.
 */
static void engine_containers(struct dm_dot_job_in *in)
{
	struct dm_docker_mount *ms = NULL;
	struct dm_err err;
	size_t n = 0, cap;

	if (!in->env.docker || !in->env.volume_driver)
		return;
	if (dm_docker_running_mounts(in->env.docker, in->env.volume_driver, &ms, &n, &err)) {
		dm_warn("dot %s: cannot list the containers from the engine: %s", in->dot_id,
			err.msg);
		return;
	}
	cap = in->ncontainers + n + 1;
	in->containers = dm_xrealloc(in->containers, cap * sizeof(*in->containers));
	in->container_names = dm_xrealloc(in->container_names, cap * sizeof(*in->container_names));
	for (size_t i = 0; i < n; i++) {
		struct dm_volname v;
		bool known = false;

		if (dm_volname_parse(&v, ms[i].volume, NULL) || strcmp(v.dot.ns, in->name.ns) ||
		    strcmp(v.dot.name, in->name.name))
			continue;
		if (v.branch[0] ? strcmp(v.branch, in->branch) != 0 : !in->is_current)
			continue;
		for (size_t k = 0; k < in->ncontainers; k++)
			known = known || !strcmp(in->containers[k], ms[i].id);
		if (known)
			continue;
		snprintf(in->containers[in->ncontainers], sizeof(*in->containers), "%s", ms[i].id);
		snprintf(in->container_names[in->ncontainers++], sizeof(*in->container_names), "%s",
			 ms[i].name);
	}
	free(ms);
}

/* The dir engine's commit, freezing the containers when there are some. */
static int take(struct commit_run *c, dm_oid *tree, struct dm_engine_capture *cap, bool *frozen,
		struct dm_engine_progress *p, struct dm_err *err)
{
	struct dm_dot_job_in *in = c->in;
	struct dm_engine_freezer fz = {freeze, thaw, c, in->max_freeze_ms * 1000000};
	bool can_freeze;
	int rc;

	can_freeze = in->ncontainers && in->env.freezer;
	rc = dm_engine_commit_instant(in->env.engine, in->dot_id, in->branch,
				      can_freeze ? &fz : NULL, tree, cap, p, err);
	*frozen = can_freeze && c->frozen_ns > 0;
	if (!rc && c->thaw_rc == DM_ETIMEOUT)
		rc = dm_err_set(err, DM_ETIMEOUT, "%s; nothing was committed", c->thaw_err.msg);
	if (!rc && cap->kind == DM_CAPTURE_NOT_INSTANT) {
		char msg[600];

		snprintf(msg, sizeof(msg),
			 "not one instant: %llu entries changed while the commit read them (the "
			 "first: %s); something writes to the dot that dm cannot freeze",
			 (unsigned long long)cap->changed, cap->changed_path);
		warn(c, msg);
	}
	return rc;
}

/* The id the caller chose (dotmesh's #commit-id), if it is free; c->id
 * stays "" when none was chosen. */
static int chosen_id(struct commit_run *c, struct dm_err *err)
{
	struct dm_err lookup;
	char shown[DM_DOT_NAME_TEXT_MAX];
	dm_oid oid;
	int rc;

	if (!c->in->commit_id[0])
		return 0;
	rc = dm_commit_id_check(c->in->commit_id, err);
	if (rc)
		return rc;
	rc = dm_store_commit_get(c->in->env.store, c->in->dot_id, c->in->commit_id, &oid, &lookup);
	if (rc == 0)
		return dm_err_set(err, DM_EEXISTS, "dot '%s' has a commit '%s' already",
				  dm_dot_name_text(shown, &c->in->name), c->in->commit_id);
	if (rc != DM_ENOTFOUND)
		return dm_err_set(err, rc, "%s", lookup.msg);
	snprintf(c->id, sizeof(c->id), "%s", c->in->commit_id);
	return 0;
}

int dm_dot_job_commit(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
		      struct dm_engine_progress *p, struct dm_err *err)
{
	struct commit_run c;
	struct dm_engine_capture cap;
	int64_t now = dm_now_realtime_ns();
	bool frozen = false;
	dm_oid tree;
	json_t *meta = NULL;
	int rc;

	memset(&c, 0, sizeof(c));
	memset(&cap, 0, sizeof(cap));
	c.in = in;
	if (!dm_engine_can_snapshot(in->env.engine) || in->hooks)
		engine_containers(in); /* to freeze, and where hooks may run */
	rc = chosen_id(&c, err);
	if (!rc && !c.id[0])
		rc = dm_id_uuid7(c.id, now / 1000000, err);
	if (!rc)
		rc = load_hooks(&c, err);
	if (rc)
		goto done;
	if (c.has_pre && (rc = run_hook(&c, DM_HOOK_PRE_COMMIT, &c.pre, err))) {
		dm_err_prefix(err, "nothing was committed");
		goto done;
	}
	snprintf(out->head, sizeof(out->head), "%s", c.id);
	out->commits = in->commits + 1;
	out->time_ns = now;
	if (dm_engine_can_snapshot(in->env.engine)) {
		/* two steps: the snapshot now, the tree later (an INDEX job) */
		rc = dm_engine_snapshot(in->env.engine, in->dot_id, in->branch, c.id, err);
		cap.kind = DM_CAPTURE_SNAPSHOT;
		run_post(&c);
		if (!rc) {
			out->pending = true;
			out->meta = capture_meta(&c, &cap, false);
		}
	} else {
		rc = take(&c, &tree, &cap, &frozen, p, err);
		run_post(&c);
		/* the tree is stored and nothing is committed yet: the last
		 * point where a cancel loses no commit */
		if (!rc && p->cancelled && p->cancelled(p->ctx))
			rc = dm_err_set(err, DM_ECANCELED, "commit canceled; nothing was committed");
		meta = rc ? NULL : capture_meta(&c, &cap, frozen);
		if (!rc)
			rc = dm_dot_seal_commit(in, c.id, in->head, &tree, now, meta, err);
		out->has_tree = true;
		out->tree = tree;
	}
	if (rc)
		goto done;
	/* dirty is 0 by construction; the size is measured when someone lists */
	out->json = json_pack("{s:s, s:s}", "id", c.id, "capture", dm_capture_kind_name(cap.kind));
	if (frozen)
		json_object_set_new(out->json, "freeze_ms",
				    json_integer((json_int_t)(c.frozen_ns / 1000000)));
done:
	run_post(&c); /* whatever failed, the post-commit hook runs */
	if (c.warnings) {
		out->warnings = c.warnings;
		c.warnings = NULL;
	}
	json_decref(meta);
	if (c.has_pre)
		dm_hook_release(&c.pre);
	if (c.has_post)
		dm_hook_release(&c.post);
	dm_buf_release(&c.hooks_said);
	return rc;
}
