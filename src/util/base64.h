/*
 * base64.h - base64 (RFC 4648 §4) and its URL-safe form (§5, no padding),
 * for the join token and anything else that carries bytes in text.
 *
 * Decoding is strict: characters outside the alphabet, bad padding or
 * non-zero bits left over are DM_EINVAL, so one text decodes to one value.
 */
#ifndef DM_UTIL_BASE64_H
#define DM_UTIL_BASE64_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

/* Appends the encoding of len bytes of data to out. url: the URL-safe
 * alphabet without '=' padding. DM_ETOOBIG past out's maximum. */
int dm_base64_encode(struct dm_buf *out, const void *data, size_t len, bool url);

/* Appends the bytes text (len characters) encodes to out; DM_EINVAL when
 * it is not valid base64 of the kind url says. */
int dm_base64_decode(struct dm_buf *out, const char *text, size_t len, bool url,
		     struct dm_err *err);

#endif
