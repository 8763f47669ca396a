/*
 * err.c - the error table's accessors and the helpers that fill struct dm_err.
 *
 * Invariant: a message written here is always NUL-terminated and at most
 * DM_ERR_MSG_MAX - 1 bytes; a longer one is cut, never overflowed.
 */
#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/banned.h"

struct err_row {
	int code;
	const char *name;
	const char *json;
	int http;
	int exit_code;
};

static const struct err_row rows[] = {
#define DM_ERR_ROW(name, value, json, http, exit_code) {value, #name, json, http, exit_code},
	DM_ERR_TABLE(DM_ERR_ROW)
#undef DM_ERR_ROW
};

static const struct err_row *row_of(int code)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (rows[i].code == code)
			return &rows[i];
	return row_of(DM_EINTERNAL);
}

void dm_err_clear(struct dm_err *err)
{
	if (!err)
		return;
	err->code = DM_OK;
	err->msg[0] = '\0';
}

__attribute__((format(printf, 3, 0))) static int vset(struct dm_err *err, int code,
						  const char *fmt, va_list ap)
{
	if (!err)
		return code;
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return code;
}

int dm_err_set(struct dm_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(err, code, fmt, ap);
	va_end(ap);
	return code;
}

static int code_of_errno(int errnum)
{
	switch (errnum) {
	case ENOENT:
	case ENOTDIR:
		return DM_ENOTFOUND;
	case EEXIST:
	case ENOTEMPTY:
		return DM_EEXISTS;
	case ENOMEM:
		return DM_ENOMEM;
	case EACCES:
	case EPERM:
	case EROFS:
		return DM_EPERM;
	case EFBIG:
	case ENAMETOOLONG:
		return DM_ETOOBIG;
	case EBUSY:
		return DM_EBUSY;
	case ETIMEDOUT:
		return DM_ETIMEOUT;
	case EINVAL:
		return DM_EINVAL;
	case EOPNOTSUPP:
		return DM_EUNSUPPORTED;
	case ENOSPC:
	case EDQUOT:
		return DM_ENOSPC;
	default:
		return DM_EIO;
	}
}

int dm_err_errno(struct dm_err *err, int errnum, const char *fmt, ...)
{
	int code = code_of_errno(errnum);
	va_list ap;
	size_t n;

	if (!err)
		return code;
	va_start(ap, fmt);
	vset(err, code, fmt, ap);
	va_end(ap);
	n = strlen(err->msg);
	snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(errnum));
	return code;
}

int dm_err_prefix(struct dm_err *err, const char *fmt, ...)
{
	char head[DM_ERR_MSG_MAX];
	char old[DM_ERR_MSG_MAX];
	size_t n, room, len;
	va_list ap;

	if (!err)
		return DM_EINTERNAL;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	n = strlen(head);
	if (n > sizeof(err->msg) - 3)
		n = sizeof(err->msg) - 3;
	memcpy(err->msg, head, n);
	memcpy(err->msg + n, ": ", 2);
	n += 2;
	room = sizeof(err->msg) - n - 1;
	len = strnlen(old, room);
	memcpy(err->msg + n, old, len);
	err->msg[n + len] = '\0';
	return err->code;
}

const char *dm_err_name(int code)
{
	return code == DM_OK ? "DM_OK" : row_of(code)->name;
}

const char *dm_err_json_name(int code)
{
	return code == DM_OK ? "ok" : row_of(code)->json;
}

int dm_err_http_status(int code)
{
	return code == DM_OK ? 200 : row_of(code)->http;
}

int dm_err_exit_status(int code)
{
	return code == DM_OK ? 0 : row_of(code)->exit_code;
}

int dm_err_from_json_name(const char *name)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (strcmp(rows[i].json, name) == 0)
			return rows[i].code;
	return DM_EINTERNAL;
}
