/*
 * cmd_dot.c - the `dm dot` group: `dm dot show` describes one dot in detail,
 * `dm dot delete` deletes one, `dm dot fork` copies one into another name
 * (dotmesh's Fork), `dm dot set-upstream` records where it is
 * pushed to and pulled from, `dm dot add-collaborator` shares it (with a
 * role, read or write) and `dm dot remove-collaborator` stops sharing it.
 *
 * Invariants: a delete runs only after a "y" typed on a terminal or with
 * --force; without a terminal and without --force it is refused, so a
 * script never deletes by accident. An upstream is client-side state (the
 * config file, per remote and dot), recorded only for a dot that exists
 * and a remote that is configured.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/err.h"
#include "util/names.h"

#include "util/banned.h"

/* In a cluster: where each node's copy of each branch stands. */
static void show_nodes(json_t *nodes, bool raw)
{
	struct dm_table t;
	json_t *n, *b;
	size_t i, j;

	if (!json_is_array(nodes))
		return;
	dm_table_init(&t, raw ? 5 : 4);
	if (!raw) {
		putchar('\n');
		dm_table_row(&t, "  NODE", "STATUS", "BRANCH", "COPY");
	}
	json_array_foreach(nodes, i, n) {
		char node[64], state[64];
		const char *up = json_is_true(json_object_get(n, "alive")) ? "up" : "down";

		snprintf(node, sizeof(node), "%s %s",
			 json_is_true(json_object_get(n, "self")) ? "*" : " ", dm_out_str(n, "node"));
		json_array_foreach(json_object_get(n, "branches"), j, b) {
			json_t *behind = json_object_get(b, "behind");

			if (json_is_integer(behind))
				snprintf(state, sizeof(state), "lacks %lld commit%s",
					 (long long)json_integer_value(behind),
					 json_integer_value(behind) == 1 ? "" : "s");
			else
				snprintf(state, sizeof(state), "%s", dm_out_str(b, "state"));
			if (raw)
				dm_table_row(&t, "node", node + 2, up, dm_out_str(b, "name"), state);
			else
				dm_table_row(&t, node, up, dm_out_str(b, "name"), state);
		}
	}
	dm_table_print(&t, stdout, raw);
	dm_table_release(&t);
}

/* One "key: value" line, or "key<tab>value" for -H. */
static void field(bool raw, const char *key, const char *value)
{
	if (raw)
		printf("%s\t", key);
	else
		printf("%s:%*s", key, (int)(15 - strlen(key)), "");
	dm_out_clean(stdout, value);
	putchar('\n');
}

static void size_field(bool raw, const char *key, uint64_t v)
{
	char buf[32];

	if (raw)
		snprintf(buf, sizeof(buf), "%" PRIu64, v);
	else
		dm_out_size(buf, sizeof(buf), v);
	field(raw, key, buf);
}

/* How the current branch's head was taken: "frozen for 37 ms (db)". */
static void show_capture(bool raw, json_t *d, const char *branch)
{
	json_t *b, *cap = NULL;
	size_t i;
	char text[600];

	json_array_foreach(json_object_get(d, "branches"), i, b) {
		if (!strcmp(dm_out_str(b, "name"), branch))
			cap = json_object_get(b, "capture");
	}
	if (!*dm_out_str(cap, "how")) {
		field(raw, "captured", raw ? "" : "-");
		return;
	}
	if (json_object_get(cap, "freeze_ms"))
		snprintf(text, sizeof(text), "%s for %" PRIu64 " ms%s%s%s", dm_out_str(cap, "how"),
			 dm_out_u64(cap, "freeze_ms"), *dm_out_str(cap, "frozen") ? " (" : "",
			 dm_out_str(cap, "frozen"), *dm_out_str(cap, "frozen") ? ")" : "");
	else
		snprintf(text, sizeof(text), "%s", dm_out_str(cap, "how"));
	field(raw, "captured", text);
	if (*dm_out_str(cap, "changed"))
		field(raw, "changed", dm_out_str(cap, "changed"));
	if (*dm_out_str(cap, "hooks"))
		field(raw, "hooks run", dm_out_str(cap, "hooks"));
}

/* A hook: "in container db: psql -c CHECKPOINT (timeout 60 s)". */
static void show_hook(bool raw, json_t *d, const char *name)
{
	json_t *h = json_object_get(json_object_get(d, "hooks"), name), *a;
	char text[1024];
	size_t i, len;

	if (!h) {
		field(raw, name, raw ? "" : "none");
		return;
	}
	if (*dm_out_str(h, "container"))
		len = (size_t)snprintf(text, sizeof(text), "in container %s:",
				       dm_out_str(h, "container"));
	else
		len = (size_t)snprintf(text, sizeof(text), "on the host:");
	json_array_foreach(json_object_get(h, "argv"), i, a) {
		if (len < sizeof(text))
			len += (size_t)snprintf(text + len, sizeof(text) - len, " %s",
						json_string_value(a) ? json_string_value(a) : "");
	}
	if (len < sizeof(text))
		snprintf(text + len, sizeof(text) - len, " (timeout %" PRIu64 " ms)",
			 dm_out_u64(h, "timeout_ms"));
	field(raw, name, text);
}

/* What the dot costs (ZFS's referenced, used, written), as the server last
 * counted it; "computing" before it ever did. */
static void show_space(bool raw, json_t *sp)
{
	static const char *const keys[] = {"referenced", "unique", "written"};
	static const char *const notes[] = {"", " (what deleting it frees)",
					    " (since the previous commit)"};

	if (!sp)
		return;
	for (int i = 0; i < 3; i++) {
		char buf[96], size[32];
		json_t *v = json_object_get(sp, keys[i]);

		if (!json_is_integer(v)) {
			field(raw, keys[i], raw ? "" : "computing");
			continue;
		}
		if (raw) {
			snprintf(buf, sizeof(buf), "%" PRIu64, dm_out_u64(sp, keys[i]));
		} else {
			dm_out_size(size, sizeof(size), dm_out_u64(sp, keys[i]));
			snprintf(buf, sizeof(buf), "%s%s%s", size, notes[i],
				 json_is_true(json_object_get(sp, "stale")) ? " (being recounted)"
									   : "");
		}
		field(raw, keys[i], buf);
	}
}

/* KEY<tab>A<tab>B<tab>C of -H. */
static void raw_line_of(const char *key, const char *a, const char *b, const char *c)
{
	printf("%s\t", key);
	dm_out_clean(stdout, a);
	putchar('\t');
	dm_out_clean(stdout, b);
	putchar('\t');
	dm_out_clean(stdout, c);
	putchar('\n');
}

/* Where a fork came from (`dm dot fork`): "forked from: alice/shop at
 * COMMIT"; -H: forkOf<tab>NS/NAME<tab>DOT_ID<tab>COMMIT. Nothing for a dot
 * that is not a fork. */
static void show_fork(json_t *d, bool raw)
{
	json_t *f = json_object_get(d, "fork_of");
	char text[512];

	if (!json_is_object(f))
		return;
	if (raw) {
		raw_line_of("forkOf", dm_out_str(f, "dot"), dm_out_str(f, "id"),
			    dm_out_str(f, "commit"));
		return;
	}
	snprintf(text, sizeof(text), "%s at %s", dm_out_str(f, "dot"),
		 *dm_out_str(f, "commit") ? dm_out_str(f, "commit") : "its start");
	field(false, "forked from", text);
}

/* The read-only copies of commits (dm mount --read-only, volumes
 * DOT@COMMIT): "read-only: COMMIT for HOLDER"; -H:
 * readOnly<tab>COMMIT<tab>HOLDER<tab>PATH. */
static void show_read_only(json_t *d, bool raw)
{
	json_t *h;
	size_t i;
	char text[2048];

	json_array_foreach(json_object_get(d, "read_only"), i, h)
	{
		if (raw) {
			raw_line_of("readOnly", dm_out_str(h, "commit"), dm_out_str(h, "holder"),
				    dm_out_str(h, "path"));
			continue;
		}
		snprintf(text, sizeof(text), "%s for %s", dm_out_str(h, "commit"),
			 dm_out_str(h, "holder"));
		field(false, "read-only", text);
	}
}

/* "bob (write), carol (read)"; for -H "bob:write,carol:read". */
static void join_collaborators(char *buf, size_t size, json_t *list, bool raw)
{
	size_t i, used = 0;
	json_t *c;

	buf[0] = '\0';
	json_array_foreach(list, i, c)
	{
		int n = snprintf(buf + used, size - used, raw ? "%s%s:%s" : "%s%s (%s)",
				 used ? (raw ? "," : ", ") : "", dm_out_str(c, "user"),
				 dm_out_str(c, "role"));

		if (n < 0 || (size_t)n >= size - used)
			break;
		used += (size_t)n;
	}
}

/* dotmesh's "latency" lines of branch b in a cluster: one per node,
 * LATENCY<tab>NODE<tab>master|replica<tab>up|down (dotmesh then listed the
 * commits the node lacked; dm knows how many, shown in the "node" lines). */
static void raw_latency(json_t *nodes, const char *branch)
{
	json_t *n, *b;
	size_t i, j;

	json_array_foreach(nodes, i, n) {
		json_array_foreach(json_object_get(n, "branches"), j, b) {
			if (strcmp(dm_out_str(b, "name"), branch))
				continue;
			printf("latency\t");
			dm_out_clean(stdout, dm_out_str(n, "node"));
			printf("\t%s\t%s\n",
			       !strcmp(dm_out_str(b, "state"), "master") ? "master" : "replica",
			       json_is_true(json_object_get(n, "alive")) ? "up" : "down");
		}
	}
}

/* One KEY<tab>VALUE...<tab>VALUE line of -H. */
static void raw_line(const char *key, int n, ...)
{
	va_list ap;

	fputs(key, stdout);
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		putchar('\t');
		dm_out_clean(stdout, va_arg(ap, const char *));
	}
	va_end(ap);
	putchar('\n');
}

/*
 * `dm dot show -H`: dotmesh's lines first, in its order and with its keys
 * (namespace, name, masterBranchId, selected, commitCount, size, dirty,
 * currentBranch, then per branch "branch ID NAME", the current branch's
 * "container BRANCH NAME" and in a cluster "latency ...", then
 * "defaultUpstreamDot REMOTE NS/DOT"), so that its users' greps and cuts
 * find what they did; then dm's own, whose keys are not dotmesh's.
 */
static void show_raw(json_t *d, bool current, const char *up_remote, const char *up_dot)
{
	const char *branch = dm_out_str(d, "branch"), *master_id = dm_out_str(d, "id");
	json_t *b, *c, *nodes = json_object_get(d, "nodes");
	char buf[64], collabs[1024], containers[1024], subdots[1024], name[DM_DOT_NAME_TEXT_MAX];
	size_t i, j;

	raw_line("namespace", 1, dm_out_str(d, "namespace"));
	raw_line("name", 1, dm_out_str(d, "name"));
	json_array_foreach(json_object_get(d, "branches"), i, b) {
		if (!strcmp(dm_out_str(b, "name"), "master") && *dm_out_str(b, "id"))
			master_id = dm_out_str(b, "id");
	}
	raw_line("masterBranchId", 1, master_id);
	if (current)
		raw_line("selected", 0);
	snprintf(buf, sizeof(buf), "%" PRIu64, dm_out_u64(d, "commits"));
	raw_line("commitCount", 1, buf);
	snprintf(buf, sizeof(buf), "%" PRIu64, dm_out_u64(d, "size"));
	raw_line("size", 1, buf);
	snprintf(buf, sizeof(buf), "%" PRIu64, dm_out_u64(d, "dirty"));
	raw_line("dirty", 1, buf);
	raw_line("currentBranch", 1, branch);
	json_array_foreach(json_object_get(d, "branches"), i, b) {
		const char *bname = dm_out_str(b, "name");

		raw_line("branch", 2, dm_out_str(b, "id"), bname);
		if (!strcmp(bname, branch)) {
			json_array_foreach(json_object_get(d, "containers"), j, c) {
				/* a container of a pinned branch is that branch's */
				if (!*dm_out_str(c, "branch") ||
				    !strcmp(dm_out_str(c, "branch"), bname))
					raw_line("container", 2, bname, dm_out_str(c, "name"));
			}
		}
		raw_latency(nodes, bname);
	}
	if (up_remote)
		raw_line("defaultUpstreamDot", 2, up_remote, up_dot);

	/* dm's own */
	dm_cli_dot_display(name, sizeof(name), dm_out_str(d, "namespace"), dm_out_str(d, "name"));
	raw_line("dot", 1, name);
	raw_line("id", 1, dm_out_str(d, "id"));
	raw_line("state", 1, dm_out_str(d, "state"));
	raw_line("current", 1, current ? "yes" : "no");
	raw_line("server", 1, dm_out_str(d, "server"));
	snprintf(buf, sizeof(buf), "%" PRIu64, dm_out_u64(d, "commits"));
	raw_line("commits", 1, buf);
	snprintf(buf, sizeof(buf), "%" PRIu64, dm_out_u64(d, "indexing"));
	raw_line("indexing", 1, buf);
	show_space(true, json_object_get(d, "space"));
	dm_out_join_names(containers, sizeof(containers), json_object_get(d, "containers"));
	raw_line("containers", 1, containers);
	dm_out_join_names(subdots, sizeof(subdots), json_object_get(d, "subdots"));
	raw_line("subdots", 1, subdots);
	raw_line("owner", 1, dm_out_str(d, "owner"));
	join_collaborators(collabs, sizeof(collabs), json_object_get(d, "collaborators"), true);
	raw_line("collaborators", 1, collabs);
	if (up_remote) {
		char text[DM_NAME_PART_MAX + DM_DOT_NAME_TEXT_MAX + 2];

		snprintf(text, sizeof(text), "%s %s", up_remote, up_dot);
		raw_line("upstream", 1, text);
	} else {
		raw_line("upstream", 1, "");
	}
	show_fork(d, true);
	show_read_only(d, true);
	show_capture(true, d, branch);
	show_hook(true, d, "pre-commit");
	show_hook(true, d, "post-commit");
	raw_line("setuid", 1,
		 json_is_true(json_object_get(d, "strip_setid")) ? "stripped" : "kept");
	dm_cli_warnings(d);
	/* HEAD BRANCH COMMIT COMMITS SIZE DIRTY, for each branch */
	json_array_foreach(json_object_get(d, "branches"), i, b) {
		char commits[32], size[32], dirty[32];

		snprintf(commits, sizeof(commits), "%" PRIu64, dm_out_u64(b, "commits"));
		snprintf(size, sizeof(size), "%" PRIu64, dm_out_u64(b, "size"));
		snprintf(dirty, sizeof(dirty), "%" PRIu64, dm_out_u64(b, "dirty"));
		raw_line("head", 5, dm_out_str(b, "name"), dm_out_str(b, "head"), commits, size,
			 dirty);
	}
	show_nodes(nodes, true);
}

static void show(json_t *d, bool current, const char *upstream)
{
	char name[2 * DM_NAME_PART_MAX + 2], buf[64], containers[1024] = "", collabs[1024];
	char subdots[1024];
	const char *branch = dm_out_str(d, "branch");
	struct dm_table t;
	json_t *b;
	size_t i;
	bool paths = false, spaced;
	const bool raw = false;

	dm_cli_dot_display(name, sizeof(name), dm_out_str(d, "namespace"), dm_out_str(d, "name"));
	dm_out_join_names(containers, sizeof(containers), json_object_get(d, "containers"));
	field(raw, "dot", name);
	field(raw, "id", dm_out_str(d, "id"));
	field(raw, "namespace", dm_out_str(d, "namespace"));
	field(raw, "state", dm_out_str(d, "state"));
	field(raw, "current", current ? "yes" : "no");
	field(raw, "server", dm_out_str(d, "server"));
	field(raw, "branch", branch);
	size_field(raw, "size", dm_out_u64(d, "size"));
	snprintf(buf, sizeof(buf), "%" PRIu64, dm_out_u64(d, "commits"));
	field(raw, "commits", buf);
	size_field(raw, "dirty", dm_out_u64(d, "dirty"));
	show_space(raw, json_object_get(d, "space"));
	/* two-step commits (btrfs): how many are still being indexed */
	if (dm_out_u64(d, "indexing"))
		snprintf(buf, sizeof(buf), "pending for %" PRIu64 " commit%s",
			 dm_out_u64(d, "indexing"), dm_out_u64(d, "indexing") == 1 ? "" : "s");
	else
		snprintf(buf, sizeof(buf), "done");
	field(raw, "indexing", buf);
	field(raw, "containers", *containers ? containers : "none");
	dm_out_join_names(subdots, sizeof(subdots), json_object_get(d, "subdots"));
	field(raw, "subdots", *subdots ? subdots : "none");
	field(raw, "owner", dm_out_str(d, "owner"));
	join_collaborators(collabs, sizeof(collabs), json_object_get(d, "collaborators"), raw);
	field(raw, "collaborators", *collabs ? collabs : "none");
	field(raw, "upstream", *upstream ? upstream : "none");
	show_fork(d, false);
	show_read_only(d, false);
	show_capture(raw, d, branch);
	show_hook(raw, d, "pre-commit");
	show_hook(raw, d, "post-commit");
	/* data a non-admin pushed never makes a setuid or setgid file */
	field(raw, "setuid", json_is_true(json_object_get(d, "strip_setid"))
				     ? "stripped (data pushed by a non-admin)"
				     : "kept");
	dm_cli_warnings(d); /* where the data lives, on stderr */

	/* the PATH column only when the server tells the paths */
	json_array_foreach(json_object_get(d, "branches"), i, b) {
		if (*dm_out_str(b, "path"))
			paths = true;
	}
	/* the space columns only when the server counts them */
	spaced = json_object_get(d, "space") != NULL;
	dm_table_init(&t, (spaced ? 8 : 5) + (paths ? 1 : 0));
	putchar('\n');
	if (spaced)
		dm_table_row(&t, "  BRANCH", "HEAD", "COMMITS", "SIZE", "DIRTY", "REFERENCED", "UNIQUE",
			     "WRITTEN", "PATH");
	else
		dm_table_row(&t, "  BRANCH", "HEAD", "COMMITS", "SIZE", "DIRTY", "PATH");
	json_array_foreach(json_object_get(d, "branches"), i, b) {
		char bname[DM_NAME_PART_MAX + 3], commits[32], size[32], dirty[32];
		char ref[32] = "-", uniq[32] = "-", wr[32] = "-";
		const char *head = dm_out_str(b, "head");
		json_t *sp = json_object_get(b, "space");
		bool cur = !strcmp(dm_out_str(b, "name"), branch);

		snprintf(bname, sizeof(bname), "%s %s", cur ? "*" : " ", dm_out_str(b, "name"));
		snprintf(commits, sizeof(commits), "%" PRIu64, dm_out_u64(b, "commits"));
		dm_out_size(size, sizeof(size), dm_out_u64(b, "size"));
		dm_out_size(dirty, sizeof(dirty), dm_out_u64(b, "dirty"));
		if (sp) {
			dm_out_size(ref, sizeof(ref), dm_out_u64(sp, "referenced"));
			dm_out_size(uniq, sizeof(uniq), dm_out_u64(sp, "unique"));
			dm_out_size(wr, sizeof(wr), dm_out_u64(sp, "written"));
		}
		if (spaced)
			dm_table_row(&t, bname, *head ? head : "-", commits, size, dirty, ref, uniq, wr,
				     dm_out_str(b, "path"));
		else
			dm_table_row(&t, bname, *head ? head : "-", commits, size, dirty,
				     dm_out_str(b, "path"));
	}
	dm_table_print(&t, stdout, false);
	dm_table_release(&t);
	show_nodes(json_object_get(d, "nodes"), false);
}

/* Dot's upstream on the current remote: its remote and its full "ns/dot"
 * (false when it has none). */
static bool upstream_of(struct dm_cli *cli, const char *dot, char *remote, size_t rsize,
			char *up_dot, size_t dsize)
{
	struct dm_config *config;
	struct dm_upstream up;
	struct dm_dot_name n;

	if (dm_cli_config(cli, &config, NULL) || dm_cli_remote(cli, NULL) ||
	    dm_config_upstream(&up, config, cli->remote.name, dot, NULL) ||
	    dm_dot_name_parse(&n, up.dot, NULL))
		return false;
	snprintf(remote, rsize, "%s", up.remote);
	snprintf(up_dot, dsize, "%s/%s", n.ns, n.name);
	return true;
}

int dm_cmd_dot_show(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	const char *given, *dot;
	char upstream[DM_NAME_PART_MAX + DM_DOT_NAME_TEXT_MAX + 2];
	char up_remote[DM_NAME_PART_MAX + 1], up_dot[DM_DOT_NAME_TEXT_MAX];
	struct dm_cli_view v;
	bool as_json, raw, current, have_up;
	json_t *res = NULL;
	int rc;

	rc = dm_cli_view_options(cli, argc, argv, DM_CLI_OPT_RAW | DM_CLI_OPT_DOT, &v, err);
	if (rc)
		return rc;
	given = v.dot;
	as_json = v.as_json;
	raw = v.raw;
	rc = dm_cli_nargs(cli, argc - optind, 0, 1, "", err);
	if (rc)
		return rc;
	if (argc - optind == 1) {
		if (given && strcmp(given, argv[optind]) != 0)
			return dm_cli_usage_error(cli, err, "two different dots: '%s' and --dot '%s'",
						  argv[optind], given);
		given = argv[optind];
	}
	rc = dm_cli_dot(cli, given, &dot, err);
	if (!rc)
		rc = dm_cli_call_view(cli, as_json, "dots.show", json_pack("{s:s}", "dot", dot),
				      &res, err);
	if (rc || !res)
		return rc;
	current = !given || (cli->have_remote && cli->remote.current_dot &&
			     dm_cli_same_dot(cli->remote.current_dot, dot));
	have_up = upstream_of(cli, dot, up_remote, sizeof(up_remote), up_dot, sizeof(up_dot));
	if (raw) {
		show_raw(res, current, have_up ? up_remote : NULL, up_dot);
	} else {
		struct dm_dot_name n;
		char shown[DM_DOT_NAME_TEXT_MAX];

		upstream[0] = '\0';
		if (have_up && !dm_dot_name_parse(&n, up_dot, NULL))
			snprintf(upstream, sizeof(upstream), "%s %s", up_remote,
				 dm_dot_name_text(shown, &n));
		show(res, current, upstream);
	}
	json_decref(res);
	return 0;
}

/* Asks on the terminal; true for "y" or "yes". */
static bool confirm(const char *dot)
{
	char line[64];

	fprintf(stderr,
		"Please confirm that you really want to delete the dot %s and all its commits "
		"[y/N] ",
		dot);
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	line[strcspn(line, "\r\n")] = '\0';
	return !strcasecmp(line, "y") || !strcasecmp(line, "yes");
}

int dm_cmd_dot_delete(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"force", no_argument, NULL, 'f'},
		{NULL, 0, NULL, 0},
	};
	struct dm_dot_name name;
	struct dm_config *config;
	bool force = false;
	const char *dot;
	json_t *res = NULL;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "f", opts, err)) > 0) {
		if (c == 'f')
			force = true;
	}
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 1, 1, "a dot name: dm dot delete [-f] DOT", err);
	if (rc)
		return rc;
	dot = argv[optind];
	rc = dm_dot_name_parse(&name, dot, err);
	if (rc)
		return rc;
	if (!force) {
		if (!isatty(STDIN_FILENO))
			return dm_err_set(err, DM_EINVAL,
					  "refusing to delete '%s' without --force when not on a "
					  "terminal",
					  dot);
		if (!confirm(dot))
			return dm_err_set(err, DM_ECANCELED, "not deleting '%s'", dot);
	}
	rc = dm_cli_call(cli, "dots.delete", json_pack("{s:s}", "dot", dot), &res, err);
	json_decref(res);
	if (rc)
		return rc;
	/* the deleted dot is no one's current dot any more */
	if (cli->remote.current_dot && dm_cli_same_dot(cli->remote.current_dot, dot)) {
		rc = dm_cli_config(cli, &config, err);
		if (!rc)
			rc = dm_config_set_current_dot(config, cli->remote.name, NULL, err);
		if (!rc)
			rc = dm_config_save(config, err);
		cli->have_remote = false;
	}
	return rc;
}

/* One line of dm dot prune's report: "keep   ID  DATE  (reasons)  MESSAGE". */
static void prune_line(const char *what, json_t *c)
{
	char date[64];

	dm_out_time(date, sizeof(date), c);
	printf("  %-6s ", what);
	dm_out_clean(stdout, dm_out_str(c, "id"));
	printf("  %s  ", date);
	if (*dm_out_str(c, "reasons"))
		printf("(%s)  ", dm_out_str(c, "reasons"));
	dm_out_clean(stdout, dm_out_str(c, "message"));
	putchar('\n');
}

/*
 * dm dot prune [DOT] --keep-last N ... [--dry-run] [--json]: restic's
 * forget rules for each branch; the server decides and marks, this prints
 * what it kept and pruned.
 */
int dm_cmd_dot_prune(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"keep-last", required_argument, NULL, OPT_KEEP_LAST},
		{"keep-hourly", required_argument, NULL, OPT_KEEP_HOURLY},
		{"keep-daily", required_argument, NULL, OPT_KEEP_DAILY},
		{"keep-weekly", required_argument, NULL, OPT_KEEP_WEEKLY},
		{"keep-monthly", required_argument, NULL, OPT_KEEP_MONTHLY},
		{"keep-yearly", required_argument, NULL, OPT_KEEP_YEARLY},
		{"keep-within", required_argument, NULL, OPT_KEEP_WITHIN},
		{"dry-run", no_argument, NULL, OPT_DRY_RUN},
		{"json", no_argument, NULL, OPT_JSON},
		{NULL, 0, NULL, 0},
	};
	static const char *const keys[] = {"keep_last",    "keep_hourly",  "keep_daily",
					   "keep_weekly",  "keep_monthly", "keep_yearly"};
	json_t *params = json_object(), *res = NULL, *b, *c;
	bool dry = false, as_json = false, any = false;
	const char *dot;
	size_t i, j;
	int ch, rc = 0;

	while ((ch = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0 && !rc) {
		if (ch >= OPT_KEEP_LAST && ch <= OPT_KEEP_YEARLY) {
			char *end = NULL;
			long long n;

			errno = 0;
			n = strtoll(optarg, &end, 10);
			if (errno || end == optarg || *end || n < -1 || n == 0)
				rc = dm_cli_usage_error(cli, err,
							"invalid --%s '%s': give a count of 1 or "
							"more (-1: no limit)",
							opts[ch - OPT_KEEP_LAST].name, optarg);
			else
				json_object_set_new(params, keys[ch - OPT_KEEP_LAST],
						    json_integer(n));
			any = true;
		} else if (ch == OPT_KEEP_WITHIN) {
			int64_t ms = 0;

			rc = dm_cli_duration_ms(optarg, "--keep-within", &ms, err);
			if (!rc)
				json_object_set_new(params, "keep_within_ms",
						    json_integer((json_int_t)ms));
			any = true;
		} else if (ch == OPT_DRY_RUN) {
			dry = true;
		} else if (ch == OPT_JSON) {
			as_json = true;
		}
	}
	if (!rc && ch < 0)
		rc = ch;
	if (!rc)
		rc = dm_cli_nargs(cli, argc - optind, 0, 1, "", err);
	if (!rc && !any)
		rc = dm_cli_usage_error(cli, err,
					"say what to keep: --keep-last N, --keep-daily N, "
					"--keep-within DURATION...");
	if (!rc)
		rc = dm_cli_dot(cli, argc - optind == 1 ? argv[optind] : NULL, &dot, err);
	if (rc) {
		json_decref(params);
		return rc;
	}
	json_object_set_new(params, "dot", json_string(dot));
	json_object_set_new(params, "dry_run", json_boolean(dry));
	rc = dm_cli_call_view(cli, as_json, "dots.prune", params, &res, err);
	if (rc || !res)
		return rc;
	json_array_foreach(json_object_get(res, "branches"), i, b) {
		printf("branch ");
		dm_out_clean(stdout, dm_out_str(b, "name"));
		printf(": %zu kept, %zu %s\n", json_array_size(json_object_get(b, "keep")),
		       json_array_size(json_object_get(b, "prune")), dry ? "to prune" : "pruned");
		json_array_foreach(json_object_get(b, "keep"), j, c)
			prune_line("keep", c);
		json_array_foreach(json_object_get(b, "prune"), j, c)
			prune_line("prune", c);
	}
	if (dry)
		printf("would prune %" PRIu64 " commits\n", dm_out_u64(res, "pruned"));
	else
		printf("pruned %" PRIu64 " commits; the next 'dm gc' frees their data\n",
		       dm_out_u64(res, "pruned"));
	json_decref(res);
	return 0;
}

int dm_cmd_dot_set_upstream(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"unset", no_argument, NULL, 'u'},
		{NULL, 0, NULL, 0},
	};
	struct dm_config *config;
	struct dm_remote r;
	struct dm_dot_name n;
	const char *given = NULL, *dot, *remote = NULL, *up_dot = NULL;
	char full[DM_DOT_NAME_TEXT_MAX];
	bool unset = false;
	json_t *res = NULL;
	int c, nargs, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0) {
		if (c == 'u')
			unset = true;
	}
	if (c < 0)
		return c;
	nargs = argc - optind;
	argv += optind;
	if (unset) {
		rc = dm_cli_nargs(cli, nargs, 0, 1, "", err);
		given = nargs ? argv[0] : NULL;
	} else {
		rc = dm_cli_nargs(cli, nargs, 2, 3, "a remote and a dot: [DOT] REMOTE [NS/]DOT",
				  err);
		given = nargs == 3 ? argv[0] : NULL;
		remote = argv[nargs - 2];
		up_dot = argv[nargs - 1];
	}
	if (rc)
		return rc;
	if (up_dot && (rc = dm_dot_name_parse(&n, up_dot, err)))
		return rc;
	rc = dm_cli_remote(cli, err);
	if (!rc)
		rc = dm_cli_dot(cli, given, &dot, err);
	if (!rc)
		rc = dm_cli_config(cli, &config, err);
	if (!rc && remote)
		rc = dm_config_remote(&r, config, remote, err);
	if (rc)
		return rc;
	if (remote && !strcmp(remote, cli->remote.name))
		return dm_err_set(err, DM_EINVAL,
				  "the upstream of a dot of remote '%s' must be on another remote",
				  remote);
	/* a name without namespace is in the remote user's (as in dotmesh) */
	if (up_dot && !strchr(up_dot, '/')) {
		snprintf(full, sizeof(full), "%s/%s", r.user, up_dot);
		up_dot = full;
	}
	/* only a dot that exists gets an upstream */
	rc = dm_cli_call(cli, "dots.show", json_pack("{s:s}", "dot", dot), &res, err);
	json_decref(res);
	if (!rc)
		rc = dm_config_set_upstream(config, cli->remote.name, dot, remote, up_dot, err);
	if (!rc)
		rc = dm_config_save(config, err);
	cli->have_remote = false; /* its strings may have moved */
	return rc;
}

/* The [DOT] USER arguments of add-collaborator and remove-collaborator,
 * after the options: the dot (default the current one) and the user. */
static int dot_user_args(struct dm_cli *cli, int argc, char **argv, const char **dot,
			 const char **user, struct dm_err *err)
{
	int nargs = argc - optind, rc;

	rc = dm_cli_nargs(cli, nargs, 1, 2, "a user name: [DOT] USER", err);
	if (rc)
		return rc;
	*user = argv[optind + nargs - 1];
	if (!dm_name_part_valid(*user, strlen(*user)))
		return dm_err_set(err, DM_EINVAL, "invalid user name '%s'", *user);
	return dm_cli_dot(cli, nargs == 2 ? argv[optind] : NULL, dot, err);
}

int dm_cmd_dot_add_collaborator(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"role", required_argument, NULL, OPT_ROLE},
		{NULL, 0, NULL, 0},
	};
	const char *dot, *user, *role = "write";
	json_t *res = NULL;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0)
		role = optarg;
	if (c < 0)
		return c;
	if (strcmp(role, "read") && strcmp(role, "write"))
		return dm_cli_usage_error(cli, err, "invalid role '%s': use read or write", role);
	rc = dot_user_args(cli, argc, argv, &dot, &user, err);
	if (!rc)
		rc = dm_cli_call(
			cli, "dots.add_collaborator",
			json_pack("{s:s, s:s, s:s}", "dot", dot, "user", user, "role", role), &res,
			err);
	json_decref(res);
	return rc;
}

int dm_cmd_dot_remove_collaborator(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	const char *dot, *user;
	json_t *res = NULL;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "", NULL, err)) > 0)
		;
	if (c < 0)
		return c;
	rc = dot_user_args(cli, argc, argv, &dot, &user, err);
	if (!rc)
		rc = dm_cli_call(cli, "dots.remove_collaborator",
				 json_pack("{s:s, s:s}", "dot", dot, "user", user), &res, err);
	json_decref(res);
	return rc;
}

/*
 * dm dot set-hook DOT HOOK [--container NAME] [--timeout DURATION] -- CMD...
 * dm dot set-hook DOT HOOK --remove
 * Everything after "--" is the command, as it is: its own options are
 * never taken for ours.
 */
int dm_cmd_dot_set_hook(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"container", required_argument, NULL, OPT_CONTAINER},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"remove", no_argument, NULL, OPT_REMOVE},
		{NULL, 0, NULL, 0},
	};
	const char *container = NULL, *dot, *hook_name;
	int64_t timeout_ms = 0;
	bool remove = false;
	json_t *hook = NULL, *cmd, *res = NULL;
	int c, rc = 0, n = 1, nopts;

	while (n < argc && strcmp(argv[n], "--"))
		n++;
	nopts = n; /* options and arguments before "--" */
	while ((c = dm_cli_getopt(cli, nopts, argv, "", opts, err)) > 0) {
		if (c == OPT_CONTAINER)
			container = optarg;
		else if (c == OPT_TIMEOUT && !rc)
			rc = dm_cli_duration_ms(optarg, "--timeout", &timeout_ms, err);
		else if (c == OPT_REMOVE)
			remove = true;
	}
	if (c < 0)
		return c;
	if (rc)
		return rc;
	rc = dm_cli_nargs(cli, nopts - optind, 2, 2, "a dot and a hook: DOT pre-commit|post-commit",
			  err);
	if (rc)
		return rc;
	hook_name = argv[optind + 1];
	if (strcmp(hook_name, "pre-commit") && strcmp(hook_name, "post-commit"))
		return dm_cli_usage_error(cli, err, "no hook '%s': use pre-commit or post-commit",
					  hook_name);
	if (remove && (n < argc || container || timeout_ms))
		return dm_cli_usage_error(cli, err, "--remove takes no command and no options");
	if (!remove && n + 1 >= argc)
		return dm_cli_usage_error(cli, err,
					  "give the command after '--': dm dot set-hook DOT %s -- "
					  "CMD [ARG]...",
					  hook_name);
	rc = dm_cli_dot(cli, argv[optind], &dot, err);
	if (rc)
		return rc;
	if (!remove) {
		cmd = json_array();
		for (int i = n + 1; i < argc; i++)
			json_array_append_new(cmd, json_string(argv[i]));
		hook = json_pack("{s:o}", "argv", cmd);
		if (container)
			json_object_set_new(hook, "container", json_string(container));
		if (timeout_ms)
			json_object_set_new(hook, "timeout_ms", json_integer((json_int_t)timeout_ms));
	}
	rc = dm_cli_call(cli, "dots.set_hook",
			 json_pack("{s:s, s:s, s:o}", "dot", dot, "name", hook_name, "hook",
				   hook ? hook : json_null()),
			 &res, err);
	json_decref(res);
	return rc;
}

/* dm dot fork DOT NEWNAME [--namespace NS]: NEWNAME without NS (and
 * without --namespace) is in the namespace of the user the remote is used
 * as, as dotmesh's forks went into their maker's namespace. */
int dm_cmd_dot_fork(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"namespace", required_argument, NULL, OPT_NAMESPACE},
		{NULL, 0, NULL, 0},
	};
	char fork[DM_DOT_NAME_TEXT_MAX], shown[DM_DOT_NAME_TEXT_MAX];
	const char *ns = NULL, *origin, *newname;
	struct dm_dot_name n;
	json_t *res = NULL;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0)
		ns = optarg;
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 2, 2, "a dot and a new name: DOT NEWNAME", err);
	if (rc)
		return rc;
	origin = argv[optind];
	newname = argv[optind + 1];
	rc = dm_dot_name_parse(&n, origin, err);
	if (!rc)
		rc = dm_dot_name_parse(&n, newname, err);
	if (!rc && ns && strchr(newname, '/'))
		rc = dm_cli_usage_error(cli, err, "give the namespace once: '%s' or --namespace",
					newname);
	if (!rc && ns && !dm_name_part_valid(ns, strlen(ns)))
		rc = dm_err_set(err, DM_EINVAL, "invalid namespace '%s'", ns);
	if (!rc)
		rc = dm_cli_remote(cli, err);
	if (rc)
		return rc;
	if (strchr(newname, '/'))
		snprintf(fork, sizeof(fork), "%s", newname);
	else
		snprintf(fork, sizeof(fork), "%s/%s", ns ? ns : cli->remote.user, newname);
	rc = dm_cli_call(cli, "dots.fork", json_pack("{s:s, s:s}", "dot", origin, "fork", fork),
			 &res, err);
	if (rc)
		return rc;
	dm_cli_dot_display(shown, sizeof(shown), dm_out_str(res, "namespace"),
			   dm_out_str(res, "name"));
	printf("Forked '%s' into '%s' (id %s)\n", origin, shown, dm_out_str(res, "id"));
	json_decref(res);
	return 0;
}
