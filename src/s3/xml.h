/*
 * xml.h - a small reader of the XML that S3 servers answer with
 * (ListObjectsV2, errors, multipart uploads; and what a client would send
 * an S3 endpoint), as a walk of events: an element opens, an element with
 * text only (a leaf) gives its text, an element closes; and a writer of
 * the same shapes (elements and escaped text).
 *
 * It is not a general XML parser. It reads one document of elements,
 * attributes (skipped), character data with the five named entities and
 * numeric character references, CDATA sections, comments and processing
 * instructions (skipped); it refuses a DOCTYPE (no entity definitions, so
 * no entity expansion), mismatched or unclosed tags, text beside child
 * elements that is not white space, and anything past its bounds:
 * DM_XML_MAX_DEPTH levels, names of DM_XML_MAX_NAME bytes, leaf text of
 * DM_XML_MAX_TEXT bytes, a NUL byte in text. Bytes outside markup are not
 * checked as UTF-8.
 *
 * Every refusal is DM_EPROTO with a message that names the offset.
 */
#ifndef DM_S3_XML_H
#define DM_S3_XML_H

#include <stddef.h>

struct dm_buf;
struct dm_err;

#define DM_XML_MAX_DEPTH 16
#define DM_XML_MAX_NAME  128
#define DM_XML_MAX_TEXT  4096

/*
 * The events of a walk. depth is 1 for the root element. name and text
 * are NUL-terminated and live until the callback returns; text has its
 * references decoded (len excludes the NUL; a reference to NUL is
 * refused, so text holds none). A callback returning non-zero stops the
 * walk, which returns that value.
 */
struct dm_xml_handler {
	int (*open)(void *ctx, int depth, const char *name);
	/* an element with no child element: its whole text */
	int (*leaf)(void *ctx, int depth, const char *name, const char *text, size_t len);
	int (*close)(void *ctx, int depth, const char *name);
};

/* Walks the document data[0..len); any handler member may be NULL. */
int dm_xml_walk(const char *data, size_t len, const struct dm_xml_handler *h, void *ctx,
		struct dm_err *err);

/*
 * Writing: each call appends to out and returns 0, or DM_ETOOBIG past
 * out's maximum. Element names are the caller's constants, written as
 * given; text is escaped (&, <, >, ", ').
 */
int dm_xml_add_escaped(struct dm_buf *out, const char *s);
/* <?xml version="1.0" encoding="UTF-8"?> and a newline */
int dm_xml_declaration(struct dm_buf *out);
/* <name> */
int dm_xml_open(struct dm_buf *out, const char *name);
/* </name> */
int dm_xml_close(struct dm_buf *out, const char *name);
/* <name>text</name> */
int dm_xml_leaf(struct dm_buf *out, const char *name, const char *text);

#endif
