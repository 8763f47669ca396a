/*
 * objects_http.h - the /objects endpoints a dmd serves to other dmds
 * (docs/internals/transfer.md): versions, refs, missing, get, put, update.
 *
 * http.c routes /objects/versions and /objects/v1/... here once the caller
 * is authenticated (basic auth, as for /rpc). One request is one struct
 * dm_objects_req: made by dm_objects_begin on MHD's first callback, fed the
 * request body as it arrives, answered on the last callback, and freed
 * when MHD says the request is complete.
 */
#ifndef DM_SERVER_API_OBJECTS_HTTP_H
#define DM_SERVER_API_OBJECTS_HTTP_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/api/rpc.h"
#include "util/err.h"

struct dm_api_env;
struct dm_objects_req;

/* Largest bodies: a put's record stream, an id list, an update's JSON. */
#define DM_OBJECTS_PUT_MAX  (64u << 20)
#define DM_OBJECTS_JSON_MAX (1u << 20)

/* True for the paths this module serves. */
bool dm_objects_path(const char *url);

/*
 * Starts a request for an authenticated caller (copied). Refuses, with err
 * filled for the caller to answer, an unknown endpoint (DM_ENOTFOUND), a
 * wrong method (DM_EINVAL) or a declared body over the endpoint's limit
 * (DM_ETOOBIG), before any byte of the body is read.
 */
int dm_objects_begin(struct dm_objects_req **out, const struct dm_api_env *env,
		     const struct dm_caller *caller, struct MHD_Connection *c, const char *url,
		     const char *method, struct dm_err *err);
/* MHD's later callbacks: takes body bytes while *upload_size is not 0,
 * and queues the answer on the last call. */
enum MHD_Result dm_objects_handle(struct dm_objects_req *r, struct MHD_Connection *c,
				  const char *upload, size_t *upload_size);
/* Accepts NULL. */
void dm_objects_free(struct dm_objects_req *r);

#endif
