/*
 * log.c - the process-wide log stream.
 *
 * Invariant: each line is formatted into one buffer and written with a single
 * fputs under the stream's lock, so lines from several threads never mix;
 * the log file is rotated under that lock too, between two lines.
 */
#include "util/log.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/banned.h"

static FILE *_Atomic log_stream;
static _Atomic int log_min = DM_LOG_INFO;

/* Rotation: set once, before threads log (dm_log_rotate_at). */
static char rotate_path[PATH_MAX];
static long long rotate_max;
static int rotate_keep;

void dm_log_rotate_at(const char *path, long long max, int keep)
{
	snprintf(rotate_path, sizeof(rotate_path), "%s", path);
	rotate_keep = keep < 1 ? 1 : keep;
	rotate_max = strlen(path) < sizeof(rotate_path) ? max : 0;
}

/* path.N into out. */
static void numbered(char *out, size_t size, int n)
{
	snprintf(out, size, "%.*s.%d", (int)(size - 16), rotate_path, n);
}

/* Under out's lock: moves the files along and opens a new one when the
 * current one passed its size. A failure keeps writing where it was. */
static void maybe_rotate(FILE *out)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct stat st;
	int fd;

	if (!rotate_max || fstat(fileno(out), &st) < 0 || st.st_size < rotate_max)
		return;
	numbered(to, sizeof(to), rotate_keep);
	unlink(to);
	for (int i = rotate_keep - 1; i >= 1; i--) {
		numbered(from, sizeof(from), i);
		numbered(to, sizeof(to), i + 1);
		rename(from, to);
	}
	numbered(to, sizeof(to), 1);
	if (rename(rotate_path, to) < 0)
		return;
	fd = open(rotate_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

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
	maybe_rotate(out);
	funlockfile(out);
}
