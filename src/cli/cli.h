/*
 * cli.h - what the files of the dm command line share: the state of one run
 * (struct dm_cli), the command table's entry, the option and argument
 * helpers, the connection to the remote, and the output helpers.
 *
 * A command is a function run(cli, argc, argv, err): argv[0] is the
 * command's last word ("init" for `dm cluster init`), and it returns 0 or a
 * DM_E* code with err filled. Only main() prints the error (`dm: MESSAGE`)
 * and exits, with the code's exit status.
 */
#ifndef DM_CLI_CLI_H
#define DM_CLI_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "client/client.h"
#include "client/config.h"
#include "util/err.h"

struct dm_cli;

struct dm_cli_cmd {
	const char *name;    /* "list", or "cluster init" for a group's command */
	int (*run)(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
	const char *args;    /* "[-H] [--json]" */
	const char *summary; /* one line for `dm help` */
	const char *help;    /* what it does, then its options */
};

/* The command table (main.c), NULL-name terminated. */
extern const struct dm_cli_cmd dm_cli_commands[];

/* What dm is, in the words of `dm help` and dm(1). */
#define DM_CLI_ABOUT                                                                               \
	"dm versions the directories that databases and other programs write\n"                    \
	"into: commit them, branch them, roll them back.\n"

/* The options every command takes, as `dm COMMAND --help` and dm(1) list them. */
#define DM_CLI_COMMON_OPTIONS                                                                      \
	"Common options:\n"                                                                         \
	"  --remote NAME     talk to remote NAME instead of the current one\n"                      \
	"  -v, --verbose     show the requests and answers on stderr\n"                             \
	"  -h, --help        show this help\n"                                                      \
	"  -c, --config FILE the config file instead of ~/.dm/config or $DM_CONFIG\n"               \
	"                    (before the command: dm -c FILE COMMAND ...)\n"

/* `dm help --man`: dm(1) in roff; `dm help --bash-completion`: a bash
 * completion of dm (docgen.c). Both from the command table. */
void dm_cli_write_man(FILE *f);
void dm_cli_write_completion(FILE *f);

/* Long-only options have values above any char. */
enum {
	OPT_REMOTE = 1000,
	OPT_JSON,
	OPT_DOT,
	OPT_DATA_DIR,
	OPT_PORT,
	OPT_CREATE,
	OPT_HARD,
	OPT_REMOTE_NAME,
	OPT_LOCAL_NAME,
	OPT_STASH,
	OPT_MAX_FREEZE,
	OPT_CONTAINER,
	OPT_TIMEOUT,
	OPT_REMOVE,
	OPT_ROLE,
	OPT_EXPIRES,
	OPT_KEEP_LAST,
	OPT_KEEP_HOURLY,
	OPT_KEEP_DAILY,
	OPT_KEEP_WEEKLY,
	OPT_KEEP_MONTHLY,
	OPT_KEEP_YEARLY,
	OPT_KEEP_WITHIN,
	OPT_DRY_RUN,
	OPT_NAMESPACE,
	OPT_READ_ONLY,
};

struct dm_cli {
	const struct dm_cli_cmd *cmd; /* the command being run */
	const char *remote_opt;       /* --remote NAME, or NULL: the current remote */
	const char *config_opt;       /* -c/--config FILE, or NULL: dm_config_default_path */
	int verbose;

	struct dm_config *config;     /* loaded on first use */
	struct dm_remote remote;      /* borrowed from config */
	bool have_remote;
	struct dm_client *client;     /* made on first call */

	/* getopt state of the running command */
	char shortopts[64];
	struct option longopts[32];
	bool opts_ready;

	char dot[2 * 64 + 2];         /* the dot dm_cli_dot chose */
};

void dm_cli_release(struct dm_cli *cli);

/* Commands (cmd_*.c). */
int dm_cmd_cluster_init(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_cluster_start(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_cluster_stop(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_cluster_join(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_cluster_join_token(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_cluster_status(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_cluster_remove(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_cluster_rotate_certs(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_cluster_backup(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_cluster_restore(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_cluster_reset(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_cluster_upgrade(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
/* cmd_cluster.c, for cluster reset: the data directory as cluster start
 * finds it (given: --data-dir, or NULL), and `dmd stop` on one (which
 * returns once the stopped dmd's process is gone, or 30 s passed). */
int dm_cli_cluster_data_dir(struct dm_cli *cli, const char *given, char *out, size_t size,
			    struct dm_err *err);
int dm_cli_dmd_stop(struct dm_cli *cli, const char *data_dir, struct dm_err *err);
int dm_cmd_dot_set_master(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_version(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_init(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_list(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_switch(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_commit(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_log(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_reset(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_diff(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_branch(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_checkout(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_dot_show(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_dot_delete(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_dot_prune(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_dot_fork(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_unmount(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_mount(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_dot_set_upstream(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_dot_add_collaborator(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_dot_remove_collaborator(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_dot_set_hook(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_user_add(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_user_reset_key(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_user_rm(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_user_list(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_remote_list(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_remote_add(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_remote_rm(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_remote_switch(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_s3_remote_add(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);

/* A remote's name checked (1 to 64 of [A-Za-z0-9_-]). */
int dm_cli_check_remote_name(const char *name, struct dm_err *err);
/*
 * A secret for remote name into buf[size]: $env_name, else the first line
 * of a standard input that is not a terminal, else typed on the terminal
 * with echo off after the prompt "NOUN for WHAT: " (never an argument,
 * which other users could see in ps). Trimmed; printable ASCII only.
 */
int dm_cli_read_secret(char *buf, size_t size, const char *env_name, const char *noun,
		       const char *name, const char *what, struct dm_err *err);
int dm_cmd_push(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_pull(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_clone(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_fsck(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_gc(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_df(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
int dm_cmd_debug(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);

/*
 * getopt_long over the running command's options plus the common ones
 * (--remote NAME, -v/--verbose), which it handles itself. shortopts and
 * longopts are the command's own (longopts NULL-terminated, or NULL).
 * Returns the next option's value (> 0, optarg set), 0 when the options
 * are over (argv[optind] is the first argument), or DM_EINVAL for an
 * unknown option or a missing value.
 */
int dm_cli_getopt(struct dm_cli *cli, int argc, char **argv, const char *shortopts,
		  const struct option *longopts, struct dm_err *err);

/* DM_EINVAL unless the command got between min and max arguments (max < 0:
 * no limit); what names them in the message ("DOT", "REF"...). */
int dm_cli_nargs(struct dm_cli *cli, int n, int min, int max, const char *what,
		 struct dm_err *err);
/* The options of a command that takes none (only the common ones), then
 * between min and max arguments (dm_cli_nargs), from argv[optind]. */
int dm_cli_args(struct dm_cli *cli, int argc, char **argv, int min, int max, const char *what,
		struct dm_err *err);
/* The same for a command that takes no arguments. */
int dm_cli_no_options(struct dm_cli *cli, int argc, char **argv, struct dm_err *err);
/* The options of commands that show something: --json always, -H (raw,
 * for scripts) and --dot DOT when flags say. Arguments start at
 * argv[optind] afterwards. */
enum { DM_CLI_OPT_RAW = 1, DM_CLI_OPT_DOT = 2 };
struct dm_cli_view {
	bool as_json, raw;
	const char *dot; /* --dot, or NULL */
};
int dm_cli_view_options(struct dm_cli *cli, int argc, char **argv, int flags,
			struct dm_cli_view *out, struct dm_err *err);
/* The same for a listing that takes no arguments: -H and --json. */
int dm_cli_listing_options(struct dm_cli *cli, int argc, char **argv, bool *as_json, bool *raw,
			   struct dm_err *err);
/* A duration: "500ms", "2s", "1.5s", "2m", "3h", "14d", or a number of seconds, into
 * milliseconds (at least 1); DM_EINVAL naming what (e.g. "--max-freeze"). */
int dm_cli_duration_ms(const char *s, const char *what, int64_t *out, struct dm_err *err);
/* Prints a call's "warnings" on stderr, one "dm: warning: ..." line each. */
void dm_cli_warnings(json_t *result);
/* DM_EINVAL "usage message; see 'dm CMD --help'". */
int dm_cli_usage_error(struct dm_cli *cli, struct dm_err *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The config file, loaded once (a missing file is an empty config). */
int dm_cli_config(struct dm_cli *cli, struct dm_config **out, struct dm_err *err);
/* The remote to talk to (--remote or the current one); fills cli->remote. */
int dm_cli_remote(struct dm_cli *cli, struct dm_err *err);
/* Calls method on the remote, connecting first. Takes params, a new
 * reference from json_pack or json_object; NULL (their failure) is
 * DM_ENOMEM. */
int dm_cli_call(struct dm_cli *cli, const char *method, json_t *params, json_t **result,
		struct dm_err *err);
/* dm_cli_call for a command that shows the result: with as_json (--json)
 * it is printed here as JSON and *result is NULL, the command is done;
 * otherwise *result is the result, for the command to show its own way. */
int dm_cli_call_view(struct dm_cli *cli, bool as_json, const char *method, json_t *params,
		     json_t **result, struct dm_err *err);

/*
 * The dot a command acts on: given (--dot or an argument) when not NULL,
 * else the remote's current dot, else the only dot on the server. Checks
 * the name. *out points into cli->dot.
 */
int dm_cli_dot(struct dm_cli *cli, const char *given, const char **out, struct dm_err *err);
/* Makes dot (checked by the caller) the current dot of the remote talked
 * to, and saves the config. */
int dm_cli_set_current_dot(struct dm_cli *cli, const char *dot, struct dm_err *err);
/* "shop" for admin/shop, "ns/shop" otherwise, into cli-independent buf. */
void dm_cli_dot_display(char *buf, size_t size, const char *ns, const char *name);
/* true when a and b name the same dot (either may omit "admin/"). */
bool dm_cli_same_dot(const char *a, const char *b);

/* output.c */

/* Human size: "0 B", "512 B", "1.2 KiB", "3.4 GiB". */
void dm_out_size(char *buf, size_t size, uint64_t bytes);
/* A commit's time (time_ns, else time) as RFC 3339 UTC seconds. */
void dm_out_time(char *buf, size_t size, json_t *commit);
/* Members of a JSON object, "" / 0 when missing or of another type. */
const char *dm_out_str(json_t *obj, const char *key);
uint64_t dm_out_u64(json_t *obj, const char *key);
/* "a,b,c" of array a's strings (or objects' "name"), each once, cut to fit
 * size (a container may use several volumes of one dot). */
void dm_out_join_names(char *buf, size_t size, json_t *a);
/* Pretty JSON of v and a newline on stdout. */
int dm_out_json(json_t *v, struct dm_err *err);
/* Writes s with control characters made visible (\x1b), so a line stays a
 * line and the terminal obeys nothing in it: every text from users that dm
 * prints goes through here. */
void dm_out_clean(FILE *f, const char *s);

/* A table of text cells printed in aligned columns (two spaces apart,
 * the last column unpadded) or, raw, tab-separated. */
struct dm_table {
	size_t ncols;
	size_t nrows;
	char **cells;
};
void dm_table_init(struct dm_table *t, size_t ncols);
void dm_table_release(struct dm_table *t);
/* Adds a row of exactly ncols cells (copied). */
void dm_table_row(struct dm_table *t, ...);
void dm_table_print(const struct dm_table *t, FILE *f, bool raw);

#endif
