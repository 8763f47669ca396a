/*
 * manpage.h - manual pages in roff (man(7)), written from the help texts
 * that dm and dmd print, so that the pages say what the programs say.
 *
 * Always true: text given to these functions is printed as text, never as
 * roff: backslashes are escaped and a line that would start with '.' or
 * '\'' (a roff request) is guarded, so help text cannot inject requests.
 */
#ifndef DM_UTIL_MANPAGE_H
#define DM_UTIL_MANPAGE_H

#include <stdio.h>

/* .TH and NAME: name(section) - summary. */
void dm_man_begin(FILE *f, const char *name, const char *section, const char *summary);
/* A section heading (.SH), e.g. "SYNOPSIS". */
void dm_man_section(FILE *f, const char *title);
/* A subsection heading (.SS). */
void dm_man_subsection(FILE *f, const char *title);
/* Text as it is laid out (no filling), as help prints it. */
void dm_man_verbatim(FILE *f, const char *text);
/* A filled paragraph. */
void dm_man_paragraph(FILE *f, const char *text);

#endif
