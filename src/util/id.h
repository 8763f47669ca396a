/*
 * id.h - random identifiers: dot ids (UUID version 4) and commit ids
 * (UUID version 7: a millisecond timestamp first, so ids sort by time),
 * from the kernel's random source, and API keys (64 hex digits).
 */
#ifndef DM_UTIL_ID_H
#define DM_UTIL_ID_H

#include <stddef.h>
#include <stdint.h>

#define DM_UUID_LEN 36
#define DM_API_KEY_LEN 64

struct dm_err;

/* out: DM_UUID_LEN + 1 bytes. */
int dm_id_uuid4(char *out, struct dm_err *err);
/* ms: milliseconds since the epoch. */
int dm_id_uuid7(char *out, int64_t ms, struct dm_err *err);
/* out: DM_API_KEY_LEN + 1 bytes of lowercase hex. */
int dm_id_api_key(char *out, struct dm_err *err);
/*
 * The id of branch `branch` of the dot whose id is dot_id, for dotmesh's
 * API and `dm dot show -H` (where every branch was a file system with an
 * id of its own): master's is the dot's id (dotmesh's masterBranchId),
 * any other branch's a UUID (version 8) made from SHA-256 of the two, so
 * it is the same on every node and cluster that has the dot, and never
 * stored. out: DM_UUID_LEN + 1 bytes.
 */
void dm_id_branch(char *out, const char *dot_id, const char *branch);
/* Fills buf with len random bytes from getrandom(2). */
int dm_random_bytes(void *buf, size_t len, struct dm_err *err);

#endif
