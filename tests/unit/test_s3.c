/*
 * test_s3.c - the S3 module: the XML reader's events and refusals, the
 * answers it reads (a ListObjectsV2 page, an error, an upload id), the
 * request paths it encodes, and its signing: requests dm sends to a
 * loopback listener carry the Authorization header that botocore
 * computes for the same request (tests/unit/s3_sign.py), since the S3
 * server of the end-to-end tests does not check signatures.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "s3/answer.h"
#include "s3/client.h"
#include "s3/xml.h"
#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

#ifndef DM_TEST_SRCDIR
#define DM_TEST_SRCDIR "tests/unit"
#endif

/* The XML reader */

struct events {
	char log[2048];
};

static void logf_(struct events *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct events *e, const char *fmt, ...)
{
	size_t n = strlen(e->log);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->log + n, sizeof(e->log) - n, fmt, ap);
	va_end(ap);
}

static int ev_open(void *ctx, int depth, const char *name)
{
	logf_(ctx, "<%d%s", depth, name);
	return 0;
}

static int ev_leaf(void *ctx, int depth, const char *name, const char *text, size_t len)
{
	logf_(ctx, "=%d%s[%zu:%s]", depth, name, len, text);
	return 0;
}

static int ev_close(void *ctx, int depth, const char *name)
{
	logf_(ctx, ">%d%s", depth, name);
	return 0;
}

static const struct dm_xml_handler events = {ev_open, ev_leaf, ev_close};

static int walk(struct events *e, const char *doc, struct dm_err *err)
{
	memset(e, 0, sizeof(*e));
	return dm_xml_walk(doc, strlen(doc), &events, e, err);
}

static void test_xml_events(void **state)
{
	struct events e;
	struct dm_err err;

	(void)state;
	assert_int_equal(walk(&e,
			      "<?xml version=\"1.0\"?>\n<!-- hi --><R a=\"1\" b='x'>\n"
			      " <K>a &amp; b &lt;&#65;&#x42;&#xE9;</K><E/><C><![CDATA[<x>]]></C>\n"
			      "</R>\n",
			      &err),
			 0);
	assert_string_equal(e.log, "<1R<2K=2K[11:a & b <AB\xc3\xa9]>2K<2E=2E[0:]>2E"
				   "<2C=2C[3:<x>]>2C>1R");
}

static void test_xml_refusals(void **state)
{
	static const char *const bad[] = {
		"",
		"<a>",
		"<a></b>",
		"<a>x<b/></a>",
		"<a/><b/>",
		"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
		"<a>&bogus;</a>",
		"<a>&#0;</a>",
		"<a>&#xD800;</a>",
		"<a b=\"<\"/>",
		"<a><!-- open</a>",
		"text<a/>",
		"<a></a>&amp;",
	};
	char deep[DM_XML_MAX_DEPTH * 8 + 64], *p = deep;
	struct dm_buf big = DM_BUF_INIT;
	struct events e;
	struct dm_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(walk(&e, bad[i], &err), DM_EPROTO);
		assert_non_null(strstr(err.msg, "malformed XML"));
	}
	for (int i = 0; i <= DM_XML_MAX_DEPTH; i++)
		p += snprintf(p, 8, "<a>");
	assert_int_equal(walk(&e, deep, &err), DM_EPROTO);
	assert_non_null(strstr(err.msg, "too deep"));
	dm_buf_adds(&big, "<a>");
	for (int i = 0; i <= DM_XML_MAX_TEXT; i++)
		dm_buf_addc(&big, 'x');
	dm_buf_adds(&big, "</a>");
	assert_int_equal(walk(&e, (const char *)big.data, &err), DM_EPROTO);
	assert_non_null(strstr(err.msg, "text too long"));
	dm_buf_release(&big);
}

static void test_xml_write(void **state)
{
	struct dm_buf b = DM_BUF_INIT, small;
	struct events e;
	struct dm_err err;

	(void)state;
	assert_int_equal(dm_xml_add_escaped(&b, "a<b>&\"c'"), 0);
	assert_string_equal((const char *)b.data, "a&lt;b&gt;&amp;&quot;c&apos;");
	dm_buf_reset(&b);
	/* what the writer writes, the reader reads back as written */
	assert_int_equal(dm_xml_declaration(&b), 0);
	assert_int_equal(dm_xml_open(&b, "R"), 0);
	assert_int_equal(dm_xml_leaf(&b, "K", "x <&> \"y\" 'z'"), 0);
	assert_int_equal(dm_xml_leaf(&b, "E", ""), 0);
	assert_int_equal(dm_xml_close(&b, "R"), 0);
	assert_int_equal(walk(&e, (const char *)b.data, &err), 0);
	assert_string_equal(e.log, "<1R<2K=2K[13:x <&> \"y\" 'z']>2K<2E=2E[0:]>2E>1R");
	dm_buf_release(&b);
	dm_buf_init(&small, 8);
	assert_int_equal(dm_xml_leaf(&small, "Key", "0123456789"), DM_ETOOBIG);
	dm_buf_release(&small);
}

/* Answers */

static void test_list(void **state)
{
	const char *doc =
		"<?xml version=\"1.0\"?><ListBucketResult xmlns=\"http://s3\"><Name>b</Name>"
		"<IsTruncated>true</IsTruncated><NextContinuationToken>t/1=</NextContinuationToken>"
		"<Contents><Key>dir/a b.txt</Key><ETag>&quot;abc&quot;</ETag><Size>12</Size>"
		"</Contents><Contents><Key>z</Key><ETag>\"d-2\"</ETag><Size>0</Size></Contents>"
		"<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes></ListBucketResult>";
	struct dm_s3_list l;
	struct dm_err err;

	(void)state;
	assert_int_equal(dm_s3_parse_list(&l, doc, strlen(doc), &err), 0);
	assert_int_equal(l.n, 2);
	assert_true(l.truncated);
	assert_string_equal(l.next_token, "t/1=");
	assert_string_equal(l.objects[0].key, "dir/a b.txt");
	assert_string_equal(l.objects[0].etag, "abc");
	assert_int_equal(l.objects[0].size, 12);
	assert_string_equal(l.objects[1].etag, "d-2");
	dm_s3_list_release(&l);

	doc = "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
	assert_int_equal(dm_s3_parse_list(&l, doc, strlen(doc), &err), DM_EPROTO);
	assert_non_null(strstr(err.msg, "continuation token"));
	doc = "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>";
	assert_int_equal(dm_s3_parse_list(&l, doc, strlen(doc), &err), DM_EPROTO);
	doc = "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents>"
	      "</ListBucketResult>";
	assert_int_equal(dm_s3_parse_list(&l, doc, strlen(doc), &err), DM_EPROTO);
	doc = "<Error><Code>NoSuchBucket</Code></Error>";
	assert_int_equal(dm_s3_parse_list(&l, doc, strlen(doc), &err), DM_EPROTO);
	assert_non_null(strstr(err.msg, "not a 'ListBucketResult'"));
}

static void test_error_and_upload(void **state)
{
	const char *doc = "<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message>"
			  "<Resource><Code>x</Code></Resource></Error>";
	struct dm_s3_error e;
	char id[64];
	struct dm_err err;

	(void)state;
	assert_int_equal(dm_s3_parse_error(&e, doc, strlen(doc), &err), 0);
	assert_string_equal(e.code, "SignatureDoesNotMatch");
	assert_string_equal(e.message, "no");
	doc = "<InitiateMultipartUploadResult><UploadId>u-1</UploadId>"
	      "</InitiateMultipartUploadResult>";
	assert_int_equal(dm_s3_parse_member(id, sizeof(id), "InitiateMultipartUploadResult",
					    "UploadId", doc, strlen(doc), &err),
			 0);
	assert_string_equal(id, "u-1");
	doc = "<InitiateMultipartUploadResult/>";
	assert_int_equal(dm_s3_parse_member(id, sizeof(id), "InitiateMultipartUploadResult",
					    "UploadId", doc, strlen(doc), &err),
			 DM_EPROTO);
	assert_int_equal(dm_s3_parse_member(id, sizeof(id), "CompleteMultipartUploadResult",
					    "UploadId", doc, strlen(doc), &err),
			 DM_EPROTO);
	doc = "<CompleteMultipartUploadResponse><ETag>\"e-2\"</ETag></CompleteMultipartUploadResponse>";
	assert_int_equal(dm_s3_parse_member(id, sizeof(id), NULL, "ETag", doc, strlen(doc), &err), 0);
	assert_string_equal(id, "\"e-2\"");
}

static void test_path(void **state)
{
	struct dm_buf b = DM_BUF_INIT;

	(void)state;
	assert_int_equal(dm_s3_path(&b, "bkt", "dir/a b+c~\xc3\xa9=&?.txt"), 0);
	assert_string_equal((const char *)b.data, "/bkt/dir/a%20b%2Bc~%C3%A9%3D%26%3F.txt");
	dm_buf_release(&b);
}

/* Signing, against botocore */

struct listener {
	int fd;
	int port;
	pthread_t thread;
	int requests; /* to serve */
	struct dm_buf got[4];
};

static void serve_one(int c, struct dm_buf *got)
{
	static const char list[] = "<ListBucketResult><IsTruncated>false</IsTruncated>"
				   "</ListBucketResult>";
	char buf[4096], answer[512];
	size_t body = 0;
	const char *end = NULL, *cl;
	ssize_t n;

	while (!end && (n = read(c, buf, sizeof(buf))) > 0) {
		dm_buf_add(got, buf, (size_t)n);
		end = strstr((const char *)got->data, "\r\n\r\n");
	}
	if (!end)
		return;
	cl = strcasestr((const char *)got->data, "\r\ncontent-length:");
	if (cl && cl < end)
		body = strtoul(cl + 17, NULL, 10);
	while (got->len < (size_t)(end + 4 - (const char *)got->data) + body &&
	       (n = read(c, buf, sizeof(buf))) > 0)
		dm_buf_add(got, buf, (size_t)n);
	snprintf(answer, sizeof(answer),
		 "HTTP/1.1 200 OK\r\nETag: \"e1\"\r\nContent-Length: %zu\r\nConnection: "
		 "close\r\n\r\n%s",
		 strlen(list), list);
	if (write(c, answer, strlen(answer)) < 0)
		return;
}

static void *serve(void *arg)
{
	struct listener *l = arg;

	for (int i = 0; i < l->requests; i++) {
		int c = accept(l->fd, NULL, NULL);

		if (c < 0)
			break;
		serve_one(c, &l->got[i]);
		close(c);
	}
	return NULL;
}

static void listener_start(struct listener *l, int requests)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);

	memset(l, 0, sizeof(*l));
	l->requests = requests;
	for (int i = 0; i < 4; i++)
		dm_buf_init(&l->got[i], 1 << 20);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(l->fd >= 0);
	assert_int_equal(bind(l->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l->fd, 4), 0);
	assert_int_equal(getsockname(l->fd, (struct sockaddr *)&a, &len), 0);
	l->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&l->thread, NULL, serve, l), 0);
}

static void listener_stop(struct listener *l)
{
	pthread_join(l->thread, NULL);
	close(l->fd);
}

/* The value of header name (lowercase) in request req, into out. */
static bool header(char *out, size_t size, const char *req, const char *name)
{
	const char *end = strstr(req, "\r\n\r\n");

	for (const char *line = strstr(req, "\r\n"); line && line < end;
	     line = strstr(line + 2, "\r\n")) {
		const char *colon = strchr(line + 2, ':'), *eol = strstr(line + 2, "\r\n");
		size_t n = strlen(name);

		if (!colon || colon > eol || (size_t)(colon - line - 2) != n ||
		    strncasecmp(line + 2, name, n))
			continue;
		colon++;
		while (*colon == ' ')
			colon++;
		snprintf(out, size, "%.*s", (int)(eol - colon), colon);
		return true;
	}
	return false;
}

/* Runs s3_sign.py for request req and compares its Authorization and
 * x-amz-content-sha256 with the request's own. */
static void check_signature(const char *req, const char *key_id, const char *secret,
			    const char *region)
{
	char method[16], target[2048], date[32], auth[1024], sha[128], signed_h[256];
	char want_auth[1024] = "", want_sha[128] = "";
	struct dm_buf cmd = DM_BUF_INIT;
	const char *sh;
	FILE *p;

	assert_int_equal(sscanf(req, "%15s %2047s", method, target), 2);
	assert_true(header(date, sizeof(date), req, "x-amz-date"));
	assert_true(header(auth, sizeof(auth), req, "authorization"));
	assert_true(header(sha, sizeof(sha), req, "x-amz-content-sha256"));
	sh = strstr(auth, "SignedHeaders=");
	assert_non_null(sh);
	assert_int_equal(sscanf(sh + 14, "%255[^,]", signed_h), 1);
	dm_buf_addf(&cmd, "python3 '%s/s3_sign.py' '%s' '%s' '%s' '%s' '%s' '%s'", DM_TEST_SRCDIR,
		    key_id, secret, region, method, target, date);
	for (char *name = signed_h, *semi; name; name = semi ? semi + 1 : NULL) {
		char v[1024];

		semi = strchr(name, ';');
		if (semi)
			*semi = '\0';
		if (!strcmp(name, "x-amz-date"))
			continue;
		assert_true(header(v, sizeof(v), req, name));
		dm_buf_addf(&cmd, " '%s:%s'", name, v);
	}
	p = popen((const char *)cmd.data, "r");
	assert_non_null(p);
	if (fgets(want_auth, sizeof(want_auth), p))
		want_auth[strcspn(want_auth, "\n")] = '\0';
	if (fgets(want_sha, sizeof(want_sha), p))
		want_sha[strcspn(want_sha, "\n")] = '\0';
	assert_int_equal(pclose(p), 0);
	if (strcmp(auth, want_auth))
		fprintf(stderr, "request:\n%s\n", req);
	assert_string_equal(auth, want_auth);
	assert_string_equal(sha, want_sha);
	dm_buf_release(&cmd);
}

static bool starts(const struct dm_buf *b, const char *s)
{
	return b->len >= strlen(s) && !memcmp(b->data, s, strlen(s));
}

static void test_signing_matches_botocore(void **state)
{
	const char *key_id = "AKIDEXAMPLE", *secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	struct listener l;
	struct dm_s3_creds creds = {NULL, "eu-west-3", key_id, secret};
	struct dm_s3 *s3 = NULL;
	struct dm_s3_list list;
	char url[64], etag[DM_S3_MAX_ETAG + 1];
	struct dm_err err;
	FILE *f = tmpfile();

	(void)state;
	assert_non_null(f);
	fputs("hello, s3\n", f);
	fflush(f);
	listener_start(&l, 4);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", l.port);
	creds.endpoint = url;
	assert_int_equal(dm_s3_new(&s3, &creds, &err), 0);
	assert_int_equal(dm_s3_check(s3, &err), 0);
	assert_int_equal(dm_s3_list(s3, "bkt", "dir one/\xc3\xa9+", "tok/=+ en", &list, &err), 0);
	dm_s3_list_release(&list);
	assert_int_equal(dm_s3_put(s3, "bkt", "dir one/a+b=c.txt", fileno(f), 10, etag, &err), 0);
	assert_string_equal(etag, "e1");
	assert_int_equal(dm_s3_delete(s3, "bkt", "x y", &err), 0);
	dm_s3_free(s3);
	listener_stop(&l);
	fclose(f);

	/* the requests were what they were meant to be */
	assert_true(starts(&l.got[0], "GET / "));
	assert_true(starts(&l.got[1], "GET /bkt?continuation-token=tok%2F%3D%2B%20en&list-type=2&"
				      "prefix=dir%20one%2F%C3%A9%2B "));
	assert_true(starts(&l.got[2], "PUT /bkt/dir%20one/a%2Bb%3Dc.txt "));
	assert_non_null(strstr((const char *)l.got[2].data, "hello, s3\n"));
	assert_true(starts(&l.got[3], "DELETE /bkt/x%20y "));
	for (int i = 0; i < 4; i++) {
		check_signature((const char *)l.got[i].data, key_id, secret, "eu-west-3");
		dm_buf_release(&l.got[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xml_events),
		cmocka_unit_test(test_xml_refusals),
		cmocka_unit_test(test_xml_write),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_error_and_upload),
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_signing_matches_botocore),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
