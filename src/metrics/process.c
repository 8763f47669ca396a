/*
 * process.c - this process's own figures for the process_ metrics
 * (catalog.h), read from /proc/self when /metrics is asked for.
 *
 * Invariant: a figure that cannot be read leaves its metric as it was; a
 * read never fails the scrape.
 */
#include "metrics/catalog.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "util/banned.h"

/* /proc/self/stat's fields after the command (which may hold spaces and
 * parentheses: everything up to the last ')' is skipped). */
static void read_stat(void)
{
	unsigned long long utime, stime, start, vsize;
	long long rss, threads;
	char buf[1024], *p;
	size_t n;
	FILE *f = fopen("/proc/self/stat", "re");
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	struct timespec now, up;

	if (!f)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || tick <= 0 || page <= 0)
		return;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime cutime cstime priority nice threads itrealvalue
	 * starttime vsize rss */
	if (sscanf(p + 1,
		   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %lld "
		   "%*d "
		   "%llu %llu %lld",
		   &utime, &stime, &threads, &start, &vsize, &rss) != 6)
		return;
	dm_metric_set(&dm_m_process_cpu, NULL, NULL,
		      (int64_t)((utime + stime) * (1000000000ULL / (unsigned long long)tick)));
	dm_metric_set(&dm_m_process_threads, NULL, NULL, threads);
	dm_metric_set(&dm_m_process_vsize, NULL, NULL, (int64_t)vsize);
	dm_metric_set(&dm_m_process_rss, NULL, NULL, rss * page);
	/* starttime counts ticks since boot: the epoch's time of boot plus it */
	if (clock_gettime(CLOCK_REALTIME, &now) == 0 && clock_gettime(CLOCK_BOOTTIME, &up) == 0)
		dm_metric_set(&dm_m_process_start, NULL, NULL,
			      (int64_t)(now.tv_sec - up.tv_sec) +
				      (int64_t)(start / (unsigned long long)tick));
}

static void read_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct rlimit rl;
	int64_t n = 0;

	if (d) {
		while (readdir(d))
			n++;
		closedir(d);
		/* ".", ".." and the directory's own descriptor */
		dm_metric_set(&dm_m_process_fds, NULL, NULL, n > 3 ? n - 3 : 0);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		dm_metric_set(&dm_m_process_max_fds, NULL, NULL, (int64_t)rl.rlim_cur);
}

void dm_metrics_process_update(void)
{
	read_stat();
	read_fds();
	dm_metric_set(&dm_m_dropped, NULL, NULL, (int64_t)dm_metrics_dropped());
}
