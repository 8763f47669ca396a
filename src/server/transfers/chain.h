/*
 * chain.h - what a push or a pull moves: the sender's first-parent chain
 * of a branch against the receiver's head and chain. The remote's side
 * comes from the JSON of its refs answer (GET /objects/v1/refs: each
 * branch's "chain", newest first), so reading it is apart from
 * transfer.c, to be fuzzed alone (tests/fuzz/fuzz_transfer.c).
 */
#ifndef DM_SERVER_TRANSFERS_CHAIN_H
#define DM_SERVER_TRANSFERS_CHAIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/dots/dot.h"
#include "util/err.h"

/* Most commits of one branch's history a transfer looks at. */
#define DM_CHAIN_MAX (1u << 20)

/* A first-parent chain, newest first, with a sorted index to find ids. */
struct dm_chain {
	char **ids; /* n malloc'ed ids (as dm_dot_chain makes them) */
	size_t n;
	const char **sorted; /* the same ids, sorted: dm_chain_index */
};

/* Fills c->sorted from c->ids (c->ids set by the caller). */
void dm_chain_index(struct dm_chain *c);
/* Whether id is in c (indexed). */
bool dm_chain_has(const struct dm_chain *c, const char *id);
/* Frees c's contents and zeroes it. */
void dm_chain_release(struct dm_chain *c);

/*
 * A chain from list, a JSON array of commit ids (each a string of
 * 1..DM_COMMIT_ID_LEN_MAX characters), indexed. DM_EPROTO names the dm
 * server at where when it is not one; out is then empty.
 */
int dm_chain_from_json(struct dm_chain *out, json_t *list, const char *where, struct dm_err *err);

enum dm_chain_verdict {
	DM_CHAIN_UP_TO_DATE,     /* the receiver has the sender's head */
	DM_CHAIN_FORWARD,        /* the receiver's head is on the sender's chain */
	DM_CHAIN_RECEIVER_AHEAD, /* the sender's head is on the receiver's chain */
	DM_CHAIN_DIVERGED,       /* both committed since they were the same */
};

/*
 * What the sender (chain s, newest first) has for a receiver at head rh
 * ("" when it has none) with chain rc (indexed): *take is how many of s's
 * newest commits to send (for a divergence: those after the newest common
 * commit), at most s->n.
 */
enum dm_chain_verdict dm_chain_decide(const struct dm_chain *s, const char *rh,
				      const struct dm_chain *rc, size_t *take);

#endif
