/*
 * buf.h - a growable byte buffer with an optional hard maximum.
 *
 * Invariants: data is NULL only while alloc == 0; when data is not NULL,
 * data[len] == '\0' (so text can be used as a C string) and len < alloc;
 * len never exceeds max (0 means no maximum). Input from the network or the
 * disk is appended through a buffer whose max bounds it before anything is
 * allocated for it (curl's dynbuf).
 */
#ifndef DM_UTIL_BUF_H
#define DM_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct dm_err;

struct dm_buf {
	unsigned char *data;
	size_t len;
	size_t alloc;
	size_t max;
};

#define DM_BUF_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0, 0                                                                      \
	}

/* Fills b as empty with the given maximum length (0: unbounded). */
void dm_buf_init(struct dm_buf *b, size_t max);
/* Frees b's memory and leaves it empty (keeps max). */
void dm_buf_release(struct dm_buf *b);
/* The same for a buffer that held a secret (a key, a password): its
 * memory is wiped first. */
void dm_buf_release_secret(struct dm_buf *b);
/* Sets len to 0, keeping the memory. */
void dm_buf_reset(struct dm_buf *b);
/* Ensures room for extra more bytes. DM_ETOOBIG past max, DM_ENOMEM. */
int dm_buf_grow(struct dm_buf *b, size_t extra);
int dm_buf_add(struct dm_buf *b, const void *data, size_t len);
int dm_buf_addc(struct dm_buf *b, unsigned char c);
int dm_buf_adds(struct dm_buf *b, const char *s);
int dm_buf_addf(struct dm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int dm_buf_vaddf(struct dm_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Appends s as valid UTF-8: its well-formed sequences as they are, every
 * other byte as the four characters \xNN (lowercase hex). For text from
 * outside that must become a JSON string; s itself is never refused. */
int dm_buf_add_utf8(struct dm_buf *b, const char *s);
/* Takes ownership of the bytes (NUL-terminated; never NULL on success);
 * b is left empty. Returns NULL on allocation failure. */
char *dm_buf_detach(struct dm_buf *b, size_t *len_out);

/* Allocation that never returns NULL silently: on failure it aborts with a
 * message, like git's xmalloc. Used for small fixed-size allocations only;
 * sizes that come from outside go through dm_buf or a checked path. */
void *dm_xmalloc(size_t n);
void *dm_xcalloc(size_t n, size_t size);
void *dm_xrealloc(void *p, size_t n);
char *dm_xstrdup(const char *s);
char *dm_xstrndup(const char *s, size_t n);

/* A new string formatted like printf (the caller frees it), or NULL when it
 * cannot be allocated: unlike the dm_x* calls it does not abort, so callers
 * can report DM_ENOMEM. */
char *dm_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
