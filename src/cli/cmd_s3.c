/*
 * cmd_s3.c - the `dm s3` group: S3 endpoints as remotes (dotmesh's
 * `dm s3 remote add NAME KEY_ID[:SECRET][@ENDPOINT]`).
 *
 * Invariants: an S3 remote is saved only after the endpoint accepted a
 * request signed with its key id and secret (a ListBuckets), so one in the
 * config worked at least once; the secret comes from the argument (as in
 * dotmesh), $DM_S3_SECRET, a piped standard input or the terminal with
 * echo off; an S3 remote never becomes the current remote.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "client/config.h"
#include "s3/client.h"
#include "util/err.h"

#include "util/banned.h"

#define S3_DEFAULT_ENDPOINT "https://s3.amazonaws.com"
#define S3_KEY_ID_MAX       128
#define S3_SECRET_MAX       256
#define S3_ENDPOINT_MAX     512

/* KEY_ID[:SECRET][@ENDPOINT] split and checked: the key id ends at the
 * first ':', the endpoint starts after the last '@' (a secret may hold
 * either, an endpoint neither); an endpoint without a scheme is https. */
struct s3_spec {
	char key_id[S3_KEY_ID_MAX + 1];
	char secret[S3_SECRET_MAX + 1]; /* "" when not given */
	char endpoint[S3_ENDPOINT_MAX + 1];
};

static int bad_spec(const char *why, struct dm_err *err)
{
	return dm_err_set(err, DM_EINVAL, "invalid S3 address: %s; use KEY_ID[:SECRET][@ENDPOINT]",
			  why);
}

static int parse_spec(struct s3_spec *out, const char *spec, struct dm_err *err)
{
	const char *at = strrchr(spec, '@'), *colon;
	size_t cred_len = at ? (size_t)(at - spec) : strlen(spec), id_len;

	memset(out, 0, sizeof(*out));
	colon = memchr(spec, ':', cred_len);
	id_len = colon ? (size_t)(colon - spec) : cred_len;
	if (!id_len || id_len > S3_KEY_ID_MAX)
		return bad_spec("the key id must be 1 to 128 characters", err);
	for (size_t i = 0; i < id_len; i++)
		if ((unsigned char)spec[i] < 0x21 || (unsigned char)spec[i] > 0x7e)
			return bad_spec("the key id has a character it cannot have", err);
	memcpy(out->key_id, spec, id_len);
	if (colon) {
		size_t n = cred_len - id_len - 1;

		if (!n || n > S3_SECRET_MAX)
			return bad_spec("the secret after ':' must be 1 to 256 characters", err);
		memcpy(out->secret, colon + 1, n);
	}
	if (!at) {
		snprintf(out->endpoint, sizeof(out->endpoint), "%s", S3_DEFAULT_ENDPOINT);
		return 0;
	}
	if (!at[1])
		return bad_spec("no endpoint after '@'", err);
	for (const char *p = at + 1; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			return bad_spec("the endpoint has a character it cannot have", err);
	if (strlen(at + 1) + 8 > S3_ENDPOINT_MAX)
		return bad_spec("the endpoint is too long", err);
	snprintf(out->endpoint, sizeof(out->endpoint), "%s%s",
		 strstr(at + 1, "://") ? "" : "https://", at + 1);
	if (strncmp(out->endpoint, "http://", 7) && strncmp(out->endpoint, "https://", 8))
		return bad_spec("the endpoint must be http:// or https://", err);
	return 0;
}

/* Whether the endpoint accepts the key id and secret. */
static int check_endpoint(const struct dm_s3_remote *r, struct dm_err *err)
{
	struct dm_s3_creds creds = {r->endpoint, r->region, r->key_id, r->secret};
	struct dm_s3 *s3 = NULL;
	int rc = dm_s3_new(&s3, &creds, err);

	if (!rc)
		rc = dm_s3_check(s3, err);
	dm_s3_free(s3);
	if (rc)
		dm_err_prefix(err, "nothing was saved");
	return rc;
}

int dm_cmd_s3_remote_add(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	struct dm_config *config;
	struct dm_s3_remote r;
	struct s3_spec spec;
	const char *name;
	int rc;

	rc = dm_cli_args(cli, argc, argv, 2, 2, "a name and KEY_ID[:SECRET][@ENDPOINT]", err);
	if (rc)
		return rc;
	name = argv[optind];
	rc = dm_cli_check_remote_name(name, err);
	if (!rc)
		rc = parse_spec(&spec, argv[optind + 1], err);
	if (!rc)
		rc = dm_cli_config(cli, &config, err);
	if (rc)
		goto done;
	if (dm_config_remote_kind(config, name) != DM_REMOTE_NONE) {
		rc = dm_err_set(err, DM_EEXISTS,
				"remote '%s' exists already; remove it first with 'dm remote rm %s'",
				name, name);
		goto done;
	}
	if (!spec.secret[0]) {
		rc = dm_cli_read_secret(spec.secret, sizeof(spec.secret), "DM_S3_SECRET",
					"S3 secret", name, spec.endpoint, err);
		if (rc)
			goto done;
	}
	memset(&r, 0, sizeof(r));
	r.name = name;
	r.key_id = spec.key_id;
	r.secret = spec.secret;
	r.endpoint = spec.endpoint;
	r.region = getenv("DM_S3_REGION");
	if (r.region && !r.region[0])
		r.region = NULL;
	rc = check_endpoint(&r, err);
	if (!rc)
		rc = dm_config_set_s3_remote(config, &r, err);
	if (!rc)
		rc = dm_config_save(config, err);
	if (!rc)
		printf("Added S3 remote '%s': %s at %s\n", name, spec.key_id, spec.endpoint);
done:
	explicit_bzero(&spec, sizeof(spec));
	return rc;
}
