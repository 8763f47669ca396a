/*
 * test_hooks.c - consistency hooks: the strict JSON form, and hooks run on
 * the host: output into the log, exit status and last line in the error,
 * the environment given, the deadline killing the whole process group (a
 * grandchild included), a child left holding the output not delaying the
 * end.
 *
 * Every test logs into a temporary file (dm_log_setup) that it reads back,
 * and writes only under one mkdtemp directory, removed at the end. This
 * process is a child subreaper, so that a hook's orphaned grandchild is
 * ours to reap and to inspect.
 */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/dots/hooks.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

/* a modifiable string, as argv and env are (-Wwrite-strings) */
#define S(text) ((char[]){text})

static char tmpdir[64];
static FILE *log_file;

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/dm-test-hooks.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	return prctl(PR_SET_CHILD_SUBREAPER, 1) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	dm_remove_tree(tmpdir, NULL);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	log_file = tmpfile();
	if (!log_file)
		return -1;
	dm_log_setup(log_file, DM_LOG_INFO);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	dm_log_setup(NULL, DM_LOG_INFO);
	fclose(log_file);
	return 0;
}

/* What was logged, as one string (the caller frees it). */
static char *logged(void)
{
	long n;
	char *s;

	fflush(log_file);
	n = ftell(log_file);
	assert_true(n >= 0);
	s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	rewind(log_file);
	assert_int_equal(fread(s, 1, (size_t)n, log_file), (size_t)n);
	fseek(log_file, 0, SEEK_END);
	return s;
}

static void assert_logged(const char *needle)
{
	char *s = logged();

	if (!strstr(s, needle))
		fail_msg("'%s' not in the log:\n%s", needle, s);
	free(s);
}

/* A host hook running sh -c SCRIPT. */
static void sh_hook(struct dm_hook *h, const char *script, int timeout_ms)
{
	static char *argv[4];

	static char sh[] = "sh", dash_c[] = "-c";

	argv[0] = sh;
	argv[1] = dash_c;
	argv[2] = (char *)(uintptr_t)script;
	argv[3] = NULL;
	h->container = NULL;
	h->argv = argv;
	h->argc = 3;
	h->timeout_ms = timeout_ms;
}

static int from_text(struct dm_hook *h, const char *text, struct dm_err *err)
{
	json_t *j = json_loads(text, JSON_ALLOW_NUL, NULL);
	int rc;

	assert_non_null(j);
	rc = dm_hook_from_json(h, j, err);
	json_decref(j);
	return rc;
}

static void test_json_roundtrip(void **state)
{
	struct dm_hook h;
	struct dm_err err = {0};
	json_t *j;
	char *text;

	(void)state;
	assert_int_equal(from_text(&h,
				   "{\"argv\":[\"psql\",\"-c\",\"CHECKPOINT\",\"\"],"
				   "\"container\":\"db-1.x_y\",\"timeout_ms\":2500}",
				   &err),
			 0);
	assert_int_equal(h.argc, 4);
	assert_string_equal(h.argv[2], "CHECKPOINT");
	assert_string_equal(h.argv[3], "");
	assert_null(h.argv[4]);
	assert_string_equal(h.container, "db-1.x_y");
	assert_int_equal(h.timeout_ms, 2500);
	j = dm_hook_to_json(&h);
	text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "{\"argv\":[\"psql\",\"-c\",\"CHECKPOINT\",\"\"],"
				  "\"container\":\"db-1.x_y\",\"timeout_ms\":2500}");
	free(text);
	json_decref(j);
	dm_hook_release(&h);

	/* on the host: no container, or null, or ""; the default timeout */
	assert_int_equal(from_text(&h, "{\"argv\":[\"true\"],\"container\":\"\"}", &err), 0);
	assert_null(h.container);
	assert_int_equal(h.timeout_ms, DM_HOOK_TIMEOUT_DEFAULT_MS);
	j = dm_hook_to_json(&h);
	text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "{\"argv\":[\"true\"],\"timeout_ms\":60000}");
	free(text);
	json_decref(j);
	dm_hook_release(&h);
	assert_int_equal(from_text(&h, "{\"argv\":[\"true\"],\"container\":null}", &err), 0);
	assert_null(h.container);
	dm_hook_release(&h);
}

static void test_json_refusals(void **state)
{
	static const struct {
		const char *json;
		const char *says;
	} bad[] = {
		{"[\"true\"]", "not a JSON object"},
		{"{}", "'argv' must be an array"},
		{"{\"argv\":[]}", "'argv' must be an array"},
		{"{\"argv\":\"true\"}", "'argv' must be an array"},
		{"{\"argv\":[\"true\"],\"shell\":true}", "unknown field 'shell'"},
		{"{\"argv\":[\"true\", 1]}", "argument 1"},
		{"{\"argv\":[\"\"]}", "argument 0"},
		{"{\"argv\":[\"a\\u0000b\"]}", "argument 0"},
		{"{\"argv\":[\"true\"],\"container\":\"a\"}", "invalid container name 'a'"},
		{"{\"argv\":[\"true\"],\"container\":\"-db\"}", "invalid container name"},
		{"{\"argv\":[\"true\"],\"container\":\"db/x\"}", "invalid container name"},
		{"{\"argv\":[\"true\"],\"container\":\"d b\"}", "invalid container name"},
		{"{\"argv\":[\"true\"],\"container\":7}", "'container' must be a string"},
		{"{\"argv\":[\"true\"],\"timeout_ms\":0}", "'timeout_ms'"},
		{"{\"argv\":[\"true\"],\"timeout_ms\":3600001}", "'timeout_ms'"},
		{"{\"argv\":[\"true\"],\"timeout_ms\":\"5\"}", "'timeout_ms'"},
		{"{\"argv\":[\"true\"],\"timeout_ms\":1.5}", "'timeout_ms'"},
	};
	struct dm_hook h;
	struct dm_err err;
	json_t *j, *argv;
	char *big;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(from_text(&h, bad[i].json, &err), DM_EINVAL);
		if (!strstr(err.msg, bad[i].says))
			fail_msg("%s: '%s' does not say '%s'", bad[i].json, err.msg, bad[i].says);
		assert_null(h.argv);
	}

	/* 64 arguments, and 4096 bytes each, but no more */
	argv = json_array();
	for (int i = 0; i < DM_HOOK_ARGS_MAX; i++)
		json_array_append_new(argv, json_string("x"));
	j = json_pack("{s:O}", "argv", argv);
	assert_int_equal(dm_hook_from_json(&h, j, &err), 0);
	dm_hook_release(&h);
	json_array_append_new(argv, json_string("x"));
	json_decref(j);
	j = json_pack("{s:O}", "argv", argv);
	assert_int_equal(dm_hook_from_json(&h, j, &err), DM_EINVAL);
	json_decref(j);
	json_decref(argv);
	big = calloc(1, DM_HOOK_ARG_MAX + 2);
	assert_non_null(big);
	memset(big, 'a', DM_HOOK_ARG_MAX);
	j = json_pack("{s:[s,s]}", "argv", "echo", big);
	assert_int_equal(dm_hook_from_json(&h, j, &err), 0);
	dm_hook_release(&h);
	json_decref(j);
	big[DM_HOOK_ARG_MAX] = 'a';
	j = json_pack("{s:[s,s]}", "argv", "echo", big);
	assert_int_equal(dm_hook_from_json(&h, j, &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "argument 1"));
	json_decref(j);
	free(big);
}

static void test_output_logged(void **state)
{
	struct dm_hook h;
	struct dm_err err = {0};

	(void)state;
	sh_hook(&h, "echo one; echo two >&2; printf 'a\\033[31mb\\n\\n'; printf three", 5000);
	assert_int_equal(dm_hook_run(NULL, &h, "pre-commit hook of dot shop", NULL, &err), 0);
	assert_logged("info pre-commit hook of dot shop: one\n");
	assert_logged("info pre-commit hook of dot shop: two\n");
	/* control characters do not reach the log */
	assert_logged("info pre-commit hook of dot shop: a?[31mb\n");
	/* the last line, without its newline */
	assert_logged("info pre-commit hook of dot shop: three\n");
}

static void test_long_line_cut(void **state)
{
	struct dm_hook h;
	struct dm_err err = {0};
	char *s;

	(void)state;
	sh_hook(&h, "head -c 5000 /dev/zero | tr '\\0' x; echo; echo after", 5000);
	assert_int_equal(dm_hook_run(NULL, &h, "hook", NULL, &err), 0);
	s = logged();
	assert_non_null(strstr(s, "xxxx [cut]\n"));
	assert_null(strstr(s, "xxxxxxxxxx\n"));
	assert_non_null(strstr(s, "hook: after\n"));
	free(s);
}

static void test_exit_status(void **state)
{
	struct dm_hook h;
	struct dm_err err = {0};

	(void)state;
	sh_hook(&h, "echo starting; echo 'database is busy' >&2; exit 3", 5000);
	assert_int_equal(dm_hook_run(NULL, &h, "pre-commit hook of dot shop", NULL, &err),
			 DM_ECONFLICT);
	assert_string_equal(
		err.msg,
		"pre-commit hook of dot shop ('sh') exited with status 3: database is busy");
	assert_logged("pre-commit hook of dot shop: starting\n");

	sh_hook(&h, "kill -TERM $$", 5000);
	assert_int_equal(dm_hook_run(NULL, &h, "hook", NULL, &err), DM_ECONFLICT);
	assert_string_equal(err.msg, "hook ('sh') was killed by signal 15: (no output)");
}

static void test_env(void **state)
{
	char *env[] = {S("DM_DOT=shop"), S("DM_BRANCH=master"), S("DM_HOOK=pre-commit"),
		       S("HOME=/nowhere"), NULL};
	struct dm_hook h;
	struct dm_err err = {0};

	(void)state;
	sh_hook(&h, "echo \"$DM_DOT@$DM_BRANCH $DM_HOOK $HOME\"; test -n \"$PATH\"", 5000);
	assert_int_equal(dm_hook_run(NULL, &h, "hook", env, &err), 0);
	assert_logged("hook: shop@master pre-commit /nowhere\n");
}

static void test_no_such_program(void **state)
{
	char *argv[] = {S("dm-no-such-program"), NULL};
	struct dm_hook h = {.argv = argv, .argc = 1, .timeout_ms = 1000};
	struct dm_err err = {0};

	(void)state;
	assert_int_equal(dm_hook_run(NULL, &h, "hook", NULL, &err), DM_ENOTFOUND);
	assert_non_null(strstr(err.msg, "hook: cannot run 'dm-no-such-program'"));
}

/* The process pid is gone: reaped here (we are its subreaper), killed; or,
 * when it was not ours to reap, no longer there. Up to 10 s: a loaded
 * machine may take a while to deliver a kill. */
static void assert_killed(pid_t pid)
{
	int status = 0;

	for (int i = 0; i < 1000; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid) {
			assert_true(WIFSIGNALED(status));
			assert_int_equal(WTERMSIG(status), SIGKILL);
			return;
		}
		if (r < 0 && errno == ECHILD && kill(pid, 0) < 0 && errno == ESRCH)
			return;
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	fail_msg("process %d is still running", (int)pid);
}

static pid_t read_pid(const char *path)
{
	char buf[32] = {0};
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	return (pid_t)strtol(buf, NULL, 10);
}

static void test_timeout_kills_group(void **state)
{
	char script[256], pidfile[128];
	struct dm_hook h;
	struct dm_err err = {0};
	int64_t t0;

	(void)state;
	snprintf(pidfile, sizeof(pidfile), "%s/grandchild", tmpdir);
	snprintf(script, sizeof(script), "sleep 30 & echo $! >%s; echo waiting; sleep 30", pidfile);
	sh_hook(&h, script, 300);
	t0 = dm_now_monotonic_ns();
	assert_int_equal(dm_hook_run(NULL, &h, "post-commit hook of dot shop", NULL, &err),
			 DM_ETIMEOUT);
	assert_true(dm_now_monotonic_ns() - t0 < 2000000000LL);
	assert_string_equal(err.msg, "post-commit hook of dot shop ('sh'): did not finish within "
				     "300 ms and was killed");
	assert_logged("post-commit hook of dot shop: waiting\n");
	/* the grandchild (in the hook's process group) is killed too */
	assert_killed(read_pid(pidfile));
}

static void test_child_left_holding_output(void **state)
{
	char script[256], pidfile[128];
	struct dm_hook h;
	struct dm_err err = {0};
	int64_t t0;
	pid_t left;

	(void)state;
	snprintf(pidfile, sizeof(pidfile), "%s/left", tmpdir);
	snprintf(script, sizeof(script), "sleep 30 & echo $! >%s; echo done", pidfile);
	sh_hook(&h, script, 10000);
	t0 = dm_now_monotonic_ns();
	assert_int_equal(dm_hook_run(NULL, &h, "hook", NULL, &err), 0);
	/* the hook's end is its exit, not the end of its output */
	assert_true(dm_now_monotonic_ns() - t0 < 2000000000LL);
	assert_logged("hook: done\n");
	left = read_pid(pidfile);
	kill(left, SIGKILL);
	assert_killed(left);
}

static void test_container_needs_docker(void **state)
{
	char *argv[] = {S("true"), NULL};
	struct dm_hook h = {.container = S("db"), .argv = argv, .argc = 1, .timeout_ms = 1000};
	struct dm_err err = {0};

	(void)state;
	assert_int_equal(dm_hook_run(NULL, &h, "hook", NULL, &err), DM_EUNAVAILABLE);
	assert_non_null(strstr(err.msg, "container 'db'"));
	/* an invalid hook is refused before anything runs */
	h.container = NULL;
	h.timeout_ms = 0;
	assert_int_equal(dm_hook_run(NULL, &h, "hook", NULL, &err), DM_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_json_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_logged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_such_program, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_kills_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_child_left_holding_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_container_needs_docker, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
