/*
 * grpc.c - unary gRPC over HTTP/2 on a unix socket (see grpc.h), with
 * libnghttp2 doing HTTP/2.
 *
 * Invariants:
 *  - A connection's nghttp2 session is touched only by that connection's
 *    thread. A call's thread never touches it: it puts its answer on the
 *    connection's `done` list (under the connection's mu) and wakes the
 *    connection's thread through its eventfd, which submits it. An answer
 *    for a stream the client already closed (canceled) is dropped there.
 *  - A connection is freed when its thread and every call it started are
 *    done (refs). The server counts calls in flight and connections (under
 *    s->mu); dm_grpc_free waits for both before it frees, and leaks the
 *    server rather than free it under a call still running.
 *  - A request body is never kept past DM_GRPC_MESSAGE_MAX plus its
 *    5-byte prefix: a longer one is answered RESOURCE_EXHAUSTED.
 */
#include "server/api/csi/grpc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

/* -Wcast-qual is off in this file: nghttp2_nv holds names and values as uint8_t *, which nghttp2
 * only reads (and copies): the headers point at constant strings. */
#pragma GCC diagnostic ignored "-Wcast-qual"

#define PATH_MAX_LEN 256 /* a :path longer than this is no method of ours */
#define CONNS_MAX    64
#define FRAME_PREFIX 5
#define READ_BUF     16384
#define MAX_STREAMS  100

/* ---- pure parts: codes, framing, encoding ---- */

int dm_grpc_code_of(int dm_code)
{
	switch (dm_code) {
	case 0:
		return DM_GRPC_OK;
	case DM_EINVAL:
	case DM_EUNSUPPORTED:
		return DM_GRPC_INVALID_ARGUMENT;
	case DM_ENOTFOUND:
		return DM_GRPC_NOT_FOUND;
	case DM_EEXISTS:
		return DM_GRPC_ALREADY_EXISTS;
	case DM_ENOMEM:
	case DM_ENOSPC:
		return DM_GRPC_RESOURCE_EXHAUSTED;
	case DM_ETOOBIG:
		return DM_GRPC_OUT_OF_RANGE;
	case DM_EPERM:
		return DM_GRPC_PERMISSION_DENIED;
	case DM_ECONFLICT:
	case DM_ECOMPACTED:
		return DM_GRPC_ABORTED;
	case DM_ETIMEOUT:
		return DM_GRPC_DEADLINE_EXCEEDED;
	case DM_EUNAVAILABLE:
		return DM_GRPC_UNAVAILABLE;
	case DM_EDIVERGED:
	case DM_EUNCOMMITTED:
	case DM_EBUSY:
		return DM_GRPC_FAILED_PRECONDITION;
	case DM_ECANCELED:
		return DM_GRPC_CANCELLED;
	default:
		return DM_GRPC_INTERNAL;
	}
}

const char *dm_grpc_code_name(int code)
{
	static const char *const names[] = {
		"OK",
		"CANCELLED",
		"UNKNOWN",
		"INVALID_ARGUMENT",
		"DEADLINE_EXCEEDED",
		"NOT_FOUND",
		"ALREADY_EXISTS",
		"PERMISSION_DENIED",
		"RESOURCE_EXHAUSTED",
		"FAILED_PRECONDITION",
		"ABORTED",
		"OUT_OF_RANGE",
		"UNIMPLEMENTED",
		"INTERNAL",
		"UNAVAILABLE",
	};

	return code >= 0 && code < (int)(sizeof(names) / sizeof(names[0])) ? names[code]
									   : "UNKNOWN";
}

int dm_grpc_unframe(const uint8_t *body, size_t len, const uint8_t **msg, size_t *msg_len,
		    struct dm_err *err)
{
	uint32_t n;

	if (len < FRAME_PREFIX) {
		dm_err_set(err, DM_EINVAL, "the request holds no gRPC message (%zu bytes)", len);
		return DM_GRPC_INVALID_ARGUMENT;
	}
	if (body[0] != 0) {
		dm_err_set(err, DM_EUNSUPPORTED, "compressed messages are not supported");
		return DM_GRPC_UNIMPLEMENTED;
	}
	n = (uint32_t)body[1] << 24 | (uint32_t)body[2] << 16 | (uint32_t)body[3] << 8 |
	    (uint32_t)body[4];
	if (n > DM_GRPC_MESSAGE_MAX) {
		dm_err_set(err, DM_ETOOBIG, "the request's message is larger than %u bytes",
			   DM_GRPC_MESSAGE_MAX);
		return DM_GRPC_RESOURCE_EXHAUSTED;
	}
	if ((size_t)n != len - FRAME_PREFIX) {
		dm_err_set(err, DM_EINVAL,
			   "the request holds %zu bytes after its prefix, which says %u (one "
			   "message per unary call)",
			   len - FRAME_PREFIX, n);
		return DM_GRPC_INVALID_ARGUMENT;
	}
	*msg = body + FRAME_PREFIX;
	*msg_len = n;
	return DM_GRPC_OK;
}

int dm_grpc_percent_encode(struct dm_buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;

	for (const unsigned char *p = (const unsigned char *)s; !rc && *p; p++) {
		if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
			rc = dm_buf_addc(out, *p);
		} else {
			char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};

			rc = dm_buf_add(out, e, 3);
		}
	}
	return rc ? rc : dm_buf_add(out, "", 1);
}

/* ---- the server ---- */

struct conn;

struct dm_grpc_server {
	int listen_fd;
	char *path;
	dm_grpc_handler handler;
	void *ctx;
	int stop_pipe[2];
	pthread_t acceptor;
	bool have_acceptor;
	pthread_mutex_t mu;
	pthread_cond_t cond; /* CLOCK_MONOTONIC: a call or a connection ended */
	bool stopping;       /* under mu: connections close */
	int calls;           /* under mu: in flight */
	int nconns;          /* under mu */
	struct conn *conns;  /* under mu: every live connection */
};

/* An answer a call's thread hands its connection's thread. */
struct done {
	struct done *next;
	int32_t stream_id;
	int code;
	char *message;
	uint8_t *data; /* the answer's message, not framed */
	size_t len;
};

struct conn {
	struct dm_grpc_server *s;
	struct conn *next; /* in s->conns, under s->mu */
	int fd;
	int efd;
	nghttp2_session *h2; /* the connection's thread only */
	pthread_mutex_t mu;
	struct done *done; /* under mu, newest first */
	bool closed;       /* under mu: answers are dropped */
	int refs;          /* under mu: the thread and each call running */
};

/* One request stream, from its HEADERS to its close. */
struct stream {
	char path[PATH_MAX_LEN + 1];
	bool grpc; /* content-type application/grpc[+proto|;...] */
	bool post;
	bool too_big;
	bool dispatched;
	struct dm_buf body;
	uint8_t *resp; /* framed answer */
	size_t resp_len, resp_off;
};

/* A call on its thread. */
struct call {
	struct conn *c;
	int32_t stream_id;
	char path[PATH_MAX_LEN + 1];
	uint8_t *body;
	size_t len;
};

static void conn_unref(struct conn *c)
{
	struct done *d;
	bool last;

	pthread_mutex_lock(&c->mu);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (!last)
		return;
	while ((d = c->done)) {
		c->done = d->next;
		free(d->message);
		free(d->data);
		free(d);
	}
	close(c->efd);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static void wake(int efd)
{
	uint64_t one = 1;
	ssize_t n = write(efd, &one, sizeof(one));

	(void)n; /* a full counter wakes the reader all the same */
}

static void *call_main(void *arg)
{
	struct call *call = arg;
	struct conn *c = call->c;
	struct dm_grpc_server *s = c->s;
	struct done *d = dm_xcalloc(1, sizeof(*d));
	struct dm_buf out = DM_BUF_INIT;
	const uint8_t *msg = NULL;
	size_t len = 0;
	struct dm_err err;

	d->stream_id = call->stream_id;
	d->code = dm_grpc_unframe(call->body, call->len, &msg, &len, &err);
	if (d->code)
		d->message = dm_xstrdup(err.msg);
	else
		d->code = s->handler(s->ctx, call->path, msg, len, &out, &d->message);
	if (d->code == DM_GRPC_OK && out.len > DM_GRPC_MESSAGE_MAX) {
		d->code = DM_GRPC_RESOURCE_EXHAUSTED;
		d->message = dm_xstrdup("the answer is larger than gRPC's message limit");
	}
	if (d->code == DM_GRPC_OK)
		d->data = (uint8_t *)dm_buf_detach(&out, &d->len);
	dm_buf_release(&out);
	pthread_mutex_lock(&c->mu);
	if (!c->closed) {
		d->next = c->done;
		c->done = d;
		d = NULL;
		wake(c->efd);
	}
	pthread_mutex_unlock(&c->mu);
	if (d) {
		free(d->message);
		free(d->data);
		free(d);
	}
	free(call->body);
	free(call);
	conn_unref(c);
	pthread_mutex_lock(&s->mu);
	s->calls--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static ssize_t read_answer(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length,
			   uint32_t *flags, nghttp2_data_source *source, void *user)
{
	struct stream *st = source->ptr;
	size_t n = st->resp_len - st->resp_off;
	nghttp2_nv trailer[] = {
		{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE},
	};

	(void)user;
	if (n > length)
		n = length;
	memcpy(buf, st->resp + st->resp_off, n);
	st->resp_off += n;
	if (st->resp_off == st->resp_len) {
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		if (nghttp2_submit_trailer(h2, id, trailer, 1))
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return (ssize_t)n;
}

/* Submits the answer of stream id (data: taken). A stream already closed
 * (the client gave up) gets nothing. */
static void submit_answer(struct conn *c, int32_t id, int code, const char *message, uint8_t *data,
			  size_t len)
{
	struct stream *st = nghttp2_session_get_stream_user_data(c->h2, id);
	char status[16];
	struct dm_buf enc = DM_BUF_INIT;
	nghttp2_data_provider prd;

	if (!st || st->resp) {
		free(data);
		return;
	}
	if (code == DM_GRPC_OK) {
		nghttp2_nv nva[] = {
			{(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
			{(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
			 NGHTTP2_NV_FLAG_NONE},
		};

		st->resp = dm_xmalloc(FRAME_PREFIX + len);
		st->resp[0] = 0;
		st->resp[1] = (uint8_t)(len >> 24);
		st->resp[2] = (uint8_t)(len >> 16);
		st->resp[3] = (uint8_t)(len >> 8);
		st->resp[4] = (uint8_t)len;
		if (len)
			memcpy(st->resp + FRAME_PREFIX, data, len);
		st->resp_len = FRAME_PREFIX + len;
		prd.source.ptr = st;
		prd.read_callback = read_answer;
		if (nghttp2_submit_response(c->h2, id, nva, 2, &prd))
			nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, id,
						  NGHTTP2_INTERNAL_ERROR);
	} else {
		snprintf(status, sizeof(status), "%d", code);
		if (dm_grpc_percent_encode(&enc, message ? message : ""))
			dm_buf_reset(&enc);
		{
			const char *m = enc.len ? (const char *)enc.data : "";
			nghttp2_nv nva[] = {
				{(uint8_t *)":status", (uint8_t *)"200", 7, 3,
				 NGHTTP2_NV_FLAG_NONE},
				{(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
				 NGHTTP2_NV_FLAG_NONE},
				{(uint8_t *)"grpc-status", (uint8_t *)status, 11, strlen(status),
				 NGHTTP2_NV_FLAG_NONE},
				{(uint8_t *)"grpc-message", (uint8_t *)m, 12, strlen(m),
				 NGHTTP2_NV_FLAG_NONE},
			};

			/* a placeholder, so a second answer is never submitted */
			st->resp = dm_xmalloc(1);
			if (nghttp2_submit_response(c->h2, id, nva, 4, NULL))
				nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, id,
							  NGHTTP2_INTERNAL_ERROR);
		}
		dm_buf_release(&enc);
	}
	free(data);
}

/* A complete request: checked here, run on a thread of its own. */
static void dispatch(struct conn *c, int32_t id, struct stream *st)
{
	struct dm_grpc_server *s = c->s;
	struct call *call;
	pthread_attr_t attr;
	pthread_t t;
	int e;

	st->dispatched = true;
	if (!st->post || !st->grpc || !st->path[0]) {
		submit_answer(c, id, DM_GRPC_UNIMPLEMENTED,
			      "only gRPC calls (POST, content-type application/grpc) are served",
			      NULL, 0);
		return;
	}
	if (st->too_big) {
		submit_answer(c, id, DM_GRPC_RESOURCE_EXHAUSTED,
			      "the request is larger than gRPC's message limit", NULL, 0);
		return;
	}
	pthread_mutex_lock(&s->mu);
	if (s->stopping || s->calls >= DM_GRPC_CALLS_MAX) {
		bool stopping = s->stopping;

		pthread_mutex_unlock(&s->mu);
		submit_answer(c, id, stopping ? DM_GRPC_UNAVAILABLE : DM_GRPC_RESOURCE_EXHAUSTED,
			      stopping ? "dmd is stopping" : "too many calls at once; retry", NULL,
			      0);
		return;
	}
	s->calls++;
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_lock(&c->mu);
	c->refs++;
	pthread_mutex_unlock(&c->mu);
	call = dm_xcalloc(1, sizeof(*call));
	call->c = c;
	call->stream_id = id;
	snprintf(call->path, sizeof(call->path), "%s", st->path);
	call->body = (uint8_t *)dm_buf_detach(&st->body, &call->len);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	e = pthread_create(&t, &attr, call_main, call);
	pthread_attr_destroy(&attr);
	if (e) {
		free(call->body);
		free(call);
		conn_unref(c);
		pthread_mutex_lock(&s->mu);
		s->calls--;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->mu);
		submit_answer(c, id, DM_GRPC_UNAVAILABLE, "cannot start a thread for the call",
			      NULL, 0);
	}
}

/* ---- nghttp2's callbacks (the connection's thread) ---- */

static ssize_t on_send(nghttp2_session *h2, const uint8_t *data, size_t len, int flags, void *user)
{
	struct conn *c = user;
	ssize_t n;

	(void)h2;
	(void)flags;
	n = send(c->fd, data, len, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
			       ? NGHTTP2_ERR_WOULDBLOCK
			       : NGHTTP2_ERR_CALLBACK_FAILURE;
	return n;
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
	struct stream *st;

	(void)user;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = dm_xcalloc(1, sizeof(*st));
	dm_buf_init(&st->body, 0);
	return nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id, st);
}

static bool header_is(const uint8_t *name, size_t len, const char *what)
{
	return len == strlen(what) && !memcmp(name, what, len);
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	struct stream *st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);

	(void)flags;
	(void)user;
	if (!st || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (header_is(name, namelen, ":path")) {
		if (valuelen <= PATH_MAX_LEN && !memchr(value, '\0', valuelen))
			snprintf(st->path, sizeof(st->path), "%.*s", (int)valuelen,
				 (const char *)value);
	} else if (header_is(name, namelen, ":method")) {
		st->post = header_is(value, valuelen, "POST");
	} else if (header_is(name, namelen, "content-type")) {
		st->grpc = valuelen >= 16 && !memcmp(value, "application/grpc", 16) &&
			   (valuelen == 16 || value[16] == '+' || value[16] == ';');
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *user)
{
	struct stream *st = nghttp2_session_get_stream_user_data(h2, id);

	(void)flags;
	(void)user;
	if (!st || st->too_big || st->dispatched)
		return 0;
	if (st->body.len + len > FRAME_PREFIX + (size_t)DM_GRPC_MESSAGE_MAX ||
	    dm_buf_add(&st->body, data, len)) {
		st->too_big = true;
		dm_buf_release(&st->body);
	}
	return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
	struct stream *st;

	if ((frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
	if (st && !st->dispatched)
		dispatch(user, frame->hd.stream_id, st);
	return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
	struct stream *st = nghttp2_session_get_stream_user_data(h2, id);

	(void)code;
	(void)user;
	if (!st)
		return 0;
	nghttp2_session_set_stream_user_data(h2, id, NULL);
	dm_buf_release(&st->body);
	free(st->resp);
	free(st);
	return 0;
}

/* ---- a connection's thread ---- */

/* Submits the answers calls handed back. */
static void deliver(struct conn *c)
{
	struct done *list, *d, *rev = NULL;

	pthread_mutex_lock(&c->mu);
	list = c->done;
	c->done = NULL;
	pthread_mutex_unlock(&c->mu);
	while ((d = list)) { /* oldest first */
		list = d->next;
		d->next = rev;
		rev = d;
	}
	while ((d = rev)) {
		rev = d->next;
		submit_answer(c, d->stream_id, d->code, d->message, d->data, d->len);
		free(d->message);
		free(d);
	}
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct dm_grpc_server *s = c->s;
	nghttp2_session_callbacks *cbs;
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 65536},
	};
	uint8_t *buf = dm_xmalloc(READ_BUF);

	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_send_callback(cbs, on_send);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	if (nghttp2_session_server_new(&c->h2, cbs, c))
		c->h2 = NULL;
	nghttp2_session_callbacks_del(cbs);
	if (c->h2)
		nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
	while (c->h2) {
		struct pollfd fds[2];
		bool stopping;

		if (nghttp2_session_send(c->h2))
			break;
		if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2))
			break;
		fds[0].fd = c->fd;
		fds[0].events = POLLIN | (nghttp2_session_want_write(c->h2) ? POLLOUT : 0);
		fds[1].fd = c->efd;
		fds[1].events = POLLIN;
		fds[0].revents = fds[1].revents = 0;
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[1].revents & POLLIN) {
			uint64_t v;

			if (read(c->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
			pthread_mutex_lock(&s->mu);
			stopping = s->stopping;
			pthread_mutex_unlock(&s->mu);
			if (stopping) {
				nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
				nghttp2_session_send(c->h2);
				break;
			}
			deliver(c);
		}
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(c->fd, buf, READ_BUF, 0);

			if (n == 0)
				break;
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				break;
			if (n > 0 && nghttp2_session_mem_recv(c->h2, buf, (size_t)n) < 0)
				break;
		}
	}
	free(buf);
	pthread_mutex_lock(&c->mu);
	c->closed = true;
	pthread_mutex_unlock(&c->mu);
	nghttp2_session_del(c->h2); /* closes the streams: on_stream_close frees them */
	c->h2 = NULL;
	close(c->fd);
	pthread_mutex_lock(&s->mu);
	for (struct conn **p = &s->conns; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	s->nconns--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	conn_unref(c);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct dm_grpc_server *s = arg;

	for (;;) {
		struct pollfd fds[2] = {{s->listen_fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
		pthread_attr_t attr;
		struct conn *c;
		pthread_t t;
		int fd, e;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			dm_warn("csi: poll: %s", strerror(errno));
			return NULL;
		}
		if (fds[1].revents)
			return NULL;
		fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
				dm_warn("csi: accept: %s", strerror(errno));
				struct timespec ts = {0, 100 * 1000 * 1000};

				nanosleep(&ts, NULL);
			}
			continue;
		}
		pthread_mutex_lock(&s->mu);
		if (s->nconns >= CONNS_MAX || s->stopping) {
			pthread_mutex_unlock(&s->mu);
			dm_warn("csi: %d connections already; refusing another", CONNS_MAX);
			close(fd);
			continue;
		}
		c = dm_xcalloc(1, sizeof(*c));
		c->s = s;
		c->fd = fd;
		c->refs = 1;
		c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		pthread_mutex_init(&c->mu, NULL);
		if (c->efd < 0) {
			pthread_mutex_unlock(&s->mu);
			close(fd);
			pthread_mutex_destroy(&c->mu);
			free(c);
			continue;
		}
		c->next = s->conns;
		s->conns = c;
		s->nconns++;
		pthread_mutex_unlock(&s->mu);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		e = pthread_create(&t, &attr, conn_main, c);
		pthread_attr_destroy(&attr);
		if (e) {
			pthread_mutex_lock(&s->mu);
			s->conns = c->next;
			s->nconns--;
			pthread_mutex_unlock(&s->mu);
			close(fd);
			conn_unref(c);
		}
	}
}

/* ---- lifecycle ---- */

static int bind_socket(int *out, const char *path, struct dm_err *err)
{
	struct sockaddr_un sa;
	char dir[PATH_MAX];
	char *slash;
	struct stat st;
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return dm_err_set(err, DM_ETOOBIG, "CSI socket path too long: '%s'", path);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		rc = dm_mkdir_p(dir, 0755, err);
		if (rc)
			return dm_err_prefix(err, "cannot make the CSI socket's directory");
	}
	if (dm_unix_socket_served(path))
		return dm_err_set(err, DM_EBUSY,
				  "CSI socket '%s' is served by another process (another dmd?)",
				  path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return dm_err_set(err, DM_EEXISTS,
					  "'%s' exists and is not a socket: not the CSI socket",
					  path);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return dm_err_errno(err, errno, "cannot make a socket");
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = dm_err_errno(err, errno, "cannot bind the CSI socket '%s'", sa.sun_path);
		close(fd);
		return rc;
	}
	if (chmod(sa.sun_path, 0600) < 0 || listen(fd, 64) < 0) {
		int e = errno;

		close(fd);
		unlink(sa.sun_path);
		return dm_err_errno(err, e, "cannot listen on the CSI socket '%s'", sa.sun_path);
	}
	*out = fd;
	return 0;
}

int dm_grpc_listen(struct dm_grpc_server **out, const char *socket_path, dm_grpc_handler handler,
		   void *ctx, struct dm_err *err)
{
	struct dm_grpc_server *s = dm_xcalloc(1, sizeof(*s));
	pthread_condattr_t ca;
	int rc, e;

	s->listen_fd = -1;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	s->handler = handler;
	s->ctx = ctx;
	s->path = dm_xstrdup(socket_path);
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = bind_socket(&s->listen_fd, socket_path, err);
	if (!rc && pipe2(s->stop_pipe, O_CLOEXEC) < 0)
		rc = dm_err_errno(err, errno, "cannot make a pipe");
	if (!rc) {
		e = pthread_create(&s->acceptor, NULL, accept_main, s);
		if (e)
			rc = dm_err_errno(err, e, "cannot start the CSI socket's thread");
		else
			s->have_acceptor = true;
	}
	if (rc) {
		dm_grpc_free(s, 0);
		return rc;
	}
	*out = s;
	return 0;
}

void dm_grpc_quiesce(struct dm_grpc_server *s)
{
	if (!s)
		return;
	if (s->have_acceptor) {
		ssize_t n = write(s->stop_pipe[1], "x", 1);

		(void)n;
		pthread_join(s->acceptor, NULL);
		s->have_acceptor = false;
	}
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		s->listen_fd = -1;
		unlink(s->path);
	}
}

/* Under s->mu: waits until done() or the deadline; false at the deadline. */
static bool wait_until(struct dm_grpc_server *s, bool (*done)(struct dm_grpc_server *),
		       int64_t deadline_ns)
{
	while (!done(s)) {
		struct timespec ts;

		if (dm_now_monotonic_ns() >= deadline_ns)
			return false;
		ts.tv_sec = (time_t)(deadline_ns / 1000000000);
		ts.tv_nsec = (long)(deadline_ns % 1000000000);
		pthread_cond_timedwait(&s->cond, &s->mu, &ts);
	}
	return true;
}

static bool no_calls(struct dm_grpc_server *s)
{
	return s->calls == 0;
}

static bool no_conns(struct dm_grpc_server *s)
{
	return s->nconns == 0;
}

bool dm_grpc_free(struct dm_grpc_server *s, int timeout_ms)
{
	bool idle;

	if (!s)
		return true;
	dm_grpc_quiesce(s);
	pthread_mutex_lock(&s->mu);
	idle = wait_until(s, no_calls, dm_now_monotonic_ns() + (int64_t)timeout_ms * 1000000);
	s->stopping = true;
	for (struct conn *c = s->conns; c; c = c->next)
		wake(c->efd);
	idle = wait_until(s, no_conns, dm_now_monotonic_ns() + 5000LL * 1000000) && idle;
	idle = idle && s->calls == 0;
	pthread_mutex_unlock(&s->mu);
	if (!idle) {
		/* a call still runs, and will touch s: it is left to it */
		dm_warn("csi: calls still running at shutdown; leaving them");
		return false;
	}
	if (s->stop_pipe[0] >= 0)
		close(s->stop_pipe[0]);
	if (s->stop_pipe[1] >= 0)
		close(s->stop_pipe[1]);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s->path);
	free(s);
	return true;
}
