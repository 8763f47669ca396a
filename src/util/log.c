/*
 * log.c - the process-wide log stream.
 *
 * Invariant: each line is formatted into one buffer and written with a single
 * fputs under the stream's lock, so lines from several threads never mix.
 */
#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

#include "util/banned.h"

static FILE *_Atomic log_stream;
static _Atomic int log_min = DM_LOG_INFO;

void dm_log_setup(FILE *stream, enum dm_log_level min)
{
	atomic_store(&log_stream, stream);
	atomic_store(&log_min, (int)min);
}

void dm_log(enum dm_log_level level, const char *fmt, ...)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	FILE *out = atomic_load(&log_stream);
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	va_list ap;

	if ((int)level < atomic_load(&log_min))
		return;
	if (!out)
		out = stderr;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s ", ts.tv_nsec / 1000000,
			      names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	flockfile(out);
	fputs(line, out);
	fputc('\n', out);
	fflush(out);
	funlockfile(out);
}
