/*
 * chain.c - what a push or a pull moves, decided from two first-parent
 * chains (chain.h): the sender's and the receiver's.
 *
 * Invariants: a chain made from JSON holds 0..DM_CHAIN_MAX non-empty ids
 * of at most DM_COMMIT_ID_LEN_MAX characters and is indexed; *take from
 * dm_chain_decide is never more than the sender's chain holds.
 */
#include "server/transfers/chain.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#include "util/banned.h"

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void dm_chain_index(struct dm_chain *c)
{
	c->sorted = dm_xmalloc((c->n ? c->n : 1) * sizeof(*c->sorted));
	for (size_t i = 0; i < c->n; i++)
		c->sorted[i] = c->ids[i];
	qsort(c->sorted, c->n, sizeof(*c->sorted), str_cmp);
}

bool dm_chain_has(const struct dm_chain *c, const char *id)
{
	return c->n && bsearch(&id, c->sorted, c->n, sizeof(*c->sorted), str_cmp) != NULL;
}

void dm_chain_release(struct dm_chain *c)
{
	dm_dot_chain_free(c->ids, c->n);
	free(c->sorted);
	memset(c, 0, sizeof(*c));
}

int dm_chain_from_json(struct dm_chain *out, json_t *list, const char *where, struct dm_err *err)
{
	size_t i;
	json_t *v;

	memset(out, 0, sizeof(*out));
	if (!json_is_array(list) || json_array_size(list) > DM_CHAIN_MAX)
		return dm_err_set(err, DM_EPROTO, "dm server at %s sent a bad history", where);
	out->ids = dm_xcalloc(json_array_size(list) + 1, sizeof(char *));
	json_array_foreach(list, i, v)
	{
		if (!json_is_string(v) || !json_string_length(v) ||
		    json_string_length(v) > DM_COMMIT_ID_LEN_MAX) {
			dm_chain_release(out);
			return dm_err_set(err, DM_EPROTO, "dm server at %s sent a bad commit id",
					  where);
		}
		out->ids[out->n++] = dm_xstrdup(json_string_value(v));
	}
	dm_chain_index(out);
	return 0;
}

enum dm_chain_verdict dm_chain_decide(const struct dm_chain *s, const char *rh,
				      const struct dm_chain *rc, size_t *take)
{
	*take = 0;
	if (!s->n || !strcmp(s->ids[0], rh))
		return DM_CHAIN_UP_TO_DATE;
	if (!rh[0]) {
		*take = s->n;
		return DM_CHAIN_FORWARD;
	}
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->ids[i], rh)) {
			*take = i;
			return DM_CHAIN_FORWARD;
		}
	if (dm_chain_has(rc, s->ids[0]))
		return DM_CHAIN_RECEIVER_AHEAD;
	while (*take < s->n && !dm_chain_has(rc, s->ids[*take]))
		(*take)++;
	return DM_CHAIN_DIVERGED;
}
