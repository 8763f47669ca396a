/*
 * docker.c - the Docker Engine API (or podman's copy of it) over a unix
 * socket, through libcurl: list the containers that use a volume, stop and
 * start them.
 *
 * Invariants: every request has a connect deadline of 2 s and an overall
 * one (the stop timeout plus 10 s); answers are bounded (1 MiB) and parsed
 * as untrusted JSON. A handle keeps no connection: each call is
 * independent, so it can be shared by threads.
 */
#include "server/dots/docker.h"
#include "util/buf.h"
#include "util/err.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

#define API "http://localhost/v1.41"
#define MAX_ANSWER (1u << 20)

struct dm_docker {
	char *socket;
};

int dm_docker_new(struct dm_docker **out, const char *socket_path, struct dm_err *err)
{
	struct dm_docker *d;

	if (!socket_path || !socket_path[0])
		return dm_err_set(err, DM_EINVAL, "no Docker socket given");
	d = dm_xcalloc(1, sizeof(*d));
	d->socket = dm_xstrdup(socket_path);
	*out = d;
	return 0;
}

void dm_docker_free(struct dm_docker *d)
{
	if (!d)
		return;
	free(d->socket);
	free(d);
}

const char *dm_docker_socket(const struct dm_docker *d)
{
	return d->socket;
}

static size_t collect(char *data, size_t size, size_t n, void *p)
{
	struct dm_buf *b = p;

	return dm_buf_add(b, data, size * n) ? 0 : size * n;
}

/* One request; *status the HTTP status; answer appended to out. */
static int request(struct dm_docker *d, const char *method, const char *path, long timeout_s,
		   long *status, struct dm_buf *out, struct dm_err *err)
{
	CURL *c = curl_easy_init();
	char url[1024];
	CURLcode cc;
	int rc = 0;

	if (!c)
		return dm_err_set(err, DM_ENOMEM, "cannot start a Docker API request");
	snprintf(url, sizeof(url), API "%s", path);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->socket);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 2L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK)
		rc = dm_err_set(err, DM_EUNAVAILABLE, "cannot reach the Docker API at '%s': %s",
				d->socket, curl_easy_strerror(cc));
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	return rc;
}

int dm_docker_containers_using(struct dm_docker *d, const char *volume,
			       struct dm_container **out, size_t *n, struct dm_err *err)
{
	struct dm_buf b;
	char *filter = NULL, path[900];
	json_t *list = NULL, *v;
	struct dm_container *cs = NULL;
	long status = 0;
	size_t i, count = 0;
	int rc;
	CURL *c = curl_easy_init();
	json_t *f = json_pack("{s:[s]}", "volume", volume);
	char *fs = json_dumps(f, JSON_COMPACT);

	dm_buf_init(&b, MAX_ANSWER);
	filter = c && fs ? curl_easy_escape(c, fs, 0) : NULL;
	free(fs);
	json_decref(f);
	if (!filter) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto done;
	}
	snprintf(path, sizeof(path), "/containers/json?all=1&filters=%s", filter);
	rc = request(d, "GET", path, 10, &status, &b, err);
	if (rc)
		goto done;
	if (status != 200) {
		rc = dm_err_set(err, DM_EPROTO, "the Docker API answered %ld listing containers",
				status);
		goto done;
	}
	list = json_loadb((const char *)b.data, b.len, 0, NULL);
	if (!json_is_array(list)) {
		rc = dm_err_set(err, DM_EPROTO, "the Docker API sent a malformed container list");
		goto done;
	}
	cs = dm_xcalloc(json_array_size(list) + 1, sizeof(*cs));
	json_array_foreach(list, i, v)
	{
		const char *id = json_string_value(json_object_get(v, "Id"));
		const char *state = json_string_value(json_object_get(v, "State"));
		const char *name = json_string_value(json_array_get(json_object_get(v, "Names"), 0));

		if (!id)
			continue;
		snprintf(cs[count].id, sizeof(cs[count].id), "%s", id);
		snprintf(cs[count].name, sizeof(cs[count].name), "%s",
			 name ? (name[0] == '/' ? name + 1 : name) : id);
		cs[count].running = state && !strcmp(state, "running");
		count++;
	}
	*out = cs;
	*n = count;
	cs = NULL;
done:
	free(cs);
	json_decref(list);
	if (filter)
		curl_free(filter);
	if (c)
		curl_easy_cleanup(c);
	dm_buf_release(&b);
	return rc;
}

int dm_docker_container_name(struct dm_docker *d, const char *id, char *out, size_t size,
			     struct dm_err *err)
{
	struct dm_buf b;
	char path[512];
	json_t *j;
	long status = 0;
	int rc;

	dm_buf_init(&b, MAX_ANSWER);
	snprintf(path, sizeof(path), "/containers/%.128s/json", id);
	rc = request(d, "GET", path, 10, &status, &b, err);
	if (!rc && status != 200)
		rc = dm_err_set(err, DM_ENOTFOUND, "no container '%s'", id);
	if (!rc) {
		const char *name;

		j = json_loadb((const char *)b.data, b.len, 0, NULL);
		name = json_string_value(json_object_get(j, "Name"));
		if (name)
			snprintf(out, size, "%s", name[0] == '/' ? name + 1 : name);
		else
			rc = dm_err_set(err, DM_EPROTO, "the Docker API sent no name for '%s'", id);
		json_decref(j);
	}
	dm_buf_release(&b);
	return rc;
}

/* stop and start: 204 done, 304 already so; anything else fails. */
static int act(struct dm_docker *d, const char *id, const char *verb, int timeout_s,
	       struct dm_err *err)
{
	struct dm_buf b;
	char path[512];
	long status = 0;
	int rc;

	dm_buf_init(&b, MAX_ANSWER);
	if (!strcmp(verb, "stop"))
		snprintf(path, sizeof(path), "/containers/%.128s/stop?t=%d", id, timeout_s);
	else
		snprintf(path, sizeof(path), "/containers/%.128s/%s", id, verb);
	rc = request(d, "POST", path, timeout_s + 10, &status, &b, err);
	if (!rc && status != 204 && status != 304)
		rc = dm_err_set(err, DM_EPROTO, "cannot %s container '%s': the Docker API answered %ld",
				verb, id, status);
	dm_buf_release(&b);
	return rc;
}

int dm_docker_stop(struct dm_docker *d, const char *id, int timeout_s, struct dm_err *err)
{
	return act(d, id, "stop", timeout_s, err);
}

int dm_docker_start(struct dm_docker *d, const char *id, struct dm_err *err)
{
	return act(d, id, "start", 10, err);
}
