/*
 * manpage.c - the roff writer of manpage.h.
 *
 * Always true: every character of the caller's text reaches the page as
 * that character (escape() is the only path text takes).
 */
#include "util/manpage.h"

#include <string.h>

#include "util/banned.h"

/* Writes text escaped for roff: '\' as \e, '-' as \- (so that options can
 * be searched and copied), a line start of '.' or '\'' guarded by \&. */
static void escape(FILE *f, const char *text)
{
	int at_line_start = 1;

	for (const char *p = text; *p; p++) {
		if (at_line_start && (*p == '.' || *p == '\''))
			fputs("\\&", f);
		if (*p == '\\')
			fputs("\\e", f);
		else if (*p == '-')
			fputs("\\-", f);
		else
			fputc(*p, f);
		at_line_start = *p == '\n';
	}
	if (!at_line_start)
		fputc('\n', f);
}

void dm_man_begin(FILE *f, const char *name, const char *section, const char *summary)
{
	fprintf(f, ".TH \"%s\" \"%s\" \"\" \"dm\" \"dm manual\"\n", name, section);
	/* no hyphenation, ragged right: commands and options stay whole */
	fputs(".nh\n.ad l\n", f);
	dm_man_section(f, "NAME");
	fprintf(f, "%s \\- ", name);
	escape(f, summary);
}

/* A heading request (.SH, .SS) whose title is the next line of text,
 * escaped like any other. */
static void heading(FILE *f, const char *request, const char *title)
{
	fputs(request, f);
	fputc('\n', f);
	escape(f, title);
}

void dm_man_section(FILE *f, const char *title)
{
	heading(f, ".SH", title);
}

void dm_man_subsection(FILE *f, const char *title)
{
	heading(f, ".SS", title);
}

void dm_man_verbatim(FILE *f, const char *text)
{
	fputs(".nf\n", f);
	escape(f, text);
	fputs(".fi\n", f);
}

void dm_man_paragraph(FILE *f, const char *text)
{
	fputs(".PP\n", f);
	escape(f, text);
}
