/*
 * cmd_transfer.c - `dm push`, `dm pull` and `dm clone`: ask the dmd of the
 * current remote (the initiator, docs/internals/transfer.md) to move a dot
 * to or from another remote of the config, then follow the transfer with
 * transfers.show until it ends, showing its progress.
 *
 * Invariants: the CLI never moves data itself, it only starts a transfer
 * and watches it, so interrupting dm leaves the transfer running in dmd;
 * the other remote's address and API key travel only in the one
 * transfers.push/pull request to our own dmd; progress goes to stderr,
 * redrawn in place on a terminal (at most one line, cleared before any
 * other output) and as plain lines at most every 2 s or at a change of
 * phase otherwise; the final message goes to stdout; a failed transfer is
 * one error with the code of its error object. A name on the other remote
 * without a namespace is in the namespace of the user that remote is used
 * as (dotmesh's), and a dot that a push or pull succeeded for gets that
 * remote and name as its upstream when it had none (a clone always).
 */
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/names.h"

#include "util/banned.h"

#define POLL_MS        200 /* between polls once a transfer runs a while */
#define POLL_FIRST_MS  10  /* the first poll; each next one waits twice as long */
#define PLAIN_EVERY_NS (2 * 1000000000LL)
#define BAR_WIDTH      10

enum direction { PUSH, PULL, CLONE };

struct xfer_args {
	enum direction dir;
	const char *remote;     /* the other remote's name */
	const char *dot;        /* the local dot */
	const char *branch;     /* or NULL */
	const char *remote_dot; /* the dot's name on the other remote */
	bool stash;
	char dot_buf[DM_DOT_NAME_TEXT_MAX];
	char remote_dot_buf[DM_DOT_NAME_TEXT_MAX];
};

/* --- progress -------------------------------------------------------- */

struct progress {
	bool tty;
	bool drawn;            /* a bar is on the terminal's current line */
	char state[32];        /* the last state shown */
	int64_t last_plain_ns; /* when the last plain line went out */
	char last_line[256];   /* what the terminal shows */
};

static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};

/* "12.0/27.0 MiB": both in the total's unit. */
static void size_pair(char *buf, size_t size, uint64_t done, uint64_t total)
{
	double d = (double)done, t = (double)total;
	size_t u = 0;

	if (total < 1024) {
		snprintf(buf, size, "%" PRIu64 "/%" PRIu64 " B", done, total);
		return;
	}
	while (t >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		t /= 1024.0;
		d /= 1024.0;
		u++;
	}
	snprintf(buf, size, "%.1f/%.1f %s", d, t, units[u]);
}

/* "0:03", "1:02:03" */
static void duration(char *buf, size_t size, uint64_t s)
{
	if (s >= 3600)
		snprintf(buf, size, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600, s / 60 % 60,
			 s % 60);
	else
		snprintf(buf, size, "%" PRIu64 ":%02" PRIu64, s / 60, s % 60);
}

/*
 * The numbers of a transfer: "45%  120/300 objects  12.0/27.0 MiB  52.1
 * MiB/s  0:03 left", with "[#####     ] " in front when bar. Empty while
 * the totals are unknown.
 */
static void numbers(char *buf, size_t size, json_t *t, bool bar)
{
	uint64_t od = dm_out_u64(t, "objects_done"), ot = dm_out_u64(t, "objects_total");
	uint64_t bd = dm_out_u64(t, "bytes_done"), bt = dm_out_u64(t, "bytes_total");
	uint64_t rate = dm_out_u64(t, "rate");
	char bars[BAR_WIDTH + 1], bytes[64], speed[32], left[48] = "";
	unsigned pct;
	size_t used = 0;
	int n;

	buf[0] = '\0';
	if (ot == 0 && bt == 0)
		return;
	if (bt)
		pct = (unsigned)(bd >= bt ? 100 : bd * 100 / bt);
	else
		pct = (unsigned)(od >= ot ? 100 : od * 100 / ot);
	if (bar) {
		size_t full = pct * BAR_WIDTH / 100;

		memset(bars, '#', full);
		memset(bars + full, ' ', BAR_WIDTH - full);
		bars[BAR_WIDTH] = '\0';
		n = snprintf(buf, size, "[%s] ", bars);
		used = n > 0 && (size_t)n < size ? (size_t)n : 0;
	}
	size_pair(bytes, sizeof(bytes), bd, bt);
	if (rate) {
		dm_out_size(speed, sizeof(speed), rate);
		if (bt > bd) {
			char d[24];

			duration(d, sizeof(d), (bt - bd + rate - 1) / rate);
			snprintf(left, sizeof(left), "  %s left", d);
		}
	}
	snprintf(buf + used, size - used, "%3u%%  %" PRIu64 "/%" PRIu64 " objects  %s%s%s%s%s", pct,
		 od, ot, bytes, rate ? "  " : "", rate ? speed : "", rate ? "/s" : "", left);
}

static size_t terminal_width(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
		return ws.ws_col;
	return 80;
}

static void clear_bar(struct progress *p)
{
	if (p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->drawn = false;
		p->last_line[0] = '\0';
	}
}

/* Shows transfer t (a transfers.show answer). */
static void show_progress(struct progress *p, json_t *t)
{
	const char *state = dm_out_str(t, "state");
	bool changed = strcmp(state, p->state) != 0;
	char nums[200], line[256];
	int64_t now = dm_now_monotonic_ns();

	numbers(nums, sizeof(nums), t, p->tty);
	if (p->tty) {
		size_t width = terminal_width() - 1;

		if (*nums && (!strcmp(state, "sending") || !strcmp(state, "receiving")))
			snprintf(line, sizeof(line), "%s", nums);
		else
			snprintf(line, sizeof(line), "%s%s%s", state, *nums ? "  " : "...",
				 *nums ? nums : "");
		if (strlen(line) > width)
			line[width] = '\0';
		if (strcmp(line, p->last_line) != 0) {
			fputs("\r", stderr);
			dm_out_clean(stderr, line);
			fputs("\033[K", stderr);
			fflush(stderr);
			snprintf(p->last_line, sizeof(p->last_line), "%s", line);
			p->drawn = true;
		}
	} else if (changed || now - p->last_plain_ns >= PLAIN_EVERY_NS) {
		dm_out_clean(stderr, state);
		if (*nums) {
			fputs(": ", stderr);
			fputs(nums, stderr);
		}
		fputc('\n', stderr);
		fflush(stderr);
		p->last_plain_ns = now;
	}
	snprintf(p->state, sizeof(p->state), "%s", state);
}

/* --- following a transfer -------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL); /* cut short by ^C, which is what we want */
}

/* The error of a failed transfer t as ours. */
static int transfer_error(json_t *t, struct dm_err *err)
{
	json_t *e = json_object_get(t, "error");
	const char *code = dm_out_str(e, "code"), *msg = dm_out_str(e, "message");
	int rc = *code ? dm_err_from_json_name(code) : DM_EINTERNAL;

	if (rc == DM_OK)
		rc = DM_EINTERNAL;
	if (*msg)
		return dm_err_set(err, rc, "%s", msg);
	return dm_err_set(err, rc, "the transfer failed without saying why");
}

/* Polls transfer id until it ends; prints its message. */
static int follow(struct dm_cli *cli, const char *id, struct dm_err *err)
{
	struct progress p;
	struct sigaction sa, old_int, old_term;
	json_t *t = NULL;
	int rc = 0;

	memset(&p, 0, sizeof(p));
	p.tty = isatty(STDERR_FILENO);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	interrupted = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	/* a small transfer ends in a few ms: poll fast at first, then back off */
	long wait = POLL_FIRST_MS;

	for (;;) {
		const char *state;

		rc = dm_cli_call(cli, "transfers.show", json_pack("{s:s}", "id", id), &t, err);
		if (rc) {
			clear_bar(&p);
			dm_err_prefix(err, "lost track of transfer %s", id);
			break;
		}
		state = dm_out_str(t, "state");
		if (!strcmp(state, "done") || !strcmp(state, "failed")) {
			/* the last plain line says what moved, if anything did */
			if (!p.tty && !strcmp(state, "done") &&
			    (dm_out_u64(t, "objects_total") || dm_out_u64(t, "bytes_total")))
				show_progress(&p, t);
			clear_bar(&p);
			if (!strcmp(state, "failed")) {
				rc = transfer_error(t, err);
			} else {
				const char *msg = dm_out_str(t, "message");

				dm_out_clean(stdout, *msg ? msg : "done");
				putchar('\n');
			}
			break;
		}
		show_progress(&p, t);
		json_decref(t);
		t = NULL;
		if (!interrupted)
			sleep_ms(wait);
		wait = wait * 2 > POLL_MS ? POLL_MS : wait * 2;
		if (interrupted) {
			clear_bar(&p);
			rc = dm_err_set(err, DM_ECANCELED,
					"interrupted: transfer %s goes on in dmd (remote '%s')", id,
					cli->remote.name);
			break;
		}
	}
	json_decref(t);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	return rc;
}

/* --- starting one ---------------------------------------------------- */

/* The options and arguments of push, pull and clone into a. */
static int parse(struct dm_cli *cli, int argc, char **argv, struct xfer_args *a, struct dm_err *err)
{
	static const struct option opts[] = {
		{"remote-name", required_argument, NULL, OPT_REMOTE_NAME},
		{"local-name", required_argument, NULL, OPT_LOCAL_NAME},
		{"stash-on-divergence", no_argument, NULL, OPT_STASH},
		{NULL, 0, NULL, 0},
	};
	const char *remote_name = NULL, *local_name = NULL;
	struct dm_dot_name n;
	int c, nargs, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0) {
		if (c == OPT_REMOTE_NAME && a->dir != CLONE)
			remote_name = optarg;
		else if (c == OPT_LOCAL_NAME && a->dir == CLONE)
			local_name = optarg;
		else if (c == OPT_STASH)
			a->stash = true;
		else
			return dm_cli_usage_error(cli, err, "unknown option '%s' for 'dm %s'",
						  c == OPT_REMOTE_NAME ? "--remote-name"
								       : "--local-name",
						  cli->cmd->name);
	}
	if (c < 0)
		return c;
	nargs = argc - optind;
	argv += optind;
	if (a->dir == CLONE) {
		rc = dm_cli_nargs(cli, nargs, 2, 3, "a remote and a dot: REMOTE [NS/]DOT", err);
		if (rc)
			return rc;
		a->remote = argv[0];
		a->remote_dot = argv[1];
		a->branch = nargs > 2 ? argv[2] : NULL;
		a->dot = local_name ? local_name : argv[1];
	} else {
		rc = dm_cli_nargs(cli, nargs, 0, 3, "", err);
		if (rc)
			return rc;
		a->remote = nargs > 0 ? argv[0] : NULL;
		a->dot = nargs > 1 ? argv[1] : NULL;
		a->branch = nargs > 2 ? argv[2] : NULL;
		a->remote_dot = remote_name;
	}
	if (a->remote && !dm_name_part_valid(a->remote, strlen(a->remote)))
		return dm_err_set(err, DM_EINVAL, "invalid remote name '%s'", a->remote);
	if (a->dot && (rc = dm_dot_name_parse(&n, a->dot, err)))
		return rc;
	if (a->remote_dot && (rc = dm_dot_name_parse(&n, a->remote_dot, err)))
		return rc;
	if (a->branch)
		return dm_branch_name_check(a->branch, err);
	return 0;
}

/*
 * a->remote_dot := NAME in the namespace of the user that remote a->remote
 * is used as: dotmesh's default for a name on a remote that does not say
 * its namespace (a push of `shop` as alice goes to alice/shop).
 */
static int in_user_namespace(struct dm_cli *cli, struct xfer_args *a, const char *name,
			     struct dm_err *err)
{
	struct dm_config *config;
	struct dm_remote r;
	int rc = dm_cli_config(cli, &config, err);

	if (!rc)
		rc = dm_config_remote(&r, config, a->remote, err);
	if (rc)
		return rc;
	snprintf(a->remote_dot_buf, sizeof(a->remote_dot_buf), "%s/%s", r.user, name);
	a->remote_dot = a->remote_dot_buf;
	return 0;
}

/*
 * Fills what parse left open: the local dot (default: the current one),
 * and for push and pull the other remote and the dot's name there, from
 * the dot's upstream when the command does not name them.
 */
static int resolve(struct dm_cli *cli, struct xfer_args *a, struct dm_err *err)
{
	struct dm_config *config;
	struct dm_upstream up;
	const char *dot;
	bool have_up;
	int rc;

	rc = dm_cli_config(cli, &config, err);
	if (!rc)
		rc = dm_cli_remote(cli, err);
	if (rc)
		return rc;
	if (!a->dot) {
		rc = dm_cli_dot(cli, NULL, &dot, err);
		if (rc)
			return rc;
		snprintf(a->dot_buf, sizeof(a->dot_buf), "%s", dot);
		a->dot = a->dot_buf;
	}
	/* a name there without a namespace is in the remote user's */
	if (a->remote && a->remote_dot && !strchr(a->remote_dot, '/')) {
		char name[DM_NAME_PART_MAX + 1];

		snprintf(name, sizeof(name), "%s", a->remote_dot);
		rc = in_user_namespace(cli, a, name, err);
		if (rc)
			return rc;
	}
	if (a->dir == CLONE)
		return 0;
	have_up = dm_config_upstream(&up, config, cli->remote.name, a->dot, err) == 0;
	if (!a->remote) {
		if (!have_up)
			return dm_cli_usage_error(
				cli, err,
				"'dm %s' needs a remote: dot '%s' has no upstream "
				"('dm dot set-upstream')",
				cli->cmd->name, a->dot);
		a->remote = up.remote;
	}
	if (!a->remote_dot && have_up && !strcmp(up.remote, a->remote)) {
		struct dm_dot_name n;

		if (dm_dot_name_parse(&n, up.dot, err))
			return dm_err_prefix(err, "upstream of '%s'", a->dot);
		dm_dot_name_text(a->remote_dot_buf, &n);
		a->remote_dot = a->remote_dot_buf;
	} else if (!a->remote_dot) {
		struct dm_dot_name n;

		/* the same name, in the remote user's namespace */
		dm_dot_name_parse(&n, a->dot, NULL);
		return in_user_namespace(cli, a, n.name, err);
	}
	return 0;
}

/* {"host","port","user","api_key","ca"} of the remote called name. */
static int remote_param(struct dm_cli *cli, const char *name, json_t **out, struct dm_err *err)
{
	struct dm_config *config;
	struct dm_remote r;
	int rc;

	*out = NULL;
	rc = dm_cli_config(cli, &config, err);
	if (!rc)
		rc = dm_config_remote(&r, config, name, err);
	if (rc)
		return rc;
	if (!strcmp(name, cli->remote.name) ||
	    (!strcmp(r.host, cli->remote.host) && r.port == cli->remote.port))
		return dm_err_set(
			err, DM_EINVAL,
			"remote '%s' is the server dm talks to ('%s'); %s needs another one", name,
			cli->remote.name, cli->cmd->name);
	*out = json_pack("{s:s, s:i, s:s, s:s}", "host", r.host, "port", r.port, "user", r.user,
			 "api_key", r.api_key);
	/* the dmd that moves the data checks the remote as we would */
	if (*out && r.ca)
		json_object_set_new(*out, "ca", json_string(r.ca));
	return *out ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

/* Starts the transfer; its id into id (DM_ID_TEXT-sized). */
static int start(struct dm_cli *cli, const struct xfer_args *a, char *id, size_t id_size,
		 struct dm_err *err)
{
	const char *method = a->dir == PUSH ? "transfers.push" : "transfers.pull";
	json_t *params = NULL, *remote = NULL, *res = NULL;
	int rc;

	rc = remote_param(cli, a->remote, &remote, err);
	if (rc)
		return rc;
	params = json_pack("{s:o, s:s, s:s, s:b}", "remote", remote, "dot", a->dot, "remote_dot",
			   a->remote_dot, "stash", a->stash);
	if (params && a->branch && json_object_set_new(params, "branch", json_string(a->branch)))
		goto nomem;
	if (params && a->dir == CLONE && json_object_set_new(params, "clone", json_true()))
		goto nomem;
	rc = dm_cli_call(cli, method, params, &res, err); /* takes params */
	params = NULL;
	if (rc == DM_EUNSUPPORTED && strstr(err->msg, method))
		dm_err_set(err, rc,
			   "the dm server of remote '%s' cannot run transfers (it has no "
			   "'%s'); upgrade dmd",
			   cli->remote.name, method);
	if (rc)
		goto done;
	if (!*dm_out_str(res, "id")) {
		rc = dm_err_set(err, DM_EPROTO, "'%s' answered no transfer id", method);
		goto done;
	}
	snprintf(id, id_size, "%s", dm_out_str(res, "id"));
	goto done;
nomem:
	rc = dm_err_set(err, DM_ENOMEM, "out of memory");
done:
	json_decref(params);
	json_decref(res);
	return rc;
}

/* For clone: the local name must be free. */
static int check_free(struct dm_cli *cli, const struct xfer_args *a, struct dm_err *err)
{
	json_t *res = NULL;
	int rc = dm_cli_call(cli, "dots.show", json_pack("{s:s}", "dot", a->dot), &res, err);

	json_decref(res);
	if (rc == DM_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	return dm_err_set(err, DM_EEXISTS,
			  "dot '%s' exists here already; pull into it with 'dm pull %s %s', or "
			  "clone under another name with --local-name",
			  a->dot, a->remote, a->dot);
}

static int run(struct dm_cli *cli, int argc, char **argv, enum direction dir, struct dm_err *err)
{
	static const char *const done_word[] = {[PUSH] = "pushed", [PULL] = "pulled",
						[CLONE] = "cloned"};
	struct xfer_args a;
	struct dm_config *config;
	char id[128];
	int rc;

	memset(&a, 0, sizeof(a));
	a.dir = dir;
	rc = parse(cli, argc, argv, &a, err);
	if (!rc)
		rc = resolve(cli, &a, err);
	if (!rc && dir == CLONE)
		rc = check_free(cli, &a, err);
	if (!rc)
		rc = start(cli, &a, id, sizeof(id), err);
	if (!rc)
		rc = follow(cli, id, err);
	if (rc)
		return rc;
	/* a clone remembers where it came from; a push or pull where it went,
	 * when the dot had no upstream yet (dotmesh's default remote dot) */
	rc = dm_cli_config(cli, &config, err);
	if (!rc && dir != CLONE) {
		struct dm_upstream up;

		if (!dm_config_upstream(&up, config, cli->remote.name, a.dot, NULL))
			return 0;
	}
	if (!rc)
		rc = dm_config_set_upstream(config, cli->remote.name, a.dot, a.remote, a.remote_dot,
					    err);
	if (!rc)
		rc = dm_config_save(config, err);
	cli->have_remote = false; /* its strings may have moved */
	if (rc)
		dm_err_prefix(err, "%s, but cannot record the upstream of '%s'", done_word[dir],
			      a.dot);
	return rc;
}

int dm_cmd_push(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	return run(cli, argc, argv, PUSH, err);
}

int dm_cmd_pull(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	return run(cli, argc, argv, PULL, err);
}

int dm_cmd_clone(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	return run(cli, argc, argv, CLONE, err);
}
