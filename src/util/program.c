/*
 * program.c - finding a program by name in $PATH and extra directories
 * (see program.h).
 *
 * Invariants: nothing here runs a program or changes the environment; a
 * path that does not fit in out is skipped, never cut short.
 */
#include "util/program.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/banned.h"

bool dm_program_executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Looks for name in each directory of dirs (colon-separated). */
static int find_in(char *out, size_t size, const char *name, const char *dirs)
{
	const char *p = dirs;

	while (p && *p) {
		size_t len = strcspn(p, ":");

		if (len > 0 && snprintf(out, size, "%.*s/%s", (int)len, p, name) < (int)size &&
		    dm_program_executable(out))
			return 0;
		p += len;
		if (*p == ':')
			p++;
	}
	return -1;
}

int dm_program_find(char *out, size_t size, const char *name, const char *extra)
{
	if (find_in(out, size, name, getenv("PATH")) == 0)
		return 0;
	return find_in(out, size, name, extra);
}
