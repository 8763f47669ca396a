/*
 * receive.h - what a dmd checks before it stores an object that came
 * from another dmd (docs/internals/transfer.md, "What a receiver checks").
 *
 * Both receiving sides use it: a dmd answering `put`, and an initiator
 * storing what `get` brought. The rule it keeps is the store's transfer
 * invariant: an object present in a store has everything below it present.
 */
#ifndef DM_SYNC_RECEIVE_H
#define DM_SYNC_RECEIVE_H

#include <stdbool.h>

#include "store/pack.h"
#include "util/buf.h"

struct dm_err;
struct dm_store;

/*
 * Stores one received record (its stored bytes, rec->stored_len of them)
 * after checking it: the header's bounds, then, for a file, tree or
 * commit decompressed into exactly raw_len bytes when flagged, the store's
 * admission rule (dm_store_admit_check): the content against its id and
 * its references: a file only when every chunk it names is stored with the
 * extent's length, a tree only when every file and subtree it names is
 * stored with the right kind, a commit only when its tree is stored and
 * its dot id is dot_id (NULL: commits are refused). Any failure is
 * DM_ECORRUPT naming the object, and nothing of it is stored. It is stored
 * as received for dot_id (dm_store_put_received). *stored_out (may be
 * NULL) is true when the object was new here.
 */
int dm_sync_accept(struct dm_store *s, const struct dm_pack_rec *rec,
		       const unsigned char *bytes, const char *dot_id, bool *stored_out,
		       struct dm_err *err);

/*
 * The raw bytes of a received record whose stored bytes are `bytes`:
 * *out is bytes itself, or (DM_PACK_F_ZSTD) their decompression into
 * scratch, which must come out exactly rec->raw_len long (rec->raw_len is
 * bounded by the record's header). DM_ECORRUPT "KIND ID: cannot
 * decompress: ..." otherwise. *out lives as bytes or scratch.
 */
int dm_sync_rec_raw(const unsigned char **out, struct dm_buf *scratch,
		    const struct dm_pack_rec *rec, const unsigned char *bytes, struct dm_err *err);

#endif
