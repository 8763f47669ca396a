/*
 * s3_http.h - dotmesh's S3 paths on dmd's API port (docs/api.md,
 * "dotmesh's S3 paths"; the paths themselves in s3_path.h).
 *
 * http.c routes every path under /s3/ here once the caller is
 * authenticated (basic auth, as for /rpc). One request is one struct
 * dm_s3_req: made by dm_s3_begin on MHD's first callback, fed the body of
 * a PUT as it arrives (into a file under DIR/uploads, never whole in
 * memory), answered on the last callback, freed when MHD says the request
 * is complete.
 */
#ifndef DM_SERVER_API_S3_HTTP_H
#define DM_SERVER_API_S3_HTTP_H

#include <microhttpd.h>
#include <stddef.h>

#include "server/dots/caller.h"
#include "util/err.h"

struct dm_api_env;
struct dm_s3_req;

/* The largest body a PUT takes: past it the answer is 413 `too_large`,
 * before any byte is read when the request says its length. */
#define DM_S3_PUT_MAX (8ull << 30)

/*
 * Starts a request for an authenticated caller (copied). Refuses, with err
 * filled for the caller to answer, a path that is not one of dotmesh's
 * (DM_EINVAL, DM_ENOTFOUND), a dot the caller may not read (DM_ENOTFOUND,
 * as if it did not exist), a write to a dot the caller may only read
 * (DM_EPERM), a body declared over DM_S3_PUT_MAX (DM_ETOOBIG), all before
 * any byte of the body is read.
 */
int dm_s3_begin(struct dm_s3_req **out, const struct dm_api_env *env,
		const struct dm_caller *caller, struct MHD_Connection *c, const char *url,
		const char *method, struct dm_err *err);
/* MHD's later callbacks: takes body bytes while *upload_size is not 0,
 * and queues the answer on the last call. */
enum MHD_Result dm_s3_handle(struct dm_s3_req *r, struct MHD_Connection *c, const char *upload,
			     size_t *upload_size);
/* Removes the request's upload, if any; accepts NULL. */
void dm_s3_free(struct dm_s3_req *r);

#endif
