/*
 * remote.c - the calls of remote.h, each handed to the backend's function
 * table; and dm_remote_open, the one place that picks a backend.
 *
 * Invariant: a struct dm_remote_conn always has its backend's ops; nothing
 * here knows how a backend reaches its remote.
 */
#include "remote/remote.h"

#include "remote/dmd.h"

#include "util/banned.h"

int dm_remote_open(struct dm_remote_conn **out, const struct dm_remote_addr *addr,
		   struct dm_err *err)
{
	return dm_remote_dmd_open(out, addr, err);
}

void dm_remote_free(struct dm_remote_conn *r)
{
	if (r)
		r->ops->free(r);
}

const char *dm_remote_where(const struct dm_remote_conn *r)
{
	return r->ops->where(r);
}

void dm_remote_set_cancel(struct dm_remote_conn *r, bool (*cancelled)(void *ctx), void *ctx)
{
	r->ops->set_cancel(r, cancelled, ctx);
}

uint64_t dm_remote_wire_bytes(const struct dm_remote_conn *r)
{
	return r->ops->wire_bytes(r);
}

int dm_remote_hello(struct dm_remote_conn *r, struct dm_err *err)
{
	return r->ops->hello(r, err);
}

int dm_remote_refs(struct dm_remote_conn *r, const char *dot, bool for_push, json_t **out,
		   struct dm_err *err)
{
	return r->ops->refs(r, dot, for_push, out, err);
}

int dm_remote_missing(struct dm_remote_conn *r, const dm_oid *ids, size_t n, struct dm_buf *out,
		      struct dm_err *err)
{
	return r->ops->missing(r, ids, n, out, err);
}

int dm_remote_get(struct dm_remote_conn *r, const char *dot, const dm_oid *ids, size_t n,
		  dm_wire_rec_fn fn, void *ctx, struct dm_err *err)
{
	return r->ops->get(r, dot, ids, n, fn, ctx, err);
}

int dm_remote_update(struct dm_remote_conn *r, json_t *req, json_t **out, struct dm_err *err)
{
	return r->ops->update(r, req, out, err);
}

void dm_remote_put_begin(struct dm_remote_conn *r, const char *dot_id,
			 void (*on_ack)(void *ctx, uint64_t objects, uint64_t bytes), void *ctx)
{
	r->ops->put_begin(r, dot_id, on_ack, ctx);
}

int dm_remote_put_add(struct dm_remote_conn *r, const struct dm_pack_rec *rec, const void *bytes,
		      struct dm_err *err)
{
	return r->ops->put_add(r, rec, bytes, err);
}

int dm_remote_put_sync(struct dm_remote_conn *r, struct dm_err *err)
{
	return r->ops->put_sync(r, err);
}
