/*
 * grpc.h - a small gRPC server for unary calls: HTTP/2 (libnghttp2) in
 * cleartext with prior knowledge, on a unix socket, as gRPC clients speak
 * it to "unix:PATH" targets (docs/internals/csi.md says why not gRPC's C
 * core). The CSI service (csi.c) is its one user.
 *
 * A call is one request stream: HEADERS (":method POST", ":path
 * /PACKAGE.SERVICE/METHOD", "content-type application/grpc..."), DATA
 * holding one length-prefixed message, END_STREAM. Its answer is HEADERS
 * (":status 200", content-type), DATA with the answer's message, and
 * trailers ("grpc-status", "grpc-message"); a failed call is answered
 * trailers only. Compressed messages are refused (UNIMPLEMENTED): we
 * announce no grpc-accept-encoding, so clients send none.
 *
 * Each connection has a thread that does its I/O; each call runs on a
 * thread of its own (a slow CreateVolume does not hold up a Probe on the
 * same connection) and hands its answer back to the connection's thread.
 */
#ifndef DM_SERVER_API_CSI_GRPC_H
#define DM_SERVER_API_CSI_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

/* gRPC's status codes (the ones CSI names, and a few more). */
enum dm_grpc_code {
	DM_GRPC_OK = 0,
	DM_GRPC_CANCELLED = 1,
	DM_GRPC_UNKNOWN = 2,
	DM_GRPC_INVALID_ARGUMENT = 3,
	DM_GRPC_DEADLINE_EXCEEDED = 4,
	DM_GRPC_NOT_FOUND = 5,
	DM_GRPC_ALREADY_EXISTS = 6,
	DM_GRPC_PERMISSION_DENIED = 7,
	DM_GRPC_RESOURCE_EXHAUSTED = 8,
	DM_GRPC_FAILED_PRECONDITION = 9,
	DM_GRPC_ABORTED = 10,
	DM_GRPC_OUT_OF_RANGE = 11,
	DM_GRPC_UNIMPLEMENTED = 12,
	DM_GRPC_INTERNAL = 13,
	DM_GRPC_UNAVAILABLE = 14,
};

/* The largest message either way (gRPC's default limit). */
#define DM_GRPC_MESSAGE_MAX (4u << 20)
/* Calls running at once, over every connection; past it a call is
 * answered RESOURCE_EXHAUSTED. */
#define DM_GRPC_CALLS_MAX 64

/* The code a dm error maps to when a handler does not choose one. */
int dm_grpc_code_of(int dm_code);
/* "NOT_FOUND" */
const char *dm_grpc_code_name(int code);

/*
 * The message of a request body: one gRPC frame (flag byte 0, 4-byte big
 * endian length, that many bytes), nothing after it. 0 with *msg, *len
 * set (borrowed from body), or a gRPC code with err saying why.
 */
int dm_grpc_unframe(const uint8_t *body, size_t len, const uint8_t **msg, size_t *msg_len,
		    struct dm_err *err);

/* grpc-message's encoding: percent-encodes what is not printable ASCII
 * and '%' itself, into out. */
int dm_grpc_percent_encode(struct dm_buf *out, const char *s);

/*
 * A call: path ("/csi.v1.Identity/Probe") and the request's message.
 * Returns a gRPC code; on DM_GRPC_OK, out holds the answer's message (not
 * framed), otherwise message says why (a malloc'ed string, or NULL).
 */
typedef int (*dm_grpc_handler)(void *ctx, const char *path, const uint8_t *req, size_t len,
			       struct dm_buf *out, char **message);

struct dm_grpc_server;

/*
 * Serves on socket_path (mode 0600; a stale socket file is replaced, one
 * that a live process serves is DM_EBUSY). handler runs on the calls'
 * threads with ctx.
 */
int dm_grpc_listen(struct dm_grpc_server **out, const char *socket_path, dm_grpc_handler handler,
		   void *ctx, struct dm_err *err);
/* Stops accepting and removes the socket file; calls in flight still get
 * their answers. Idempotent. */
void dm_grpc_quiesce(struct dm_grpc_server *s);
/* Waits up to timeout_ms for calls in flight, closes every connection,
 * frees; accepts NULL. false when a call still ran: then nothing is freed
 * (the call still uses the server, and the handler's ctx). */
bool dm_grpc_free(struct dm_grpc_server *s, int timeout_ms);

#endif
