/*
 * driver.c - runs a fuzz target (LLVMFuzzerTestOneInput) without libFuzzer,
 * for the smoke run of `make test` (tests/e2e/t0002-fuzz-smoke.sh): linked
 * with gcc into the normal and the sanitizer builds, it replays the seed
 * corpus, then feeds random mutations of the seeds for a few seconds. It
 * has no coverage guidance; `make fuzz` runs the same targets under
 * libFuzzer for that.
 *
 *     fuzz_NAME [-t SECONDS] [-s SEED] [-x] PATH...
 *
 * PATHs are seed files or directories of them. -t (default 5) is how long
 * the mutations run after the replay, -s seeds the random numbers (default:
 * from the clock; printed, so a run can be repeated). -x dies on the first
 * input as a target would, without running it: the smoke test's proof that
 * a death fails the run and shows its input.
 *
 * Always true here: the target sees each input in a buffer of exactly its
 * size (so a sanitizer sees a read past its end); when the target dies
 * (abort, a signal, a sanitizer's report) or one input runs longer than
 * HANG_SECONDS, the input it was running is written to stderr (escaped)
 * and to the file crash-NAME in the current directory before the process
 * dies, so the failure shows what caused it. The exit status is 0 only
 * when every input ran.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Present when a sanitizer runtime is linked in: called when it reports. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

#define SEED_FILE_MAX (1u << 20) /* larger seed files are not read */
#define INPUT_MIN_MAX 4096       /* a mutation grows an input up to this at least */
#define HANG_SECONDS  20

struct seed {
	unsigned char *data;
	size_t size;
};

static struct seed *seeds;
static size_t nseeds, max_input = INPUT_MIN_MAX;
static uint64_t rng;

/* What the target is running, for the handlers. */
static const unsigned char *volatile cur_data;
static volatile size_t cur_size;
static volatile sig_atomic_t dumped;
static volatile unsigned long runs;
static char crash_path[256] = "crash-input";
static int die_first;

static uint64_t next_rand(void)
{
	/* xorshift64* */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

static size_t below(size_t n)
{
	return n ? (size_t)(next_rand() % n) : 0;
}

/* ---- what happens when the target dies (async-signal-safe only) ---- */

static void put(const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(2, s, n);

		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void puts2(const char *s)
{
	put(s, strlen(s));
}

static void put_num(unsigned long v)
{
	char b[24];
	size_t i = sizeof(b);

	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v && i);
	put(b + i, sizeof(b) - i);
}

/* The input as a C string literal, lines of at most 76 characters. */
static void put_escaped(const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t col = 0;

	puts2("\"");
	for (size_t i = 0; i < n; i++) {
		char e[4];
		size_t k = 0;

		if (p[i] == '"' || p[i] == '\\') {
			e[k++] = '\\';
			e[k++] = (char)p[i];
		} else if (p[i] >= 0x20 && p[i] < 0x7f) {
			e[k++] = (char)p[i];
		} else {
			e[k++] = '\\';
			e[k++] = 'x';
			e[k++] = hex[p[i] >> 4];
			e[k++] = hex[p[i] & 15];
		}
		if (col + k > 76) {
			puts2("\"\n\"");
			col = 0;
		}
		put(e, k);
		col += k;
	}
	puts2("\"\n");
}

static void dump_input(void)
{
	const unsigned char *p = cur_data;
	size_t n = cur_size;
	int fd;

	if (dumped || !p)
		return;
	dumped = 1;
	puts2("\ndriver: the target died on an input of ");
	put_num(n);
	puts2(" bytes, saved to ");
	puts2(crash_path);
	puts2(":\n");
	put_escaped(p, n < 4096 ? n : 4096);
	if (n > 4096)
		puts2("(cut at 4096 bytes)\n");
	fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		ssize_t w = n ? write(fd, p, n) : 0;

		(void)w;
		close(fd);
	}
}

static void on_signal(int sig)
{
	dump_input();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Once a second: an input still running after HANG_SECONDS is a hang. */
static void on_alarm(int sig)
{
	static unsigned long last;
	static int still;

	(void)sig;
	if (!cur_data || runs != last) {
		last = runs;
		still = 0;
		return;
	}
	if (++still < HANG_SECONDS)
		return;
	puts2("\ndriver: an input ran longer than the hang limit\n");
	dump_input();
	signal(SIGABRT, SIG_DFL);
	abort();
}

static void install_handlers(void)
{
	struct itimerval tick = {{1, 0}, {1, 0}};
	/* a sanitizer handles these itself and reports through its callback */
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};

	signal(SIGABRT, on_signal);
	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(dump_input);
	else
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			signal(sigs[i], on_signal);
	signal(SIGALRM, on_alarm);
	setitimer(ITIMER_REAL, &tick, NULL);
}

/* ---- running ---- */

static void run_one(const unsigned char *data, size_t size)
{
	/* a copy of exactly size bytes, so that reading past it is seen */
	unsigned char *copy = malloc(size ? size : 1);

	if (!copy) {
		fprintf(stderr, "driver: out of memory\n");
		exit(2);
	}
	if (size)
		memcpy(copy, data, size);
	cur_size = size;
	cur_data = copy;
	if (die_first)
		abort();
	LLVMFuzzerTestOneInput(copy, size);
	cur_data = NULL;
	runs++;
	free(copy);
}

static void add_seed(const char *path)
{
	struct stat st;
	unsigned char *data;
	size_t got = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > SEED_FILE_MAX) {
		if (fd >= 0)
			close(fd);
		fprintf(stderr, "driver: skipping '%s'\n", path);
		return;
	}
	data = malloc((size_t)st.st_size + 1);
	while (data && got < (size_t)st.st_size) {
		ssize_t r = read(fd, data + got, (size_t)st.st_size - got);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!data || got != (size_t)st.st_size) {
		free(data);
		fprintf(stderr, "driver: cannot read '%s'\n", path);
		exit(2);
	}
	seeds = realloc(seeds, (nseeds + 1) * sizeof(*seeds));
	if (!seeds)
		exit(2);
	seeds[nseeds].data = data;
	seeds[nseeds].size = got;
	nseeds++;
	if (2 * got > max_input)
		max_input = 2 * got;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's files in name order, so that runs repeat. */
static void add_path(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;

	if (stat(path, &st) || !S_ISDIR(st.st_mode)) {
		add_seed(path);
		return;
	}
	d = opendir(path);
	while (d && (e = readdir(d))) {
		char *full;

		if (e->d_name[0] == '.')
			continue;
		full = malloc(strlen(path) + strlen(e->d_name) + 2);
		names = realloc(names, (n + 1) * sizeof(*names));
		if (!full || !names)
			exit(2);
		snprintf(full, strlen(path) + strlen(e->d_name) + 2, "%s/%s", path, e->d_name);
		names[n++] = full;
	}
	if (d)
		closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		add_seed(names[i]);
		free(names[i]);
	}
	free(names);
}

/* Bytes that matter to the formats fuzzed here. */
static const unsigned char special[] = {0,   1,   '\n', ' ', '"',  '\\', '{',  '}',  '[',  ']',
					':', ',', '/',  '.', '@',  '~',  '^',  '-',  '_',  '0',
					'9', 'a', 'z',  'A', 0x7f, 0x80, 0xc3, 0xff, 0xfe, 0x20};

/* One random change of buf[0..*n), within cap bytes. */
static void mutate_once(unsigned char *buf, size_t *n, size_t cap)
{
	size_t len = *n, at = below(len + 1), k;
	const struct seed *o;

	switch (below(10)) {
	case 0: /* flip a bit */
		if (len)
			buf[below(len)] ^= (unsigned char)(1u << below(8));
		break;
	case 1: /* a random byte */
		if (len)
			buf[below(len)] = (unsigned char)next_rand();
		break;
	case 2: /* a byte that matters */
		if (len)
			buf[below(len)] = special[below(sizeof(special))];
		break;
	case 3: /* insert a few bytes */
		k = 1 + below(8);
		if (len + k > cap)
			break;
		memmove(buf + at + k, buf + at, len - at);
		for (size_t i = 0; i < k; i++)
			buf[at + i] = below(2) ? special[below(sizeof(special))]
					       : (unsigned char)next_rand();
		*n = len + k;
		break;
	case 4: /* delete a range */
		if (!len)
			break;
		at = below(len);
		k = 1 + below(len - at < 16 ? len - at : 16);
		memmove(buf + at, buf + at + k, len - at - k);
		*n = len - k;
		break;
	case 5: /* repeat a range */
		if (!len)
			break;
		at = below(len);
		k = 1 + below(len - at < 64 ? len - at : 64);
		if (len + k > cap)
			break;
		memmove(buf + at + k, buf + at, len - at);
		*n = len + k;
		break;
	case 6: /* a piece of another seed, inserted */
		o = &seeds[below(nseeds)];
		if (!o->size)
			break;
		{
			size_t from = below(o->size);

			k = 1 + below(o->size - from < 64 ? o->size - from : 64);
			if (len + k > cap)
				break;
			memmove(buf + at + k, buf + at, len - at);
			memcpy(buf + at, o->data + from, k);
			*n = len + k;
		}
		break;
	case 7: /* cut the end */
		*n = below(len + 1);
		break;
	case 8: /* a decimal number */
		if (len) {
			char num[24];
			static const long long nums[] = {
				-1,    0,     1,          255,          256,
				65535, 65536, 2147483647, 4294967296LL, -9223372036854775807LL};
			int w = snprintf(num, sizeof(num), "%lld", nums[below(10)]);

			at = below(len);
			k = len - at < (size_t)w ? len - at : (size_t)w;
			memcpy(buf + at, num, k);
		}
		break;
	default: /* the first byte, which picks a reader in most targets */
		if (len)
			buf[0] = (unsigned char)next_rand();
		break;
	}
}

int main(int argc, char **argv)
{
	double seconds = 5;
	uint64_t seed = 0;
	struct timespec t0, now;
	const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	unsigned char *buf;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-t") && i + 1 < argc)
			seconds = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-x"))
			die_first = 1;
		else if (argv[i][0] == '-')
			goto usage;
		else
			add_path(argv[i]);
	}
	if (!nseeds) {
		fprintf(stderr, "%s: no seed inputs\n", name);
		goto usage;
	}
	snprintf(crash_path, sizeof(crash_path), "crash-%s", name);
	clock_gettime(CLOCK_REALTIME, &t0);
	if (!seed)
		seed = (uint64_t)t0.tv_sec * 1000003u ^ (uint64_t)t0.tv_nsec ^ (uint64_t)getpid();
	rng = seed | 1;
	install_handlers();
	fprintf(stderr, "%s: %zu seeds, mutating for %g s with -s %llu\n", name, nseeds, seconds,
		(unsigned long long)seed);
	for (size_t s = 0; s < nseeds; s++)
		run_one(seeds[s].data, seeds[s].size);
	buf = malloc(max_input);
	if (!buf)
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		const struct seed *s = &seeds[below(nseeds)];
		size_t n = s->size < max_input ? s->size : max_input, rounds = 1 + below(6);

		if ((runs & 63) == 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if ((double)(now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9 >=
			    seconds)
				break;
		}
		memcpy(buf, s->data, n);
		for (size_t r = 0; r < rounds; r++)
			mutate_once(buf, &n, max_input);
		run_one(buf, n);
	}
	fprintf(stderr, "%s: %lu runs, no crash\n", name, (unsigned long)runs);
	for (size_t s = 0; s < nseeds; s++)
		free(seeds[s].data);
	free(seeds);
	free(buf);
	return 0;
usage:
	fprintf(stderr, "usage: %s [-t SECONDS] [-s SEED] [-x] PATH...\n", name);
	return 2;
}
