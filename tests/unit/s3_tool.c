/*
 * s3_tool.c - a small driver of the S3 client (s3/client.h) for
 * tests/e2e/t1121-s3-client.sh against a real S3 server. Not a unit test
 * by itself.
 *
 *   s3_tool ENDPOINT put BUCKET KEY FILE   uploads FILE, prints its ETag
 *   s3_tool ENDPOINT get BUCKET KEY FILE   writes the object to FILE
 *   s3_tool ENDPOINT ls BUCKET [PREFIX]    prints KEY<tab>SIZE<tab>ETAG, every page
 *   s3_tool ENDPOINT rm BUCKET KEY
 *
 * The key id and secret come from $AWS_ACCESS_KEY_ID and
 * $AWS_SECRET_ACCESS_KEY. Always true: a failure prints
 * "s3_tool: DM_E...: message" on stderr and exits with the code's CLI
 * exit status (util/err.h), as dm would.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s3/client.h"
#include "util/err.h"

#include "util/banned.h"

static int list_all(struct dm_s3 *s3, const char *bucket, const char *prefix, struct dm_err *err)
{
	char token[DM_S3_MAX_TOKEN + 1] = "";
	int rc;

	do {
		struct dm_s3_list l;

		rc = dm_s3_list(s3, bucket, prefix, token, &l, err);
		if (rc)
			return rc;
		for (size_t i = 0; i < l.n; i++)
			printf("%s\t%llu\t%s\n", l.objects[i].key,
			       (unsigned long long)l.objects[i].size, l.objects[i].etag);
		snprintf(token, sizeof(token), "%s", l.next_token);
		dm_s3_list_release(&l);
	} while (token[0]);
	return 0;
}

static int run(struct dm_s3 *s3, int argc, char **argv, struct dm_err *err)
{
	const char *cmd = argv[2];
	char etag[DM_S3_MAX_ETAG + 1];
	struct stat st;
	int fd, rc;

	if (!strcmp(cmd, "put") && argc == 6) {
		fd = open(argv[5], O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st))
			return dm_err_errno(err, 2, "cannot open '%s'", argv[5]);
		rc = dm_s3_put(s3, argv[3], argv[4], fd, (uint64_t)st.st_size, etag, err);
		close(fd);
		if (!rc)
			printf("%s\n", etag);
		return rc;
	}
	if (!strcmp(cmd, "get") && argc == 6) {
		fd = open(argv[5], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return dm_err_errno(err, 2, "cannot open '%s'", argv[5]);
		rc = dm_s3_get(s3, argv[3], argv[4], fd, NULL, err);
		close(fd);
		return rc;
	}
	if (!strcmp(cmd, "ls") && (argc == 4 || argc == 5))
		return list_all(s3, argv[3], argc == 5 ? argv[4] : NULL, err);
	if (!strcmp(cmd, "rm") && argc == 5)
		return dm_s3_delete(s3, argv[3], argv[4], err);
	return dm_err_set(err, DM_EINVAL, "usage: s3_tool ENDPOINT put|get|ls|rm BUCKET ...");
}

int main(int argc, char **argv)
{
	struct dm_s3_creds creds = {NULL, NULL, getenv("AWS_ACCESS_KEY_ID"),
				    getenv("AWS_SECRET_ACCESS_KEY")};
	struct dm_s3 *s3 = NULL;
	struct dm_err err;
	int rc;

	dm_err_clear(&err);
	if (argc < 4 || !creds.key_id || !creds.secret) {
		fprintf(stderr, "usage: s3_tool ENDPOINT put|get|ls|rm BUCKET ... (with "
				"$AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY)\n");
		return 2;
	}
	creds.endpoint = argv[1];
	rc = dm_s3_new(&s3, &creds, &err);
	if (!rc)
		rc = run(s3, argc, argv, &err);
	dm_s3_free(s3);
	if (rc) {
		fprintf(stderr, "s3_tool: %s: %s\n", dm_err_name(rc), err.msg);
		return dm_err_exit_status(rc);
	}
	return 0;
}
