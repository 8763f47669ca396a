/*
 * cmd_space.c - the commands about the server's disk space: dm gc
 * (--expire: how long what resets dropped stays), dm df, and dm fsck.
 *
 * Invariants: they only call the server (space.* methods) and print its
 * answer; what is freed, and whether anything is, is the server's.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "util/err.h"

#include "util/banned.h"

int dm_cmd_gc(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"dry-run", no_argument, NULL, 'n'},
		{"expire", required_argument, NULL, 'e'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	bool dry = false, as_json = false;
	char freed[32], disk[32], copied[32];
	json_t *res = NULL, *params;
	int64_t expire_ms = -1;
	int c, rc = 0;

	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0) {
		if (c == 'n')
			dry = true;
		else if (c == 'j')
			as_json = true;
		else if (c == 'e' && !strcmp(optarg, "now"))
			expire_ms = 0;
		else if (c == 'e')
			rc = dm_cli_duration_ms(optarg, "--expire", &expire_ms, err);
		if (rc)
			return rc;
	}
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 0, 0, "", err);
	if (rc)
		return rc;
	params = json_pack("{s:b}", "dry_run", dry);
	if (params && expire_ms >= 0)
		json_object_set_new(params, "expire_ms", json_integer(expire_ms));
	rc = dm_cli_call_view(cli, as_json, "space.gc", params, &res, err);
	if (rc || !res)
		return rc;
	dm_out_size(freed, sizeof(freed), dm_out_u64(res, "freed_object_bytes"));
	dm_out_size(disk, sizeof(disk), dm_out_u64(res, "freed_disk_bytes"));
	dm_out_size(copied, sizeof(copied), dm_out_u64(res, "copied_bytes"));
	if (dm_out_u64(res, "forgotten_commits"))
		printf("forgot %llu commits that no branch reaches\n",
		       (unsigned long long)dm_out_u64(res, "forgotten_commits"));
	printf("%s %llu of %llu objects (%s), rewrote %llu packs (%s copied): %s of disk "
	       "%s\n",
	       dry ? "would free" : "freed", (unsigned long long)dm_out_u64(res, "freed_objects"),
	       (unsigned long long)dm_out_u64(res, "objects"), freed,
	       (unsigned long long)dm_out_u64(res, "packs"), copied, disk,
	       dry ? "would be freed" : "freed");
	json_decref(res);
	return 0;
}

/*
 * dm fsck [--repair] [--json]: starts the check on the server and asks
 * about it every 2 s, saying on stderr how far it got, until it ends; then
 * prints the report. Exit status 0 when clean, corrupt's (5) otherwise.
 */
int dm_cmd_fsck(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	static const struct option opts[] = {
		{"repair", no_argument, NULL, 'r'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	bool repair = false, as_json = false;
	json_t *res = NULL, *rep, *m;
	char bytes[32];
	uint64_t problems;
	json_int_t run = 0;
	size_t i;
	int c, rc;

	while ((c = dm_cli_getopt(cli, argc, argv, "", opts, err)) > 0) {
		if (c == 'r')
			repair = true;
		else if (c == 'j')
			as_json = true;
	}
	if (c < 0)
		return c;
	rc = dm_cli_nargs(cli, argc - optind, 0, 0, "", err);
	while (!rc) {
		json_t *params = run ? json_pack("{s:I}", "run", run)
				     : json_pack("{s:b}", "repair", repair);

		json_decref(res);
		res = NULL;
		rc = dm_cli_call(cli, "space.fsck", params, &res, err);
		if (rc)
			break;
		run = json_integer_value(json_object_get(res, "run"));
		if (json_is_true(json_object_get(res, "done")))
			break;
		rep = json_object_get(res, "progress");
		fprintf(stderr, "fsck: %s: %" PRIu64 " of %" PRIu64 "\n", dm_out_str(rep, "phase"),
			dm_out_u64(rep, "done"), dm_out_u64(rep, "total"));
	}
	if (rc) {
		json_decref(res);
		return rc;
	}
	rep = json_object_get(res, "report");
	if (*dm_out_str(rep, "error")) {
		rc = dm_err_set(err, DM_EIO, "dm fsck failed: %s", dm_out_str(rep, "error"));
		json_decref(res);
		return rc;
	}
	problems = dm_out_u64(rep, "problems");
	if (as_json) {
		rc = dm_out_json(rep, err);
	} else {
		dm_out_size(bytes, sizeof(bytes), dm_out_u64(rep, "bytes"));
		printf("checked %" PRIu64 " objects (%s) in %" PRIu64 " packs, %" PRIu64
		       " commits, %" PRIu64 " branches of %" PRIu64 " dots\n",
		       dm_out_u64(rep, "objects"), bytes, dm_out_u64(rep, "packs"),
		       dm_out_u64(rep, "commits"), dm_out_u64(rep, "branches"),
		       dm_out_u64(rep, "dots"));
		json_array_foreach(json_object_get(rep, "messages"), i, m) {
			fputs("  ", stdout);
			dm_out_clean(stdout, json_string_value(m) ? json_string_value(m) : "");
			putchar('\n');
		}
		if (repair)
			printf("repaired: dropped %" PRIu64 " index entries whose bytes were gone, "
			       "restored %" PRIu64 " objects from the packs, marked %" PRIu64
			       " commits damaged\n",
			       dm_out_u64(rep, "dropped"), dm_out_u64(rep, "restored"),
			       dm_out_u64(rep, "marked"));
		if (dm_out_u64(rep, "damaged_commits"))
			printf("%" PRIu64 " commits are damaged (dm log marks them)\n",
			       dm_out_u64(rep, "damaged_commits"));
		if (dm_out_u64(rep, "dangling"))
			printf("%" PRIu64 " objects that no commit reaches name missing ones "
			       "(the next dm gc frees them)\n",
			       dm_out_u64(rep, "dangling"));
		if (!problems)
			printf("no problems found\n");
	}
	json_decref(res);
	if (!rc && problems)
		rc = dm_err_set(err, DM_ECORRUPT, "%" PRIu64 " problems found%s", problems,
				repair ? " that dm fsck cannot repair"
				       : "; 'dm fsck --repair' repairs what is safe to");
	return rc;
}

int dm_cmd_df(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	char a[32], b[32], c[32];
	struct dm_cli_view v;
	json_t *res = NULL, *st, *wc, *rec, *fs;
	int rc = dm_cli_view_options(cli, argc, argv, 0, &v, err);

	if (!rc)
		rc = dm_cli_nargs(cli, argc - optind, 0, 0, "", err);
	if (!rc)
		rc = dm_cli_call_view(cli, v.as_json, "space.df", json_object(), &res, err);
	if (rc || !res)
		return rc;
	st = json_object_get(res, "store");
	wc = json_object_get(res, "working_copies");
	rec = json_object_get(res, "reclaimable");
	fs = json_object_get(res, "filesystem");
	dm_out_size(a, sizeof(a), dm_out_u64(st, "bytes"));
	dm_out_size(b, sizeof(b), dm_out_u64(st, "received_bytes"));
	printf("store:          %s in %llu packs (%s received, not yet settled)\n", a,
	       (unsigned long long)dm_out_u64(st, "packs"), b);
	dm_out_size(a, sizeof(a), dm_out_u64(wc, "bytes"));
	printf("working copies: %s (%llu dot%s, as last measured)\n", a,
	       (unsigned long long)dm_out_u64(wc, "dots"), dm_out_u64(wc, "dots") == 1 ? "" : "s");
	if (json_is_object(rec)) {
		time_t t = (time_t)(dm_out_u64(rec, "time_ns") / 1000000000ull);
		struct tm tm;
		char when[32] = "";

		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
		dm_out_size(a, sizeof(a), dm_out_u64(rec, "bytes"));
		printf("reclaimable:    %s (by the last %s, %s)\n", a,
		       json_is_true(json_object_get(rec, "dry_run")) ? "dm gc --dry-run" : "dm gc",
		       when);
	} else {
		printf("reclaimable:    unknown ('dm gc --dry-run' measures it)\n");
	}
	dm_out_size(a, sizeof(a), dm_out_u64(fs, "free"));
	dm_out_size(b, sizeof(b), dm_out_u64(fs, "size"));
	dm_out_size(c, sizeof(c), dm_out_u64(fs, "reserve"));
	printf("file system:    %s free of %s; %s of it kept in reserve for deletes and dm gc\n", a,
	       b, c);
	st = json_object_get(res, "auto_gc");
	if (dm_out_u64(st, "threshold")) {
		dm_out_size(a, sizeof(a), dm_out_u64(st, "garbage"));
		dm_out_size(b, sizeof(b), dm_out_u64(st, "threshold"));
		printf("automatic gc:   once deletes make %s of garbage (%s so far; %llu runs)\n",
		       b, a, (unsigned long long)dm_out_u64(st, "runs"));
	} else {
		printf("automatic gc:   off\n");
	}
	json_decref(res);
	return 0;
}
