/*
 * s3key.h - the one rule for the keys of dotmesh's S3 paths (docs/api.md,
 * "dotmesh's S3 paths"): what a client may name inside a dot's __default__
 * subdot. Pure; the API's path parser (api/s3_path.h) and the job that
 * extracts a tar's entries (put_job.c) both check with it.
 *
 * A key is 1 to DM_S3_KEY_MAX bytes of '/'-separated names, each a valid
 * tree entry name (dm_tree_name_check: no NUL, not "." or ".."), not
 * starting with '/', with no empty name except one trailing '/' (dotmesh's
 * DELETE of "dir/"). So no key names anything outside the subdot by its
 * text; what is on disk (symbolic links, mounts) is refused by the opener
 * (dm_open_beneath).
 */
#ifndef DM_SERVER_DOTS_S3KEY_H
#define DM_SERVER_DOTS_S3KEY_H

#include "util/err.h"

#define DM_S3_KEY_MAX 1024

/* Checks key and writes it normalised (no trailing '/') into out
 * (DM_S3_KEY_MAX + 1 bytes); DM_EINVAL saying what is wrong otherwise. */
int dm_s3_key_check(char *out, const char *key, struct dm_err *err);

#endif
