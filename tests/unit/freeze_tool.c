/*
 * freeze_tool.c - a small driver of the freezer, the Docker client's pause
 * and exec, and hooks, for tests/e2e/t0900-docker-freeze.sh against a real
 * Docker engine. Not a unit test by itself.
 *
 *   freeze_tool SOCKET JOURNAL_DIR freeze KEY MAX_MS ID...
 *       begins a freeze, prints "frozen", waits for a line (or EOF) on
 *       stdin, ends it and prints "thawed after N ms"
 *   freeze_tool SOCKET JOURNAL_DIR recover
 *   freeze_tool SOCKET JOURNAL_DIR pause|unpause ID
 *   freeze_tool SOCKET JOURNAL_DIR exec TIMEOUT_MS ID [K=V]... -- CMD...
 *       prints the command's output, then "exit N"
 *   freeze_tool SOCKET JOURNAL_DIR hook JSON [K=V]...
 *       runs the hook (its log lines on stderr), named "test hook"
 *
 * Always true: a failure prints "freeze_tool: DM_E...: message" on stderr
 * and exits 1; dmd's log lines go to stderr. SIGPIPE is ignored, as in dmd.
 */
#include "server/dots/docker.h"
#include "server/dots/freezer.h"
#include "server/dots/hooks.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

static int fail(const struct dm_err *err)
{
	fprintf(stderr, "freeze_tool: %s: %s\n", dm_err_name(err->code), err->msg);
	return 1;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: freeze_tool SOCKET JOURNAL_DIR freeze KEY MAX_MS ID...\n"
		"       freeze_tool SOCKET JOURNAL_DIR recover\n"
		"       freeze_tool SOCKET JOURNAL_DIR pause|unpause ID\n"
		"       freeze_tool SOCKET JOURNAL_DIR exec TIMEOUT_MS ID [K=V]... -- CMD...\n"
		"       freeze_tool SOCKET JOURNAL_DIR hook JSON [K=V]...\n");
	return 2;
}

static int freeze(struct dm_freezer *f, int argc, char **argv, struct dm_err *err)
{
	char(*ids)[65];
	struct dm_freeze *fz = NULL;
	int64_t frozen_ns = 0;
	char line[64];
	int rc;

	if (argc < 3)
		return usage();
	ids = calloc((size_t)argc - 2, sizeof(*ids));
	if (!ids)
		return 1;
	for (int i = 2; i < argc; i++)
		snprintf(ids[i - 2], sizeof(ids[i - 2]), "%s", argv[i]);
	rc = dm_freeze_begin(f, argv[0], (const char(*)[65])ids, (size_t)argc - 2,
			     strtoll(argv[1], NULL, 10) * 1000000, &fz, err);
	free(ids);
	if (rc)
		return fail(err);
	printf("frozen\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		line[0] = '\0';
	rc = dm_freeze_end(fz, &frozen_ns, err);
	printf("thawed after %lld ms\n", (long long)(frozen_ns / 1000000));
	return rc ? fail(err) : 0;
}

static int exec(struct dm_docker *d, int argc, char **argv, struct dm_err *err)
{
	char *env[64];
	struct dm_buf out;
	int i, n = 0, code = -1, rc;

	if (argc < 4)
		return usage();
	for (i = 2; i < argc && strcmp(argv[i], "--") && n < 63; i++)
		env[n++] = argv[i];
	env[n] = NULL;
	if (i >= argc - 1)
		return usage();
	dm_buf_init(&out, DM_DOCKER_EXEC_OUTPUT_MAX + 256);
	rc = dm_docker_exec(d, argv[1], argv + i + 1, env, (int)strtol(argv[0], NULL, 10), &code,
			    &out, err);
	fwrite(out.data, 1, out.len, stdout);
	dm_buf_release(&out);
	if (rc)
		return fail(err);
	printf("exit %d\n", code);
	return 0;
}

static int hook(struct dm_docker *d, int argc, char **argv, struct dm_err *err)
{
	struct dm_hook h;
	json_t *j;
	int rc;

	if (argc < 1)
		return usage();
	j = json_loads(argv[0], 0, NULL);
	rc = dm_hook_from_json(&h, j, err);
	json_decref(j);
	if (rc)
		return fail(err);
	rc = dm_hook_run(d, &h, "test hook", argv + 1, err);
	dm_hook_release(&h);
	return rc ? fail(err) : 0;
}

int main(int argc, char **argv)
{
	struct dm_docker *d = NULL;
	struct dm_freezer *f = NULL;
	struct dm_err err = {0};
	const char *cmd;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	dm_log_setup(stderr, DM_LOG_INFO);
	if (argc < 4)
		return usage();
	cmd = argv[3];
	if (dm_docker_new(&d, argv[1], &err) || dm_freezer_open(&f, d, argv[2], &err))
		return fail(&err);
	if (!strcmp(cmd, "freeze"))
		rc = freeze(f, argc - 4, argv + 4, &err);
	else if (!strcmp(cmd, "recover"))
		rc = dm_freezer_recover(f, &err) ? fail(&err) : 0;
	else if (!strcmp(cmd, "pause") && argc == 5)
		rc = dm_docker_pause(d, argv[4], &err) ? fail(&err) : 0;
	else if (!strcmp(cmd, "unpause") && argc == 5)
		rc = dm_docker_unpause(d, argv[4], &err) ? fail(&err) : 0;
	else if (!strcmp(cmd, "exec"))
		rc = exec(d, argc - 4, argv + 4, &err);
	else if (!strcmp(cmd, "hook"))
		rc = hook(d, argc - 4, argv + 4, &err);
	else
		rc = usage();
	dm_freezer_free(f);
	dm_docker_free(d);
	return rc;
}
