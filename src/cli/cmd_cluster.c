/*
 * cmd_cluster.c - the `dm cluster` group: init, start and stop a local dmd
 * by running the dmd program (`dmd init|start|stop --data-dir DIR`).
 *
 * Invariants: dm never touches the data directory itself; it only runs dmd
 * and reads what dmd prints. dmd's output is captured in unlinked temporary
 * files (never pipes: `dmd start` leaves a daemon behind that may hold
 * them), so a failure of dmd becomes one `dm:` line with dmd's own last
 * message and an exit status from the same error table. The API key dmd
 * prints goes only into the config file (mode 0600), never to stdout.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "util/dmd_init.h"
#include "util/fsutil.h"
#include "util/tls.h"
#include "util/err.h"
#include "util/log.h"
#include "util/program.h"

#include "util/banned.h"

#define DMD_OUTPUT_MAX (64u << 10)
#define API_KEY_LEN    64
#define JOIN_TOKEN_MAX 8192 /* as dmd takes it (DM_CLUSTER_TOKEN_MAX) */
#define DMD_ARGS_MAX   48   /* arguments dm gives dmd, at most */

/* dmd start's options that init and start pass through (beyond cli.h's). */
enum {
	OPT_PLUGIN_SOCKET = 1200,
	OPT_NO_PLUGIN,
	OPT_DOCKER_SOCKET,
	OPT_CSI_SOCKET,
	OPT_METRICS_PUBLIC,
	OPT_TTL
};
/* dmd init's options (util/dmd_init.h) are passed through too: cluster init
 * takes them all, cluster join only --advertise and the --etcd-* ones. */

static const struct option cluster_opts[] = {
	{"data-dir", required_argument, NULL, OPT_DATA_DIR},
	{"port", required_argument, NULL, OPT_PORT},
	{"plugin-socket", required_argument, NULL, OPT_PLUGIN_SOCKET},
	{"no-plugin", no_argument, NULL, OPT_NO_PLUGIN},
	{"docker-socket", required_argument, NULL, OPT_DOCKER_SOCKET},
	{"csi-socket", required_argument, NULL, OPT_CSI_SOCKET},
	{"metrics-public", no_argument, NULL, OPT_METRICS_PUBLIC},
	DM_DMD_INIT_GETOPT{NULL, 0, NULL, 0},
};

struct cluster_args {
	const char *data_dir;         /* NULL: the default */
	int port;                     /* 0: not given */
	char plugin_socket[PATH_MAX]; /* "" when not given; absolute, or "none" */
	char docker_socket[PATH_MAX];
	char csi_socket[PATH_MAX]; /* --csi-socket: "" when not given */
	bool no_plugin;
	bool metrics_public; /* --metrics-public */
	/* dmd init's options as given (dmd checks them), NULL when not given,
	 * but --pool-dir: pool_dir, made absolute */
	const char *init[DM_DMD_INIT_N];
	char pool_dir[PATH_MAX];
	const char *token;          /* join: its argument (restore: the file) */
};

static int absolute(char *out, size_t size, const char *dir, struct dm_err *err);

/* --plugin-socket and --docker-socket: a path (made absolute) or "none". */
static int socket_arg(struct dm_cli *cli, char *out, size_t size, const char *opt, const char *v,
		      struct dm_err *err)
{
	if (!*v)
		return dm_cli_usage_error(cli, err, "empty --%s", opt);
	if (!strcmp(v, "none")) {
		snprintf(out, size, "none");
		return 0;
	}
	return absolute(out, size, v, err);
}

/* "20G", "512M", "1TiB", "4096": what dmd init --pool-size takes (dmd
 * checks the value; this only keeps a typo from reaching it). */
static bool size_ok(const char *s)
{
	size_t n = strspn(s, "0123456789");

	if (n == 0)
		return false;
	s += n;
	if (*s && strchr("KMGTkmgt", *s))
		s++;
	return !*s || !strcmp(s, "B") || !strcmp(s, "iB");
}

static int parse_args(struct dm_cli *cli, int argc, char **argv, bool port_ok,
		      struct cluster_args *out, struct dm_err *err)
{
	char *end;
	long v;
	int c;

	memset(out, 0, sizeof(*out));
	while ((c = dm_cli_getopt(cli, argc, argv, "", cluster_opts, err)) > 0) {
		if (c == OPT_DATA_DIR) {
			if (!*optarg)
				return dm_cli_usage_error(cli, err, "empty --data-dir");
			out->data_dir = optarg;
		} else if ((c == OPT_PLUGIN_SOCKET || c == OPT_NO_PLUGIN ||
			    c == OPT_DOCKER_SOCKET) &&
			   !port_ok) {
			return dm_cli_usage_error(cli, err, "unknown option '--%s' for 'dm %s'",
						  c == OPT_NO_PLUGIN       ? "no-plugin"
						  : c == OPT_PLUGIN_SOCKET ? "plugin-socket"
									   : "docker-socket",
						  cli->cmd->name);
		} else if (c == OPT_PLUGIN_SOCKET) {
			int rc = socket_arg(cli, out->plugin_socket, sizeof(out->plugin_socket),
					    "plugin-socket", optarg, err);

			if (rc)
				return rc;
		} else if (c == OPT_DOCKER_SOCKET) {
			int rc = socket_arg(cli, out->docker_socket, sizeof(out->docker_socket),
					    "docker-socket", optarg, err);

			if (rc)
				return rc;
		} else if (c == OPT_CSI_SOCKET) {
			int rc = port_ok ? socket_arg(cli, out->csi_socket, sizeof(out->csi_socket),
						      "csi-socket", optarg, err)
					 : dm_cli_usage_error(cli, err,
							      "unknown option '--csi-socket' for "
							      "'dm %s'",
							      cli->cmd->name);

			if (rc)
				return rc;
		} else if (c == OPT_METRICS_PUBLIC) {
			if (!port_ok)
				return dm_cli_usage_error(cli, err,
							  "unknown option '--metrics-public' for "
							  "'dm %s'",
							  cli->cmd->name);
			out->metrics_public = true;
		} else if (c == OPT_NO_PLUGIN) {
			out->no_plugin = true;
		} else if (c == DM_DMD_INIT_OPT(ENGINE) || c == DM_DMD_INIT_OPT(POOL_DIR) ||
			   c == DM_DMD_INIT_OPT(POOL_SIZE)) {
			const char *name = dm_dmd_init_name(c);
			int rc = 0;

			if (strcmp(cli->cmd->name, "cluster init") != 0)
				return dm_cli_usage_error(cli, err,
							  "unknown option '--%s' for 'dm %s'", name,
							  cli->cmd->name);
			if (!*optarg)
				return dm_cli_usage_error(cli, err, "empty --%s", name);
			if (c == DM_DMD_INIT_OPT(ENGINE) && strcmp(optarg, "dir") &&
			    strcmp(optarg, "btrfs"))
				return dm_cli_usage_error(
					cli, err, "unknown engine '%s': use dir or btrfs", optarg);
			if (c == DM_DMD_INIT_OPT(POOL_SIZE) && !size_ok(optarg))
				return dm_cli_usage_error(
					cli, err,
					"invalid --pool-size '%s': use a number with K, M, G or T",
					optarg);
			if (c == DM_DMD_INIT_OPT(POOL_DIR)) {
				rc = absolute(out->pool_dir, sizeof(out->pool_dir), optarg, err);
				optarg = out->pool_dir;
			}
			if (rc)
				return rc;
			out->init[c - DM_DMD_INIT_OPT_BASE] = optarg;
		} else if (c == DM_DMD_INIT_OPT(KV) || c == DM_DMD_INIT_OPT(ETCD_ENDPOINTS) ||
			   c == DM_DMD_INIT_OPT(ADVERTISE)) {
			const char *name = dm_dmd_init_name(c);
			bool init = !strcmp(cli->cmd->name, "cluster init");

			if (!init && !(c == DM_DMD_INIT_OPT(ADVERTISE) &&
				       !strcmp(cli->cmd->name, "cluster join")))
				return dm_cli_usage_error(cli, err,
							  "unknown option '--%s' for 'dm %s'", name,
							  cli->cmd->name);
			if (!*optarg)
				return dm_cli_usage_error(cli, err, "empty --%s", name);
			if (c == DM_DMD_INIT_OPT(KV) && strcmp(optarg, "lmdb") &&
			    strcmp(optarg, "etcd"))
				return dm_cli_usage_error(
					cli, err, "unknown kv '%s': use lmdb or etcd", optarg);
			out->init[c - DM_DMD_INIT_OPT_BASE] = optarg;
		} else if (c == DM_DMD_INIT_OPT(ETCD_CA) || c == DM_DMD_INIT_OPT(ETCD_CERT) ||
			   c == DM_DMD_INIT_OPT(ETCD_KEY) || c == DM_DMD_INIT_OPT(ETCD_USER) ||
			   c == DM_DMD_INIT_OPT(ETCD_PASSWORD_FILE)) {
			const char *name = dm_dmd_init_name(c);

			if (strcmp(cli->cmd->name, "cluster init") != 0 &&
			    strcmp(cli->cmd->name, "cluster join") != 0)
				return dm_cli_usage_error(cli, err,
							  "unknown option '--%s' for 'dm %s'", name,
							  cli->cmd->name);
			if (!*optarg)
				return dm_cli_usage_error(cli, err, "empty --%s", name);
			out->init[c - DM_DMD_INIT_OPT_BASE] = optarg;
		} else if (c == DM_DMD_INIT_OPT(TLS_CERT) || c == DM_DMD_INIT_OPT(TLS_KEY) ||
			   c == DM_DMD_INIT_OPT(TLS_CA) || c == DM_DMD_INIT_OPT(INSECURE_HTTP)) {
			const char *name = dm_dmd_init_name(c);

			if (strcmp(cli->cmd->name, "cluster init") != 0)
				return dm_cli_usage_error(cli, err,
							  "unknown option '--%s' for 'dm %s'", name,
							  cli->cmd->name);
			if (optarg && !*optarg)
				return dm_cli_usage_error(cli, err, "empty --%s", name);
			out->init[c - DM_DMD_INIT_OPT_BASE] = optarg ? optarg : "";
		} else if (c == OPT_PORT) {
			if (!port_ok)
				return dm_cli_usage_error(cli, err,
							  "unknown option '--port' for 'dm %s'",
							  cli->cmd->name);
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > 65535)
				return dm_cli_usage_error(
					cli, err, "invalid port '%s': use 1 to 65535", optarg);
			out->port = (int)v;
		}
	}
	if (c < 0)
		return c;
	if (out->no_plugin && out->plugin_socket[0])
		return dm_cli_usage_error(cli, err,
					  "--no-plugin and --plugin-socket contradict each other");
	if (!strcmp(cli->cmd->name, "cluster join") || !strcmp(cli->cmd->name, "cluster restore")) {
		bool join = !strcmp(cli->cmd->name, "cluster join");
		int rc = dm_cli_nargs(cli, argc - optind, 1, 1, join ? "TOKEN" : "a file: FILE", err);

		if (!rc)
			out->token = argv[optind];
		return rc;
	}
	return dm_cli_nargs(cli, argc - optind, 0, 0, "", err);
}

/* `dmd start --data-dir DIR` with the options given: args gets at most 14
 * entries and a NULL. */
static void start_args(const char **args, const struct cluster_args *a, const char *data_dir,
		       const char *port_text)
{
	size_t n = 0;

	args[n++] = "start";
	args[n++] = "--data-dir";
	args[n++] = data_dir;
	if (port_text) {
		args[n++] = "--port";
		args[n++] = port_text;
	}
	if (a->plugin_socket[0]) {
		args[n++] = "--plugin-socket";
		args[n++] = a->plugin_socket;
	}
	if (a->no_plugin)
		args[n++] = "--no-plugin";
	if (a->docker_socket[0]) {
		args[n++] = "--docker-socket";
		args[n++] = a->docker_socket;
	}
	if (a->csi_socket[0]) {
		args[n++] = "--csi-socket";
		args[n++] = a->csi_socket;
	}
	if (a->metrics_public)
		args[n++] = "--metrics-public";
	args[n] = NULL;
}

static const char *remote_name(struct dm_cli *cli)
{
	return cli->remote_opt ? cli->remote_opt : "local";
}

/* /var/lib/dm for root, ~/.dm/data for others. */
static int default_data_dir(char *out, size_t size, struct dm_err *err)
{
	const char *home = getenv("HOME");

	if (geteuid() == 0)
		return snprintf(out, size, "/var/lib/dm") >= (int)size
			       ? dm_err_set(err, DM_ETOOBIG, "path too long")
			       : 0;
	if (!home || !*home)
		return dm_err_set(err, DM_EINVAL, "HOME is not set; use --data-dir DIR");
	if (snprintf(out, size, "%s/.dm/data", home) >= (int)size)
		return dm_err_set(err, DM_ETOOBIG, "path too long: '%s/.dm/data'", home);
	return 0;
}

/* dir made absolute (against the working directory), without trailing '/'. */
static int absolute(char *out, size_t size, const char *dir, struct dm_err *err)
{
	char cwd[PATH_MAX];
	size_t len;
	int n;

	if (dir[0] == '/') {
		n = snprintf(out, size, "%s", dir);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return dm_err_errno(err, errno, "cannot find the working directory");
		n = snprintf(out, size, "%s/%s", cwd, dir);
	}
	if (n < 0 || (size_t)n >= size)
		return dm_err_set(err, DM_ETOOBIG, "path too long: '%s'", dir);
	len = strlen(out);
	while (len > 1 && out[len - 1] == '/')
		out[--len] = '\0';
	return 0;
}

/* DIR/ca.pem, the CA the local remote pins, NUL-terminated, into out, and
 * its fingerprint into fp; 0 with out empty when the node serves plain
 * HTTP (no such file). */
static int local_ca(struct dm_buf *out, char *fp, const char *data_dir, struct dm_err *err)
{
	char path[PATH_MAX];
	int rc;

	fp[0] = '\0';
	if (snprintf(path, sizeof(path), "%s/ca.pem", data_dir) >= (int)sizeof(path))
		return dm_err_set(err, DM_ETOOBIG, "path too long: '%s'", data_dir);
	if (access(path, F_OK) < 0)
		return 0;
	rc = dm_read_file(out, path, DM_TLS_PEM_MAX, err);
	if (!rc && dm_buf_add(out, "", 1))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!rc)
		rc = dm_tls_fingerprint(fp, (const char *)out->data, err);
	return rc;
}

/* The data directory of start/stop: --data-dir, the remote's, the default. */
static int data_dir_of(struct dm_cli *cli, const struct cluster_args *a, char *out, size_t size,
		       struct dm_err *err)
{
	struct dm_config *config;
	struct dm_remote r;
	struct dm_err ignored;
	int rc;

	if (a->data_dir)
		return absolute(out, size, a->data_dir, err);
	rc = dm_cli_config(cli, &config, err);
	if (rc)
		return rc;
	if (!dm_config_remote(&r, config, remote_name(cli), &ignored) && r.data_dir && *r.data_dir)
		return absolute(out, size, r.data_dir, err);
	return default_data_dir(out, size, err);
}

/*
 * The dmd program: $DM_DMD, else next to this dm (/proc/self/exe), else in
 * ../server/ from there (a build tree), else the first dmd in PATH.
 */
static int find_dmd(char *out, size_t size, struct dm_err *err)
{
	const char *env = getenv("DM_DMD");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		if (!dm_program_executable(env))
			return dm_err_set(err, DM_ENOTFOUND,
					  "DM_DMD is '%s', which is not a program", env);
		snprintf(out, size, "%s", env);
		return 0;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			if (snprintf(out, size, "%s/dmd", self) < (int)size &&
			    dm_program_executable(out))
				return 0;
			if (snprintf(out, size, "%s/../server/dmd", self) < (int)size &&
			    dm_program_executable(out))
				return 0;
		}
	}
	if (dm_program_find(out, size, "dmd", NULL) == 0)
		return 0;
	return dm_err_set(err, DM_ENOTFOUND,
			  "cannot find the dmd program next to dm or in PATH (or set DM_DMD)");
}

/* Reads what a captured stream got, at most DMD_OUTPUT_MAX bytes. */
static void read_captured(FILE *f, struct dm_buf *out)
{
	char tmp[4096];
	size_t n;

	dm_buf_reset(out);
	if (!f || fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0)
		return;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		if (dm_buf_add(out, tmp, n))
			break;
}

/* The last non-empty line of text, without a leading "dmd: " or "error: ". */
static void last_line(char *out, size_t size, const char *text)
{
	static const char *const prefixes[] = {"dmd: ", "error: "};
	const char *best = NULL, *p = text;
	size_t best_len = 0;

	while (*p) {
		size_t len = strcspn(p, "\n");
		size_t t = len;

		while (t > 0 && isspace((unsigned char)p[t - 1]))
			t--;
		if (t > 0) {
			best = p;
			best_len = t;
		}
		p += len;
		if (*p)
			p++;
	}
	for (size_t i = 0; best && i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t n = strlen(prefixes[i]);

		if (best_len > n && !strncmp(best, prefixes[i], n)) {
			best += n;
			best_len -= n;
		}
	}
	snprintf(out, size, "%.*s", best ? (int)best_len : 0, best ? best : "");
}

/* The error code whose exit status dmd exited with. */
static int code_of_exit(int status)
{
	for (int code = -1; code >= DM_EINTERNAL; code--)
		if (dm_err_exit_status(code) == status)
			return code;
	return DM_EINTERNAL;
}

/*
 * Runs dmd with args (NULL-terminated, without argv[0]); stdout_out gets
 * what it printed on stdout. A failure is one error: dmd's last line on
 * stderr and a code from its exit status.
 */
static int run_dmd(struct dm_cli *cli, const char *const *args, struct dm_buf *stdout_out,
		   struct dm_err *err)
{
	char dmd[PATH_MAX], line[DM_ERR_MSG_MAX];
	const char *argv[DMD_ARGS_MAX + 2];
	struct dm_buf errtext = DM_BUF_INIT;
	FILE *out = NULL, *errf = NULL;
	size_t argc = 0;
	pid_t pid;
	int status = 0, rc;

	dm_buf_init(&errtext, DMD_OUTPUT_MAX);
	dm_buf_reset(stdout_out);
	rc = find_dmd(dmd, sizeof(dmd), err);
	if (rc)
		return rc;
	argv[argc++] = dmd;
	for (size_t i = 0; args[i]; i++) {
		if (i == DMD_ARGS_MAX)
			return dm_err_set(err, DM_EINTERNAL, "more than %d arguments for dmd",
					  DMD_ARGS_MAX);
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;
	if (cli->verbose) {
		fprintf(stderr, "dm: running");
		for (size_t i = 0; i < argc; i++)
			fprintf(stderr, " %s", argv[i]);
		fputc('\n', stderr);
	}
	out = tmpfile();
	errf = tmpfile();
	if (!out || !errf) {
		rc = dm_err_errno(err, errno, "cannot make a temporary file for dmd's output");
		goto done;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		rc = dm_err_errno(err, errno, "cannot run '%s'", dmd);
		goto done;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (null < 0 || dup2(null, STDIN_FILENO) < 0 ||
		    dup2(fileno(out), STDOUT_FILENO) < 0 || dup2(fileno(errf), STDERR_FILENO) < 0)
			_exit(126);
		execv(dmd, (char *const *)(void *)argv);
		dprintf(STDERR_FILENO, "dmd: cannot run '%s': %s\n", dmd, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			rc = dm_err_errno(err, errno, "cannot wait for '%s'", dmd);
			goto done;
		}
	}
	read_captured(out, stdout_out);
	read_captured(errf, &errtext);
	if (cli->verbose && errtext.len)
		fwrite(errtext.data, 1, errtext.len, stderr);
	if (WIFSIGNALED(status)) {
		rc = dm_err_set(err, DM_EINTERNAL, "'dmd %s' died of signal %d", args[0],
				WTERMSIG(status));
		goto done;
	}
	if (WEXITSTATUS(status) != 0) {
		last_line(line, sizeof(line), errtext.data ? (const char *)errtext.data : "");
		if (*line)
			rc = dm_err_set(err, code_of_exit(WEXITSTATUS(status)), "%s", line);
		else
			rc = dm_err_set(err, code_of_exit(WEXITSTATUS(status)),
					"'dmd %s' failed with exit status %d", args[0],
					WEXITSTATUS(status));
	}
done:
	if (out)
		fclose(out);
	if (errf)
		fclose(errf);
	dm_buf_release(&errtext);
	return rc;
}

/* The first run of exactly 64 hex digits in text. */
static bool find_api_key(char *out, const char *text)
{
	for (const char *p = text; *p;) {
		size_t n = 0;

		while (isxdigit((unsigned char)p[n]))
			n++;
		if (n == API_KEY_LEN) {
			memcpy(out, p, API_KEY_LEN);
			out[API_KEY_LEN] = '\0';
			return true;
		}
		p += n ? n : 1;
	}
	return false;
}

/* server.ping on the remote just written or started. */
static int ping(struct dm_cli *cli, struct dm_err *err)
{
	json_t *res = NULL;
	int rc;

	cli->have_remote = false;
	dm_client_free(cli->client);
	cli->client = NULL;
	rc = dm_cli_call(cli, "server.ping", json_object(), &res, err);
	json_decref(res);
	return rc;
}

/* Prints the token other nodes join this node's cluster with; ttl_s:
 * seconds it works (0: for ever), or -1 for the server's default. */
static int print_join_token(struct dm_cli *cli, int64_t ttl_s, struct dm_err *err)
{
	json_t *res = NULL, *params = json_object();
	char life[64];
	int rc;

	if (ttl_s >= 0)
		json_object_set_new(params, "ttl", json_integer(ttl_s));
	rc = dm_cli_call(cli, "cluster.join_token", params, &res, err);
	if (ttl_s == 0)
		snprintf(life, sizeof(life), "never expires");
	else if (ttl_s > 0)
		snprintf(life, sizeof(life), "lets a node join for %lld s", (long long)ttl_s);
	else
		snprintf(life, sizeof(life), "lets a node join for 24 hours");
	if (!rc)
		printf("Add nodes to this cluster with:\n  dm cluster join %s\n"
		       "(the token %s, and holds etcd's credentials: keep it secret)\n",
		       json_string_value(json_object_get(res, "token")), life);
	json_decref(res);
	return rc;
}

/* The API key remote 'local' of a joining node calls it with: the token
 * carries none, so $DM_API_KEY's (an admin's, say), or "". */
static int joining_key(char *out, struct dm_err *err)
{
	const char *env = getenv("DM_API_KEY");
	size_t n = env ? strlen(env) : 0;

	out[0] = '\0';
	if (!n)
		return 0;
	if (n != API_KEY_LEN || strspn(env, "0123456789abcdefABCDEF") != n)
		return dm_err_set(err, DM_EINVAL,
				  "$DM_API_KEY is not an API key (%d hex digits)", API_KEY_LEN);
	memcpy(out, env, n + 1);
	return 0;
}

/* init and join: dmd init (join: with the token in its environment), the
 * remote saved in the config, dmd start, a ping. */
static int init_node(struct dm_cli *cli, const struct cluster_args *pa, struct dm_err *err)
{
	char data_dir[PATH_MAX], given[PATH_MAX], sock[PATH_MAX + 16], port_text[16];
	char key[API_KEY_LEN + 1], fp[DM_TLS_FINGERPRINT_LEN + 1];
	struct dm_buf out = DM_BUF_INIT, ca = DM_BUF_INIT;
	struct cluster_args a = *pa;
	struct dm_config *config;
	struct dm_remote old, r;
	struct dm_err ignored;
	int port, rc;

	rc = a.data_dir ? absolute(data_dir, sizeof(data_dir), a.data_dir, err)
			: default_data_dir(given, sizeof(given), err);
	if (!rc && !a.data_dir)
		rc = absolute(data_dir, sizeof(data_dir), given, err);
	if (rc)
		return rc;
	port = a.port ? a.port : DM_DEFAULT_PORT;
	snprintf(port_text, sizeof(port_text), "%d", port);
	if (snprintf(sock, sizeof(sock), "%s/dmd.sock", data_dir) >= (int)sizeof(sock))
		return dm_err_set(err, DM_ETOOBIG, "path too long: '%s'", data_dir);
	/* read the config first: a corrupt one fails before dmd init runs */
	rc = dm_cli_config(cli, &config, err);
	if (rc)
		return rc;

	{
		const char *args[DMD_ARGS_MAX + 1] = {"init", "--data-dir", data_dir, "--port",
						      port_text};
		size_t n = 5;

		_Static_assert(5 + 2 * DM_DMD_INIT_N + 2 <= DMD_ARGS_MAX,
			       "room for dmd init's arguments");

		for (int i = 0; i < DM_DMD_INIT_N; i++) {
			if (a.init[i]) {
				args[n++] = dm_dmd_init_flag(i);
				if (dm_dmd_init_takes_value(i))
					args[n++] = a.init[i];
			}
		}
		if (a.token) {
			args[n++] = "--join";
			/* in the environment, not the arguments: ps shows those */
			setenv("DM_JOIN_TOKEN", a.token, 1);
		}
		args[n] = NULL;
		rc = run_dmd(cli, args, &out, err);
		unsetenv("DM_JOIN_TOKEN");
	}
	if (rc)
		goto done;
	if (a.token)
		rc = joining_key(key, err);
	else if (!find_api_key(key, out.data ? (const char *)out.data : ""))
		rc = dm_err_set(err, DM_EPROTO, "'dmd init' printed no API key");
	if (rc)
		goto done;

	if (!dm_config_remote(&old, config, remote_name(cli), &ignored) &&
	    (!old.data_dir || strcmp(old.data_dir, data_dir) != 0 || old.port != port ||
	     strcmp(old.host, "127.0.0.1") != 0))
		fprintf(stderr, "dm: note: replacing remote '%s' (was %s:%d, data dir %s)\n",
			remote_name(cli), old.host, old.port, old.data_dir ? old.data_dir : "none");
	rc = local_ca(&ca, fp, data_dir, err);
	if (rc)
		goto done;
	memset(&r, 0, sizeof(r));
	r.name = remote_name(cli);
	r.user = "admin";
	r.host = "127.0.0.1";
	r.port = port;
	r.api_key = key;
	r.socket = sock;
	r.data_dir = data_dir;
	r.ca = ca.len ? (const char *)ca.data : NULL;
	rc = dm_config_set_remote(config, &r, err);
	if (!rc)
		rc = dm_config_set_current_remote(config, r.name, err);
	if (!rc)
		rc = dm_config_save(config, err);
	if (rc)
		goto done;
	/* remote_opt now names the remote we wrote, for ping */
	cli->remote_opt = r.name;

	{
		const char *args[15];

		start_args(args, &a, data_dir, NULL);
		rc = run_dmd(cli, args, &out, err);
	}
	if (!rc && key[0])
		rc = ping(cli, err);
	if (rc)
		goto done;
	printf("Initialised the dm data directory %s\n", data_dir);
	if (!a.token)
		printf("The API key of user 'admin' is in %s (remote '%s')\n"
		       "and in %s/admin-api-key\n",
		       dm_config_path(config), r.name, data_dir);
	else if (key[0])
		printf("Remote '%s' (in %s) calls this node with the API key of "
		       "$DM_API_KEY\n",
		       r.name, dm_config_path(config));
	else
		printf("The join token carries no API key: remote '%s' (in %s) has none.\n"
		       "Join with DM_API_KEY set to an admin's key (dm user reset-key, or\n"
		       "the first node's admin-api-key) for a remote that works\n",
		       r.name, dm_config_path(config));
	if (fp[0])
		printf("dmd is running: https://127.0.0.1:%d and %s\n"
		       "Its CA's fingerprint is %s\n"
		       "(others add this server with: dm remote add NAME USER@HOST:%d "
		       "--fingerprint %s)\n",
		       port, sock, fp, port, fp);
	else
		printf("dmd is running: http://127.0.0.1:%d (plain HTTP, loopback only) and %s\n",
		       port, sock);
	if (a.init[DM_DMD_INIT_KV] && !strcmp(a.init[DM_DMD_INIT_KV], "etcd") && !a.token)
		rc = print_join_token(cli, -1, err);
	else if (a.token)
		printf("This node joined the cluster\n");
done:
	memset(key, 0, sizeof(key));
	if (out.data)
		memset(out.data, 0, out.len);
	dm_buf_release(&out);
	dm_buf_release(&ca);
	return rc;
}

int dm_cmd_cluster_init(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	struct cluster_args a;
	int rc = parse_args(cli, argc, argv, true, &a, err);

	return rc ? rc : init_node(cli, &a, err);
}

/* TOKEN "-": the token is the first line of stdin, so that it appears in no
 * command line and no shell history. */
static int read_token(char *out, size_t size, struct dm_err *err)
{
	size_t n;

	if (!fgets(out, (int)size, stdin))
		return dm_err_set(err, DM_EINVAL, "no join token on standard input");
	n = strcspn(out, "\r\n");
	if (out[n] == '\0' && n == size - 1)
		return dm_err_set(err, DM_EINVAL, "the join token on standard input is too long");
	out[n] = '\0';
	return 0;
}

int dm_cmd_cluster_join(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	char token[JOIN_TOKEN_MAX + 2];
	struct cluster_args a;
	int rc = parse_args(cli, argc, argv, true, &a, err);

	if (!rc && !strcmp(a.token, "-")) {
		rc = read_token(token, sizeof(token), err);
		a.token = token;
	}
	if (!rc && strncmp(a.token, "dmj1.", 5) != 0)
		rc = dm_err_set(err, DM_EINVAL,
				"'%.12s...' is not a join token; print one with 'dm cluster "
				"join-token' on a node of the cluster",
				a.token);
	if (!rc)
		rc = init_node(cli, &a, err);
	explicit_bzero(token, sizeof(token));
	return rc;
}

int dm_cmd_cluster_join_token(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"ttl", required_argument, NULL, OPT_TTL},
		{NULL, 0, NULL, 0},
	};
	int64_t ttl = -1, ms;
	int c, rc = 0;

	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0) {
		if (c != OPT_TTL || rc)
			continue;
		if (!strcmp(optarg, "never"))
			ttl = 0;
		else if (!(rc = dm_cli_duration_ms(optarg, "--ttl", &ms, err)))
			ttl = (ms + 999) / 1000;
	}
	if (c < 0)
		return c;
	if (!rc)
		rc = dm_cli_nargs(cli, argc - optind, 0, 0, "", err);
	return rc ? rc : print_join_token(cli, ttl, err);
}

int dm_cmd_cluster_start(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	char data_dir[PATH_MAX], port_text[16];
	struct dm_buf out = DM_BUF_INIT;
	struct cluster_args a;
	struct dm_config *config;
	struct dm_remote r;
	struct dm_err ignored;
	bool ours;
	int rc;

	rc = parse_args(cli, argc, argv, true, &a, err);
	if (!rc)
		rc = data_dir_of(cli, &a, data_dir, sizeof(data_dir), err);
	if (rc)
		return rc;
	snprintf(port_text, sizeof(port_text), "%d", a.port);
	{
		const char *args[15];

		start_args(args, &a, data_dir, a.port ? port_text : NULL);
		rc = run_dmd(cli, args, &out, err);
	}
	dm_buf_release(&out);
	if (rc)
		return rc;
	/* the remote that names this data directory follows a new port */
	rc = dm_cli_config(cli, &config, err);
	if (rc)
		return rc;
	ours = !dm_config_remote(&r, config, remote_name(cli), &ignored) && r.data_dir &&
	       !strcmp(r.data_dir, data_dir);
	if (ours) {
		/* and the CAs the node trusts now (a rotation of the CA changes them) */
		struct dm_remote copy = r;
		struct dm_buf ca = DM_BUF_INIT;
		char fp[DM_TLS_FINGERPRINT_LEN + 1];

		copy.port = a.port ? a.port : r.port;
		rc = local_ca(&ca, fp, data_dir, err);
		if (!rc && ca.len)
			copy.ca = (const char *)ca.data;
		if (!rc &&
		    (copy.port != r.port || (copy.ca && (!r.ca || strcmp(copy.ca, r.ca))))) {
			rc = dm_config_set_remote(config, &copy, err);
			if (!rc)
				rc = dm_config_save(config, err);
		}
		dm_buf_release(&ca);
		if (rc)
			return rc;
	}
	if (ours) {
		cli->remote_opt = remote_name(cli);
		rc = ping(cli, err);
		if (rc)
			return rc;
	}
	printf("dmd is running (data directory %s)\n", data_dir);
	return 0;
}

int dm_cmd_cluster_stop(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	char data_dir[PATH_MAX];
	struct dm_buf out = DM_BUF_INIT;
	struct cluster_args a;
	int rc;

	rc = parse_args(cli, argc, argv, false, &a, err);
	if (!rc)
		rc = data_dir_of(cli, &a, data_dir, sizeof(data_dir), err);
	if (rc)
		return rc;
	{
		const char *args[] = {"stop", "--data-dir", data_dir, NULL};

		rc = run_dmd(cli, args, &out, err);
	}
	dm_buf_release(&out);
	if (rc)
		return rc;
	printf("dmd stopped (data directory %s)\n", data_dir);
	return 0;
}

/* dm cluster backup FILE: the cluster's state (cluster.backup) into FILE,
 * made atomically with mode 0600 (it holds the users' key hashes), or on
 * standard output for "-". */
int dm_cmd_cluster_backup(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	const char *file;
	json_t *res = NULL;
	char *text = NULL;
	int rc = dm_cli_args(cli, argc, argv, 1, 1, "a file: dm cluster backup FILE", err);

	if (rc)
		return rc;
	file = argv[optind];
	rc = dm_cli_call(cli, "cluster.backup", json_object(), &res, err);
	if (rc)
		return rc;
	text = json_dumps(res, JSON_INDENT(1) | JSON_SORT_KEYS);
	if (!text) {
		rc = dm_err_set(err, DM_ENOMEM, "cannot encode the backup");
	} else if (!strcmp(file, "-")) {
		if (fputs(text, stdout) < 0 || putchar('\n') < 0)
			rc = dm_err_errno(err, errno, "cannot write the backup");
	} else {
		rc = dm_write_file_atomic(file, text, strlen(text), 0600, err);
		if (!rc)
			fprintf(stderr,
				"Backed up cluster %s (%s, revision %lld): %zu users, %zu dots, to "
				"%s\n",
				dm_out_str(json_object_get(res, "from"), "cluster"),
				dm_out_str(json_object_get(res, "from"), "kv"),
				(long long)dm_out_u64(json_object_get(res, "from"), "revision"),
				json_array_size(json_object_get(res, "users")),
				json_array_size(json_object_get(res, "dots")), file);
	}
	free(text);
	json_decref(res);
	return rc;
}

/* dm cluster restore FILE [--data-dir DIR]: `dmd restore` on the data
 * directory (as cluster start finds it), whose dmd is stopped; "-" reads
 * the backup from standard input (through a private temporary file). */
int dm_cmd_cluster_restore(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	char data_dir[PATH_MAX], tmp[] = "/tmp/dm-restore.XXXXXX";
	struct dm_buf out = DM_BUF_INIT, in = DM_BUF_INIT;
	struct cluster_args a;
	const char *file;
	bool made_tmp = false;
	int rc, fd;

	rc = parse_args(cli, argc, argv, false, &a, err);
	if (!rc)
		rc = data_dir_of(cli, &a, data_dir, sizeof(data_dir), err);
	if (rc)
		return rc;
	file = a.token;
	if (!strcmp(file, "-")) {
		char chunk[65536];
		size_t n;

		while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
			if (dm_buf_add(&in, chunk, n))
				return dm_err_set(err, DM_ENOMEM, "out of memory");
		fd = mkstemp(tmp);
		if (fd < 0 || dm_write_all(fd, in.data, in.len) < 0) {
			rc = dm_err_errno(err, errno, "cannot keep the backup in '%s'", tmp);
			if (fd >= 0)
				close(fd);
			unlink(tmp);
			dm_buf_release(&in);
			return rc;
		}
		close(fd);
		made_tmp = true;
		file = tmp;
	}
	{
		const char *args[] = {"restore", "--data-dir", data_dir, "--from", file, NULL};

		rc = run_dmd(cli, args, &out, err);
	}
	if (made_tmp)
		unlink(tmp);
	if (!rc) {
		if (out.len)
			fwrite(out.data, 1, out.len, stdout);
		printf("Start it with 'dm cluster start'%s%s\n", a.data_dir ? " --data-dir " : "",
		       a.data_dir ? data_dir : "");
	}
	dm_buf_release(&out);
	dm_buf_release(&in);
	return rc;
}

/* ---- for cmd_cluster_reset.c ---- */

int dm_cli_cluster_data_dir(struct dm_cli *cli, const char *given, char *out, size_t size,
			    struct dm_err *err)
{
	struct cluster_args a;

	memset(&a, 0, sizeof(a));
	a.data_dir = given;
	return data_dir_of(cli, &a, out, size, err);
}

int dm_cli_dmd_stop(struct dm_cli *cli, const char *data_dir, struct dm_err *err)
{
	const char *args[] = {"stop", "--data-dir", data_dir, NULL};
	struct dm_buf out = DM_BUF_INIT;
	int rc = run_dmd(cli, args, &out, err);
	const char *said = out.data ? strstr((const char *)out.data, "(pid ") : NULL;
	long pid = said ? strtol(said + 5, NULL, 10) : 0;

	/* dmd lets go of its pid file a moment before its process ends */
	for (int i = 0; !rc && pid > 1 && i < 3000 && kill((pid_t)pid, 0) == 0; i++)
		usleep(10000);
	dm_buf_release(&out);
	return rc;
}
