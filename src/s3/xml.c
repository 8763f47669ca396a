/*
 * xml.c - the bounded XML reader of xml.h: one pass over the bytes, a stack
 * of open element names, the text of the innermost element gathered until
 * it closes or opens a child; and its writer, whose text is always
 * escaped, so what it writes the reader reads back as written.
 *
 * Invariants: the reader never reads past data[len); the stack never holds
 * more than DM_XML_MAX_DEPTH names of at most DM_XML_MAX_NAME bytes and the
 * text never more than DM_XML_MAX_TEXT bytes, all in fixed arrays (nothing
 * is allocated); an event is given only for well-formed markup up to it.
 */
#include "s3/xml.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

struct reader {
	const char *p, *start, *end;
	const struct dm_xml_handler *h;
	void *ctx;
	struct dm_err *err;
	int depth;
	char names[DM_XML_MAX_DEPTH][DM_XML_MAX_NAME + 1];
	bool has_child[DM_XML_MAX_DEPTH];
	char text[DM_XML_MAX_TEXT + 1];
	size_t text_len;
	bool text_blank; /* only white space so far */
	bool root_done;
};

static int bad(struct reader *r, const char *why)
{
	return dm_err_set(r->err, DM_EPROTO, "malformed XML at byte %zu: %s",
			  (size_t)(r->p - r->start), why);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.' || c == ':' || (unsigned char)c >= 0x80;
}

static bool starts(const struct reader *r, const char *s)
{
	size_t n = strlen(s);

	return (size_t)(r->end - r->p) >= n && !memcmp(r->p, s, n);
}

/* Moves past the first occurrence of s after p; -1 when there is none. */
static int skip_past(struct reader *r, const char *s)
{
	size_t n = strlen(s);

	for (const char *q = r->p; (size_t)(r->end - q) >= n; q++) {
		if (!memcmp(q, s, n)) {
			r->p = q + n;
			return 0;
		}
	}
	return -1;
}

static void skip_space(struct reader *r)
{
	while (r->p < r->end && is_space(*r->p))
		r->p++;
}

static int read_name(struct reader *r, char *out)
{
	size_t n = 0;

	while (r->p < r->end && is_name_char(*r->p)) {
		if (n == DM_XML_MAX_NAME)
			return bad(r, "name too long");
		out[n++] = *r->p++;
	}
	if (!n)
		return bad(r, "a name was expected");
	out[n] = '\0';
	return 0;
}

static int add_text(struct reader *r, const char *s, size_t n)
{
	if (memchr(s, '\0', n))
		return bad(r, "a NUL byte in text");
	if (!r->depth) {
		for (size_t i = 0; i < n; i++)
			if (!is_space(s[i]))
				return bad(r, "text outside the root element");
		return 0;
	}
	if (n > DM_XML_MAX_TEXT - r->text_len)
		return bad(r, "text too long");
	for (size_t i = 0; i < n; i++)
		if (!is_space(s[i]))
			r->text_blank = false;
	memcpy(r->text + r->text_len, s, n);
	r->text_len += n;
	r->text[r->text_len] = '\0';
	return 0;
}

static size_t utf8_encode(char *out, uint32_t c)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xe0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

static int read_char_ref(struct reader *r, const char *s, size_t n)
{
	uint32_t c = 0;
	int base = 10;
	char utf8[4];

	if (n && (s[0] == 'x' || s[0] == 'X')) {
		base = 16;
		s++;
		n--;
	}
	if (!n || n > 8)
		return bad(r, "bad character reference");
	for (size_t i = 0; i < n; i++) {
		int d;

		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (base == 16 && s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else if (base == 16 && s[i] >= 'A' && s[i] <= 'F')
			d = s[i] - 'A' + 10;
		else
			return bad(r, "bad character reference");
		c = c * (uint32_t)base + (uint32_t)d;
	}
	if (c == 0 || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return bad(r, "character reference out of range");
	return add_text(r, utf8, utf8_encode(utf8, c));
}

/* At '&': one reference, decoded into the text. */
static int read_ref(struct reader *r)
{
	static const struct {
		const char *name;
		char c;
	} named[] = {{"lt", '<'}, {"gt", '>'}, {"amp", '&'}, {"quot", '"'}, {"apos", '\''}};
	const char *s = r->p + 1, *semi = s;
	size_t n;

	while (semi < r->end && semi - s <= 10 && *semi != ';')
		semi++;
	if (semi >= r->end || *semi != ';')
		return bad(r, "unterminated reference");
	n = (size_t)(semi - s);
	r->p = semi + 1;
	if (n && s[0] == '#')
		return read_char_ref(r, s + 1, n - 1);
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (strlen(named[i].name) == n && !memcmp(named[i].name, s, n))
			return add_text(r, &named[i].c, 1);
	return bad(r, "unknown entity");
}

/* Past the attributes of a start tag, up to '>' or '/>'; *empty for '/>'. */
static int skip_attributes(struct reader *r, bool *empty)
{
	char name[DM_XML_MAX_NAME + 1];

	for (;;) {
		int rc;
		char q;

		skip_space(r);
		if (starts(r, "/>")) {
			r->p += 2;
			*empty = true;
			return 0;
		}
		if (starts(r, ">")) {
			r->p++;
			*empty = false;
			return 0;
		}
		rc = read_name(r, name);
		if (rc)
			return rc;
		skip_space(r);
		if (!starts(r, "="))
			return bad(r, "'=' expected after an attribute name");
		r->p++;
		skip_space(r);
		if (r->p >= r->end || (*r->p != '"' && *r->p != '\''))
			return bad(r, "a quoted attribute value was expected");
		q = *r->p++;
		while (r->p < r->end && *r->p != q) {
			if (*r->p == '<')
				return bad(r, "'<' in an attribute value");
			r->p++;
		}
		if (r->p >= r->end)
			return bad(r, "unterminated attribute value");
		r->p++;
	}
}

static int open_element(struct reader *r)
{
	bool empty = false;
	int rc;

	if (r->root_done)
		return bad(r, "a second root element");
	if (r->depth == DM_XML_MAX_DEPTH)
		return bad(r, "elements nested too deep");
	if (r->depth) {
		if (!r->text_blank)
			return bad(r, "text beside child elements");
		r->has_child[r->depth - 1] = true;
	}
	r->p++; /* '<' */
	rc = read_name(r, r->names[r->depth]);
	if (rc)
		return rc;
	rc = skip_attributes(r, &empty);
	if (rc)
		return rc;
	r->has_child[r->depth] = false;
	r->depth++;
	r->text_len = 0;
	r->text[0] = '\0';
	r->text_blank = true;
	if (r->h->open && (rc = r->h->open(r->ctx, r->depth, r->names[r->depth - 1])))
		return rc;
	if (!empty)
		return 0;
	r->depth--;
	if (r->h->leaf && (rc = r->h->leaf(r->ctx, r->depth + 1, r->names[r->depth], "", 0)))
		return rc;
	if (r->h->close && (rc = r->h->close(r->ctx, r->depth + 1, r->names[r->depth])))
		return rc;
	r->text_blank = true;
	r->root_done = !r->depth;
	return 0;
}

static int close_element(struct reader *r)
{
	char name[DM_XML_MAX_NAME + 1];
	const char *top;
	int rc;

	r->p += 2; /* "</" */
	rc = read_name(r, name);
	if (rc)
		return rc;
	skip_space(r);
	if (!starts(r, ">"))
		return bad(r, "'>' expected in an end tag");
	r->p++;
	if (!r->depth)
		return bad(r, "an end tag with no element open");
	top = r->names[r->depth - 1];
	if (strcmp(top, name))
		return bad(r, "end tag does not match its start tag");
	if (r->has_child[r->depth - 1]) {
		if (!r->text_blank)
			return bad(r, "text beside child elements");
	} else if (r->h->leaf && (rc = r->h->leaf(r->ctx, r->depth, top, r->text, r->text_len))) {
		return rc;
	}
	if (r->h->close && (rc = r->h->close(r->ctx, r->depth, top)))
		return rc;
	r->depth--;
	r->text_len = 0;
	r->text[0] = '\0';
	r->text_blank = true;
	r->root_done = !r->depth;
	return 0;
}

static int read_markup(struct reader *r)
{
	if (starts(r, "<!--")) {
		r->p += 4;
		return skip_past(r, "-->") ? bad(r, "unterminated comment") : 0;
	}
	if (starts(r, "<![CDATA[")) {
		const char *s = r->p + 9;

		if (!r->depth)
			return bad(r, "CDATA outside the root element");
		r->p = s;
		if (skip_past(r, "]]>"))
			return bad(r, "unterminated CDATA section");
		return add_text(r, s, (size_t)(r->p - 3 - s));
	}
	if (starts(r, "<!"))
		return bad(r, "DOCTYPE and other declarations are not read");
	if (starts(r, "<?")) {
		r->p += 2;
		return skip_past(r, "?>") ? bad(r, "unterminated processing instruction") : 0;
	}
	if (starts(r, "</"))
		return close_element(r);
	return open_element(r);
}

int dm_xml_walk(const char *data, size_t len, const struct dm_xml_handler *h, void *ctx,
		struct dm_err *err)
{
	struct reader *r = dm_xcalloc(1, sizeof(*r));
	int rc = 0;

	r->p = r->start = data;
	r->end = data + len;
	r->h = h;
	r->ctx = ctx;
	r->err = err;
	r->text_blank = true;
	while (r->p < r->end && !rc) {
		const char *lt = memchr(r->p, '<', (size_t)(r->end - r->p));
		const char *amp = memchr(r->p, '&', (size_t)(r->end - r->p));
		const char *stop = lt ? lt : r->end;

		if (amp && amp < stop)
			stop = amp;
		if (stop > r->p) {
			rc = add_text(r, r->p, (size_t)(stop - r->p));
			r->p = stop;
		} else if (*r->p == '&') {
			rc = r->depth ? read_ref(r) : bad(r, "a reference outside the root element");
		} else {
			rc = read_markup(r);
		}
	}
	if (!rc && (r->depth || !r->root_done))
		rc = bad(r, r->depth ? "document ends inside an element" : "no root element");
	free(r);
	return rc;
}

int dm_xml_add_escaped(struct dm_buf *out, const char *s)
{
	for (; *s; s++) {
		const char *e = NULL;
		int rc;

		switch (*s) {
		case '&': e = "&amp;"; break;
		case '<': e = "&lt;"; break;
		case '>': e = "&gt;"; break;
		case '"': e = "&quot;"; break;
		case '\'': e = "&apos;"; break;
		default: break;
		}
		rc = e ? dm_buf_adds(out, e) : dm_buf_addc(out, (unsigned char)*s);
		if (rc)
			return rc;
	}
	return 0;
}

int dm_xml_declaration(struct dm_buf *out)
{
	return dm_buf_adds(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
}

int dm_xml_open(struct dm_buf *out, const char *name)
{
	return dm_buf_addf(out, "<%s>", name);
}

int dm_xml_close(struct dm_buf *out, const char *name)
{
	return dm_buf_addf(out, "</%s>", name);
}

int dm_xml_leaf(struct dm_buf *out, const char *name, const char *text)
{
	int rc = dm_xml_open(out, name);

	if (!rc)
		rc = dm_xml_add_escaped(out, text);
	if (!rc)
		rc = dm_xml_close(out, name);
	return rc;
}
