/*
 * s3_http.c - dotmesh's S3 paths (see s3_http.h): who may, and what each
 * method answers. Reads come from the store at a commit (s3_read.h); a
 * PUT or DELETE is one PUT_FILE job of the dot, which changes the key and
 * commits (dots/put_job.c).
 *
 * Invariants:
 *   - Nothing here runs before http.c authenticated the caller. A caller
 *     who may not read the dot is answered exactly as for a dot that does
 *     not exist; PUT and DELETE need role write (access.h), reads role
 *     read.
 *   - A PUT's body goes to a file of its own (mkostemp) under DIR/uploads
 *     as it arrives, counted against DM_S3_PUT_MAX; the file is removed
 *     when the request ends, whatever happened.
 *   - In a cluster, a change for a branch another node masters is sent
 *     there with its body (dm_forward_http) and never served here.
 *   - A dot's state is never touched here: views are read, and a change
 *     is a request to the dot's actor.
 */
#include "server/api/s3_http.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/api/api.h"
#include "server/api/http.h"
#include "server/api/rpc.h"
#include "server/api/s3_path.h"
#include "server/api/s3_read.h"
#include "server/cluster/forward.h"
#include "server/dots/access.h"
#include "server/dots/dot.h"
#include "server/dots/registry.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define PUT_DEADLINE_MS (3600 * 1000) /* a commit's, as dots.commit */
#define READ_BLOCK      (64u * 1024)
#define EXTRACT_HEADER  "Extract"
#define SNAPSHOT_HEADER "Snapshot"

struct dm_s3_req {
	const struct dm_api_env *env;
	struct dm_caller caller;
	char method[8];
	struct dm_s3_path path;
	struct dm_dot_handle *dot;
	char shown[DM_DOT_NAME_TEXT_MAX];
	bool extract;
	/* PUT: the body so far */
	char upload[4096];
	int fd;
	uint64_t len;
	bool too_big;
	int rc; /* a failure while the body arrived */
	struct dm_err err;
};

/* ---- answers ---- */

static enum MHD_Result answer(struct MHD_Connection *c, struct MHD_Response *resp, unsigned status)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result answer_err(struct MHD_Connection *c, const struct dm_err *err)
{
	char *body = dm_rpc_error_body(-32000, err->code, err->msg);
	struct MHD_Response *resp;

	if (!body)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return answer(c, resp, (unsigned)dm_err_http_status(err->code));
}

/* ---- who may ---- */

/* The dot the path names, if the caller may read it (and write, for a
 * change): a new handle reference in r->dot. */
static int find_dot(struct dm_s3_req *r, struct dm_err *err)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(r->env->registry);
	const struct dm_registry_entry *e = dm_registry_find(snap, &r->path.dot);
	int rc = 0;

	dm_dot_name_text(r->shown, &r->path.dot);
	if (e) {
		struct dm_dot_view *v = dm_dot_handle_view(e->dot);

		if (!dm_dot_allows(v, &r->caller, DM_ROLE_READ))
			e = NULL; /* told nothing: as if there were no such dot */
		else if (r->path.kind == DM_S3_WRITE)
			rc = dm_dot_may(v, &r->caller, DM_ROLE_WRITE, "write to", err);
		dm_dot_view_unref(v);
	}
	if (e && !rc) {
		r->dot = e->dot;
		dm_dot_handle_ref(e->dot);
	}
	dm_registry_snap_unref(snap);
	if (!e)
		return dm_err_set(err, DM_ENOTFOUND, "no such dot '%s'", r->shown);
	return rc;
}

static int too_big(struct dm_err *err)
{
	return dm_err_set(err, DM_ETOOBIG,
			  "the body is larger than %llu bytes, the most a PUT takes",
			  (unsigned long long)DM_S3_PUT_MAX);
}

int dm_s3_begin(struct dm_s3_req **out, const struct dm_api_env *env,
		const struct dm_caller *caller, struct MHD_Connection *c, const char *url,
		const char *method, struct dm_err *err)
{
	struct dm_s3_req *r = dm_xcalloc(1, sizeof(*r));
	const char *ex;
	int rc;

	*out = NULL;
	r->env = env;
	r->caller = *caller;
	r->fd = -1;
	snprintf(r->method, sizeof(r->method), "%s", method);
	rc = dm_s3_path_parse(&r->path, method, url, err);
	if (!rc)
		rc = find_dot(r, err);
	if (!rc && !strcmp(method, MHD_HTTP_METHOD_PUT)) {
		ex = MHD_lookup_connection_value(c, MHD_HEADER_KIND, EXTRACT_HEADER);
		r->extract = ex && !strcmp(ex, "true");
		if (dm_http_declared_over(c, DM_S3_PUT_MAX))
			rc = too_big(err);
		if (!rc) {
			snprintf(r->upload, sizeof(r->upload), "%s/put-XXXXXX", env->uploads);
			r->fd = mkostemp(r->upload, O_CLOEXEC);
			if (r->fd < 0) {
				rc = dm_err_errno(err, errno,
						  "cannot keep the body of a PUT in '%s'",
						  env->uploads);
				r->upload[0] = '\0';
			}
		}
	}
	if (rc) {
		dm_s3_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void dm_s3_free(struct dm_s3_req *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	if (r->upload[0])
		unlink(r->upload);
	dm_dot_handle_unref(r->dot);
	free(r);
}

/* ---- PUT and DELETE ---- */

static void add_meta(struct dm_dot_req *q, const char *key, const char *value)
{
	q->meta_keys[q->nmeta] = dm_xstrdup(key);
	q->meta_values[q->nmeta++] = dm_xstrdup(value);
}

/* The dot's PUT_FILE request for r, with dotmesh's message and metadata. */
static struct dm_dot_req *put_request(const struct dm_s3_req *r)
{
	struct dm_dot_req *q = dm_dot_req_new(DM_DOT_OP_PUT_FILE);
	bool put = r->fd >= 0;
	char text[DM_S3_KEY_MAX + 64];

	q->branch = dm_xstrdup(r->path.branch[0] ? r->path.branch : "master");
	q->key = dm_xstrdup(r->path.key);
	q->src = put ? dm_xstrdup(r->upload) : NULL;
	q->extract = r->extract;
	q->author = dm_xstrdup(r->caller.user);
	q->meta_keys = dm_xcalloc(4, sizeof(char *));
	q->meta_values = dm_xcalloc(4, sizeof(char *));
	if (put) {
		snprintf(text, sizeof(text), "Uploaded %s (%" PRIu64 " bytes)", r->path.key,
			 r->len);
		q->message = dm_xstrdup(text);
		add_meta(q, "type", "upload");
		add_meta(q, "upload.type", "S3");
		add_meta(q, "upload.file", r->path.key);
		snprintf(text, sizeof(text), "%" PRIu64, r->len);
		add_meta(q, "upload.bytes", text);
	} else {
		snprintf(text, sizeof(text), "Delete %s", r->path.key);
		q->message = dm_xstrdup(text);
		add_meta(q, "type", "delete");
		add_meta(q, "delete.type", "S3");
		add_meta(q, "delete.file", r->path.key);
	}
	return q;
}

/* r's path for the master: /s3/NS:DOT@BRANCH/KEY, percent-encoded. */
static void master_path(struct dm_buf *out, const struct dm_s3_req *r, const char *branch)
{
	static const char hex[] = "0123456789ABCDEF";

	dm_buf_addf(out, "%s%s:%s@%s/", DM_S3_PREFIX, r->path.dot.ns, r->path.dot.name, branch);
	for (const unsigned char *p = (const unsigned char *)r->path.key; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~/", *p))
			dm_buf_addc(out, *p);
		else
			dm_buf_addf(out, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
	}
}

/* In a cluster, the node that masters the branch serves a change: r goes
 * there as it came, and its answer back. *answered says whether r was
 * answered here (forwarded, or refused); when not, this node serves it. */
static enum MHD_Result forward_write(struct dm_s3_req *r, struct MHD_Connection *c, bool *answered)
{
	const char *branch = r->path.branch[0] ? r->path.branch : "master";
	struct dm_forward_reply reply;
	struct dm_buf path = DM_BUF_INIT;
	struct MHD_Response *resp;
	char *body;
	size_t len;
	bool forwarded = false;
	int rc;

	master_path(&path, r, branch);
	rc = dm_forward_http(r->env->cluster, &r->caller, dm_dot_handle_id(r->dot), r->shown,
			     branch, r->method, (const char *)path.data,
			     r->extract ? EXTRACT_HEADER ": true" : NULL, r->fd, r->len,
			     SNAPSHOT_HEADER, PUT_DEADLINE_MS, &reply, &forwarded, &r->err);
	dm_buf_release(&path);
	*answered = forwarded || rc;
	if (!forwarded || rc) {
		dm_buf_release(&reply.body);
		return rc ? answer_err(c, &r->err) : MHD_YES;
	}
	dm_info("%s of '%s' in dot '%s' by '%s' forwarded to the master of branch '%s'", r->method,
		r->path.key, r->shown, r->caller.user, branch);
	body = dm_buf_detach(&reply.body, &len);
	resp = body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE) : NULL;
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	if (reply.header[0])
		MHD_add_response_header(resp, SNAPSHOT_HEADER, reply.header);
	if (reply.ctype[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, reply.ctype);
	return answer(c, resp, (unsigned)reply.status);
}

static enum MHD_Result serve_write(struct dm_s3_req *r, struct MHD_Connection *c)
{
	struct MHD_Response *resp;
	json_t *result = NULL;
	bool answered = false;
	enum MHD_Result ret;
	const char *id;
	int rc;

	if (r->too_big)
		return answer_err(c, (too_big(&r->err), &r->err));
	if (r->rc)
		return answer_err(c, &r->err);
	if (r->fd >= 0 && fsync(r->fd) < 0)
		return answer_err(c, (dm_err_errno(&r->err, errno, "cannot keep the body of a PUT"),
				      &r->err));
	ret = forward_write(r, c, &answered);
	if (answered)
		return ret;
	rc = dm_dot_call(&result, r->dot, put_request(r), PUT_DEADLINE_MS, &r->err);
	id = json_string_value(json_object_get(result, "id"));
	if (!rc && !id)
		rc = dm_err_set(&r->err, DM_EINTERNAL, "the commit answered no id");
	if (rc) {
		json_decref(result);
		return answer_err(c, &r->err);
	}
	dm_info("%s of '%s' in dot '%s' by '%s' committed as %s", r->method, r->path.key, r->shown,
		r->caller.user, id);
	resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (resp)
		MHD_add_response_header(resp, SNAPSHOT_HEADER, id);
	json_decref(result);
	return answer(c, resp, MHD_HTTP_OK);
}

/* ---- reads ---- */

/* The tree of the commit the path names ("" or "latest": master's head),
 * once the dot's commits are sealed. */
static int commit_tree(struct dm_s3_req *r, dm_oid *tree, struct dm_err *err)
{
	char head[DM_COMMIT_ID_LEN_MAX + 1];
	const char *commit = r->path.commit;
	int rc;

	if (!commit[0] || !strcmp(commit, "latest")) {
		dm_dot_handle_head(head, sizeof(head), r->dot, "master");
		if (!head[0])
			return dm_err_set(err, DM_ENOTFOUND,
					  "dot '%s' has no commit on master yet: commit (or PUT a "
					  "file) first",
					  r->shown);
		commit = head;
	}
	rc = dm_dot_wait_sealed(r->dot, DM_DOT_CALL_DEADLINE_MS, err);
	if (!rc)
		rc = dm_s3_commit_tree(tree, r->env->store, dm_dot_handle_id(r->dot), r->shown,
				       commit, err);
	return rc;
}

/* A query parameter as a count: def when absent or not a number. */
static uint64_t count_arg(struct MHD_Connection *c, const char *name, uint64_t def)
{
	const char *s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
	unsigned long long n;
	char *end;

	if (!s || !*s)
		return def;
	errno = 0;
	n = strtoull(s, &end, 10);
	return *end || errno ? def : (uint64_t)n;
}

static bool flag_arg(struct MHD_Connection *c, const char *name)
{
	const char *s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);

	return s && *s;
}

static enum MHD_Result serve_list(struct dm_s3_req *r, struct MHD_Connection *c)
{
	const char *prefix = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "Prefix");
	const char *format = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "Format");
	char bucket[DM_DOT_NAME_TEXT_MAX + 2], key[DM_S3_KEY_MAX + 1] = "";
	struct dm_s3_list_opts o;
	struct dm_buf body = DM_BUF_INIT;
	struct MHD_Response *resp;
	dm_oid tree;
	char *text;
	size_t len;

	snprintf(bucket, sizeof(bucket), "%s-%s", r->path.dot.ns, r->path.dot.name);
	if (prefix && *prefix && dm_s3_key_check(key, prefix, &r->err))
		return answer_err(c, &r->err);
	memset(&o, 0, sizeof(o));
	o.bucket = bucket;
	o.prefix = key;
	o.max_keys = count_arg(c, "MaxKeys", DM_S3_LIST_DEFAULT);
	if (o.max_keys == 0 || o.max_keys > DM_S3_LIST_MAX)
		o.max_keys = DM_S3_LIST_MAX;
	o.page = count_arg(c, "Page", 0);
	if (o.page > UINT64_MAX / o.max_keys)
		o.page = UINT64_MAX / o.max_keys;
	o.recursive = !flag_arg(c, "NonRecursive");
	o.directories = flag_arg(c, "IncludeDirectories");
	o.json = format && !strcmp(format, "json");
	if (commit_tree(r, &tree, &r->err) ||
	    dm_s3_list(&body, r->env->store, &tree, &o, &r->err)) {
		dm_buf_release(&body);
		return answer_err(c, &r->err);
	}
	text = dm_buf_detach(&body, &len);
	if (!text)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				o.json ? "application/json" : "application/xml");
	return answer(c, resp, MHD_HTTP_OK);
}

static ssize_t read_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	ssize_t n = dm_s3_read_next(cls, buf, max);

	(void)pos;
	if (n < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return n ? n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void read_free(void *cls)
{
	dm_s3_read_free(cls);
}

static enum MHD_Result serve_read(struct dm_s3_req *r, struct MHD_Connection *c)
{
	struct dm_s3_read *rd = NULL;
	struct MHD_Response *resp;
	char disposition[DM_S3_KEY_MAX + 64];
	const char *base = strrchr(r->path.key, '/');
	dm_oid tree;
	int64_t size;
	bool dir;

	if (commit_tree(r, &tree, &r->err) ||
	    dm_s3_read_open(&rd, r->env->store, &tree, r->path.key, &size, &dir, &r->err))
		return answer_err(c, &r->err);
	resp = MHD_create_response_from_callback(size < 0 ? MHD_SIZE_UNKNOWN : (uint64_t)size,
						 READ_BLOCK, read_cb, rd, read_free);
	if (!resp) {
		dm_s3_read_free(rd);
		return MHD_NO;
	}
	base = base ? base + 1 : r->path.key;
	snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s%s\"", base,
		 dir ? ".tar" : "");
	for (char *p = disposition + strlen("attachment; filename=\""); *p; p++)
		if (*p == '"' && p[1])
			*p = '_';
	MHD_add_response_header(resp, "Content-Disposition", disposition);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				dir ? "application/x-tar" : "application/octet-stream");
	return answer(c, resp, MHD_HTTP_OK);
}

/* ---- the callbacks ---- */

enum MHD_Result dm_s3_handle(struct dm_s3_req *r, struct MHD_Connection *c, const char *upload,
			     size_t *upload_size)
{
	if (*upload_size) {
		size_t n = *upload_size;

		*upload_size = 0;
		if (r->fd < 0 || r->too_big || r->rc)
			return MHD_YES; /* not a PUT's, or refused already: dropped */
		if (r->len + n > DM_S3_PUT_MAX) {
			r->too_big = true;
			return MHD_YES;
		}
		if (dm_write_all(r->fd, upload, n) < 0)
			r->rc = dm_err_errno(&r->err, errno,
					     "cannot keep the body of a PUT in '%s'",
					     r->env->uploads);
		r->len += n;
		return MHD_YES;
	}
	switch (r->path.kind) {
	case DM_S3_WRITE:
		return serve_write(r, c);
	case DM_S3_LIST:
		return serve_list(r, c);
	default:
		return serve_read(r, c);
	}
}
