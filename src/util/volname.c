/*
 * volname.c - parsing the volume names of DESIGN.md §1,
 * [NS/]DOT[@BRANCH][.SUBDOT] (see volname.h).
 *
 * Invariants: a name is accepted only when every part is a valid name part
 * ([A-Za-z0-9_-]{1,64}) and the separators come at most once each, in the
 * order '/', '@', '.'; so every accepted part is safe as a path component
 * and a KV key segment. Every refusal says which part is wrong and why.
 */
#include "util/volname.h"
#include "util/err.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/banned.h"

/* How much of a refused name a message quotes. */
#define QUOTE_MAX 200

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static size_t count(const char *s, char c)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

/* Refuses s with why (a printf format and its arguments). */
__attribute__((format(printf, 3, 4))) static int refuse(struct dm_err *err, const char *s,
							const char *fmt, ...)
{
	char why[DM_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return dm_err_set(err, DM_EINVAL, "invalid volume name '%.*s%s': %s", QUOTE_MAX, s,
			  strlen(s) > QUOTE_MAX ? "..." : "", why);
}

/* Checks one part [p, p+len) named what ("dot name", "branch"...) and
 * copies it into out (DM_NAME_PART_MAX + 1 bytes). */
static int take_part(char *out, const char *s, const char *p, size_t len, const char *what,
		     const char *sep_before, const char *sep_after, struct dm_err *err)
{
	if (len == 0) {
		if (sep_before)
			return refuse(err, s, "no %s after '%s'", what, sep_before);
		return refuse(err, s, "no %s before '%s'", what, sep_after ? sep_after : "the end");
	}
	if (len > DM_NAME_PART_MAX)
		return refuse(err, s, "the %s is longer than %d characters", what,
			      DM_NAME_PART_MAX);
	for (size_t i = 0; i < len; i++)
		if (!name_char(p[i]))
			return refuse(err, s,
				      "the %s '%.*s' may only have letters, digits, '-' and '_'",
				      what, (int)len, p);
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

int dm_volname_parse(struct dm_volname *out, const char *s, struct dm_err *err)
{
	const char *slash, *at, *dot, *name, *end;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return dm_err_set(err, DM_EINVAL,
				  "invalid volume name '': use [NS/]DOT[@BRANCH][.SUBDOT]");
	if (strlen(s) > DM_VOLNAME_MAX)
		return refuse(err, s, "longer than %d characters", DM_VOLNAME_MAX);
	for (const char *p = s; *p; p++)
		if (!name_char(*p) && *p != '/' && *p != '@' && *p != '.')
			return refuse(err, s, "'%c' is not allowed; use [NS/]DOT[@BRANCH][.SUBDOT]",
				      (*p >= 0x20 && *p < 0x7f) ? *p : '?');
	if (count(s, '/') > 1)
		return refuse(err, s, "more than one '/'");
	slash = strchr(s, '/');
	name = s;
	if (slash) {
		rc = take_part(out->dot.ns, s, s, (size_t)(slash - s), "namespace", NULL, "/", err);
		if (rc)
			return rc;
		name = slash + 1;
	} else {
		snprintf(out->dot.ns, sizeof(out->dot.ns), "%s", DM_DEFAULT_NAMESPACE);
	}
	if (count(name, '@') > 1)
		return refuse(err, s, "more than one '@'");
	if (count(name, '.') > 1)
		return refuse(err, s, "more than one '.'");
	at = strchr(name, '@');
	dot = strchr(name, '.');
	if (at && dot && dot < at)
		return refuse(err, s, "'@BRANCH' comes before '.SUBDOT'");
	end = at ? at : dot ? dot : name + strlen(name);
	rc = take_part(out->dot.name, s, name, (size_t)(end - name), "dot name", slash ? "/" : NULL,
		       at    ? "@"
		       : dot ? "."
			     : NULL,
		       err);
	if (rc)
		return rc;
	if (at) {
		end = dot ? dot : at + strlen(at);
		rc = take_part(out->branch, s, at + 1, (size_t)(end - at - 1), "branch", "@", NULL,
			       err);
		if (rc)
			return rc;
	}
	if (dot) {
		rc = take_part(out->subdot, s, dot + 1, strlen(dot + 1), "subdot", ".", NULL, err);
		if (rc)
			return rc;
	} else {
		snprintf(out->subdot, sizeof(out->subdot), "%s", DM_SUBDOT_DEFAULT);
	}
	return 0;
}

const char *dm_volname_text(char *out, size_t size, const struct dm_volname *v)
{
	char dot[DM_DOT_NAME_TEXT_MAX];
	bool subdot = strcmp(v->subdot, DM_SUBDOT_DEFAULT) != 0;

	snprintf(out, size, "%s%s%s%s%s", dm_dot_name_text(dot, &v->dot), v->branch[0] ? "@" : "",
		 v->branch, subdot ? "." : "", subdot ? v->subdot : "");
	return out;
}
