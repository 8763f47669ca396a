/*
 * fuzz_config.c - libFuzzer target for the client's config file
 * (client/config.h: ~/.dm/config, JSON), which dm reads on every command
 * and which a user may edit by hand. The input is the file.
 *
 * Whatever dm_config_load accepts must hold its promises: every remote it
 * lists can be looked up with its required fields set and a port in range
 * (an S3 endpoint's with its own, never as a dm server nor as current),
 * so can the current remote when it exists, upstreams can be asked for,
 * a remote written back with dm_config_set_remote reads the same, the
 * config dm saves loads again, and a remote can be removed with its
 * upstreams; a refusal is DM_ECORRUPT (or DM_ENOMEM) and leaves nothing
 * allocated. The files live in a directory of their own under $TMPDIR
 * (or /tmp), removed at exit.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/config.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256], in_path[300];

static void remove_dir(void)
{
	unlink(in_path);
	rmdir(dir);
}

static void make_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/dm-fuzz-config-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	snprintf(in_path, sizeof(in_path), "%s/in", dir);
	atexit(remove_dir);
}

static void write_input(const uint8_t *data, size_t size)
{
	int fd = open(in_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
}

static void check_remote(const struct dm_remote *r)
{
	if (!r->name || !r->user || !r->host || !r->api_key || r->port < 1 || r->port > 65535)
		abort();
}

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* r written back into c (from copies: r's strings are c's) reads the same. */
static void rewrite(struct dm_config *c, const struct dm_remote *r)
{
	struct dm_remote w = *r, back;
	char *s[7] = {dm_xstrdup(r->name),
		      dm_xstrdup(r->user),
		      dm_xstrdup(r->host),
		      dm_xstrdup(r->api_key),
		      r->socket ? dm_xstrdup(r->socket) : NULL,
		      r->data_dir ? dm_xstrdup(r->data_dir) : NULL,
		      r->current_dot ? dm_xstrdup(r->current_dot) : NULL};
	struct dm_err err;

	w.name = s[0];
	w.user = s[1];
	w.host = s[2];
	w.api_key = s[3];
	w.socket = s[4];
	w.data_dir = s[5];
	w.current_dot = s[6];
	if (dm_config_set_remote(c, &w, &err) == 0) {
		if (dm_config_remote(&back, c, w.name, &err))
			abort();
		if (!same(back.user, w.user) || !same(back.host, w.host) || back.port != w.port ||
		    !same(back.api_key, w.api_key) || !same(back.socket, w.socket) ||
		    !same(back.data_dir, w.data_dir) || !same(back.current_dot, w.current_dot))
			abort();
	}
	for (size_t i = 0; i < 7; i++)
		free(s[i]);
}

/* An S3 remote reads with its members, is refused as a dm server and as
 * the current remote, and (write_back) writes back the same, which
 * changes c. */
static void check_s3_remote(struct dm_config *c, const char *name, bool write_back)
{
	struct dm_s3_remote s3, back;
	char *key, *secret, *endpoint, *region;
	struct dm_remote r;
	struct dm_err err;

	if (dm_config_s3_remote(&s3, c, name, &err) || !s3.key_id || !s3.secret ||
	    !s3.endpoint || strcmp(s3.name, name))
		abort();
	if (dm_config_remote(&r, c, name, &err) != DM_EUNSUPPORTED ||
	    dm_config_set_current_remote(c, name, &err) != DM_EINVAL)
		abort();
	if (!write_back)
		return;
	/* copies: the strings read live only until the config changes */
	key = dm_xstrdup(s3.key_id);
	secret = dm_xstrdup(s3.secret);
	endpoint = dm_xstrdup(s3.endpoint);
	region = s3.region ? dm_xstrdup(s3.region) : NULL;
	s3 = (struct dm_s3_remote){name, key, secret, endpoint, region};
	if (dm_config_set_s3_remote(c, &s3, &err) || dm_config_s3_remote(&back, c, name, &err) ||
	    strcmp(back.key_id, key) || strcmp(back.secret, secret) ||
	    strcmp(back.endpoint, endpoint) ||
	    (region ? !back.region || strcmp(back.region, region) : back.region != NULL))
		abort();
	free(key);
	free(secret);
	free(endpoint);
	free(region);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dm_config *c = NULL, *again = NULL;
	const char **names = NULL;
	const char *cur;
	size_t n = 0;
	struct dm_err err;
	int rc;

	if (!dir[0])
		make_dir();
	write_input(data, size);
	rc = dm_config_load(&c, in_path, &err);
	if (rc) {
		if (c || (rc != DM_ECORRUPT && rc != DM_ENOMEM))
			abort();
		return 0;
	}
	cur = dm_config_current_remote(c);
	dm_config_remote_names(c, &names, &n);
	if (cur) {
		/* the current remote may name one that is gone: asking for it
		 * is then an error, not a crash */
		struct dm_remote r;

		if (dm_config_remote(&r, c, NULL, &err) == 0)
			check_remote(&r);
	}
	for (size_t i = 0; i < n; i++) {
		struct dm_remote r;
		struct dm_upstream up;

		if (dm_config_remote_kind(c, names[i]) == DM_REMOTE_S3) {
			check_s3_remote(c, names[i], false);
			continue;
		}
		if (dm_config_remote_kind(c, names[i]) != DM_REMOTE_DMD ||
		    dm_config_remote(&r, c, names[i], &err))
			abort();
		check_remote(&r);
		if (r.current_dot)
			(void)dm_config_upstream(&up, c, r.name, r.current_dot, &err);
	}
	free(names);
	dm_config_remote_names(c, &names, &n);
	for (size_t i = 0; i < n; i++) {
		struct dm_remote r;

		if (dm_config_remote_kind(c, names[i]) == DM_REMOTE_S3) {
			check_s3_remote(c, names[i], true);
			break; /* names may not live past a change */
		}
		if (dm_config_remote(&r, c, names[i], &err))
			abort();
		rewrite(c, &r);
		break;
	}
	free(names);
	/* what dm writes, it reads; then every remote goes, upstreams too */
	if (dm_config_save(c, &err))
		abort();
	dm_config_free(c);
	if (dm_config_load(&again, in_path, &err))
		abort();
	dm_config_remote_names(again, &names, &n);
	{
		/* the names live only until the config changes */
		char **copies = dm_xcalloc(n + 1, sizeof(*copies));

		for (size_t i = 0; i < n; i++)
			copies[i] = dm_xstrdup(names[i]);
		free(names);
		for (size_t i = 0; i < n; i++) {
			if (dm_config_remove_remote(again, copies[i], &err))
				abort();
			free(copies[i]);
		}
		free(copies);
	}
	dm_config_free(again);
	return 0;
}
