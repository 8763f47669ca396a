/*
 * log.h - leveled logging to one stream (stderr by default, dmd's log file
 * once it has one). Lines are "TIME LEVEL message" and written whole.
 */
#ifndef DM_UTIL_LOG_H
#define DM_UTIL_LOG_H

#include <stdio.h>

enum dm_log_level { DM_LOG_DEBUG, DM_LOG_INFO, DM_LOG_WARN, DM_LOG_ERROR };

/* Where and from which level lines go; stream NULL means stderr. */
void dm_log_setup(FILE *stream, enum dm_log_level min);

/*
 * Once the file at path (which stdout and stderr write to) passes max
 * bytes, a line's writer moves it to path.1 (path.1 to path.2, ..., the
 * oldest past path.KEEP removed) and opens a new one on both descriptors:
 * the log never holds more than about (keep + 1) * max bytes. path is
 * copied; max 0 turns rotation off.
 */
void dm_log_rotate_at(const char *path, long long max, int keep);
void dm_log(enum dm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define dm_debug(...) dm_log(DM_LOG_DEBUG, __VA_ARGS__)
#define dm_info(...)  dm_log(DM_LOG_INFO, __VA_ARGS__)
#define dm_warn(...)  dm_log(DM_LOG_WARN, __VA_ARGS__)
#define dm_error(...) dm_log(DM_LOG_ERROR, __VA_ARGS__)

#endif
