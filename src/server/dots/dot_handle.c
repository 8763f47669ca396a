/*
 * dot_handle.c - how the world holds a dot: handles, the views a dot
 * publishes, requests, and their JSON form.
 *
 * Invariants: a view never changes after it is published; readers take a
 * reference under the slot's mutex, which guards only the pointer swap,
 * never the dot's state. The last reference to a handle stops the dot's
 * actor, so a gone dot answers "no such dot" while anyone can send to it.
 */
#include "server/dots/dot_internal.h"
#include "server/dots/access.h"
#include "actor/actor.h"
#include "util/buf.h"
#include "util/id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

struct dm_dot_slot *dm_dot_slot_new(void)
{
	struct dm_dot_slot *s = dm_xcalloc(1, sizeof(*s));

	atomic_init(&s->refs, 1);
	pthread_mutex_init(&s->mu, NULL);
	return s;
}

void dm_dot_slot_unref(struct dm_dot_slot *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	dm_dot_view_unref(s->view);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

const char *dm_dot_state_name(int state)
{
	static const char *names[] = {"creating", "ready", "deleting", "gone"};

	return state >= 0 && state <= DM_DOT_GONE ? names[state] : "unknown";
}

void dm_dot_view_unref(struct dm_dot_view *v)
{
	if (!v || atomic_fetch_sub((atomic_int *)&v->refs, 1) != 1)
		return;
	free(v->branches);
	free(v->collaborators);
	free(v->mounts);
	free(v->runtime_mounts);
	free(v->subdots);
	free(v->hooks);
	free(v->holds);
	free(v);
}

const struct dm_branch_view *dm_dot_view_branch(const struct dm_dot_view *v, const char *name)
{
	for (size_t i = 0; i < v->nbranches; i++)
		if (!strcmp(v->branches[i].name, name))
			return &v->branches[i];
	return NULL;
}

void dm_dot_handle_head(char *out, size_t size, struct dm_dot_handle *h, const char *name)
{
	struct dm_dot_view *v = h ? dm_dot_handle_view(h) : NULL;
	const struct dm_branch_view *b = v ? dm_dot_view_branch(v, name) : NULL;

	snprintf(out, size, "%s", b ? b->head : "");
	dm_dot_view_unref(v);
}

void dm_dot_handle_ref(struct dm_dot_handle *h)
{
	atomic_fetch_add(&h->refs, 1);
}

void dm_dot_handle_unref(struct dm_dot_handle *h)
{
	if (!h || atomic_fetch_sub(&h->refs, 1) != 1)
		return;
	dm_actor_stop(h->actor);
	dm_actor_unref(h->actor);
	dm_dot_slot_unref(h->slot);
	free(h);
}

static struct dm_dot_view *slot_view(struct dm_dot_slot *s)
{
	struct dm_dot_view *v;

	pthread_mutex_lock(&s->mu);
	v = s->view;
	atomic_fetch_add((atomic_int *)&v->refs, 1);
	pthread_mutex_unlock(&s->mu);
	return v;
}

struct dm_dot_view *dm_dot_handle_view(struct dm_dot_handle *h)
{
	return slot_view(h->slot);
}

struct dm_actor *dm_dot_handle_actor(struct dm_dot_handle *h)
{
	return h->actor;
}

const char *dm_dot_handle_id(const struct dm_dot_handle *h)
{
	return h->id;
}

void dm_dot_slot_publish(struct dm_dot_slot *s, struct dm_dot_view *v)
{
	struct dm_dot_view *old;

	pthread_mutex_lock(&s->mu);
	old = s->view;
	s->view = v;
	pthread_mutex_unlock(&s->mu);
	dm_dot_view_unref(old);
}

struct dm_dot_view *dm_dot_slot_peek(struct dm_dot_slot *s)
{
	return s->view;
}

/* ---- requests ---- */

struct dm_dot_req *dm_dot_req_new(int op)
{
	struct dm_dot_req *r = dm_xcalloc(1, sizeof(*r));

	r->op = op;
	return r;
}

void dm_dot_req_free(void *p)
{
	struct dm_dot_req *r = p;

	if (!r)
		return;
	free(r->branch);
	free(r->message);
	free(r->author);
	free(r->from);
	free(r->to);
	for (size_t i = 0; i < r->nmeta; i++) {
		free(r->meta_keys[i]);
		free(r->meta_values[i]);
	}
	free(r->meta_keys);
	free(r->meta_values);
	free(r->old_head);
	free(r->commits);
	free(r->user);
	free(r->mount);
	free(r->volume_name);
	free(r->hook_name);
	free(r->hook);
	free(r->commit_id);
	free(r->origin);
	free(r->holder);
	free(r->mount_path);
	free(r->key);
	free(r->src);
	free(r);
}

int dm_dot_wait_sealed(struct dm_dot_handle *h, int timeout_ms, struct dm_err *err)
{
	struct dm_dot_view *v = dm_dot_handle_view(h);
	size_t pending = v->indexing;
	json_t *res = NULL;
	int rc;

	dm_dot_view_unref(v);
	if (!pending)
		return 0;
	rc = dm_dot_call(&res, h, dm_dot_req_new(DM_DOT_OP_SEALED), timeout_ms, err);
	json_decref(res);
	return rc;
}

json_t *dm_dot_view_json(const struct dm_dot_view *v, const char *server)
{
	json_t *branches = json_array();
	const struct dm_branch_view *cur = dm_dot_view_branch(v, v->current);

	for (size_t i = 0; i < v->nbranches; i++) {
		const struct dm_branch_view *b = &v->branches[i];
		char bid[DM_UUID_LEN + 1];

		dm_id_branch(bid, v->id, b->name); /* dotmesh's id of the branch */
		json_array_append_new(branches,
				      json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "name", b->name,
						"id", bid, "head", b->head, "commits",
						(json_int_t)b->commits, "dirty",
						(json_int_t)b->dirty, "size", (json_int_t)b->size));
	}
	json_t *collaborators = json_array(), *containers = json_array();

	for (size_t i = 0; i < v->nmounts; i++)
		json_array_append_new(
			containers,
			json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", v->mounts[i].container, "id",
				  v->mounts[i].container_id, "volume", v->mounts[i].volume,
				  "branch", v->mounts[i].branch, "subdot", v->mounts[i].subdot));

	for (size_t i = 0; i < v->ncollaborators; i++)
		json_array_append_new(collaborators,
				      json_pack("{s:s, s:s}", "user", v->collaborators[i].user,
						"role",
						dm_dot_role_name(v->collaborators[i].role)));
	json_t *subdots = json_array();

	for (size_t i = 0; i < v->nsubdots; i++)
		json_array_append_new(subdots, json_string(v->subdots[i]));
	json_t *hooks = v->hooks ? json_loads(v->hooks, 0, NULL) : NULL;
	json_t *read_only = json_array();

	for (size_t i = 0; i < v->nholds; i++)
		json_array_append_new(read_only,
				      json_pack("{s:s, s:s, s:s}", "commit", v->holds[i].commit,
						"holder", v->holds[i].holder, "path",
						v->holds[i].path));
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:o, s:s, s:b, s:o, "
			 "s:o, s:I, s:o, s:b}",
			 "id", v->id, "namespace", v->name.ns, "name", v->name.name, "owner",
			 v->owner, "state", dm_dot_state_name(v->state), "branch", v->current,
			 "branches", branches, "size", (json_int_t)(cur ? cur->size : 0), "commits",
			 (json_int_t)(cur ? cur->commits : 0), "dirty",
			 (json_int_t)(cur ? cur->dirty : 0), "containers", containers, "server",
			 server ? server : "", "busy", v->busy, "collaborators", collaborators,
			 "subdots", subdots, "indexing", (json_int_t)v->indexing, "hooks",
			 hooks ? hooks : json_object(), "strip_setid", v->strip_setid);

	json_object_set_new(j, "read_only", read_only);
	if (v->fork_of.id[0])
		json_object_set_new(j, "fork_of",
				    json_pack("{s:s, s:s, s:s}", "id", v->fork_of.id, "dot",
					      v->fork_of.dot, "commit", v->fork_of.commit));
	return j;
}
