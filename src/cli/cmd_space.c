/*
 * cmd_space.c - the commands about the server's disk space: dm gc
 * (--expire: how long what resets dropped stays) and dm df.
 *
 * Invariants: they only call the server (space.* methods) and print its
 * answer; what is freed, and whether anything is, is the server's.
 */
#include <getopt.h>
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
