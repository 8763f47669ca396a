/*
 * cmd_cluster_status.c - the commands about a cluster's nodes: `dm cluster
 * status` (the nodes, whether each is up, where it listens and what it
 * runs; the node that answers is marked), `dm cluster upgrade` (which
 * nodes run another version than this dm, and what to do about it),
 * `dm dot set-master` (which node masters a branch, for when its master
 * is down), `dm cluster remove` (a node leaves for good; its certificate
 * is refused from then) and `dm cluster rotate-certs` (the next step of
 * the CA's rotation).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/err.h"

#include "util/banned.h"

int dm_cmd_cluster_status(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	bool as_json, raw;
	struct dm_table t;
	json_t *res = NULL, *n;
	size_t i;
	int rc = dm_cli_listing_options(cli, argc, argv, &as_json, &raw, err);

	if (!rc)
		rc = dm_cli_call_view(cli, as_json, "cluster.status", json_object(), &res, err);
	if (rc || !res)
		return rc;
	if (!raw)
		printf("Cluster %s (kv %s)\n", dm_out_str(res, "cluster"), dm_out_str(res, "kv"));
	dm_table_init(&t, 6);
	if (!raw)
		dm_table_row(&t, "", "NODE", "ADDRESS", "STATUS", "VERSION", "ENGINE");
	json_array_foreach(json_object_get(res, "nodes"), i, n)
	{
		dm_table_row(&t, json_is_true(json_object_get(n, "self")) ? "*" : "",
			     dm_out_str(n, "id"), dm_out_str(n, "address"),
			     json_is_true(json_object_get(n, "alive")) ? "up" : "down",
			     dm_out_str(n, "version"), dm_out_str(n, "engine"));
	}
	dm_table_print(&t, stdout, raw);
	dm_table_release(&t);
	json_decref(res);
	return 0;
}

/* Compares two "MAJOR.MINOR.PATCH" versions (missing parts are 0); an
 * unreadable one sorts first. */
static int version_cmp(const char *a, const char *b)
{
	for (int i = 0; i < 3; i++) {
		char *ea, *eb;
		long va = strtol(a, &ea, 10), vb = strtol(b, &eb, 10);

		if (va != vb)
			return va < vb ? -1 : 1;
		a = *ea == '.' ? ea + 1 : ea;
		b = *eb == '.' ? eb + 1 : eb;
	}
	return 0;
}

/* What a node of version v should do, for a dm of version mine. */
static const char *upgrade_action(const char *v, const char *mine, bool alive)
{
	int c = version_cmp(v, mine);

	if (c == 0)
		return "none";
	if (c > 0)
		return "newer than this dm: upgrade dm here";
	return alive ? "upgrade: install this version there, then 'dm cluster stop' and "
		       "'dm cluster start' on it"
		     : "upgrade it before it starts again";
}

int dm_cmd_cluster_upgrade(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	struct dm_table t;
	json_t *res = NULL, *n;
	size_t i, behind = 0, ahead = 0, total = 0;
	int rc = dm_cli_args(cli, argc, argv, 0, 0, "no arguments: dm cluster upgrade", err);

	if (!rc)
		rc = dm_cli_call(cli, "cluster.status", json_object(), &res, err);
	if (rc)
		return rc;
	dm_table_init(&t, 5);
	dm_table_row(&t, "NODE", "ADDRESS", "STATUS", "VERSION", "TO DO");
	json_array_foreach(json_object_get(res, "nodes"), i, n)
	{
		const char *v = dm_out_str(n, "version");
		bool alive = json_is_true(json_object_get(n, "alive"));
		int c = version_cmp(v, DM_VERSION);

		total++;
		behind += c < 0;
		ahead += c > 0;
		dm_table_row(&t, dm_out_str(n, "id"), dm_out_str(n, "address"), alive ? "up" : "down",
			     v, upgrade_action(v, DM_VERSION, alive));
	}
	dm_table_print(&t, stdout, false);
	dm_table_release(&t);
	json_decref(res);
	if (!behind && !ahead) {
		printf("All %zu nodes run dm %s, as this dm: nothing to do.\n", total, DM_VERSION);
		return 0;
	}
	printf("\nUpgrade one node at a time: the others keep serving its branches while\n"
	       "it restarts (a branch it masters waits for it, or 'dm dot set-master').\n"
	       "Until every node runs the same version, the older ones refuse what only\n"
	       "the newer can do.\n");
	return dm_err_set(err, DM_ECONFLICT,
			  "%zu of %zu nodes run an older dm than this one (%s), %zu a newer one",
			  behind, total, DM_VERSION, ahead);
}

int dm_cmd_dot_set_master(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	json_t *res = NULL;
	int rc = dm_cli_args(cli, argc, argv, 3, 3, "DOT BRANCH NODE", err);

	if (!rc)
		rc = dm_cli_call(cli, "cluster.set_master",
				 json_pack("{s:s, s:s, s:s}", "dot", argv[optind], "branch",
					   argv[optind + 1], "node", argv[optind + 2]),
				 &res, err);
	if (rc)
		return rc;
	printf("Branch '%s' of '%s' is mastered by node %s now (was %s)\n",
	       dm_out_str(res, "branch"), dm_out_str(res, "dot"), dm_out_str(res, "master"),
	       dm_out_str(res, "was"));
	json_decref(res);
	return 0;
}

int dm_cmd_cluster_remove(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	json_t *res = NULL;
	int rc = dm_cli_args(cli, argc, argv, 1, 1, "NODE", err);

	if (!rc)
		rc = dm_cli_call(cli, "cluster.remove", json_pack("{s:s}", "node", argv[optind]),
				 &res, err);
	if (rc)
		return rc;
	printf("Removed node %s from the cluster: the other nodes refuse its certificate\n",
	       dm_out_str(res, "node"));
	json_decref(res);
	return 0;
}

/* What each phase of the CA's rotation asks next. */
static const struct {
	const char *phase, *what;
} rotation_next[] = {
	{"trust", "a new CA is made; every node trusts it beside the old one once it restarted"},
	{"renew", "every node gets a certificate of the new CA when it restarts"},
	{"done", "every node trusts the new CA only once it restarted; clients that pinned "
		 "the old CA must pin the new one (dm remote add --fingerprint)"},
};

int dm_cmd_cluster_rotate_certs(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	json_t *res = NULL;
	const char *phase;
	int rc = dm_cli_no_options(cli, argc, argv, err);

	if (!rc)
		rc = dm_cli_call(cli, "cluster.rotate_certs", json_object(), &res, err);
	if (rc)
		return rc;
	phase = dm_out_str(res, "phase");
	for (size_t i = 0; i < sizeof(rotation_next) / sizeof(rotation_next[0]); i++)
		if (!strcmp(phase, rotation_next[i].phase))
			printf("Phase '%s': %s.\n", phase, rotation_next[i].what);
	printf("Restart every node, one at a time (dm cluster stop, then dm cluster start)%s\n",
	       strcmp(phase, "done") ? ", then run 'dm cluster rotate-certs' again"
				     : ": the rotation is over");
	json_decref(res);
	return 0;
}
