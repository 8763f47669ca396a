/*
 * program.h - finding a program to run by name, as a shell would: the first
 * executable regular file of that name in $PATH (then in extra directories
 * the caller names, such as the sbin directories a non-login shell lacks).
 */
#ifndef DM_UTIL_PROGRAM_H
#define DM_UTIL_PROGRAM_H

#include <stdbool.h>
#include <stddef.h>

/* Whether path is a regular file we may execute. */
bool dm_program_executable(const char *path);

/*
 * The path of program name into out (size bytes): the first directory of
 * $PATH, then of extra (colon-separated like PATH; NULL: none), that holds
 * an executable regular file name. -1 when none does (out is then
 * unspecified).
 */
int dm_program_find(char *out, size_t size, const char *name, const char *extra);

#endif
