/*
 * output.c - how dm prints: human sizes, commit times, aligned tables or
 * tab-separated rows for scripts, JSON, and text cleaned of control bytes.
 *
 * Invariants: a table's cells are owned copies, ncols per row; nothing here
 * fails on bad input from the server (a missing member prints as empty or
 * 0), so output code never needs to check types itself.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

void dm_out_size(char *buf, size_t size, uint64_t bytes)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, size, "%" PRIu64 " B", bytes);
		return;
	}
	v /= 1024.0;
	while (v >= 1023.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, size, "%.1f %s", v, units[u]);
}

const char *dm_out_str(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : "";
}

uint64_t dm_out_u64(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_integer(v) && json_integer_value(v) > 0)
		return (uint64_t)json_integer_value(v);
	return 0;
}

void dm_out_time(char *buf, size_t size, json_t *commit)
{
	json_t *ns = json_object_get(commit, "time_ns");
	struct tm tm;
	time_t t;

	if (json_is_integer(ns)) {
		t = (time_t)(json_integer_value(ns) / 1000000000);
		if (gmtime_r(&t, &tm) && strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
			return;
	}
	snprintf(buf, size, "%s", dm_out_str(commit, "time"));
}

int dm_out_json(json_t *v, struct dm_err *err)
{
	if (json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY) < 0 || fputc('\n', stdout) == EOF)
		return dm_err_set(err, DM_EIO, "cannot write the output");
	return 0;
}

/*
 * The one rule for text from users (messages, authors, metadata, names,
 * paths): a line break or tab becomes a space, so a line stays a line;
 * every other control character, C0, DEL or C1 (U+0080..U+009F, which some
 * terminals obey too), is written as an escape (\x1b, \u009b) that shows
 * it without acting on the terminal. Writes on f, or only counts with f
 * NULL; returns the width written.
 */
static size_t clean(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t width = 0;
	char esc[8];

	for (; *p; p++) {
		if (*p == '\n' || *p == '\r' || *p == '\t') {
			esc[0] = ' ';
			esc[1] = '\0';
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", *p);
		} else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			snprintf(esc, sizeof(esc), "\\u%04x", p[1]);
			p++;
		} else {
			esc[0] = (char)*p;
			esc[1] = '\0';
		}
		if (f)
			fputs(esc, f);
		width += strlen(esc);
	}
	return width;
}

void dm_out_clean(FILE *f, const char *s)
{
	clean(f, s);
}

void dm_table_init(struct dm_table *t, size_t ncols)
{
	t->ncols = ncols;
	t->nrows = 0;
	t->cells = NULL;
}

void dm_table_release(struct dm_table *t)
{
	for (size_t i = 0; i < t->ncols * t->nrows; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

void dm_table_row(struct dm_table *t, ...)
{
	va_list ap;

	t->cells = dm_xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
	va_start(ap, t);
	for (size_t i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);

		t->cells[t->nrows * t->ncols + i] = dm_xstrdup(s ? s : "");
	}
	va_end(ap);
	t->nrows++;
}

void dm_table_print(const struct dm_table *t, FILE *f, bool raw)
{
	size_t *width = dm_xcalloc(t->ncols ? t->ncols : 1, sizeof(size_t));

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t len = clean(NULL, t->cells[r * t->ncols + c]);

			if (len > width[c])
				width[c] = len;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			bool last = c + 1 == t->ncols;

			dm_out_clean(f, s);
			if (raw)
				fputc(last ? '\n' : '\t', f);
			else if (last)
				fputc('\n', f);
			else
				fprintf(f, "%*s", (int)(width[c] - clean(NULL, s) + 2), "");
		}
	}
	free(width);
}

/* true when s is one of the comma-separated names in list. */
static bool listed(const char *list, const char *s)
{
	size_t n = strlen(s);

	for (const char *p = list; *p;) {
		size_t len = strcspn(p, ",");

		if (len == n && !strncmp(p, s, n))
			return true;
		p += len;
		if (*p)
			p++;
	}
	return false;
}

void dm_out_join_names(char *buf, size_t size, json_t *a)
{
	size_t i, used = 0;
	json_t *e;

	buf[0] = '\0';
	json_array_foreach(a, i, e) {
		const char *s = json_is_string(e) ? json_string_value(e) : dm_out_str(e, "name");
		int n;

		if (!*s || listed(buf, s))
			continue;
		n = snprintf(buf + used, size - used, "%s%s", used ? "," : "", s);
		if (n < 0 || (size_t)n >= size - used)
			break;
		used += (size_t)n;
	}
}
