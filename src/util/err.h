/*
 * err.h - dm's one table of error codes, and the message that travels with one.
 *
 * Every fallible function returns 0 or a negative DM_E* code from the table
 * below, and writes detail into a caller-owned struct dm_err. The table gives
 * each code its JSON name (the "error.data.code" of an RPC reply), its HTTP
 * status and the exit status of the CLI, so that none of them can drift from
 * the others. Messages are lowercase and quote their subject:
 *     dot 'shop' has uncommitted changes
 */
#ifndef DM_UTIL_ERR_H
#define DM_UTIL_ERR_H

#include <stddef.h>

/*    name           value  json name              http  exit */
#define DM_ERR_TABLE(X)                                                 \
	X(DM_EINVAL,       -1, "invalid_argument",     400,  2)        \
	X(DM_ENOTFOUND,    -2, "not_found",            404,  3)        \
	X(DM_EEXISTS,      -3, "exists",               409,  4)        \
	X(DM_ECORRUPT,     -4, "corrupt",              500,  5)        \
	X(DM_EIO,          -5, "io_error",             500,  6)        \
	X(DM_ENOMEM,       -6, "out_of_memory",        500,  7)        \
	X(DM_ETOOBIG,      -7, "too_large",            413,  8)        \
	X(DM_EUNSUPPORTED, -8, "unsupported",          422,  9)        \
	X(DM_EPERM,        -9, "permission_denied",    403, 10)        \
	X(DM_ECONFLICT,   -10, "conflict",             409, 11)        \
	X(DM_ETIMEOUT,    -11, "timed_out",            504, 12)        \
	X(DM_EUNAVAILABLE,-12, "unavailable",          503, 13)        \
	X(DM_EDIVERGED,   -13, "diverged",             409, 14)        \
	X(DM_EUNCOMMITTED,-14, "uncommitted",          409, 15)        \
	X(DM_EBUSY,       -15, "busy",                 409, 16)        \
	X(DM_ECANCELED,   -16, "canceled",             409, 17)        \
	X(DM_EPROTO,      -17, "protocol_error",       502, 18)        \
	X(DM_EINTERNAL,   -18, "internal",             500, 19)        \
	X(DM_ECOMPACTED,  -19, "compacted",            410, 20)        \
	X(DM_ENOSPC,      -20, "no_space",             507, 21)

enum dm_err_code {
	DM_OK = 0,
#define DM_ERR_ENUM(name, value, json, http, exit_code) name = value,
	DM_ERR_TABLE(DM_ERR_ENUM)
#undef DM_ERR_ENUM
};

#define DM_ERR_MSG_MAX 512

/* Detail for one failure. Owned by the caller; no global "last error". */
struct dm_err {
	int code;
	char msg[DM_ERR_MSG_MAX];
};

/* Clears err (may be NULL). */
void dm_err_clear(struct dm_err *err);

/*
 * Records code and a printf-style message in err (which may be NULL) and
 * returns code, so that callers can write `return dm_err_set(err, ...)`.
 */
int dm_err_set(struct dm_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like dm_err_set, with ": strerror(errnum)" appended; code is DM_EIO
 * unless errnum maps to a better one (ENOENT, EEXIST, ENOMEM, EACCES...). */
int dm_err_errno(struct dm_err *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends "context: " to err's message and returns err->code. */
int dm_err_prefix(struct dm_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The table's columns. Unknown codes map to DM_EINTERNAL's row. */
const char *dm_err_name(int code);      /* "DM_ENOTFOUND" */
const char *dm_err_json_name(int code); /* "not_found" */
int dm_err_http_status(int code);       /* 404 */
int dm_err_exit_status(int code);       /* 3; 0 for DM_OK */
/* The code whose JSON name is name, or DM_EINTERNAL when none is. */
int dm_err_from_json_name(const char *name);

#endif
