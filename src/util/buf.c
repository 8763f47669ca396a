/*
 * buf.c - struct dm_buf and the x-allocators.
 *
 * Invariant: every dm_buf operation either succeeds completely or leaves the
 * buffer as it was (len and contents unchanged).
 */
#include "util/buf.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

void dm_buf_init(struct dm_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->max = max;
}

void dm_buf_release(struct dm_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
}

void dm_buf_release_secret(struct dm_buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->alloc);
	dm_buf_release(b);
}

void dm_buf_reset(struct dm_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

int dm_buf_grow(struct dm_buf *b, size_t extra)
{
	size_t need, cap;
	unsigned char *p;

	if (extra > SIZE_MAX - b->len - 1)
		return DM_ETOOBIG;
	need = b->len + extra;
	if (b->max && need > b->max)
		return DM_ETOOBIG;
	if (need + 1 <= b->alloc)
		return 0;
	cap = b->alloc ? b->alloc : 64;
	while (cap < need + 1)
		cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
	p = realloc(b->data, cap);
	if (!p)
		return DM_ENOMEM;
	b->data = p;
	b->alloc = cap;
	b->data[b->len] = '\0';
	return 0;
}

int dm_buf_add(struct dm_buf *b, const void *data, size_t len)
{
	int rc = dm_buf_grow(b, len);

	if (rc)
		return rc;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int dm_buf_addc(struct dm_buf *b, unsigned char c)
{
	return dm_buf_add(b, &c, 1);
}

int dm_buf_adds(struct dm_buf *b, const char *s)
{
	return dm_buf_add(b, s, strlen(s));
}

/* The length (1 to 4) of the well-formed UTF-8 sequence at s (RFC 3629:
 * no overlong forms, surrogates or code points past U+10FFFF), or 0. Reads
 * no byte past a NUL. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

int dm_buf_add_utf8(struct dm_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t start = b->len;
	int rc = 0;

	while (*p && !rc) {
		size_t n = utf8_len(p);

		if (n)
			rc = dm_buf_add(b, p, n);
		else
			rc = dm_buf_addf(b, "\\x%02x", *p);
		p += n ? n : 1;
	}
	if (rc && b->data) {
		b->len = start;
		b->data[start] = '\0';
	}
	return rc;
}

int dm_buf_vaddf(struct dm_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n, rc;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return DM_EINVAL;
	rc = dm_buf_grow(b, (size_t)n);
	if (rc)
		return rc;
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int dm_buf_addf(struct dm_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = dm_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

char *dm_buf_detach(struct dm_buf *b, size_t *len_out)
{
	char *s;

	if (!b->data && dm_buf_grow(b, 0))
		return NULL;
	s = (char *)b->data;
	if (len_out)
		*len_out = b->len;
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	return s;
}

static void die_oom(size_t n)
{
	fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
	abort();
}

void *dm_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die_oom(n);
	return p;
}

void *dm_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die_oom(n * size);
	return p;
}

void *dm_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		die_oom(n);
	return q;
}

char *dm_xstrdup(const char *s)
{
	return dm_xstrndup(s, strlen(s));
}

char *dm_xstrndup(const char *s, size_t n)
{
	char *p = dm_xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *dm_asprintf(const char *fmt, ...)
{
	struct dm_buf b = DM_BUF_INIT;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = dm_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	if (rc) {
		dm_buf_release(&b);
		return NULL;
	}
	return dm_buf_detach(&b, NULL);
}
