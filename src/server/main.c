/*
 * main.c - the dmd command line: init, start, stop.
 *
 * Invariants: every failure prints one "error: MESSAGE" line on stderr and
 * exits with the status util/err.h gives its code (2 for a usage error);
 * stdout carries only what a script may want to read (the admin API key of
 * `dmd init`, one line about start and stop).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/pool.h"
#include "server/api/http.h"
#include "server/api/plugin.h"
#include "server/cluster/cluster.h"
#include "server/cluster/etcd_member.h"
#include "server/certs.h"
#include "server/daemon.h"
#include "server/datadir.h"
#include "server/server.h"
#include "util/dmd_init.h"
#include "util/err.h"
#include "util/log.h"
#include "util/manpage.h"
#include "util/tls.h"

#include "util/banned.h"

#define START_TIMEOUT_MS      (120 * 1000)
#define STOP_TIMEOUT_S        30
#define DEFAULT_DOCKER_SOCKET "/var/run/docker.sock"

static const char usage_text[] =
	"usage: dmd <command> [options]\n"
	"\n"
	"  dmd init  --data-dir DIR [--port N]\n"
	"            " DM_DMD_INIT_ENGINE_USAGE "\n"
	"            [" DM_DMD_INIT_KV_USAGE " | --join]\n"
	"            " DM_DMD_INIT_ADVERTISE_USAGE "\n"
	"            " DM_DMD_INIT_TLS_USAGE "\n"
	"        Make DIR a dm data directory with an admin user, and print the\n"
	"        admin's API key (also in DIR/admin-api-key, mode 0400); a node\n"
	"        that joins (--join) gets no API key, and prints an empty line.\n"
	"        Working copies are plain directories (--engine dir, the default)\n"
	"        or btrfs subvolumes with instant commits (--engine btrfs, as\n"
	"        root): in PATH, an existing btrfs mount, or in DIR/pool.img, a\n"
	"        file of SIZE (e.g. 20G) that dmd formats and loop-mounts at\n"
	"        DIR/pool while it runs.\n"
	"        Cluster state is in an embedded KV (--kv lmdb, the default: one\n"
	"        node) or in etcd (--kv etcd): a new cluster, which other nodes\n"
	"        join with --join and the token of $DM_JOIN_TOKEN. Without\n"
	"        --etcd-endpoints, dmd runs a local etcd itself (the etcd program\n"
	"        in PATH) with its data in DIR/etcd, on 127.0.0.1 only and ports\n"
	"        chosen now, from each start to its stop, speaking TLS with a CA\n"
	"        of its own (DIR/etcd-ca.pem) and with authentication on: its\n"
	"        root password, made now, is in DIR/etcd-password (mode 0600).\n"
	"        An etcd of your own is reached by https:// endpoints whose\n"
	"        certificates --etcd-ca signed (default: the system's CAs), with\n"
	"        --etcd-cert and --etcd-key when it asks for a client certificate\n"
	"        and --etcd-user when its authentication is on; the password is\n"
	"        read from --etcd-password-file or $DM_ETCD_PASSWORD, never from\n"
	"        the command line. Init copies them into DIR; a join token\n"
	"        carries the CA, user and password to the nodes that join.\n"
	"        --advertise is the URL other nodes reach this one at (default\n"
	"        the API's).\n"
	"        The TCP port speaks HTTPS: init makes a private CA (DIR/ca.pem,\n"
	"        its key DIR/ca-key.pem) and a certificate for this node's names\n"
	"        and addresses and its node id (DIR/tls.pem, DIR/tls-key.pem;\n"
	"        with --join, the token's signer signs it and DIR gets no CA key;\n"
	"        nodes call each other with it), and prints the\n"
	"        CA's fingerprint; --tls-cert and --tls-key use your own (and\n"
	"        --tls-ca the CA that signed them). --insecure-http serves plain\n"
	"        HTTP instead, only on a loopback address. DIR/dmd.sock is\n"
	"        always plain (its mode protects it).\n"
	"  dmd start --data-dir DIR [--port N] [--foreground] [--log-level LEVEL]\n"
	"            [--plugin-socket PATH | --no-plugin] [--docker-socket PATH]\n"
	"            [--csi-socket PATH] [--metrics-public]\n"
	"        Start the server on 127.0.0.1:PORT (default: the port given to\n"
	"        init, else 32607) and on DIR/dmd.sock. It runs in the background,\n"
	"        logging to DIR/dmd.log (moved to dmd.log.1 at $DM_LOG_MAX bytes,\n"
	"        default 10M; dmd.log.1 to .4 are kept); this returns once it\n"
	"        serves. With --foreground it stays attached and logs to stderr.\n"
	"        A client gets 64 connections from one address, 1024 in all; a\n"
	"        request's headers must be in within 10 s of its connection (or\n"
	"        60 s of the last answer on a kept-alive one), its body within\n"
	"        600 s of its headers, or the connection is closed.\n"
	"        The Docker volume plugin 'dm' listens on --plugin-socket (default\n"
	"        $DM_PLUGIN_SOCKET, else " DM_PLUGIN_DEFAULT_SOCKET "; 'none' or\n"
	"        --no-plugin: no plugin). Containers are stopped and started around\n"
	"        resets and checkouts through the Docker Engine API at\n"
	"        --docker-socket (default " DEFAULT_DOCKER_SOCKET "; 'none': not\n"
	"        used; a socket that is not there at start is not used either).\n"
	"        --csi-socket serves the Kubernetes CSI driver 'dm.csi.dotmesh.io' there\n"
	"        (off without it).\n"
	"        GET /metrics answers Prometheus metrics (docs/metrics.md) to an\n"
	"        admin user's credentials; --metrics-public: to anyone who reaches\n"
	"        the port. The web page is at /ui/ (docs/ui.md); its logins end\n"
	"        after $DM_UI_SESSION_IDLE seconds unused (default 1800), or 12\n"
	"        hours.\n"
	"        Deleting dots starts a garbage collection by itself once they\n"
	"        made about $DM_GC_AUTO of garbage since the last one (a size:\n"
	"        500M, 1G (the default); 'off': never).\n"
	"  dmd renew-cert --data-dir DIR\n"
	"        With dmd stopped: a new certificate for this node (valid two\n"
	"        years, the same names) signed by its CA (DIR/ca.pem and\n"
	"        DIR/ca-key.pem). Clients pin the CA, not the certificate: they\n"
	"        go on trusting the node.\n"
	"  dmd stop  --data-dir DIR [--timeout SECONDS]\n"
	"        Stop the server of DIR (SIGTERM) and wait for it (default 30 s),\n"
	"        and a local etcd that a dmd which died left running.\n"
	"  dmd restore --data-dir DIR --from FILE\n"
	"        Write the cluster state of FILE ('dm cluster backup') into the KV\n"
	"        of DIR, whose dmd (every node's, on etcd) must be stopped and\n"
	"        which must hold no dots yet; dots whose commits this node's\n"
	"        store lacks are left out, and said.\n"
	"  dmd --version | --help\n"
	"\n"
	"LEVEL is debug, info (the default), warn or error.\n";

struct args {
	const char *data_dir;
	int port;
	bool foreground;
	int timeout_s;
	enum dm_log_level level;
	const char *plugin_socket; /* --plugin-socket, or NULL */
	bool no_plugin;
	const char *docker_socket;       /* --docker-socket, or NULL */
	const char *csi_socket;          /* --csi-socket, or NULL */
	bool metrics_public;             /* --metrics-public */
	const char *engine;              /* init: --engine, or NULL */
	const char *kv;                  /* init: --kv, or NULL */
	const char *etcd_endpoints;      /* init: --etcd-endpoints, or NULL */
	struct dm_etcd_access_opts etcd; /* init: --etcd-ca, --etcd-cert, ... */
	const char *advertise;           /* init: --advertise, or NULL */
	bool join;                       /* init: --join (the token in $DM_JOIN_TOKEN) */
	const char *pool_dir;            /* init: --pool-dir, or NULL */
	const char *tls_cert;            /* init: --tls-cert, or NULL */
	const char *tls_key;             /* init: --tls-key, or NULL */
	const char *tls_ca;              /* init: --tls-ca, or NULL */
	bool insecure_http;              /* init: --insecure-http */
	uint64_t pool_size;              /* init: --pool-size, or 0 */
	const char *from;                /* restore: --from FILE */
};

/* Where the value of etcd option c (a DM_DMD_INIT_OPT(ETCD_*)) goes. */
static const char **etcd_opt(struct dm_etcd_access_opts *o, int c)
{
	if (c == DM_DMD_INIT_OPT(ETCD_CA))
		return &o->ca_file;
	if (c == DM_DMD_INIT_OPT(ETCD_CERT))
		return &o->cert_file;
	if (c == DM_DMD_INIT_OPT(ETCD_KEY))
		return &o->key_file;
	if (c == DM_DMD_INIT_OPT(ETCD_USER))
		return &o->user;
	return &o->password_file;
}

/* dmd.log's rotation: its size, and how many rotated files are kept. */
#define DM_LOG_MAX_DEFAULT (10u * 1024 * 1024)
#define DM_LOG_KEEP        4

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	fputs(usage_text, stderr);
	return 2;
}

static int fail(const struct dm_err *err)
{
	fprintf(stderr, "error: %s\n", err->msg);
	return dm_err_exit_status(err->code) ? dm_err_exit_status(err->code) : 1;
}

static bool parse_int(int *out, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = (int)v;
	return true;
}

static bool parse_level(enum dm_log_level *out, const char *s)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum dm_log_level)i;
			return true;
		}
	}
	return false;
}

/* Parses the options of cmd ("init", "start", "stop", "renew-cert" or
 * "restore"); 0 or an exit status. */
static int parse_args(struct args *a, const char *cmd, int argc, char **argv)
{
	enum {
		OPT_DATA_DIR = 256,
		OPT_PORT,
		OPT_FOREGROUND,
		OPT_TIMEOUT,
		OPT_LOG_LEVEL,
		OPT_PLUGIN_SOCKET,
		OPT_NO_PLUGIN,
		OPT_DOCKER_SOCKET,
		OPT_JOIN,
		OPT_CSI_SOCKET,
		OPT_FROM,
		OPT_METRICS_PUBLIC,
		/* and init's DM_DMD_INIT_OPT(...), from util/dmd_init.h */
	};
	static const struct option opts[] = {
		{"data-dir", required_argument, NULL, OPT_DATA_DIR},
		{"port", required_argument, NULL, OPT_PORT},
		{"foreground", no_argument, NULL, OPT_FOREGROUND},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
		{"plugin-socket", required_argument, NULL, OPT_PLUGIN_SOCKET},
		{"no-plugin", no_argument, NULL, OPT_NO_PLUGIN},
		{"docker-socket", required_argument, NULL, OPT_DOCKER_SOCKET},
		{"csi-socket", required_argument, NULL, OPT_CSI_SOCKET},
		{"from", required_argument, NULL, OPT_FROM},
		{"metrics-public", no_argument, NULL, OPT_METRICS_PUBLIC},
		DM_DMD_INIT_GETOPT{"join", no_argument, NULL, OPT_JOIN},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool is_start = strcmp(cmd, "start") == 0, is_stop = strcmp(cmd, "stop") == 0;
	bool is_renew = strcmp(cmd, "renew-cert") == 0;
	int c;

	memset(a, 0, sizeof(*a));
	a->timeout_s = STOP_TIMEOUT_S;
	a->level = DM_LOG_INFO;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_DATA_DIR:
			a->data_dir = optarg;
			break;
		case OPT_FROM:
			if (strcmp(cmd, "restore"))
				return usage_error("--from is for dmd restore, not dmd %s", cmd);
			a->from = optarg;
			break;
		case OPT_PORT:
			if (is_stop || is_renew)
				return usage_error("dmd %s takes no --port", cmd);
			if (!parse_int(&a->port, optarg, 1, 65535))
				return usage_error("invalid port '%s'", optarg);
			break;
		case OPT_FOREGROUND:
		case OPT_METRICS_PUBLIC:
			if (!is_start)
				return usage_error("%s is for dmd start, not dmd %s",
						   argv[optind - 1], cmd);
			if (c == OPT_FOREGROUND)
				a->foreground = true;
			else
				a->metrics_public = true;
			break;
		case OPT_TIMEOUT:
			if (!is_stop)
				return usage_error("--timeout is for dmd stop, not dmd %s", cmd);
			if (!parse_int(&a->timeout_s, optarg, 1, 24 * 3600))
				return usage_error("invalid timeout '%s'", optarg);
			break;
		case OPT_LOG_LEVEL:
			if (!is_start)
				return usage_error("--log-level is for dmd start, not dmd %s", cmd);
			if (!parse_level(&a->level, optarg))
				return usage_error("invalid log level '%s'", optarg);
			break;
		case OPT_PLUGIN_SOCKET:
		case OPT_NO_PLUGIN:
		case OPT_DOCKER_SOCKET:
			if (!is_start)
				return usage_error("%s is for dmd start, not dmd %s",
						   argv[optind - 1], cmd);
			if (c == OPT_NO_PLUGIN)
				a->no_plugin = true;
			else if (!optarg[0] || (optarg[0] != '/' && strcmp(optarg, "none")))
				return usage_error("%s needs an absolute path or 'none', not '%s'",
						   c == OPT_PLUGIN_SOCKET ? "--plugin-socket"
									  : "--docker-socket",
						   optarg);
			else if (c == OPT_PLUGIN_SOCKET)
				a->plugin_socket = optarg;
			else
				a->docker_socket = optarg;
			break;
		case OPT_CSI_SOCKET:
			if (!is_start)
				return usage_error("--csi-socket is for dmd start, not dmd %s",
						   cmd);
			if (optarg[0] != '/' && strcmp(optarg, "none"))
				return usage_error(
					"--csi-socket needs an absolute path or 'none', not "
					"'%s'",
					optarg);
			a->csi_socket = strcmp(optarg, "none") ? optarg : NULL;
			break;
		case DM_DMD_INIT_OPT(ENGINE):
		case DM_DMD_INIT_OPT(POOL_DIR):
		case DM_DMD_INIT_OPT(POOL_SIZE):
			if (strcmp(cmd, "init") != 0)
				return usage_error("--%s is for dmd init, not dmd %s",
						   dm_dmd_init_name(c), cmd);
			if (c == DM_DMD_INIT_OPT(ENGINE) && strcmp(optarg, "dir") &&
			    strcmp(optarg, "btrfs"))
				return usage_error("unknown engine '%s': use dir or btrfs", optarg);
			if (c == DM_DMD_INIT_OPT(ENGINE)) {
				a->engine = optarg;
			} else if (c == DM_DMD_INIT_OPT(POOL_DIR)) {
				if (!optarg[0])
					return usage_error("%s", "empty --pool-dir");
				a->pool_dir = optarg;
			} else {
				struct dm_err serr;

				if (dm_pool_parse_size(&a->pool_size, optarg, &serr))
					return usage_error("%s", serr.msg);
			}
			break;
		case DM_DMD_INIT_OPT(TLS_CERT):
		case DM_DMD_INIT_OPT(TLS_KEY):
		case DM_DMD_INIT_OPT(TLS_CA):
		case DM_DMD_INIT_OPT(INSECURE_HTTP):
			if (strcmp(cmd, "init") != 0)
				return usage_error("--%s is for dmd init, not dmd %s",
						   dm_dmd_init_name(c), cmd);
			if (c == DM_DMD_INIT_OPT(INSECURE_HTTP))
				a->insecure_http = true;
			else if (!optarg[0])
				return usage_error("empty --%s", dm_dmd_init_name(c));
			else if (c == DM_DMD_INIT_OPT(TLS_CERT))
				a->tls_cert = optarg;
			else if (c == DM_DMD_INIT_OPT(TLS_KEY))
				a->tls_key = optarg;
			else
				a->tls_ca = optarg;
			break;
		case DM_DMD_INIT_OPT(ETCD_CA):
		case DM_DMD_INIT_OPT(ETCD_CERT):
		case DM_DMD_INIT_OPT(ETCD_KEY):
		case DM_DMD_INIT_OPT(ETCD_USER):
		case DM_DMD_INIT_OPT(ETCD_PASSWORD_FILE):
			if (strcmp(cmd, "init") != 0)
				return usage_error("--%s is for dmd init, not dmd %s",
						   dm_dmd_init_name(c), cmd);
			if (!optarg[0])
				return usage_error("empty --%s", dm_dmd_init_name(c));
			*etcd_opt(&a->etcd, c) = optarg;
			break;
		case DM_DMD_INIT_OPT(KV):
		case DM_DMD_INIT_OPT(ETCD_ENDPOINTS):
		case DM_DMD_INIT_OPT(ADVERTISE):
		case OPT_JOIN:
			if (strcmp(cmd, "init") != 0)
				return usage_error("%s is for dmd init, not dmd %s",
						   argv[optind - 1], cmd);
			if (c == DM_DMD_INIT_OPT(KV) && strcmp(optarg, "lmdb") &&
			    strcmp(optarg, "etcd"))
				return usage_error("unknown kv '%s': use lmdb or etcd", optarg);
			if (c == DM_DMD_INIT_OPT(KV))
				a->kv = optarg;
			else if (c == DM_DMD_INIT_OPT(ETCD_ENDPOINTS))
				a->etcd_endpoints = optarg;
			else if (c == DM_DMD_INIT_OPT(ADVERTISE))
				a->advertise = optarg;
			else
				a->join = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!a->data_dir || !a->data_dir[0])
		return usage_error("dmd %s needs --data-dir DIR", cmd);
	if (!strcmp(cmd, "restore") && (!a->from || !a->from[0]))
		return usage_error("%s", "dmd restore needs --from FILE");
	if (a->no_plugin && a->plugin_socket)
		return usage_error("%s", "--no-plugin and --plugin-socket contradict each other");
	return 0;
}

static int cmd_init(const struct args *a)
{
	char key[DM_API_KEY_LEN + 1];
	struct dm_cluster_token token;
	struct dm_datadir_init_opts o;
	struct dm_err err;
	int rc;

	dm_log_setup(stderr, DM_LOG_WARN);
	dm_err_clear(&err);
	memset(&o, 0, sizeof(o));
	o.port = a->port;
	o.engine = a->engine;
	o.pool_dir = a->pool_dir;
	o.pool_size = a->pool_size;
	o.kv = a->kv;
	o.etcd_endpoints = a->etcd_endpoints;
	o.etcd = a->etcd;
	o.advertise = a->advertise;
	o.tls_cert = a->tls_cert;
	o.tls_key = a->tls_key;
	o.tls_ca = a->tls_ca;
	o.insecure_http = a->insecure_http;
	if (a->join) {
		const char *text = getenv("DM_JOIN_TOKEN");

		if (!text || !*text)
			return usage_error("%s", "dmd init --join reads the join token from "
						 "$DM_JOIN_TOKEN, which is not set");
		if (a->kv || a->etcd_endpoints)
			return usage_error("%s", "--join takes the kv and its endpoints from the "
						 "token: drop --kv and --etcd-endpoints");
		if (dm_cluster_token_decode(&token, text, &err))
			return fail(&err);
		o.join = &token;
	}
	rc = dm_datadir_init_opts(key, a->data_dir, &o, &err);
	memset(&token, 0, sizeof(token));
	if (rc)
		return fail(&err);
	printf("%s\n", key);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* Where the plugin and the Docker API are, from the options and the
 * environment. Only the default plugin socket is optional: another dmd may
 * serve it already, or /run/docker may not be ours to write. */
static void plugin_opts(struct dm_server_opts *so, const struct args *a)
{
	const char *env = getenv("DM_PLUGIN_SOCKET");
	const char *plugin = a->plugin_socket;

	so->plugin_optional = false;
	if (!plugin && env && *env) {
		plugin = env;
	} else if (!plugin) {
		plugin = DM_PLUGIN_DEFAULT_SOCKET;
		so->plugin_optional = true;
	}
	so->plugin_socket = a->no_plugin || !strcmp(plugin, "none") ? NULL : plugin;
	so->docker_socket = a->docker_socket ? a->docker_socket : DEFAULT_DOCKER_SOCKET;
	if (!strcmp(so->docker_socket, "none"))
		so->docker_socket = NULL;
}

/* How long the web page's sessions live unused, from $DM_UI_SESSION_IDLE:
 * seconds, 1 to a day; unset: the default. */
static int ui_idle_opt(unsigned *out, struct dm_err *err)
{
	const char *env = getenv("DM_UI_SESSION_IDLE");
	unsigned long v;
	char *end;

	*out = 0;
	if (!env || !*env)
		return 0;
	errno = 0;
	v = strtoul(env, &end, 10);
	if (errno || *end || end == env || v < 1 || v > 86400)
		return dm_err_set(err, DM_EINVAL,
				  "DM_UI_SESSION_IDLE must be seconds from 1 to 86400, not '%s'",
				  env);
	*out = (unsigned)v;
	return 0;
}

/* The automatic collection's threshold from $DM_GC_AUTO: a size (1G,
 * 500M), or "off"; unset: the default. */
static int gc_auto_opt(uint64_t *out, struct dm_err *err)
{
	const char *env = getenv("DM_GC_AUTO");

	*out = 0;
	if (!env || !*env)
		return 0;
	if (!strcmp(env, "off") || !strcmp(env, "0")) {
		*out = UINT64_MAX;
		return 0;
	}
	if (dm_pool_parse_size(out, env, err))
		return dm_err_prefix(err, "DM_GC_AUTO");
	return 0;
}

/* dmd.log is rotated at $DM_LOG_MAX bytes (default 10M), with
 * DM_LOG_KEEP old files beside it. */
static int log_rotation(const char *path, struct dm_err *err)
{
	const char *env = getenv("DM_LOG_MAX");
	uint64_t max = DM_LOG_MAX_DEFAULT;

	if (env && *env && dm_pool_parse_size(&max, env, err))
		return dm_err_prefix(err, "DM_LOG_MAX");
	if (max > INT64_MAX)
		max = INT64_MAX;
	dm_log_rotate_at(path, (long long)max, DM_LOG_KEEP);
	return 0;
}

/*
 * The daemon (or the foreground server) from the pid file on: everything
 * that fails goes to d (the starting process) as well as to the log.
 */
static int serve(const struct args *a, const char *data_dir, struct dm_daemon *d)
{
	struct dm_server_opts so;
	struct dm_server *srv = NULL;
	struct dm_pidfile *pid = NULL;
	char log_path[PATH_MAX];
	struct dm_err err;
	sigset_t set;
	int sig;

	dm_err_clear(&err);
	/* Before any thread exists, so that every thread inherits the mask. */
	dm_daemon_block_signals(&set);
	dm_log_setup(stderr, a->level);
	if (dm_pidfile_lock(&pid, data_dir, &err))
		goto failed;
	if (d) {
		snprintf(log_path, sizeof(log_path), "%s/%s", data_dir, DM_DATA_LOG);
		if (dm_daemon_redirect(log_path, &err) || log_rotation(log_path, &err))
			goto failed;
	}
	memset(&so, 0, sizeof(so));
	so.data_dir = data_dir;
	so.port = a->port;
	plugin_opts(&so, a);
	so.csi_socket = a->csi_socket;
	so.metrics_public = a->metrics_public;
	if (gc_auto_opt(&so.gc_auto_bytes, &err) || ui_idle_opt(&so.ui_idle_s, &err))
		goto failed;
	if (dm_server_open(&srv, &so, &err)) {
		dm_error("cannot start: %s", err.msg);
		goto failed;
	}
	dm_info("ready (pid %ld)", (long)getpid());
	dm_daemon_ready(d);
	d = NULL;

	sig = dm_daemon_wait_signal(&set);
	dm_info("received %s; shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	dm_server_free(srv);
	dm_pidfile_release(pid);
	dm_info("dmd stopped cleanly");
	return 0;
failed:
	dm_pidfile_release(pid);
	if (!d)
		return fail(&err);
	/* The starting process prints the error; the log has it already
	 * unless it came before the log was opened. */
	dm_daemon_fail(d, &err);
	return dm_err_exit_status(err.code) ? dm_err_exit_status(err.code) : 1;
}

static int cmd_start(const struct args *a)
{
	char data_dir[PATH_MAX], log_path[PATH_MAX + 16];
	struct dm_daemon *d = NULL;
	struct dm_err err;
	pid_t pid;
	int port = a->port;

	dm_err_clear(&err);
	if (dm_datadir_check(a->data_dir, &err))
		return fail(&err);
	if (!realpath(a->data_dir, data_dir)) {
		dm_err_errno(&err, errno, "cannot resolve '%s'", a->data_dir);
		return fail(&err);
	}
	if (!port && dm_datadir_port(&port, data_dir, &err))
		return fail(&err);
	if (a->foreground)
		return serve(a, data_dir, NULL);
	snprintf(log_path, sizeof(log_path), "%s/%s", data_dir, DM_DATA_LOG);
	if (dm_daemon_detach(&d, &pid, log_path, START_TIMEOUT_MS, &err))
		return fail(&err);
	if (d)
		return serve(a, data_dir, d);
	printf("dmd is running on %s (pid %ld, %s:%d)\n", data_dir, (long)pid, DM_HTTP_HOST, port);
	return 0;
}

/* dmd renew-cert: a new certificate from the node's CA, dmd stopped. */
static int cmd_renew_cert(const struct args *a)
{
	struct dm_datadir_config c;
	struct dm_pidfile *pid = NULL;
	char fp[DM_TLS_FINGERPRINT_LEN + 1];
	struct dm_err err;
	int rc;

	dm_log_setup(stderr, DM_LOG_WARN);
	dm_err_clear(&err);
	if (dm_datadir_check(a->data_dir, &err) || dm_datadir_read_config(&c, a->data_dir, &err))
		return fail(&err);
	/* the pid file's lock: no dmd serves the old certificate meanwhile */
	if (dm_pidfile_lock(&pid, a->data_dir, &err))
		return fail(&err);
	rc = dm_certs_renew(a->data_dir, &c, c.advertise, &err);
	dm_pidfile_release(pid);
	if (rc)
		return fail(&err);
	dm_certs_ca_fingerprint(fp, a->data_dir, &c);
	printf("renewed the certificate of %s, signed by the same CA (%s): start dmd again\n",
	       a->data_dir, fp);
	return 0;
}

static int cmd_stop(const struct args *a)
{
	char data_dir[PATH_MAX];
	struct dm_err err;
	pid_t pid, etcd_pid;

	dm_log_setup(stderr, DM_LOG_WARN);
	dm_err_clear(&err);
	if (dm_datadir_check(a->data_dir, &err))
		return fail(&err);
	if (!realpath(a->data_dir, data_dir)) {
		dm_err_errno(&err, errno, "cannot resolve '%s'", a->data_dir);
		return fail(&err);
	}
	if (dm_daemon_stop(&pid, data_dir, a->timeout_s * 1000, &err))
		return fail(&err);
	/* a dmd that died leaves its loop pool mounted and its local etcd
	 * running: unmount and stop them now */
	if (dm_datadir_release_pool(data_dir, &err) ||
	    dm_etcd_member_stop_leftover(&etcd_pid, data_dir, &err))
		return fail(&err);
	if (pid)
		printf("dmd stopped (pid %ld)\n", (long)pid);
	else if (etcd_pid)
		printf("dmd is not running on %s; stopped the etcd it left running (pid %ld)\n",
		       data_dir, (long)etcd_pid);
	else
		printf("dmd is not running on %s\n", data_dir);
	return 0;
}

static int cmd_restore(const struct args *a)
{
	struct dm_err err;

	dm_log_setup(stderr, DM_LOG_WARN);
	dm_err_clear(&err);
	if (dm_datadir_restore(a->data_dir, a->from, stdout, &err))
		return fail(&err);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* `dmd --man`, for the build: dmd(8) from the usage text above. */
static void write_man(FILE *f)
{
	dm_man_begin(f, "dmd", "8", "the dm server: dots, their history and transfers");
	dm_man_section(f, "SYNOPSIS");
	dm_man_verbatim(f, usage_text);
	dm_man_section(f, "DESCRIPTION");
	dm_man_paragraph(f, "dmd keeps dots (versioned directories), their commits and "
			    "branches, serves dm's API on a TCP port (HTTPS by default) and on "
			    "a unix socket in the data directory, the Docker volume plugin and, "
			    "when asked, the Kubernetes CSI driver. 'dm cluster init' and "
			    "'dm cluster start' run it; the dm.service unit runs "
			    "'dmd start --foreground' under systemd.");
	dm_man_section(f, "FILES");
	dm_man_verbatim(f, "DIR/config.json     the node's settings\n"
			   "DIR/admin-api-key   the admin's API key (mode 0400)\n"
			   "DIR/ca.pem          the CA that clients pin; its key DIR/ca-key.pem (0600)\n"
			   "DIR/tls.pem         this node's certificate; its key DIR/tls-key.pem (0600)\n"
			   "DIR/dmd.sock        the API on a unix socket (plain; its mode protects it)\n"
			   "DIR/dmd.log         the log, rotated to dmd.log.1 ... dmd.log.4");
	dm_man_section(f, "SEE ALSO");
	dm_man_paragraph(f, "dm(1)");
}

int main(int argc, char **argv)
{
	struct args a;
	const char *cmd;
	int rc;

	if (argc < 2)
		return usage_error("%s", "no command given");
	cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(cmd, "--man")) {
		write_man(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("dmd %s\n", DM_VERSION);
		return 0;
	}
	if (strcmp(cmd, "init") && strcmp(cmd, "start") && strcmp(cmd, "stop") &&
	    strcmp(cmd, "renew-cert") && strcmp(cmd, "restore"))
		return usage_error("unknown command '%s'", cmd);
	rc = parse_args(&a, cmd, argc - 1, argv + 1);
	if (rc)
		return rc;
	/* Our own modes, whatever the caller's umask: working copies must be
	 * reachable by the users databases run as (docs/internals/dots.md). */
	umask(022);
	if (!strcmp(cmd, "init"))
		return cmd_init(&a);
	if (!strcmp(cmd, "start"))
		return cmd_start(&a);
	if (!strcmp(cmd, "renew-cert"))
		return cmd_renew_cert(&a);
	if (!strcmp(cmd, "restore"))
		return cmd_restore(&a);
	return cmd_stop(&a);
}
