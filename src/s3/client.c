/*
 * client.c - the S3 client of client.h: one libcurl handle, reused, each
 * request signed by libcurl (SigV4) with the key id and secret.
 *
 * Invariants: every request goes through request(), which sets the shared
 * options (util/curl.h: no proxy, no redirects), the signature, the
 * deadlines and the cancel check, and maps the answer's status to one code
 * of util/err.h; a body that comes back is read into a buffer bounded by
 * DM_S3_MAX_ANSWER unless the caller streams it to a file; an upload is
 * read from its file in libcurl's buffer, one part at a time, so no object
 * is ever whole in memory. Query strings are built already in SigV4's
 * canonical form (names sorted, every value encoded, "name=" for an empty
 * value), so that what libcurl signs is what S3 recomputes.
 */
#include "s3/client.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "s3/xml.h"
#include "util/buf.h"
#include "util/curl.h"
#include "util/err.h"
#include "util/hash.h"

#include "util/banned.h"

struct dm_s3 {
	CURL *easy;
	char *endpoint; /* without a trailing '/' */
	char *userpwd;  /* "KEY_ID:SECRET" */
	char *sigv4;    /* "aws:amz:REGION:s3" */
	bool (*cancelled)(void *ctx);
	void *cancel_ctx;
	uint64_t wire_bytes;
	char errbuf[CURL_ERROR_SIZE];
};

int dm_s3_new(struct dm_s3 **out, const struct dm_s3_creds *creds, struct dm_err *err)
{
	struct dm_s3 *s;
	size_t n;
	int rc = dm_curl_global_init(err);

	*out = NULL;
	if (rc)
		return rc;
	if (strncmp(creds->endpoint, "http://", 7) && strncmp(creds->endpoint, "https://", 8))
		return dm_err_set(err, DM_EINVAL,
				  "S3 endpoint '%s' is not an http:// or https:// URL",
				  creds->endpoint);
	s = dm_xcalloc(1, sizeof(*s));
	s->easy = curl_easy_init();
	if (!s->easy) {
		free(s);
		return dm_err_set(err, DM_ENOMEM, "cannot make a libcurl handle");
	}
	s->endpoint = dm_xstrdup(creds->endpoint);
	n = strlen(s->endpoint);
	while (n && s->endpoint[n - 1] == '/')
		s->endpoint[--n] = '\0';
	s->userpwd = dm_asprintf("%s:%s", creds->key_id, creds->secret);
	s->sigv4 = dm_asprintf("aws:amz:%s:s3",
			       creds->region && creds->region[0] ? creds->region
								 : DM_S3_DEFAULT_REGION);
	*out = s;
	return 0;
}

void dm_s3_free(struct dm_s3 *s)
{
	if (!s)
		return;
	curl_easy_cleanup(s->easy);
	free(s->endpoint);
	if (s->userpwd) {
		explicit_bzero(s->userpwd, strlen(s->userpwd));
		free(s->userpwd);
	}
	free(s->sigv4);
	free(s);
}

void dm_s3_set_cancel(struct dm_s3 *s, bool (*cancelled)(void *ctx), void *ctx)
{
	s->cancelled = cancelled;
	s->cancel_ctx = ctx;
}

uint64_t dm_s3_wire_bytes(const struct dm_s3 *s)
{
	return s->wire_bytes;
}

/* RFC 3986 unreserved characters stay; every other byte is %XX (and '/'
 * too unless keep_slash), as SigV4's canonical URI and query want. */
static int add_encoded(struct dm_buf *out, const char *s, bool keep_slash)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int rc;

		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
		    (keep_slash && *p == '/'))
			rc = dm_buf_addc(out, *p);
		else
			rc = dm_buf_addf(out, "%%%02X", *p);
		if (rc)
			return rc;
	}
	return 0;
}

int dm_s3_path(struct dm_buf *out, const char *bucket, const char *key)
{
	int rc = dm_buf_addc(out, '/');

	if (!rc)
		rc = add_encoded(out, bucket, false);
	if (!rc && key) {
		rc = dm_buf_addc(out, '/');
		if (!rc)
			rc = add_encoded(out, key, true);
	}
	return rc;
}

/* One request: what it sends and where what comes back goes. */
struct request {
	const char *method;
	struct dm_buf url;
	/* upload: size bytes of fd from offset, or body (len bytes), or nothing */
	int fd;
	uint64_t offset, size;
	const char *body;
	size_t body_len;
	/* download: into fd_out when not -1 (2xx only), else into answer */
	int fd_out;
	uint64_t got;
	struct dm_buf answer;
	bool io_failed;
	int io_errno;
	bool too_big; /* the answer passed DM_S3_MAX_ANSWER */
	char etag[DM_S3_MAX_ETAG + 1];
	long status;
};

static void request_init(struct request *q, const char *method)
{
	memset(q, 0, sizeof(*q));
	q->method = method;
	q->fd = -1;
	q->fd_out = -1;
	dm_buf_init(&q->url, 0);
	dm_buf_init(&q->answer, DM_S3_MAX_ANSWER);
}

static void request_release(struct request *q)
{
	dm_buf_release(&q->url);
	dm_buf_release(&q->answer);
}

/* The request's URL: endpoint, path of bucket/key, then query (already
 * canonical: see the top of this file). */
static void request_url(struct request *q, const struct dm_s3 *s, const char *bucket,
			const char *key, const char *query)
{
	dm_buf_adds(&q->url, s->endpoint);
	dm_s3_path(&q->url, bucket, key);
	if (query && query[0])
		dm_buf_addf(&q->url, "?%s", query);
}

static size_t on_read(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	struct request *q = ctx;
	size_t want = size * nmemb;
	ssize_t n;

	if (want > q->size)
		want = (size_t)q->size;
	if (!want)
		return 0;
	n = pread(q->fd, ptr, want, (off_t)q->offset);
	if (n <= 0) {
		q->io_failed = true;
		q->io_errno = n < 0 ? errno : EIO;
		return CURL_READFUNC_ABORT;
	}
	q->offset += (uint64_t)n;
	q->size -= (uint64_t)n;
	return (size_t)n;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	struct request *q = ctx;
	size_t n = size * nmemb, done = 0;

	if (q->fd_out < 0 || q->status / 100 != 2) {
		if (!dm_buf_add(&q->answer, ptr, n))
			return n;
		q->too_big = true;
		return 0;
	}
	while (done < n) {
		ssize_t w = write(q->fd_out, ptr + done, n - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			q->io_failed = true;
			q->io_errno = w < 0 ? errno : EIO;
			return 0;
		}
		done += (size_t)w;
	}
	q->got += n;
	return n;
}

/* Each header line: the status line's code (of the last answer, after any
 * 100 Continue), and the ETag. */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	struct request *q = ctx;
	size_t n = size * nmemb, len;
	const char *v;

	if (n > 9 && !memcmp(ptr, "HTTP/", 5)) {
		const char *sp = memchr(ptr, ' ', n);

		q->status = 0;
		for (sp = sp ? sp + 1 : ptr + n; sp < ptr + n && *sp >= '0' && *sp <= '9'; sp++)
			q->status = q->status * 10 + (*sp - '0');
		q->etag[0] = '\0';
		return n;
	}
	if (n < 5 || strncasecmp(ptr, "etag:", 5))
		return n;
	v = ptr + 5;
	len = n - 5;
	while (len && (*v == ' ' || *v == '\t' || *v == '"')) {
		v++;
		len--;
	}
	while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' ||
		       v[len - 1] == '"'))
		len--;
	if (len <= DM_S3_MAX_ETAG) {
		memcpy(q->etag, v, len);
		q->etag[len] = '\0';
	}
	return n;
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	const struct dm_s3 *s = ctx;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return s->cancelled && s->cancelled(s->cancel_ctx);
}

/* The code and message of a non-2xx answer: S3's error document when
 * there is one, else the status. */
static int answer_error(const struct dm_s3 *s, const struct request *q, const char *what,
			struct dm_err *err)
{
	struct dm_s3_error e = {{0}, {0}};
	struct dm_err ignored;
	int code;

	if (q->answer.len)
		dm_s3_parse_error(&e, (const char *)q->answer.data, q->answer.len, &ignored);
	if (!e.code[0])
		snprintf(e.code, sizeof(e.code), "HTTP %ld", q->status);
	e.message[strcspn(e.message, "\r\n")] = '\0';
	for (size_t n = strlen(e.message); n && e.message[n - 1] == '.';)
		e.message[--n] = '\0';
	if (q->status == 403 || q->status == 401)
		return dm_err_set(err, DM_EPERM,
				  "S3 endpoint '%s' refused %s: %s%s%s; check the key id and "
				  "secret (dm s3 remote add)",
				  s->endpoint, what, e.code, e.message[0] ? ": " : "", e.message);
	code = q->status == 404 ? DM_ENOTFOUND
	       : q->status == 409 ? DM_ECONFLICT
	       : q->status >= 500 ? DM_EUNAVAILABLE
				 : DM_EPROTO;
	return dm_err_set(err, code, "S3 endpoint '%s' refused %s: %s%s%s", s->endpoint, what,
			  e.code, e.message[0] ? ": " : "", e.message);
}

/* The header x-amz-content-sha256, which S3 wants in every request signed
 * with SigV4 and which libcurl signs as given: the SHA-256 of a body held
 * in memory (none: of ""), or UNSIGNED-PAYLOAD for one streamed from a
 * file, which libcurl cannot hash before sending it; and a body's
 * Content-Type. A new list, which the caller frees. */
static struct curl_slist *payload_header(const struct request *q)
{
	struct curl_slist *h = NULL;
	char line[96];

	if (q->fd >= 0) {
		snprintf(line, sizeof(line), "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	} else {
		char hex[DM_OID_HEXSZ + 1];
		dm_oid id;

		dm_hash(&id, q->body ? q->body : "", q->body ? q->body_len : 0);
		dm_oid_hex(hex, &id);
		snprintf(line, sizeof(line), "x-amz-content-sha256: %s", hex);
		/* not libcurl's form type, which a server may read as a form */
		if (q->body)
			h = curl_slist_append(h, "Content-Type: application/xml");
	}
	return curl_slist_append(h, line);
}

/* Runs q against s; what names the request in messages ("listing bucket
 * 'b'"). 0 only for a 2xx answer whose body, if streamed, all arrived. */
static int perform(struct dm_s3 *s, struct request *q, const char *what, struct dm_err *err)
{
	struct dm_curl_request base = {
		.url = (const char *)q->url.data,
		.agent = "dm",
		.connect_timeout = DM_S3_CONNECT_SECONDS,
		.errbuf = s->errbuf,
	};
	CURL *e = s->easy;
	CURLcode cc;
	curl_off_t up = 0, down = 0;
	struct curl_slist *h = payload_header(q);

	base.headers = h;
	dm_curl_setup(e, &base);
	curl_easy_setopt(e, CURLOPT_USERPWD, s->userpwd);
	curl_easy_setopt(e, CURLOPT_AWS_SIGV4, s->sigv4);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)DM_S3_STALL_SECONDS);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, s);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
	if (q->fd >= 0) {
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(e, CURLOPT_READDATA, q);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->size);
	} else if (q->body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
	}
	if (!strcmp(q->method, "HEAD"))
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(q->method, "GET") && !(q->fd >= 0 && !strcmp(q->method, "PUT")))
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q->method);
	cc = curl_easy_perform(e);
	curl_slist_free_all(h);
	curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &up);
	curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &down);
	s->wire_bytes += (uint64_t)up + (uint64_t)down;
	if (q->io_failed)
		return dm_err_errno(err, q->io_errno, "%s: local file", what);
	if (cc == CURLE_ABORTED_BY_CALLBACK)
		return dm_err_set(err, DM_ECANCELED, "%s: canceled", what);
	if (q->too_big)
		return dm_err_set(err, DM_ETOOBIG, "%s: S3 endpoint '%s' answered more than %u bytes",
				  what, s->endpoint, DM_S3_MAX_ANSWER);
	if (cc != CURLE_OK)
		return dm_err_set(err, DM_EUNAVAILABLE, "cannot reach S3 endpoint '%s' (%s): %s",
				  s->endpoint, what, s->errbuf[0] ? s->errbuf : curl_easy_strerror(cc));
	if (q->status / 100 != 2)
		return answer_error(s, q, what, err);
	return 0;
}

/* A request with no body to send and the answer into q->answer. */
static int simple(struct dm_s3 *s, const char *method, const char *bucket, const char *key,
		  const char *query, struct request *q, const char *what, struct dm_err *err)
{
	request_init(q, method);
	request_url(q, s, bucket, key, query);
	return perform(s, q, what, err);
}

int dm_s3_check(struct dm_s3 *s, struct dm_err *err)
{
	struct request q;
	int rc;

	request_init(&q, "GET");
	dm_buf_adds(&q.url, s->endpoint);
	dm_buf_addc(&q.url, '/');
	rc = perform(s, &q, "listing buckets", err);
	request_release(&q);
	return rc;
}

int dm_s3_list(struct dm_s3 *s, const char *bucket, const char *prefix, const char *token,
	       struct dm_s3_list *out, struct dm_err *err)
{
	struct dm_buf query = DM_BUF_INIT;
	struct request q;
	char *what = dm_asprintf("listing bucket '%s'", bucket);
	int rc;

	memset(out, 0, sizeof(*out));
	if (token && token[0]) {
		dm_buf_adds(&query, "continuation-token=");
		add_encoded(&query, token, false);
		dm_buf_addc(&query, '&');
	}
	dm_buf_adds(&query, "list-type=2");
	if (prefix && prefix[0]) {
		dm_buf_adds(&query, "&prefix=");
		add_encoded(&query, prefix, false);
	}
	rc = simple(s, "GET", bucket, NULL, (const char *)query.data, &q, what, err);
	if (!rc) {
		rc = dm_s3_parse_list(out, (const char *)q.answer.data, q.answer.len, err);
		if (rc)
			dm_err_prefix(err, "%s at '%s'", what, s->endpoint);
	}
	request_release(&q);
	dm_buf_release(&query);
	free(what);
	return rc;
}

int dm_s3_get(struct dm_s3 *s, const char *bucket, const char *key, int fd, uint64_t *size_out,
	      struct dm_err *err)
{
	struct request q;
	char *what = dm_asprintf("reading '%s' of bucket '%s'", key, bucket);
	int rc;

	request_init(&q, "GET");
	request_url(&q, s, bucket, key, NULL);
	q.fd_out = fd;
	rc = perform(s, &q, what, err);
	if (!rc && size_out)
		*size_out = q.got;
	request_release(&q);
	free(what);
	return rc;
}

/* PUT of size bytes of fd from offset to bucket/key?query; q's ETag. */
static int put_range(struct dm_s3 *s, struct request *q, const char *bucket, const char *key,
		     const char *query, int fd, uint64_t offset, uint64_t size, const char *what,
		     struct dm_err *err)
{
	int rc;

	request_init(q, "PUT");
	request_url(q, s, bucket, key, query);
	q->fd = fd;
	q->offset = offset;
	q->size = size;
	rc = perform(s, q, what, err);
	if (!rc && !q->etag[0])
		rc = dm_err_set(err, DM_EPROTO, "%s: S3 endpoint '%s' answered no ETag", what,
				s->endpoint);
	return rc;
}

/* s without the quotes S3 puts around an ETag, in place. */
static char *unquoted(char *s)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s[n - 1] = '\0';
		return s + 1;
	}
	return s;
}

static void abort_upload(struct dm_s3 *s, const char *bucket, const char *key,
			 const char *upload_query)
{
	struct request q;
	struct dm_err ignored;

	simple(s, "DELETE", bucket, key, upload_query, &q, "aborting an upload", &ignored);
	request_release(&q);
}

/* <Part><PartNumber>N</PartNumber><ETag>"etag"</ETag></Part> */
static void add_part(struct dm_buf *out, uint32_t part, const char *etag)
{
	char n[16], quoted[DM_S3_MAX_ETAG + 3];

	snprintf(n, sizeof(n), "%" PRIu32, part);
	snprintf(quoted, sizeof(quoted), "\"%s\"", etag);
	dm_xml_open(out, "Part");
	dm_xml_leaf(out, "PartNumber", n);
	dm_xml_leaf(out, "ETag", quoted);
	dm_xml_close(out, "Part");
}

static int put_multipart(struct dm_s3 *s, const char *bucket, const char *key, int fd,
			 uint64_t size, char *etag_out, const char *what, struct dm_err *err)
{
	struct dm_buf done = DM_BUF_INIT, upload = DM_BUF_INIT;
	char id[DM_S3_MAX_TOKEN + 1], etag[DM_S3_MAX_ETAG + 1];
	struct request q;
	int rc;
	uint32_t part = 0;

	rc = simple(s, "POST", bucket, key, "uploads=", &q, what, err);
	if (!rc)
		rc = dm_s3_parse_member(id, sizeof(id), "InitiateMultipartUploadResult", "UploadId",
					(const char *)q.answer.data, q.answer.len, err);
	request_release(&q);
	if (rc)
		return rc;
	dm_xml_open(&done, "CompleteMultipartUpload");
	for (uint64_t off = 0; off < size; off += DM_S3_PART_SIZE) {
		uint64_t n = size - off < DM_S3_PART_SIZE ? size - off : DM_S3_PART_SIZE;

		part++;
		dm_buf_reset(&upload);
		dm_buf_addf(&upload, "partNumber=%" PRIu32 "&uploadId=", part);
		add_encoded(&upload, id, false);
		rc = put_range(s, &q, bucket, key, (const char *)upload.data, fd, off, n, what, err);
		if (!rc)
			add_part(&done, part, q.etag);
		request_release(&q);
		if (rc)
			goto done;
	}
	dm_xml_close(&done, "CompleteMultipartUpload");
	dm_buf_reset(&upload);
	dm_buf_adds(&upload, "uploadId=");
	add_encoded(&upload, id, false);
	request_init(&q, "POST");
	request_url(&q, s, bucket, key, (const char *)upload.data);
	q.body = (const char *)done.data;
	q.body_len = done.len;
	rc = perform(s, &q, what, err);
	/* a 200 whose body is an <Error> is a failure too (S3 does that) */
	if (!rc && q.answer.len && strstr((const char *)q.answer.data, "<Error>")) {
		q.status = 500;
		rc = answer_error(s, &q, what, err);
	}
	if (!rc)
		rc = dm_s3_parse_member(etag, sizeof(etag), NULL, "ETag",
					(const char *)q.answer.data, q.answer.len, err);
	if (!rc && etag_out)
		snprintf(etag_out, DM_S3_MAX_ETAG + 1, "%s", unquoted(etag));
	request_release(&q);
done:
	if (rc) {
		dm_buf_reset(&upload);
		dm_buf_adds(&upload, "uploadId=");
		add_encoded(&upload, id, false);
		abort_upload(s, bucket, key, (const char *)upload.data);
	}
	dm_buf_release(&upload);
	dm_buf_release(&done);
	return rc;
}

int dm_s3_put(struct dm_s3 *s, const char *bucket, const char *key, int fd, uint64_t size,
	      char *etag_out, struct dm_err *err)
{
	char *what = dm_asprintf("writing '%s' to bucket '%s'", key, bucket);
	struct request q;
	int rc;

	if (size > DM_S3_MULTIPART_ABOVE) {
		rc = put_multipart(s, bucket, key, fd, size, etag_out, what, err);
	} else {
		rc = put_range(s, &q, bucket, key, NULL, fd, 0, size, what, err);
		if (!rc && etag_out)
			snprintf(etag_out, DM_S3_MAX_ETAG + 1, "%s", q.etag);
		request_release(&q);
	}
	free(what);
	return rc;
}

int dm_s3_delete(struct dm_s3 *s, const char *bucket, const char *key, struct dm_err *err)
{
	char *what = dm_asprintf("deleting '%s' of bucket '%s'", key, bucket);
	struct request q;
	int rc = simple(s, "DELETE", bucket, key, NULL, &q, what, err);

	request_release(&q);
	free(what);
	return rc;
}
