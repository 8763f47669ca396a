/*
 * etcd_watch.c - watches of the etcd backend: one streaming POST to
 * /v3/watch per watch, read on the watch's thread (kv.c) with a libcurl
 * multi handle, so that dm_kv_watch_cancel wakes it at once.
 *
 * A watch's position, in etcd revisions:
 *     done    every event at or below it has been delivered (or was not
 *             asked for: the start is from + 1, etcd.h)
 *     part    the revision whose events are being delivered (0: none),
 *             part_n of them so far; part is done + 1 when set
 * A broken stream (a member killed, a connection cut, etcd ending it) is
 * opened again, on the next endpoint, at done + 1, and the first part_n
 * events of revision part are skipped: every event is delivered exactly
 * once, in order, even when a revision arrived in several fragments.
 * Before that reopening, a range at revision done checks that etcd still
 * keeps the history after it: a watch from exactly etcd's compaction
 * revision would silently miss deletes there. When it does not, or etcd
 * says so on the stream, the watch gets one FAILED event
 * (DM_KV_ECOMPACTED) and ends.
 *
 * Invariants:
 *  - Events are delivered from the write callback, one line at a time,
 *    so a slow callback slows the stream (TCP pushes back on etcd) and no
 *    buffer holds more than one line (at most DM_ETCD_MSG_MAX bytes).
 *  - The watch's thread waits only in curl_multi_poll (woken by
 *    watch_wake) or in a callback; a stream that etcd does not confirm
 *    within the request deadline is given up and opened elsewhere.
 *  - Only the watch's thread touches struct ewatch, except watch_wake,
 *    which only calls curl_multi_wakeup (thread-safe).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/backend.h"
#include "kv/etcd.h"
#include "kv/etcd_json.h"
#include "kv/kv.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define NS_PER_MS        1000000LL
#define POLL_MS          1000
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   2000
#define KEY_QUOTE_MAX    200

struct ewatch {
	struct etcd_kv *k;
	CURLM *multi;
	CURL *h;
	size_t ep; /* the member streams go to */
	int64_t done;
	int64_t part;
	uint64_t part_n;
	uint64_t skip; /* events of part the current stream still repeats */

	/* the transfer under way */
	bool stream;              /* the stream, else the history check */
	bool status_known;        /* the stream's HTTP status was looked at */
	bool status_ok;           /* and it is 200: lines follow */
	bool created;             /* etcd confirmed the stream */
	struct dm_buf line;       /* the line being read */
	struct dm_etcd_sink sink; /* any other answer */
	bool stopped;             /* a callback said stop, or the watch failed */
	bool failed;              /* deliver fail_err as FAILED */
	struct dm_err fail_err;
	bool broken; /* etcd ended the stream with an error line */
	struct dm_err broken_err;
	bool stale_token;   /* etcd refused the token: log in again, then reopen */
	uint64_t token_gen; /* the generation of the token the transfer carries */
};

static int64_t now_ms(void)
{
	return dm_now_monotonic_ns() / NS_PER_MS;
}

static int compacted(struct dm_err *err, int64_t done)
{
	return dm_err_set(err, DM_KV_ECOMPACTED,
			  "revision %lld compacted: etcd no longer keeps the history after it",
			  (long long)DM_OF_ETCD_REV(done));
}

/* The body of a range at etcd revision rev: it fails when rev is
 * compacted. */
static int history_body(struct dm_buf *b, const struct dm_kv_watch *w, int64_t rev)
{
	int rc;

	if ((rc = dm_buf_adds(b, "{\"key\":\"")) < 0 ||
	    (rc = dm_base64_encode(b, w->prefix_len ? w->prefix : "",
				   w->prefix_len ? w->prefix_len : 1, false)) < 0 ||
	    (rc = dm_buf_addf(b, "\",\"revision\":\"%lld\",\"count_only\":true}", (long long)rev)) <
		    0)
		return rc;
	return 0;
}

/* What the history check's result means: 0 kept, DM_KV_ECOMPACTED, or
 * another failure. A future revision is fine: nothing is compacted after
 * the present. */
static int history_verdict(int rc, int64_t rev, struct dm_err *err)
{
	if (rc == DM_KV_ECOMPACTED)
		return compacted(err, rev);
	if (rc == DM_EINVAL && err && strstr(err->msg, "future revision"))
		return 0;
	return rc;
}

static int stream_body(struct dm_buf *b, const struct dm_kv_watch *w, int64_t start)
{
	char end[DM_KV_KEY_MAX + 1];
	size_t end_len = dm_kv_prefix_end(end, w->prefix, w->prefix_len);
	int rc;

	if ((rc = dm_buf_adds(b, "{\"create_request\":{\"key\":\"")) < 0 ||
	    (rc = dm_base64_encode(b, w->prefix_len ? w->prefix : "",
				   w->prefix_len ? w->prefix_len : 1, false)) < 0 ||
	    (rc = dm_buf_adds(b, "\",\"range_end\":\"")) < 0 ||
	    (rc = dm_base64_encode(b, end, end_len, false)) < 0 ||
	    (rc = dm_buf_addf(b, "\",\"start_revision\":\"%lld\",\"fragment\":true}}",
			      (long long)start)) < 0)
		return rc;
	return 0;
}

int dm_etcd_watch_start(struct dm_kv *kv, struct dm_kv_watch *w, struct dm_err *err)
{
	struct etcd_kv *k = (struct etcd_kv *)kv;
	struct dm_buf body = DM_BUF_INIT, ans = DM_BUF_INIT;
	int64_t rev = ETCD_OF_DM_REV(w->from);
	struct ewatch *ew;
	int rc;

	if (w->from > INT64_MAX / 2)
		return dm_err_set(err, DM_EINVAL, "cannot watch from revision %lld",
				  (long long)w->from);
	if ((rc = history_body(&body, w, rev)) < 0) {
		dm_buf_release(&body);
		return dm_err_set(err, DM_ENOMEM, "out of memory for a watch");
	}
	rc = dm_etcd_call(&k->conn, &ans, "/v3/kv/range", (const char *)body.data, body.len,
			  DM_ETCD_IDEMPOTENT, err);
	dm_buf_release(&body);
	dm_buf_release(&ans);
	if ((rc = history_verdict(rc, rev, err)) < 0)
		return rc;
	ew = calloc(1, sizeof(*ew));
	if (!ew)
		return dm_err_set(err, DM_ENOMEM, "out of memory for a watch");
	w->impl = ew;
	ew->k = k;
	ew->done = rev;
	ew->ep = atomic_load(&k->conn.current) % k->conn.n;
	dm_buf_init(&ew->line, DM_ETCD_MSG_MAX);
	dm_etcd_sink_init(&ew->sink);
	ew->multi = curl_multi_init();
	ew->h = curl_easy_init();
	if (!ew->multi || !ew->h)
		return dm_err_set(err, DM_ENOMEM, "cannot make libcurl handles for a watch");
	return 0;
}

/* ---- one line of the stream ---- */

static void fail_with(struct ewatch *ew, const struct dm_err *e)
{
	ew->failed = true;
	ew->stopped = true;
	ew->fail_err = *e;
}

/* Delivers one event unless this stream repeats it; false: stop. */
static bool on_event(struct dm_kv_watch *w, struct ewatch *ew, const struct dm_etcd_event *e)
{
	int64_t r = e->kv.mod_revision;
	struct dm_kv_event ev;

	if (r <= ew->done)
		return true; /* before the start, or delivered before a reconnect */
	if (r == ew->part) {
		if (ew->skip > 0) {
			ew->skip--;
			return true;
		}
	} else if (r > ew->part) {
		/* every revision before r is complete: events come in order */
		ew->done = r - 1;
		ew->part = r;
		ew->part_n = 0;
		ew->skip = 0;
	} else {
		struct dm_err e2;

		dm_err_set(&e2, DM_EPROTO, "etcd's watch went back from revision %lld to %lld",
			   (long long)ew->part, (long long)r);
		fail_with(ew, &e2);
		return false;
	}
	memset(&ev, 0, sizeof(ev));
	ev.type = e->put ? DM_KV_EVENT_PUT : DM_KV_EVENT_DELETE;
	ev.key = e->kv.key;
	ev.key_len = e->kv.key_len;
	ev.revision = DM_OF_ETCD_REV(r);
	if (e->put) {
		ev.value = e->kv.value;
		ev.value_len = e->kv.value_len;
		ev.create_revision = DM_OF_ETCD_REV(e->kv.create_revision);
		ev.version = e->kv.version;
		ev.lease = e->kv.lease;
	}
	if (!dm_kv_has_prefix(ev.key, ev.key_len, w->prefix, w->prefix_len)) {
		struct dm_err e2;

		dm_err_set(&e2, DM_EPROTO, "etcd's watch of '%.*s' sent key '%.*s'", KEY_QUOTE_MAX,
			   w->prefix, KEY_QUOTE_MAX, ev.key);
		fail_with(ew, &e2);
		return false;
	}
	ew->part_n++;
	if (!dm_kv_watch_deliver(w, &ev)) {
		ew->stopped = true;
		return false;
	}
	return true;
}

/* Handles one line; false ends the stream. */
static bool on_line(struct dm_kv_watch *w, struct ewatch *ew, const char *line, size_t len)
{
	struct dm_etcd_wmsg m;
	struct dm_err e;
	bool go_on = true;

	if (len == 0)
		return true;
	if (dm_etcd_parse_watch(&m, line, len, &e) < 0) {
		fail_with(ew, &e);
		return false;
	}
	if (m.kind == DM_ETCD_WMSG_ERROR) {
		bool transient, not_applied;
		int code = dm_etcd_error_code(&m.error, &transient, &not_applied);

		dm_err_set(&e, code, "etcd at %s ended the watch of '%.*s': %s",
			   ew->k->conn.urls[ew->ep], KEY_QUOTE_MAX, w->prefix, m.error.message);
		ew->stale_token = dm_etcd_token_refused(&m.error);
		if (transient || ew->stale_token) {
			ew->broken = true;
			ew->broken_err = e;
		} else {
			fail_with(ew, &e);
		}
		go_on = false;
	} else if (m.compact_revision > 0) {
		dm_err_set(&e, DM_KV_ECOMPACTED,
			   "revision %lld compacted: history starts after revision %lld",
			   (long long)DM_OF_ETCD_REV(ew->done),
			   (long long)DM_OF_ETCD_REV(m.compact_revision));
		fail_with(ew, &e);
		go_on = false;
	} else if (m.canceled) {
		dm_err_set(&e, DM_EIO, "etcd canceled the watch of '%.*s': %s", KEY_QUOTE_MAX,
			   w->prefix, m.cancel_reason[0] ? m.cancel_reason : "no reason given");
		if (dm_etcd_token_refused_text(m.cancel_reason)) {
			ew->stale_token = ew->broken = true;
			ew->broken_err = e;
		} else {
			fail_with(ew, &e);
		}
		go_on = false;
	} else {
		if (m.created)
			ew->created = true;
		/* events; a line without any is a progress notification */
		for (size_t i = 0; go_on && i < m.nevents; i++)
			go_on = on_event(w, ew, &m.events[i]);
	}
	dm_etcd_wmsg_release(&m);
	return go_on;
}

static size_t on_stream_data(char *data, size_t size, size_t n, void *arg)
{
	struct dm_kv_watch *w = arg;
	struct ewatch *ew = w->impl;
	size_t len = size * n, off = 0;

	if (!ew->status_known) {
		long status = 0;

		curl_easy_getinfo(ew->h, CURLINFO_RESPONSE_CODE, &status);
		ew->status_known = true;
		ew->status_ok = status == 200;
	}
	if (!ew->status_ok)
		return dm_etcd_sink_write(data, size, n, &ew->sink);
	while (off < len) {
		const char *nl = memchr(data + off, '\n', len - off);
		size_t piece = nl ? (size_t)(nl - (data + off)) : len - off;

		if (dm_buf_add(&ew->line, data + off, piece) < 0) {
			struct dm_err e;

			dm_err_set(&e, DM_ETOOBIG,
				   "etcd sent a watch message of more than %zu bytes",
				   DM_ETCD_MSG_MAX);
			fail_with(ew, &e);
			return 0;
		}
		off += piece;
		if (!nl)
			break;
		off++;
		if (!on_line(w, ew, (const char *)ew->line.data, ew->line.len))
			return 0; /* ends the transfer */
		dm_buf_reset(&ew->line);
	}
	return len;
}

/* ---- transfers ---- */

/*
 * Runs the transfer set up on ew->h until it ends, the watch stops, or a
 * stream is not confirmed within the request deadline. Returns curl's
 * result; CURLE_ABORTED_BY_CALLBACK when stopped here.
 */
static CURLcode run_transfer(struct dm_kv_watch *w, struct ewatch *ew)
{
	int64_t confirm_by = now_ms() + ew->k->conn.request_ms;
	CURLcode cc = CURLE_ABORTED_BY_CALLBACK;
	bool done = false;

	if (curl_multi_add_handle(ew->multi, ew->h) != CURLM_OK)
		return CURLE_OUT_OF_MEMORY;
	while (!done) {
		CURLMsg *msg;
		int running = 0, left;

		if (curl_multi_perform(ew->multi, &running) != CURLM_OK) {
			cc = CURLE_OUT_OF_MEMORY;
			break;
		}
		while ((msg = curl_multi_info_read(ew->multi, &left))) {
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == ew->h) {
				cc = msg->data.result;
				done = true;
			}
		}
		if (done || ew->stopped || dm_kv_watch_stopping(w))
			break;
		if (ew->stream && !ew->created && now_ms() > confirm_by) {
			cc = CURLE_OPERATION_TIMEDOUT;
			break;
		}
		curl_multi_poll(ew->multi, NULL, 0, POLL_MS, NULL);
	}
	curl_multi_remove_handle(ew->multi, ew->h);
	return cc;
}

/* A request body for revision rev of w (history_body, stream_body). */
typedef int (*body_fn)(struct dm_buf *b, const struct dm_kv_watch *w, int64_t rev);

/*
 * One transfer on ew's handle, to its endpoint: POSTs make's body for rev
 * to path (timeout_ms 0: no deadline), what etcd sends going to
 * on_data(data) and to ew->sink, which starts empty, and runs it
 * (run_transfer); *cc gets curl's result. An error when the request could
 * not be made. Both the history check and the stream go through here.
 */
static int post(struct dm_kv_watch *w, struct ewatch *ew, const char *path, body_fn make,
		int64_t rev, int64_t timeout_ms, curl_write_callback on_data, void *data,
		CURLcode *cc, struct dm_err *err)
{
	struct dm_buf body = DM_BUF_INIT;
	struct curl_slist *headers = NULL;
	int rc;

	if (make(&body, w, rev) < 0)
		rc = dm_err_set(err, DM_ENOMEM, "out of memory for a watch");
	else
		rc = dm_etcd_easy_setup(&ew->k->conn, ew->h, ew->ep, path, (const char *)body.data,
					body.len, timeout_ms, &ew->token_gen, &headers, err);
	if (rc == 0) {
		dm_buf_reset(&ew->sink.buf);
		ew->sink.too_big = false;
		curl_easy_setopt(ew->h, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(ew->h, CURLOPT_WRITEDATA, data);
		*cc = run_transfer(w, ew);
	}
	curl_slist_free_all(headers);
	dm_buf_release(&body);
	return rc;
}

/* After etcd refused the token: a new one, and an error that reopens. */
static int relogin(struct ewatch *ew, struct dm_err *err)
{
	int rc = dm_etcd_reauth(&ew->k->conn, ew->token_gen, err);

	ew->stale_token = false;
	return rc ? rc
		  : dm_err_set(err, DM_EUNAVAILABLE, "etcd refused the token; logged in again");
}

/* On a new stream: the history after done still kept? 0 yes,
 * DM_KV_ECOMPACTED no, another code when etcd could not say. */
static int check_history(struct dm_kv_watch *w, struct ewatch *ew, struct dm_err *err)
{
	struct dm_etcd_verdict v;
	CURLcode cc;
	int rc;

	ew->stream = false;
	if ((rc = post(w, ew, "/v3/kv/range", history_body, ew->done, ew->k->conn.request_ms,
		       dm_etcd_sink_write, &ew->sink, &cc, err)) < 0)
		return rc;
	if (cc == CURLE_ABORTED_BY_CALLBACK && dm_kv_watch_stopping(w))
		return DM_ECANCELED;
	v = dm_etcd_judge(&ew->k->conn, ew->h, ew->ep, "/v3/kv/range", cc, &ew->sink, err);
	if (v.stale_token)
		return relogin(ew, err);
	rc = v.outcome == DM_ETCD_OK ? 0 : err->code;
	return history_verdict(rc, ew->done, err);
}

/* One stream from done + 1. Returns 0 when the watch ends (stopped or
 * failed: ew says which), or an error when the stream broke and should
 * be opened again. */
static int run_stream(struct dm_kv_watch *w, struct ewatch *ew, struct dm_err *err)
{
	struct dm_etcd_verdict v;
	CURLcode cc;
	int rc;

	ew->skip = ew->part == ew->done + 1 ? ew->part_n : 0;
	ew->stream = true;
	ew->status_known = ew->status_ok = false;
	ew->created = ew->broken = false;
	dm_buf_reset(&ew->line);
	if ((rc = post(w, ew, "/v3/watch", stream_body, ew->done + 1, 0, on_stream_data, w, &cc,
		       err)) < 0)
		return rc;
	if (ew->stopped || dm_kv_watch_stopping(w))
		return 0;
	if (ew->stale_token)
		return relogin(ew, err);
	if (ew->broken) {
		*err = ew->broken_err;
		return err->code;
	}
	v = dm_etcd_judge(&ew->k->conn, ew->h, ew->ep, "/v3/watch", cc, &ew->sink, err);
	if (v.stale_token)
		return relogin(ew, err);
	if (v.outcome == DM_ETCD_OK)
		return dm_err_set(err, DM_EUNAVAILABLE, "etcd at %s ended the watch stream",
				  ew->k->conn.urls[ew->ep]);
	if (v.outcome == DM_ETCD_ANSWERED && !v.transient) {
		fail_with(ew, err);
		return 0;
	}
	return err->code;
}

/* Waits ms, or less when the watch is canceled. */
static void pause_ms(struct dm_kv_watch *w, struct ewatch *ew, int64_t ms)
{
	int64_t until = now_ms() + ms;

	while (!dm_kv_watch_stopping(w)) {
		int64_t left = until - now_ms();

		if (left <= 0)
			break;
		curl_multi_poll(ew->multi, NULL, 0, (int)(left < POLL_MS ? left : POLL_MS), NULL);
	}
}

void dm_etcd_watch_run(struct dm_kv_watch *w)
{
	struct ewatch *ew = w->impl;
	int64_t backoff = 0;
	bool reopen = false;
	struct dm_err e;
	int rc = 0;

	while (!dm_kv_watch_stopping(w)) {
		dm_err_clear(&e);
		if (reopen) {
			rc = check_history(w, ew, &e);
			if (rc == DM_KV_ECOMPACTED) {
				dm_kv_watch_fail(w, &e);
				return;
			}
			if (rc == DM_ECANCELED)
				return;
		}
		if (!reopen || rc == 0) {
			rc = run_stream(w, ew, &e);
			if (ew->failed) {
				dm_kv_watch_fail(w, &ew->fail_err);
				return;
			}
			if (rc == 0)
				return;
		}
		if (dm_kv_watch_stopping(w))
			return;
		/* reopen on the next member, at once after a stream that
		 * worked, then more and more slowly */
		backoff = ew->created ? 0
			  : backoff ? (backoff * 2 < BACKOFF_MAX_MS ? backoff * 2 : BACKOFF_MAX_MS)
				    : BACKOFF_FIRST_MS;
		ew->created = false;
		dm_info("etcd watch of '%.*s': %s; resuming from revision %lld (%llu of its "
			"events delivered already)",
			KEY_QUOTE_MAX, w->prefix, e.msg, (long long)DM_OF_ETCD_REV(ew->done + 1),
			(unsigned long long)(ew->part == ew->done + 1 ? ew->part_n : 0));
		ew->ep = dm_etcd_conn_next(&ew->k->conn, ew->ep);
		reopen = true;
		pause_ms(w, ew, backoff);
	}
}

void dm_etcd_watch_wake(struct dm_kv_watch *w)
{
	struct ewatch *ew = w->impl;

	if (ew && ew->multi)
		curl_multi_wakeup(ew->multi);
}

void dm_etcd_watch_release(struct dm_kv_watch *w)
{
	struct ewatch *ew = w->impl;

	if (!ew)
		return;
	if (ew->h)
		curl_easy_cleanup(ew->h);
	if (ew->multi)
		curl_multi_cleanup(ew->multi);
	dm_buf_release(&ew->line);
	dm_buf_release(&ew->sink.buf);
	free(ew);
	w->impl = NULL;
}
