/*
 * plugin.c - the Docker volume plugin of dmd (see plugin.h): the protocol's
 * endpoints, and the resolver that names the containers behind the mounts
 * (which the dots record).
 *
 * Invariants:
 *  - The dot is the one record of who mounts it (DESIGN.md §3.1): each
 *    Mount is a runtime mount at the dot (its key, the name the runtime
 *    gave, the path answered), each container using it a record there
 *    (MOUNT and UNMOUNT, which a dot answers at once even while a job
 *    runs). The plugin keeps no table of mounts: Path, Get and List read
 *    the dots' views, Unmount finds the dot whose view has the mount.
 *  - The resolver's queue (p->pending, under p->mu) says only when to look
 *    for a mount's containers next. A record the resolver makes can never
 *    outlive the Unmount that ended its mount: the dot refuses a container
 *    of a runtime mount it no longer has, and drops a runtime mount's
 *    records with it.
 *  - Only the resolver thread calls the Docker API, and never while
 *    holding mu: podman holds a container's lock while it waits for our
 *    Mount answer, so a protocol call that asked the API would deadlock.
 *  - Every protocol call gets one answer within p->call_ms plus a little:
 *    200 with a JSON object, or an error status with {"Err": message}.
 *
 * A volume DOT@X where X is not a branch of DOT but one of its commits (a
 * whole id) is that commit, read-only (dotmesh's MountCommit): its Mount
 * asks the dot for a read-only copy of the commit held by "plugin:KEY"
 * (made on the first Mount, which may take longer than call_ms: it waits
 * up to COPY_MS), answers the copy's path, and its Unmount lets go of it.
 * Its containers' records name the commit as their branch, which no
 * reset or checkout of a branch touches.
 *
 * A mount (one Mount call) is recorded at the dot under KEY = "ID@HASH":
 * ID is the runtime's mount ID (at most 64 characters of it), HASH a hash
 * of the volume name and the whole ID. Until its container is known the
 * record names the short ID (its first 12 characters) and has no container
 * id, so a reset never tries to stop it. Docker mounts once per container,
 * with the container's id: the resolver finds it by that id and keeps the
 * one record. podman counts mounts itself and always sends one pseudo ID,
 * so one mount may serve several containers: the resolver lists the
 * running containers using the volume and keeps one record per container
 * (KEY:SHORTID), again every sweep_ms while the mount lasts.
 */
#include "server/api/plugin.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "actor/actor.h"
#include "kv/kv.h"
#include "server/api/http.h"
#include "server/cluster/forward.h"
#include "server/dots/docker.h"
#include "server/dots/dot.h"
#include "server/dots/registry.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/volname.h"

#include "util/banned.h"

#define SHORT_ID         12
#define RUNTIME_NAME_MAX 255 /* a volume name as the runtime gives it */
#define KEY_ID_MAX       64  /* how much of a mount ID a key keeps */
#define KEY_MAX          (KEY_ID_MAX + 1 + 16)
#define FIRST_LOOK_MS    50  /* the resolver's first look after a Mount */
#define RETRY_MS         500 /* ...and its next ones, while nothing is found */
#define FAST_TRIES       10  /* retries at RETRY_MS before slowing to sweep_ms */
#define NEVER            INT64_MAX
#define COPY_MS          (600 * 1000) /* making a read-only copy of a commit */

enum mode { MODE_UNKNOWN, MODE_DIRECT, MODE_LIST };

/* A mount whose containers the resolver looks for, from its Mount to its
 * Unmount (or until it is found gone at its dot). */
struct pending {
	char name[RUNTIME_NAME_MAX + 1]; /* the volume as the runtime names it */
	char runtime_id[DM_COMMIT_ID_LEN_MAX + 1];
	char dot_id[DM_DOT_ID_MAX + 1];
	/* what its container records share: volume, branch, subdot, and `of`,
	 * the mount's key (mount_key) */
	struct dm_mount_view base;
	uint64_t gen;
	int mode;
	int tries;
	int64_t due_ns; /* when the resolver looks next; NEVER: it does not */
};

struct dm_plugin {
	struct dm_registry *registry;
	struct dm_kv *kv;
	struct dm_docker *docker;
	const struct dm_cluster_env *cluster_node; /* or NULL */
	int call_ms, sweep_ms;
	struct dm_http *http;
	pthread_mutex_t mu;
	pthread_cond_t cond;      /* CLOCK_MONOTONIC: a mount is due, or stopping */
	bool stopping;            /* under mu */
	struct pending **pending; /* under mu */
	size_t npending;
	uint64_t next_gen;
	pthread_t resolver;
	bool have_resolver;
};

/* ---- small helpers ---- */

static int64_t ms_from_now(int ms)
{
	return dm_now_monotonic_ns() + (int64_t)ms * 1000000;
}

/* Under mu: the resolver's entry for mount key, or NULL. */
static struct pending *find_pending(struct dm_plugin *p, const char *key)
{
	for (size_t i = 0; i < p->npending; i++)
		if (!strcmp(p->pending[i]->base.of, key))
			return p->pending[i];
	return NULL;
}

/* Under mu: forgets m. */
static void remove_pending(struct dm_plugin *p, struct pending *m)
{
	for (size_t i = 0; i < p->npending; i++) {
		if (p->pending[i] == m) {
			p->pending[i] = p->pending[--p->npending];
			break;
		}
	}
	free(m);
}

/* KEY of a mount: "ID@HASH", see the top of the file. */
static void mount_key(char *out, size_t size, const char *name, const char *runtime_id)
{
	char hex[DM_OID_HEXSZ + 1];
	struct dm_buf b = DM_BUF_INIT;
	dm_oid h;

	dm_buf_addf(&b, "%s\n%s", name, runtime_id);
	dm_hash(&h, b.data, b.len);
	dm_buf_release(&b);
	dm_oid_hex(hex, &h);
	snprintf(out, size, "%.*s@%.16s", KEY_ID_MAX, runtime_id, hex);
}

/* The dot named n, or the one with id: a new handle reference, or NULL. */
static struct dm_dot_handle *find_dot(struct dm_plugin *p, const struct dm_dot_name *n,
				      const char *id)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(p->registry);
	const struct dm_registry_entry *e =
		n ? dm_registry_find(snap, n) : dm_registry_find_id(snap, id);
	struct dm_dot_handle *h = e ? e->dot : NULL;

	if (h)
		dm_dot_handle_ref(h);
	dm_registry_snap_unref(snap);
	return h;
}

/*
 * The dot whose view has a runtime mount for which match(mount, arg) says
 * so: a new handle reference with that mount copied into *found (may be
 * NULL), or NULL when no dot has one.
 */
static struct dm_dot_handle *find_runtime_mount(struct dm_plugin *p,
						bool (*match)(const struct dm_runtime_mount *,
							      const char *),
						const char *arg, struct dm_runtime_mount *found)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(p->registry);
	struct dm_dot_handle *h = NULL;

	for (size_t i = 0; !h && i < snap->n; i++) {
		struct dm_dot_view *v = dm_dot_handle_view(snap->e[i].dot);

		for (size_t j = 0; !h && j < v->nruntime_mounts; j++) {
			if (!match(&v->runtime_mounts[j], arg))
				continue;
			h = snap->e[i].dot;
			dm_dot_handle_ref(h);
			if (found)
				*found = v->runtime_mounts[j];
		}
		dm_dot_view_unref(v);
	}
	dm_registry_snap_unref(snap);
	return h;
}

static bool mount_named(const struct dm_runtime_mount *m, const char *name)
{
	return !strcmp(m->name, name);
}

static bool mount_keyed(const struct dm_runtime_mount *m, const char *key)
{
	return !strcmp(m->key, key);
}

/* ---- names and aliases ---- */

/* podman's rule for volume names, which aliases follow too. */
static bool alias_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > RUNTIME_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum =
			(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return false;
	}
	return true;
}

static void alias_key(char *out, size_t size, const char *name)
{
	snprintf(out, size, DM_KV_VOLUMES "%s", name);
}

/* The dm volume an alias stands for, into out (DM_VOLNAME_MAX + 1); 1
 * when name is an alias, 0 when not, or an error. */
static int alias_get(struct dm_plugin *p, char *out, const char *name, struct dm_err *err)
{
	char key[RUNTIME_NAME_MAX + 32];
	struct dm_kv_kv kv;
	json_t *j = NULL;
	const char *v;
	int rc;

	if (!alias_valid(name))
		return 0;
	alias_key(key, sizeof(key), name);
	dm_kv_kv_init(&kv);
	rc = dm_kv_get(p->kv, &kv, key, err);
	if (rc == DM_ENOTFOUND) {
		rc = 0;
		goto done;
	}
	if (rc)
		goto done;
	j = json_loadb(kv.value, kv.value_len, 0, NULL);
	v = json_string_value(json_object_get(j, "volume"));
	if (!v || strlen(v) > DM_VOLNAME_MAX) {
		rc = dm_err_set(err, DM_ECORRUPT, "corrupt alias of volume '%s' in the KV", name);
		goto done;
	}
	snprintf(out, DM_VOLNAME_MAX + 1, "%s", v);
	rc = 1;
done:
	json_decref(j);
	dm_kv_kv_release(&kv);
	return rc;
}

/* What the runtime's volume name means: an alias, or a dm volume name. */
static int resolve_name(struct dm_plugin *p, struct dm_volname *out, const char *name,
			struct dm_err *err)
{
	char target[DM_VOLNAME_MAX + 1];
	int rc = alias_get(p, target, name, err);

	if (rc < 0)
		return rc;
	return dm_volname_parse(out, rc ? target : name, err);
}

/* ---- requests to dots ---- */

/* Records m at the dot: a new runtime mount named volume_name, or (NULL)
 * a container of the runtime mount m->of; *path (may be NULL) gets the
 * path it answers: fixed (a commit's read-only copy), or the working
 * copy's (fixed NULL). */
static int dot_mount(struct dm_plugin *p, struct dm_dot_handle *h, const struct dm_mount_view *m,
		     const char *volume_name, const char *fixed, char **path, struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_MOUNT);
	json_t *res = NULL;
	const char *s;
	int rc;

	req->mount = dm_xmalloc(sizeof(*req->mount));
	*req->mount = *m;
	req->volume_name = volume_name ? dm_xstrdup(volume_name) : NULL;
	req->branch = m->branch[0] && !fixed ? dm_xstrdup(m->branch) : NULL;
	req->mount_path = fixed ? dm_xstrdup(fixed) : NULL;
	rc = dm_dot_call(&res, h, req, p->call_ms, err);
	if (rc)
		return rc;
	s = json_string_value(json_object_get(res, "path"));
	if (!s)
		rc = dm_err_set(err, DM_EINTERNAL, "the dot answered a mount without a path");
	else if (path)
		*path = dm_xstrdup(s);
	json_decref(res);
	return rc;
}

/* Ends the runtime mount mount_id at the dot (of NULL), or drops only the
 * record mount_id of the runtime mount `of`. */
static int dot_unmount(struct dm_plugin *p, struct dm_dot_handle *h, const char *mount_id,
		       const char *of, struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_UNMOUNT);
	json_t *res = NULL;
	int rc;

	req->mount = dm_xcalloc(1, sizeof(*req->mount));
	snprintf(req->mount->mount_id, sizeof(req->mount->mount_id), "%s", mount_id);
	snprintf(req->mount->of, sizeof(req->mount->of), "%s", of ? of : "");
	rc = dm_dot_call(&res, h, req, p->call_ms, err);
	json_decref(res);
	return rc;
}

/* Whether id is a commit of the dot h (a whole id, in its store). */
static bool is_commit(struct dm_plugin *p, struct dm_dot_handle *h, const char *id)
{
	dm_oid oid;

	return dm_store_commit_get(dm_registry_env(p->registry)->store, dm_dot_handle_id(h), id,
				   &oid, NULL) == 0;
}

/*
 * The dot a volume names, made when missing (when create): a new handle
 * reference. A pinned branch must exist, or be a commit of the dot (then
 * *commit, when not NULL, is true: the volume is that commit, read-only);
 * a dot that does not exist yet has only master.
 */
static int volume_dot(struct dm_plugin *p, struct dm_dot_handle **out, const char *runtime_name,
		      const struct dm_volname *v, bool create, bool *commit, struct dm_err *err)
{
	char shown[DM_DOT_NAME_TEXT_MAX];
	struct dm_dot_handle *h = find_dot(p, &v->dot, NULL);
	struct dm_dot_view *view;
	json_t *res = NULL;
	int rc;

	dm_dot_name_text(shown, &v->dot);
	if (!h && !create)
		return dm_err_set(err, DM_ENOTFOUND, "no such volume '%s': there is no dot '%s'",
				  runtime_name, shown);
	if (!h) {
		if (v->branch[0] && strcmp(v->branch, "master"))
			return dm_err_set(err, DM_ENOTFOUND,
					  "dot '%s' does not exist, so it has no branch '%s'; make "
					  "both first (dm init %s; dm branch %s)",
					  shown, v->branch, shown, v->branch);
		rc = dm_registry_create(p->registry, &res, &v->dot, NULL, p->call_ms, err);
		json_decref(res);
		if (rc && rc != DM_EEXISTS)
			return dm_err_prefix(err, "cannot create dot '%s'", shown);
		if (!rc)
			dm_info("plugin: created dot '%s' for volume '%s'", shown, runtime_name);
		h = find_dot(p, &v->dot, NULL);
		if (!h)
			return dm_err_set(err, DM_ENOTFOUND, "dot '%s' went away as it was made",
					  shown);
	}
	view = dm_dot_handle_view(h);
	rc = 0;
	if (view->state != DM_DOT_READY && view->state != DM_DOT_CREATING)
		rc = dm_err_set(err, DM_ENOTFOUND, "no such volume '%s': dot '%s' is being deleted",
				runtime_name, shown);
	else if (v->branch[0] && !dm_dot_view_branch(view, v->branch) &&
		 !is_commit(p, h, v->branch))
		rc = dm_err_set(err, DM_ENOTFOUND,
				"dot '%s' has no branch '%s', nor a commit of that id", shown,
				v->branch);
	if (commit)
		*commit = !rc && v->branch[0] && !dm_dot_view_branch(view, v->branch);
	dm_dot_view_unref(view);
	if (rc) {
		dm_dot_handle_unref(h);
		return rc;
	}
	*out = h;
	return 0;
}

/* ---- the resolver ---- */

/* What the resolver learns about one mount, outside the lock. */
struct lookup {
	struct pending m; /* the mount's entry as it was (under mu); mode as learnt */
	int rc;
	struct dm_container *cs; /* running containers using the mount */
	size_t n;
};

static void lookup_run(struct dm_plugin *p, struct lookup *l)
{
	struct dm_container *all = NULL;
	struct dm_err err;
	size_t n = 0;

	if (l->m.mode != MODE_LIST) {
		l->cs = dm_xcalloc(1, sizeof(*l->cs));
		l->rc = dm_docker_container_name(p->docker, l->m.runtime_id, l->cs[0].name,
						 sizeof(l->cs[0].name), &err);
		if (!l->rc) {
			snprintf(l->cs[0].id, sizeof(l->cs[0].id), "%.64s", l->m.runtime_id);
			l->cs[0].running = true;
			l->n = 1;
			l->m.mode = MODE_DIRECT;
			return;
		}
		free(l->cs);
		l->cs = NULL;
		if (l->rc != DM_ENOTFOUND) {
			dm_debug("plugin: cannot ask the Docker API about '%s': %s",
				 l->m.runtime_id, err.msg);
			return;
		}
		l->m.mode = MODE_LIST; /* not a container: podman's pseudo ID */
	}
	l->rc = dm_docker_containers_using(p->docker, l->m.name, &all, &n, &err);
	if (l->rc) {
		dm_debug("plugin: cannot list the containers using '%s': %s", l->m.name, err.msg);
		return;
	}
	l->cs = dm_xcalloc(n ? n : 1, sizeof(*l->cs));
	for (size_t i = 0; i < n; i++)
		if (all[i].running)
			l->cs[l->n++] = all[i];
	free(all);
}

static bool has_container(const struct lookup *l, const char *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->cs[i].id, id))
			return true;
	return false;
}

static void retry_later(struct dm_plugin *p, struct pending *m)
{
	m->tries++;
	m->due_ns = ms_from_now(m->tries < FAST_TRIES ? RETRY_MS : p->sweep_ms);
}

/* Records at the dot the containers l found that it lacks; true when the
 * mount is gone there (unmounted meanwhile). *retry is set when a record
 * could not be made. */
static bool record_containers(struct dm_plugin *p, struct dm_dot_handle *h,
			      const struct dm_dot_view *v, const struct lookup *l, bool *retry)
{
	struct dm_err err;

	for (size_t i = 0; i < l->n; i++) {
		struct dm_mount_view mv = l->m.base;
		bool known = false;
		int rc;

		for (size_t j = 0; j < v->nmounts; j++)
			known = known || (!strcmp(v->mounts[j].of, l->m.base.of) &&
					  !strcmp(v->mounts[j].container_id, l->cs[i].id));
		if (known)
			continue;
		if (l->m.mode == MODE_DIRECT)
			snprintf(mv.mount_id, sizeof(mv.mount_id), "%s", l->m.base.of);
		else
			snprintf(mv.mount_id, sizeof(mv.mount_id), "%.*s:%.*s", KEY_MAX,
				 l->m.base.of, SHORT_ID, l->cs[i].id);
		snprintf(mv.container_id, sizeof(mv.container_id), "%s", l->cs[i].id);
		snprintf(mv.container, sizeof(mv.container), "%s", l->cs[i].name);
		rc = dot_mount(p, h, &mv, NULL, NULL, NULL, &err);
		if (rc == DM_ENOTFOUND)
			return true;
		if (rc) {
			dm_warn("plugin: cannot record container '%s' on volume '%s': %s",
				l->cs[i].name, l->m.name, err.msg);
			*retry = true;
			continue;
		}
		dm_info("plugin: volume '%s' is used by container '%s'", l->m.name, l->cs[i].name);
	}
	return false;
}

/*
 * Makes the mount's container records at its dot match what l found:
 * first the containers not recorded yet, so the dot is never without a
 * record, then (podman's shared mounts) the records of containers gone and
 * the one that waited. Then, under mu, when to look again.
 */
static void lookup_apply(struct dm_plugin *p, struct lookup *l)
{
	struct dm_dot_handle *h = NULL;
	struct dm_dot_view *v;
	struct pending *m;
	struct dm_err err;
	int64_t due = NEVER;
	bool retry = l->rc || l->n == 0, gone = false;

	if (!retry)
		h = find_dot(p, NULL, l->m.dot_id);
	if (h) {
		due = l->m.mode == MODE_DIRECT ? NEVER : ms_from_now(p->sweep_ms);
		v = dm_dot_handle_view(h);
		gone = record_containers(p, h, v, l, &retry);
		for (size_t j = 0; !gone && l->m.mode == MODE_LIST && j < v->nmounts; j++) {
			const struct dm_mount_view *r = &v->mounts[j];

			if (strcmp(r->of, l->m.base.of) || has_container(l, r->container_id))
				continue;
			if (dot_unmount(p, h, r->mount_id, l->m.base.of, &err))
				dm_warn("plugin: cannot drop a record of volume '%s': %s",
					l->m.name, err.msg);
		}
		dm_dot_view_unref(v);
		dm_dot_handle_unref(h);
	}
	pthread_mutex_lock(&p->mu);
	m = find_pending(p, l->m.base.of);
	if (m && m->gen == l->m.gen) {
		m->mode = l->m.mode;
		if (gone)
			remove_pending(p, m);
		else if (retry)
			retry_later(p, m);
		else
			m->due_ns = due;
	}
	pthread_mutex_unlock(&p->mu);
}

static struct pending *earliest(struct dm_plugin *p)
{
	struct pending *best = NULL;

	for (size_t i = 0; i < p->npending; i++)
		if (p->pending[i]->due_ns != NEVER &&
		    (!best || p->pending[i]->due_ns < best->due_ns))
			best = p->pending[i];
	return best;
}

static void *resolver_main(void *arg)
{
	struct dm_plugin *p = arg;

	pthread_mutex_lock(&p->mu);
	while (!p->stopping) {
		struct pending *m = earliest(p);
		int64_t now = dm_now_monotonic_ns();
		int64_t until = m ? m->due_ns : ms_from_now(3600 * 1000);
		struct lookup l;
		struct timespec ts;
		bool stopping;

		if (until > now) {
			ts.tv_sec = (time_t)(until / 1000000000);
			ts.tv_nsec = (long)(until % 1000000000);
			pthread_cond_timedwait(&p->cond, &p->mu, &ts);
			continue;
		}
		memset(&l, 0, sizeof(l));
		l.m = *m;
		m->due_ns = NEVER; /* being looked at */
		pthread_mutex_unlock(&p->mu);
		lookup_run(p, &l);
		pthread_mutex_lock(&p->mu);
		stopping = p->stopping;
		pthread_mutex_unlock(&p->mu);
		if (!stopping)
			lookup_apply(p, &l);
		free(l.cs);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- the endpoints ---- */

/* Every endpoint: req is the request's JSON object (borrowed); *res gets
 * the answer's object on success. */
typedef int (*endpoint_fn)(struct dm_plugin *p, json_t *req, json_t **res, struct dm_err *err);

static int req_str(const char **out, json_t *req, const char *key, size_t max, struct dm_err *err)
{
	json_t *v = json_object_get(req, key);

	if (!json_is_string(v) || !json_string_length(v))
		return dm_err_set(err, DM_EINVAL, "the request has no %s", key);
	if (json_string_length(v) > max)
		return dm_err_set(err, DM_EINVAL, "the request's %s is longer than %zu characters",
				  key, max);
	*out = json_string_value(v);
	return 0;
}

static int ep_activate(struct dm_plugin *p, json_t *req, json_t **res, struct dm_err *err)
{
	(void)p;
	(void)req;
	(void)err;
	*res = json_pack("{s:[s]}", "Implements", "VolumeDriver");
	return 0;
}

static int ep_capabilities(struct dm_plugin *p, json_t *req, json_t **res, struct dm_err *err)
{
	(void)p;
	(void)req;
	(void)err;
	*res = json_pack("{s:{s:s}}", "Capabilities", "Scope", "local");
	return 0;
}

/* Create: the dot is made when missing; -o volume=V makes the name an
 * alias of V. Creating again is fine, with the same alias. */
static int ep_create(struct dm_plugin *p, json_t *req, json_t **res, struct dm_err *err)
{
	char key[RUNTIME_NAME_MAX + 32], old[DM_VOLNAME_MAX + 1], canon[DM_VOLNAME_MAX + 1];
	json_t *opts = json_object_get(req, "Opts"), *v;
	const char *name, *target = NULL, *k;
	struct dm_dot_handle *h = NULL;
	struct dm_volname vn;
	int rc = req_str(&name, req, "Name", RUNTIME_NAME_MAX, err);

	if (rc)
		return rc;
	json_object_foreach(opts, k, v)
	{
		if (strcmp(k, "volume"))
			return dm_err_set(err, DM_EINVAL,
					  "unknown option '%s' for volume '%s'; dm takes only "
					  "volume=[NS/]DOT[@BRANCH][.SUBDOT]",
					  k, name);
		target = json_string_value(v);
		if (!target)
			return dm_err_set(err, DM_EINVAL, "option 'volume' of '%s' is not a string",
					  name);
	}
	rc = alias_get(p, old, name, err);
	if (rc < 0)
		return rc;
	if (rc == 1 && (!target || strcmp(old, target)))
		return dm_err_set(err, DM_EEXISTS, "volume '%s' exists and stands for '%s'", name,
				  old);
	rc = dm_volname_parse(&vn, target ? target : name, err);
	if (!rc && target && !alias_valid(name))
		rc = dm_err_set(err, DM_EINVAL,
				"invalid volume name '%s': a name given with -o volume= must match "
				"[a-zA-Z0-9][a-zA-Z0-9_.-]*",
				name);
	if (!rc)
		rc = volume_dot(p, &h, name, &vn, true, NULL, err);
	dm_dot_handle_unref(h);
	if (rc)
		return rc;
	if (target && strcmp(name, dm_volname_text(canon, sizeof(canon), &vn)) &&
	    strcmp(name, target)) {
		json_t *j = json_pack("{s:s}", "volume", target);
		char *s = json_dumps(j, JSON_COMPACT);

		alias_key(key, sizeof(key), name);
		rc = dm_kv_put(p->kv, NULL, key, s, strlen(s), 0, err);
		free(s);
		json_decref(j);
		if (rc)
			return rc;
		dm_info("plugin: volume '%s' stands for '%s'", name, target);
	}
	*res = json_object();
	return 0;
}

/* Remove: forgets an alias; the dot and its data stay (dm dot delete). */
static int ep_remove(struct dm_plugin *p, json_t *req, json_t **res, struct dm_err *err)
{
	char key[RUNTIME_NAME_MAX + 32], target[DM_VOLNAME_MAX + 1];
	const char *name;
	int rc = req_str(&name, req, "Name", RUNTIME_NAME_MAX, err);

	if (!rc)
		rc = alias_get(p, target, name, err);
	if (rc == 1) {
		alias_key(key, sizeof(key), name);
		rc = dm_kv_delete(p->kv, NULL, key, err);
		if (rc == DM_ENOTFOUND)
			rc = 0;
	}
	if (rc < 0)
		return rc;
	*res = json_object();
	return 0;
}

/* The path of a mounted volume in h's view, "" when it is not mounted. */
static char *mounted_path(struct dm_dot_handle *h, const char *name)
{
	struct dm_dot_view *v;
	char *path = NULL;

	v = dm_dot_handle_view(h);
	for (size_t i = 0; !path && i < v->nruntime_mounts; i++)
		if (mount_named(&v->runtime_mounts[i], name))
			path = dm_xstrdup(v->runtime_mounts[i].path);
	dm_dot_view_unref(v);
	return path ? path : dm_xstrdup("");
}

static int ep_get(struct dm_plugin *p, json_t *req, json_t **res, struct dm_err *err)
{
	struct dm_dot_handle *h = NULL;
	struct dm_dot_view *view;
	struct dm_volname vn;
	const char *name;
	char *path;
	int rc = req_str(&name, req, "Name", RUNTIME_NAME_MAX, err);

	if (!rc)
		rc = resolve_name(p, &vn, name, err);
	if (!rc)
		rc = volume_dot(p, &h, name, &vn, false, NULL, err);
	if (rc)
		return rc;
	view = dm_dot_handle_view(h);
	path = mounted_path(h, name);
	*res = json_pack("{s:{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:I}}}", "Volume", "Name", name,
			 "Mountpoint", path, "Status", "dot", view->name.name, "namespace",
			 view->name.ns, "branch", vn.branch[0] ? vn.branch : view->current,
			 "subdot", vn.subdot, "containers", (json_int_t)view->nmounts);
	free(path);
	dm_dot_view_unref(view);
	dm_dot_handle_unref(h);
	return 0;
}

/* List: one volume per dot, named as users write it. */
static int ep_list(struct dm_plugin *p, json_t *req, json_t **res, struct dm_err *err)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(p->registry);
	json_t *list = json_array();

	(void)req;
	(void)err;
	for (size_t i = 0; i < snap->n; i++) {
		struct dm_dot_view *v = dm_dot_handle_view(snap->e[i].dot);
		char shown[DM_DOT_NAME_TEXT_MAX];
		char *path;

		if (v->state == DM_DOT_READY) {
			dm_dot_name_text(shown, &v->name);
			path = mounted_path(snap->e[i].dot, shown);
			json_array_append_new(
				list, json_pack("{s:s, s:s}", "Name", shown, "Mountpoint", path));
			free(path);
		}
		dm_dot_view_unref(v);
	}
	dm_registry_snap_unref(snap);
	*res = json_pack("{s:o}", "Volumes", list);
	return 0;
}

/* Is the path recorded for runtime mount rm of h (volume `name`) still a
 * real directory? A subdot swapped for a link or a file since the Mount is
 * refused as the Mount would refuse it (dm_dot_subdot_check). */
static int check_mounted(struct dm_plugin *p, struct dm_dot_handle *h, const char *name,
			 const struct dm_runtime_mount *rm, struct dm_err *err)
{
	struct dm_dot_view *v;
	struct dm_volname vn;
	char root[DM_MOUNT_PATH_MAX];
	char shown[DM_DOT_NAME_TEXT_MAX];
	size_t n, len = strlen(rm->path);
	int rc = resolve_name(p, &vn, name, err);

	if (rc || !strcmp(vn.subdot, DM_SUBDOT_ROOT))
		return rc;
	v = dm_dot_handle_view(h);
	dm_dot_name_text(shown, &v->name);
	dm_dot_view_unref(v);
	n = strlen(vn.subdot);
	if (len < n + 2 || rm->path[len - n - 1] != '/' || strcmp(rm->path + len - n, vn.subdot))
		return dm_err_set(err, DM_EINTERNAL,
				  "volume '%s' was answered '%s', not its subdot", name, rm->path);
	snprintf(root, sizeof(root), "%.*s", (int)(len - n - 1), rm->path);
	return dm_dot_subdot_check(root, vn.subdot, shown, false, err);
}

static int ep_path(struct dm_plugin *p, json_t *req, json_t **res, struct dm_err *err)
{
	struct dm_runtime_mount rm;
	struct dm_dot_handle *h;
	const char *name;
	int rc = req_str(&name, req, "Name", RUNTIME_NAME_MAX, err);

	if (rc)
		return rc;
	h = find_runtime_mount(p, mount_named, name, &rm);
	if (!h) {
		*res = json_pack("{s:s}", "Mountpoint", "");
		return 0;
	}
	rc = check_mounted(p, h, name, &rm, err);
	dm_dot_handle_unref(h);
	if (rc)
		return rc;
	*res = json_pack("{s:s}", "Mountpoint", rm.path);
	return 0;
}

/* In a cluster: the branch a mount uses must be mastered here, where the
 * container runs (handoff, forward.h). */
static int take_branch(struct dm_plugin *p, struct dm_dot_handle *h, const struct dm_volname *vn,
		       struct dm_err *err)
{
	struct dm_dot_view *v = dm_dot_handle_view(h);
	char shown[DM_DOT_NAME_TEXT_MAX], branch[DM_NAME_PART_MAX + 1], id[DM_DOT_ID_MAX + 1];
	int rc;

	dm_dot_name_text(shown, &v->name);
	snprintf(branch, sizeof(branch), "%s", vn->branch[0] ? vn->branch : v->current);
	snprintf(id, sizeof(id), "%s", v->id);
	dm_dot_view_unref(v);
	rc = dm_forward_take_master(p->cluster_node, id, shown, branch, err);
	return rc ? dm_err_prefix(err, "cannot mount '%s' here", shown) : 0;
}

/* "plugin:" KEY: a runtime mount's hold on a read-only copy (dot.h). */
static void copy_holder(char *out, size_t size, const char *key)
{
	snprintf(out, size, "plugin:%s", key);
}

/* A runtime mount's hold on a commit's read-only copy goes (none: fine).
 * Not waited for: a removal of the copy may take a while. */
static void release_copy(struct dm_plugin *p, struct dm_dot_handle *h, const char *key)
{
	struct dm_dot_view *v = dm_dot_handle_view(h);
	struct dm_ticket *t = NULL;
	struct dm_dot_req *req;
	char holder[DM_COMMIT_ID_LEN_MAX + 16];
	bool held = false;

	copy_holder(holder, sizeof(holder), key);
	for (size_t i = 0; i < v->nholds; i++)
		held = held || !strcmp(v->holds[i].holder, holder);
	dm_dot_view_unref(v);
	if (!held)
		return;
	req = dm_dot_req_new(DM_DOT_OP_UNMOUNT_COMMIT);
	req->holder = dm_xstrdup(holder);
	/* a request (the dot serves requests only), whose answer nobody waits for */
	dm_actor_send_request(&t, dm_dot_handle_actor(h), dm_msg_new(0, req, dm_dot_req_free));
	dm_ticket_free(t);
}

/* The path a mount of commit volume vn answers: its read-only copy (made
 * when missing, held by the runtime mount key) and the subdot in it, which
 * must be there (a copy is never written to). malloc'ed into *out. */
static int commit_copy(struct dm_plugin *p, struct dm_dot_handle *h, const struct dm_volname *vn,
		       const char *key, char **out, struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_MOUNT_COMMIT);
	char holder[DM_COMMIT_ID_LEN_MAX + 16], shown[DM_DOT_NAME_TEXT_MAX];
	struct dm_buf path = DM_BUF_INIT;
	const char *copy;
	json_t *res = NULL;
	int rc;

	copy_holder(holder, sizeof(holder), key);
	req->from = dm_xstrdup(vn->branch);
	req->holder = dm_xstrdup(holder);
	rc = dm_dot_call(&res, h, req, COPY_MS, err);
	if (rc)
		return rc;
	copy = json_string_value(json_object_get(res, "path"));
	dm_dot_name_text(shown, &vn->dot);
	if (!copy)
		rc = dm_err_set(err, DM_EINTERNAL, "the dot answered a copy without a path");
	else if (dm_buf_addf(&path, "%s", copy))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!rc && strcmp(vn->subdot, DM_SUBDOT_ROOT)) {
		rc = dm_dot_subdot_check(copy, vn->subdot, shown, false, err);
		if (rc == DM_ENOTFOUND)
			dm_err_set(err, rc,
				   "commit '%s' of dot '%s' has no subdot '%s' (mount "
				   "%s@%s.__root__ for all of it)",
				   vn->branch, shown, vn->subdot, shown, vn->branch);
		if (!rc && dm_buf_addf(&path, "/%s", vn->subdot))
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	json_decref(res);
	if (rc) {
		dm_buf_release(&path);
		return rc;
	}
	*out = dm_xstrdup((const char *)path.data);
	dm_buf_release(&path);
	return 0;
}

static int ep_mount(struct dm_plugin *p, json_t *req, json_t **res, struct dm_err *err)
{
	struct dm_dot_handle *h = NULL;
	struct dm_mount_view mv;
	struct pending *m;
	struct dm_volname vn;
	const char *name, *id;
	char *path = NULL, *copy = NULL;
	bool commit = false;
	int rc = req_str(&name, req, "Name", RUNTIME_NAME_MAX, err);

	if (!rc)
		rc = req_str(&id, req, "ID", DM_COMMIT_ID_LEN_MAX, err);
	if (!rc)
		rc = resolve_name(p, &vn, name, err);
	if (!rc)
		rc = volume_dot(p, &h, name, &vn, true, &commit, err);
	if (!rc && p->cluster_node && !commit)
		rc = take_branch(p, h, &vn, err);
	if (rc) {
		dm_dot_handle_unref(h);
		return rc;
	}
	/* the runtime mount, and the record of its container until it is known
	 * (a mount of the same name and ID again is the same mount) */
	memset(&mv, 0, sizeof(mv));
	mount_key(mv.of, sizeof(mv.of), name, id);
	snprintf(mv.mount_id, sizeof(mv.mount_id), "%s", mv.of);
	snprintf(mv.container, sizeof(mv.container), "%.*s", SHORT_ID, id);
	dm_volname_text(mv.volume, sizeof(mv.volume), &vn);
	snprintf(mv.branch, sizeof(mv.branch), "%s", vn.branch);
	snprintf(mv.subdot, sizeof(mv.subdot), "%s", vn.subdot);
	if (commit)
		rc = commit_copy(p, h, &vn, mv.of, &copy, err);
	if (!rc)
		rc = dot_mount(p, h, &mv, name, copy, &path, err);
	if (rc && commit) /* no Unmount follows a failed Mount */
		release_copy(p, h, mv.of);
	if (!rc && p->docker) {
		pthread_mutex_lock(&p->mu);
		if (!find_pending(p, mv.of)) {
			m = dm_xcalloc(1, sizeof(*m));
			snprintf(m->name, sizeof(m->name), "%s", name);
			snprintf(m->runtime_id, sizeof(m->runtime_id), "%s", id);
			snprintf(m->dot_id, sizeof(m->dot_id), "%s", dm_dot_handle_id(h));
			m->base = mv;
			m->gen = ++p->next_gen;
			m->mode = MODE_UNKNOWN;
			m->due_ns = ms_from_now(FIRST_LOOK_MS);
			p->pending =
				dm_xrealloc(p->pending, (p->npending + 1) * sizeof(*p->pending));
			p->pending[p->npending++] = m;
			pthread_cond_broadcast(&p->cond);
		}
		pthread_mutex_unlock(&p->mu);
	}
	dm_dot_handle_unref(h);
	free(copy);
	if (rc) {
		free(path);
		return rc;
	}
	dm_info("plugin: mounted volume '%s' (mount %.12s) at '%s'", name, id, path);
	*res = json_pack("{s:s}", "Mountpoint", path);
	free(path);
	return 0;
}

/* Unmount: ends the mount at its dot, with the records of its containers;
 * an unknown mount (dmd restarted meanwhile) is fine. */
static int ep_unmount(struct dm_plugin *p, json_t *req, json_t **res, struct dm_err *err)
{
	char key[KEY_MAX + 1];
	struct dm_dot_handle *h;
	struct pending *m;
	const char *name, *id;
	int rc = req_str(&name, req, "Name", RUNTIME_NAME_MAX, err);

	if (!rc)
		rc = req_str(&id, req, "ID", DM_COMMIT_ID_LEN_MAX, err);
	if (rc)
		return rc;
	mount_key(key, sizeof(key), name, id);
	h = find_runtime_mount(p, mount_keyed, key, NULL);
	if (h) {
		struct dm_err e;

		if (dot_unmount(p, h, key, NULL, &e))
			dm_warn("plugin: unmount of volume '%s': %s", name, e.msg);
		release_copy(p, h, key);
		dm_info("plugin: unmounted volume '%s' (mount %.12s)", name, id);
		dm_dot_handle_unref(h);
	}
	pthread_mutex_lock(&p->mu);
	m = find_pending(p, key);
	if (m)
		remove_pending(p, m);
	pthread_mutex_unlock(&p->mu);
	*res = json_object();
	return 0;
}

static const struct endpoint {
	const char *url;
	endpoint_fn fn;
} endpoints[] = {
	{"/Plugin.Activate", ep_activate},
	{"/VolumeDriver.Create", ep_create},
	{"/VolumeDriver.Remove", ep_remove},
	{"/VolumeDriver.Get", ep_get},
	{"/VolumeDriver.List", ep_list},
	{"/VolumeDriver.Path", ep_path},
	{"/VolumeDriver.Mount", ep_mount},
	{"/VolumeDriver.Unmount", ep_unmount},
	{"/VolumeDriver.Capabilities", ep_capabilities},
};

char *dm_plugin_handle(struct dm_plugin *p, const char *url, const char *body, size_t len,
		       unsigned *status)
{
	const struct endpoint *ep = NULL;
	json_t *req = NULL, *res = NULL;
	struct dm_err err;
	char *out;
	int rc;

	dm_err_clear(&err);
	for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++)
		if (!strcmp(url, endpoints[i].url))
			ep = &endpoints[i];
	if (!ep) {
		rc = dm_err_set(&err, DM_EUNSUPPORTED, "dm does not implement '%.100s'", url);
		goto done;
	}
	req = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : json_object();
	if (!json_is_object(req)) {
		rc = dm_err_set(&err, DM_EINVAL, "the body of '%s' is not a JSON object", url);
		goto done;
	}
	rc = ep->fn(p, req, &res, &err);
	if (!rc && !res)
		rc = dm_err_set(&err, DM_ENOMEM, "out of memory");
done:
	if (rc) {
		json_decref(res);
		res = json_pack("{s:s}", "Err", err.msg);
		*status = (unsigned)dm_err_http_status(rc);
		dm_info("plugin: %s: %s", url, err.msg);
	} else {
		*status = 200;
	}
	out = res ? json_dumps(res, JSON_COMPACT) : NULL;
	json_decref(req);
	json_decref(res);
	return out ? out : dm_xstrdup("{\"Err\":\"out of memory\"}");
}

/* ---- lifecycle ---- */

int dm_plugin_new(struct dm_plugin **out, const struct dm_plugin_opts *opts, struct dm_err *err)
{
	struct dm_plugin *p = dm_xcalloc(1, sizeof(*p));
	pthread_condattr_t ca;
	int e;

	p->registry = opts->registry;
	p->kv = opts->kv;
	p->docker = opts->docker;
	p->cluster_node = opts->cluster_node;
	p->call_ms = opts->call_ms > 0 ? opts->call_ms : DM_PLUGIN_CALL_MS;
	p->sweep_ms = opts->sweep_ms > 0 ? opts->sweep_ms : 5000;
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (p->docker) {
		e = pthread_create(&p->resolver, NULL, resolver_main, p);
		if (e) {
			dm_plugin_free(p, 0);
			return dm_err_errno(err, e, "cannot start the plugin's resolver thread");
		}
		p->have_resolver = true;
	}
	*out = p;
	return 0;
}

static char *serve_http(void *ctx, const char *url, const char *body, size_t len, unsigned *status,
			const char **content_type)
{
	*content_type = DM_PLUGIN_CONTENT_TYPE;
	return dm_plugin_handle(ctx, url, body, len, status);
}

int dm_plugin_listen(struct dm_plugin *p, const struct dm_api_env *env, const char *socket_path,
		     struct dm_err *err)
{
	struct dm_http_opts ho;
	char dir[PATH_MAX];
	char *slash;
	int rc;

	if (snprintf(dir, sizeof(dir), "%s", socket_path) >= (int)sizeof(dir))
		return dm_err_set(err, DM_ETOOBIG, "plugin socket path too long: '%s'",
				  socket_path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		rc = dm_mkdir_p(dir, 0755, err);
		if (rc)
			return dm_err_prefix(err, "cannot make the plugin socket's directory");
	}
	if (dm_unix_socket_served(socket_path))
		return dm_err_set(err, DM_EBUSY,
				  "plugin socket '%s' is served by another process (another dmd?)",
				  socket_path);
	memset(&ho, 0, sizeof(ho));
	ho.socket_path = socket_path;
	ho.handler = serve_http;
	ho.handler_ctx = p;
	ho.max_conns = 64;
	rc = dm_http_bind(&p->http, env, &ho, err);
	if (!rc)
		rc = dm_http_start(p->http, err);
	if (rc) {
		dm_http_free(p->http);
		p->http = NULL;
		return rc;
	}
	dm_info("docker volume plugin 'dm' on %s%s", socket_path,
		p->docker ? "" : " (no Docker API: containers are named by their mount IDs)");
	return 0;
}

void dm_plugin_quiesce(struct dm_plugin *p)
{
	if (!p)
		return;
	if (p->http)
		dm_http_quiesce(p->http);
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->mu);
	if (p->have_resolver) {
		pthread_join(p->resolver, NULL);
		p->have_resolver = false;
	}
}

void dm_plugin_free(struct dm_plugin *p, int timeout_ms)
{
	if (!p)
		return;
	dm_plugin_quiesce(p);
	if (p->http) {
		if (dm_http_wait_idle(p->http, timeout_ms) == DM_ETIMEOUT)
			dm_warn("plugin calls still running after %d ms", timeout_ms);
		dm_http_free(p->http);
	}
	for (size_t i = 0; i < p->npending; i++)
		free(p->pending[i]);
	free(p->pending);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
