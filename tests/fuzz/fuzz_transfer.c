/*
 * fuzz_transfer.c - libFuzzer target for the JSON of a transfer between
 * two dmds: the update a pushing dmd sends to end a push
 * (server/api/objects_update.h), and the refs answer a dmd reads from the
 * other before it pushes or pulls (each branch's head, its first-parent
 * "chain" and their "objects": server/transfers/chain.h, and what decides
 * what moves). The input's first byte picks what the rest is (mod 2):
 *     0 an update's body            1 a refs answer
 *
 * Whatever is accepted must hold its promises: an update has valid names,
 * 1..DM_OBJECTS_UPDATE_MAX commits of non-empty ids without NUL, the
 * first of them its new head; a chain holds exactly the ids of its JSON
 * (non-empty, without NUL), and what dm_chain_decide says of two chains
 * agrees with them (what it takes is within the sender's chain, a forward
 * move stops at the receiver's head). Nothing is left allocated.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/api/objects_update.h"
#include "server/transfers/chain.h"
#include "util/err.h"
#include "util/names.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_update(json_t *doc)
{
	struct dm_objects_update u;
	struct dm_err err;
	int rc = dm_objects_update_parse(&u, doc, &err);

	if (rc) {
		if (rc != DM_EINVAL)
			abort();
		free(u.commits);
		return;
	}
	if (!u.n || u.n > DM_OBJECTS_UPDATE_MAX || !u.commits || !u.id || !u.branch ||
	    !u.old_head || !u.new_head)
		abort();
	if (!dm_name_part_valid(u.id, strlen(u.id)) ||
	    !dm_name_part_valid(u.branch, strlen(u.branch)) ||
	    !dm_name_part_valid(u.name.ns, strlen(u.name.ns)) ||
	    !dm_name_part_valid(u.name.name, strlen(u.name.name)))
		abort();
	for (size_t i = 0; i < u.n; i++)
		if (!u.commits[i].id[0] ||
		    strnlen(u.commits[i].id, sizeof(u.commits[i].id)) == sizeof(u.commits[i].id))
			abort();
	if (strcmp(u.commits[0].id, u.new_head))
		abort();
	free(u.commits);
}

/* A chain from list, checked against it; false when refused. */
static bool chain_of(struct dm_chain *c, json_t *list)
{
	struct dm_err err;

	if (dm_chain_from_json(c, list, "fuzz", &err)) {
		if (c->ids || c->n || c->sorted || err.code != DM_EPROTO)
			abort();
		return false;
	}
	if (c->n != json_array_size(list) || !c->sorted)
		abort();
	for (size_t i = 0; i < c->n; i++) {
		json_t *v = json_array_get(list, i);

		if (!c->ids[i][0] || strlen(c->ids[i]) != json_string_length(v) ||
		    !dm_chain_has(c, c->ids[i]))
			abort();
	}
	return true;
}

static void check_decide(const struct dm_chain *s, const char *rh, const struct dm_chain *rc)
{
	size_t take = 99;
	enum dm_chain_verdict v = dm_chain_decide(s, rh, rc, &take);

	if (take > s->n)
		abort();
	switch (v) {
	case DM_CHAIN_UP_TO_DATE:
		if (take || (s->n && strcmp(s->ids[0], rh)))
			abort();
		break;
	case DM_CHAIN_FORWARD:
		if (!take || (rh[0] && strcmp(s->ids[take], rh)) || (!rh[0] && take != s->n))
			abort();
		break;
	case DM_CHAIN_RECEIVER_AHEAD:
		if (take || !dm_chain_has(rc, s->ids[0]))
			abort();
		break;
	default:
		if (!take || (take < s->n && !dm_chain_has(rc, s->ids[take])))
			abort();
		break;
	}
}

/* {"id":..., "branches": {NAME: {"head":..., "chain":[...], "objects":[...]}}}:
 * every branch's chain against every other's (and against none). */
static void fuzz_refs(json_t *doc)
{
	json_t *branches = json_object_get(doc, "branches"), *rb;
	struct dm_chain chains[8], none = {0};
	const char *heads[8];
	size_t n = 0;
	const char *name;

	dm_chain_index(&none);
	json_object_foreach(branches, name, rb)
	{
		const char *head = json_string_value(json_object_get(rb, "head"));

		if (n == 8)
			break;
		if (!chain_of(&chains[n], json_object_get(rb, "chain")))
			continue;
		heads[n++] = head && strlen(head) == json_string_length(json_object_get(rb, "head"))
				     ? head
				     : "";
	}
	for (size_t i = 0; i < n; i++) {
		check_decide(&chains[i], "", &none);
		for (size_t j = 0; j < n; j++)
			check_decide(&chains[i], heads[j], &chains[j]);
	}
	for (size_t i = 0; i < n; i++)
		dm_chain_release(&chains[i]);
	dm_chain_release(&none);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc;

	if (size < 1)
		return 0;
	doc = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return 0;
	}
	if (data[0] % 2 == 0)
		fuzz_update(doc);
	else
		fuzz_refs(doc);
	json_decref(doc);
	return 0;
}
