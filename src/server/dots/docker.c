/*
 * docker.c - the Docker Engine API (or podman's copy of it) over a unix
 * socket, through libcurl: list the containers that use a volume, stop and
 * start them, pause and unpause them, run a command in one (exec).
 *
 * Invariants: every request has a connect deadline of 2 s and an overall
 * one (the stop timeout plus 10 s; 5 s for pause and unpause; what is left
 * of the caller's timeout for an exec); answers are bounded (1 MiB; an
 * exec's output is kept to its last 64 KiB however long it runs) and parsed
 * as untrusted JSON, or as Docker's multiplexed stream (8-byte frame
 * headers, checked) for an exec's output, by functions that do no I/O
 * (docker_parse.h, fuzzed by tests/fuzz/fuzz_dots.c). A container or exec
 * id goes into a URL only after it is checked to be
 * [A-Za-z0-9][A-Za-z0-9_.-]*. A handle keeps no connection: each call is
 * independent, so it can be shared by threads.
 *
 * Answers differ between engines where it matters here: pausing a paused
 * container is 409 from Docker and 500 from podman, unpausing one that is
 * not paused 500 from both; so after any refusal the container's state is
 * asked, and the state decides.
 */
#include "server/dots/docker.h"
#include "server/dots/docker_parse.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/banned.h"

#define API "http://localhost/v1.41"
#define MAX_ANSWER (1u << 20)
#define PAUSE_TIMEOUT_MS 5000L
/* what killing a timed-out exec may add to its timeout */
#define KILL_BUDGET_MS 1000L

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

/* One request: method on path (after the API version), with a JSON body
 * or none, within timeout_ms; *status the HTTP status. The answer goes to
 * sink(data) when sink is given (it sees the handle through *handle, for
 * the status), else is appended to out. */
struct call {
	const char *method;
	const char *path;
	const char *body;
	long timeout_ms;
	size_t (*sink)(char *data, size_t size, size_t n, void *p);
	void *sink_data;
	CURL **handle;
};

static int perform(struct dm_docker *d, const struct call *k, long *status, struct dm_buf *out,
		   struct dm_err *err)
{
	CURL *c = curl_easy_init();
	struct curl_slist *headers = NULL;
	char url[1024];
	CURLcode cc;
	int rc = 0;

	if (!c)
		return dm_err_set(err, DM_ENOMEM, "cannot start a Docker API request");
	if (k->handle)
		*k->handle = c;
	snprintf(url, sizeof(url), API "%s", k->path);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->socket);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, k->method);
	if (k->body) {
		headers = curl_slist_append(NULL, "Content-Type: application/json");
		if (!headers) {
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
			goto done;
		}
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, k->body);
	} else if (!strcmp(k->method, "POST")) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	}
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 k->timeout_ms < 2000 ? k->timeout_ms : 2000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, k->timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, k->sink ? k->sink : collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, k->sink ? k->sink_data : (void *)out);
	cc = curl_easy_perform(c);
	if (cc == CURLE_OPERATION_TIMEDOUT)
		rc = dm_err_set(err, DM_ETIMEOUT,
				"the Docker API at '%s' did not answer within %ld ms", d->socket,
				k->timeout_ms);
	else if (cc != CURLE_OK)
		rc = dm_err_set(err, DM_EUNAVAILABLE, "cannot reach the Docker API at '%s': %s",
				d->socket, curl_easy_strerror(cc));
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
done:
	if (k->handle)
		*k->handle = NULL;
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	return rc;
}

/* One request without a body; *status the HTTP status; answer appended to out. */
static int request(struct dm_docker *d, const char *method, const char *path, long timeout_s,
		   long *status, struct dm_buf *out, struct dm_err *err)
{
	struct call k = {.method = method, .path = path, .timeout_ms = timeout_s * 1000};

	return perform(d, &k, status, out, err);
}

bool dm_docker_name_chars_ok(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alnum =
			(c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return false;
	}
	return true;
}

bool dm_docker_id_ok(const char *id)
{
	size_t len = id ? strnlen(id, DM_DOCKER_ID_MAX + 1) : 0;

	return len <= DM_DOCKER_ID_MAX && dm_docker_name_chars_ok(id, len);
}

static int check_id(const char *id, struct dm_err *err)
{
	if (!dm_docker_id_ok(id))
		return dm_err_set(err, DM_EINVAL, "invalid container id or name '%.*s'",
				  DM_DOCKER_ID_MAX, id ? id : "");
	return 0;
}

/* --- reading the answers (docker_parse.h): no I/O in this part --- */

const char *dm_docker_parse_message(char *out, size_t size, const char *text, size_t len)
{
	json_t *j = len ? json_loadb(text, len, 0, NULL) : NULL;
	const char *m = json_string_value(json_object_get(j, "message"));
	size_t i;

	snprintf(out, size, "%s", m ? m : "");
	for (i = 0; out[i]; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			out[i] = '?';
	json_decref(j);
	return out;
}

int dm_docker_parse_containers(struct dm_container **out, size_t *n, const char *text,
			       size_t len)
{
	json_t *list = json_loadb(text, len, 0, NULL), *v;
	struct dm_container *cs;
	size_t i, count = 0;

	*out = NULL;
	*n = 0;
	if (!json_is_array(list)) {
		json_decref(list);
		return DM_EPROTO;
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
	json_decref(list);
	*out = cs;
	*n = count;
	return 0;
}

int dm_docker_parse_mounts(struct dm_docker_mount **out, size_t *n, const char *driver,
			   const char *text, size_t len)
{
	json_t *list = json_loadb(text, len, 0, NULL), *v, *m;
	struct dm_docker_mount *ms = NULL;
	size_t i, k, count = 0, cap = 0;

	*out = NULL;
	*n = 0;
	if (!json_is_array(list)) {
		json_decref(list);
		return DM_EPROTO;
	}
	json_array_foreach(list, i, v)
	{
		const char *id = json_string_value(json_object_get(v, "Id"));
		const char *name = json_string_value(json_array_get(json_object_get(v, "Names"), 0));

		json_array_foreach(json_object_get(v, "Mounts"), k, m)
		{
			const char *drv = json_string_value(json_object_get(m, "Driver"));
			const char *vol = json_string_value(json_object_get(m, "Name"));

			if (!id || !drv || !vol || strcmp(drv, driver) || strlen(id) >= sizeof(ms->id) ||
			    strlen(vol) >= sizeof(ms->volume))
				continue;
			if (count == cap) {
				cap = cap ? 2 * cap : 8;
				ms = dm_xrealloc(ms, cap * sizeof(*ms));
			}
			snprintf(ms[count].id, sizeof(ms[count].id), "%s", id);
			snprintf(ms[count].name, sizeof(ms[count].name), "%s",
				 name ? (name[0] == '/' ? name + 1 : name) : id);
			snprintf(ms[count].volume, sizeof(ms[count].volume), "%s", vol);
			count++;
		}
	}
	json_decref(list);
	*out = ms;
	*n = count;
	return 0;
}

int dm_docker_parse_name(char *out, size_t size, const char *text, size_t len)
{
	json_t *j = json_loadb(text, len, 0, NULL);
	const char *name = json_string_value(json_object_get(j, "Name"));
	int rc = 0;

	if (name)
		snprintf(out, size, "%s", name[0] == '/' ? name + 1 : name);
	else
		rc = DM_EPROTO;
	json_decref(j);
	return rc;
}

int dm_docker_parse_state(bool *running, bool *paused, const char *text, size_t len)
{
	json_t *j = json_loadb(text, len, 0, NULL);
	json_t *state = json_object_get(j, "State");
	int rc = 0;

	if (!json_is_boolean(json_object_get(state, "Running")) ||
	    !json_is_boolean(json_object_get(state, "Paused"))) {
		rc = DM_EPROTO;
	} else {
		*running = json_is_true(json_object_get(state, "Running"));
		*paused = json_is_true(json_object_get(state, "Paused"));
	}
	json_decref(j);
	return rc;
}

int dm_docker_parse_exec_id(char out[DM_DOCKER_ID_MAX + 1], const char *text, size_t len)
{
	json_t *j = json_loadb(text, len, 0, NULL);
	const char *eid = json_string_value(json_object_get(j, "Id"));
	int rc = 0;

	if (dm_docker_id_ok(eid))
		snprintf(out, DM_DOCKER_ID_MAX + 1, "%s", eid);
	else
		rc = DM_EPROTO;
	json_decref(j);
	return rc;
}

int dm_docker_parse_exec_state(struct dm_docker_exec_state *out, const char *text, size_t len)
{
	json_t *j = json_loadb(text, len, 0, NULL), *v;
	const char *cid;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!json_is_boolean(json_object_get(j, "Running"))) {
		rc = DM_EPROTO;
		goto done;
	}
	out->running = json_is_true(json_object_get(j, "Running"));
	v = json_object_get(j, "ExitCode");
	if (json_is_integer(v) && json_integer_value(v) >= INT32_MIN &&
	    json_integer_value(v) <= INT32_MAX) {
		out->has_exit = true;
		out->exit_code = (int)json_integer_value(v);
	}
	v = json_object_get(j, "Pid");
	if (json_is_integer(v) && json_integer_value(v) > 1 && json_integer_value(v) < (1 << 30))
		out->pid = (long)json_integer_value(v);
	cid = json_string_value(json_object_get(j, "ContainerID"));
	if (cid && strlen(cid) == 64 && dm_docker_id_ok(cid))
		snprintf(out->container, sizeof(out->container), "%s", cid);
done:
	json_decref(j);
	return rc;
}

/* The "message" of an error answer, printable and cut to size, into out
 * ("" when there is none). */
static const char *api_message(char *out, size_t size, const struct dm_buf *b)
{
	return dm_docker_parse_message(out, size, (const char *)b->data, b->len);
}

/* --- containers --- */

int dm_docker_containers_using(struct dm_docker *d, const char *volume,
			       struct dm_container **out, size_t *n, struct dm_err *err)
{
	struct dm_buf b;
	char *filter = NULL, path[900];
	long status = 0;
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
	if (dm_docker_parse_containers(out, n, (const char *)b.data, b.len))
		rc = dm_err_set(err, DM_EPROTO, "the Docker API sent a malformed container list");
done:
	if (filter)
		curl_free(filter);
	if (c)
		curl_easy_cleanup(c);
	dm_buf_release(&b);
	return rc;
}

int dm_docker_running_mounts(struct dm_docker *d, const char *driver,
			     struct dm_docker_mount **out, size_t *n, struct dm_err *err)
{
	struct dm_buf b;
	long status = 0;
	int rc;

	*out = NULL;
	*n = 0;
	dm_buf_init(&b, MAX_ANSWER);
	rc = request(d, "GET", "/containers/json", 10, &status, &b, err);
	if (!rc && status != 200)
		rc = dm_err_set(err, DM_EPROTO, "the Docker API answered %ld listing containers",
				status);
	if (!rc && dm_docker_parse_mounts(out, n, driver, (const char *)b.data, b.len))
		rc = dm_err_set(err, DM_EPROTO, "the Docker API sent a malformed container list");
	dm_buf_release(&b);
	return rc;
}

int dm_docker_container_name(struct dm_docker *d, const char *id, char *out, size_t size,
			     struct dm_err *err)
{
	struct dm_buf b;
	char path[512];
	long status = 0;
	int rc;

	dm_buf_init(&b, MAX_ANSWER);
	snprintf(path, sizeof(path), "/containers/%.128s/json", id);
	rc = request(d, "GET", path, 10, &status, &b, err);
	if (!rc && status != 200)
		rc = dm_err_set(err, DM_ENOTFOUND, "no container '%s'", id);
	if (!rc && dm_docker_parse_name(out, size, (const char *)b.data, b.len))
		rc = dm_err_set(err, DM_EPROTO, "the Docker API sent no name for '%s'", id);
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

/* The state of container id (404: DM_ENOTFOUND). */
static int container_state(struct dm_docker *d, const char *id, bool *running, bool *paused,
			   struct dm_err *err)
{
	struct dm_buf b;
	char path[256];
	long status = 0;
	int rc;

	dm_buf_init(&b, MAX_ANSWER);
	snprintf(path, sizeof(path), "/containers/%s/json", id);
	struct call k = {.method = "GET", .path = path, .timeout_ms = PAUSE_TIMEOUT_MS};
	rc = perform(d, &k, &status, &b, err);
	if (rc)
		goto done;
	if (status == 404) {
		rc = dm_err_set(err, DM_ENOTFOUND, "no container '%s'", id);
		goto done;
	}
	if (status != 200 ||
	    dm_docker_parse_state(running, paused, (const char *)b.data, b.len))
		rc = dm_err_set(err, DM_EPROTO,
				"the Docker API answered %ld with no state for container '%s'",
				status, id);
done:
	dm_buf_release(&b);
	return rc;
}

/* POST /containers/ID/VERB for pause and unpause: 204 is done, 404 is no
 * such container; after any other answer the state says what happened. */
static int freezer_act(struct dm_docker *d, const char *id, bool pause, struct dm_err *err)
{
	const char *verb = pause ? "pause" : "unpause";
	struct dm_buf b;
	char path[256], msg[256];
	bool running = false, paused = false;
	long status = 0;
	int rc = check_id(id, err);

	if (rc)
		return rc;
	dm_buf_init(&b, MAX_ANSWER);
	snprintf(path, sizeof(path), "/containers/%s/%s", id, verb);
	struct call k = {.method = "POST", .path = path, .timeout_ms = PAUSE_TIMEOUT_MS};
	rc = perform(d, &k, &status, &b, err);
	if (rc) {
		dm_err_prefix(err, "cannot %s container '%s'", verb, id);
		goto done;
	}
	if (status == 204)
		goto done;
	if (status == 404) {
		rc = dm_err_set(err, DM_ENOTFOUND, "no container '%s'", id);
		goto done;
	}
	api_message(msg, sizeof(msg), &b);
	rc = container_state(d, id, &running, &paused, err);
	if (rc)
		goto done;
	if (pause && paused)
		rc = dm_err_set(
			err, DM_ECONFLICT,
			"container '%s' is already paused (by someone else: dm leaves it so)", id);
	else if (pause && !running)
		rc = dm_err_set(err, DM_ECONFLICT, "container '%s' is not running", id);
	else if (!pause && !paused)
		rc = 0;
	else
		rc = dm_err_set(err, DM_EPROTO,
				"cannot %s container '%s': the Docker API answered %ld%s%s", verb,
				id, status, msg[0] ? ": " : "", msg);
done:
	dm_buf_release(&b);
	return rc;
}

int dm_docker_pause(struct dm_docker *d, const char *id, struct dm_err *err)
{
	return freezer_act(d, id, true, err);
}

int dm_docker_unpause(struct dm_docker *d, const char *id, struct dm_err *err)
{
	return freezer_act(d, id, false, err);
}

/* --- exec --- */

/* The last DM_DOCKER_EXEC_OUTPUT_MAX bytes of a stream (docker_parse.h). */
void dm_docker_tail_init(struct dm_docker_tail *t)
{
	dm_buf_init(&t->b, 2 * DM_DOCKER_EXEC_OUTPUT_MAX);
	t->dropped = 0;
}

int dm_docker_tail_add(struct dm_docker_tail *t, const unsigned char *data, size_t len)
{
	const size_t max = DM_DOCKER_EXEC_OUTPUT_MAX;

	if (len > max) {
		t->dropped += t->b.len + (len - max);
		t->b.len = 0;
		data += len - max;
		len = max;
	}
	if (t->b.len + len > 2 * max) {
		size_t keep = max - len, drop = t->b.len - keep;

		memmove(t->b.data, t->b.data + drop, keep);
		t->b.len = keep;
		t->b.data[keep] = '\0';
		t->dropped += drop;
	}
	return dm_buf_add(&t->b, data, len);
}

int dm_docker_tail_finish(struct dm_docker_tail *t, struct dm_buf *out)
{
	const size_t max = DM_DOCKER_EXEC_OUTPUT_MAX;
	size_t from = 0;

	if (t->b.len > max) {
		from = t->b.len - max;
		t->dropped += from;
	}
	if (t->dropped) {
		const unsigned char *nl = memchr(t->b.data + from, '\n', t->b.len - from);

		if (nl && (size_t)(nl - (t->b.data + from)) < 4096) {
			t->dropped += (size_t)(nl + 1 - (t->b.data + from));
			from = (size_t)(nl + 1 - t->b.data);
		}
	}
	if (!out)
		return 0;
	if (t->dropped && dm_buf_addf(out, "[%llu bytes of earlier output dropped]\n",
				      (unsigned long long)t->dropped))
		return DM_ETOOBIG;
	/* no output at all: b.data is NULL, which takes no offset */
	if (t->b.len == from)
		return 0;
	return dm_buf_add(out, t->b.data + from, t->b.len - from);
}

/* Docker's stream format without a TTY (docker_parse.h). */
int dm_docker_frames_feed(struct dm_docker_frames *f, const unsigned char *data, size_t len)
{
	size_t i = 0;
	int rc;

	while (i < len) {
		size_t take;

		if (f->left == 0) {
			take = 8 - f->hdr_len < len - i ? 8 - f->hdr_len : len - i;
			memcpy(f->hdr + f->hdr_len, data + i, take);
			f->hdr_len += take;
			i += take;
			if (f->hdr_len < 8)
				break;
			f->hdr_len = 0;
			if (f->hdr[0] > 2 || f->hdr[1] || f->hdr[2] || f->hdr[3])
				return DM_EPROTO;
			f->left = (uint32_t)f->hdr[4] << 24 | (uint32_t)f->hdr[5] << 16 |
				  (uint32_t)f->hdr[6] << 8 | f->hdr[7];
			continue;
		}
		take = f->left < len - i ? f->left : len - i;
		rc = dm_docker_tail_add(f->out, data + i, take);
		if (rc)
			return rc;
		f->left -= (uint32_t)take;
		i += take;
	}
	return 0;
}

/* The exec's output stream, as curl hands it over: the frames into the
 * tail; anything else aborts the transfer. An answer that is not 200 is
 * kept (bounded) for its message instead. */
struct demux {
	CURL *handle;
	long status;
	struct dm_docker_frames frames;
	bool bad;
	bool too_much;
	struct dm_buf answer;
};

static size_t demux_write(char *data, size_t size, size_t n, void *p)
{
	struct demux *m = p;
	size_t len = size * n;
	int rc;

	if (!m->status)
		curl_easy_getinfo(m->handle, CURLINFO_RESPONSE_CODE, &m->status);
	if (m->status != 200) {
		if (dm_buf_add(&m->answer, data, len)) {
			m->too_much = true;
			return 0;
		}
		return len;
	}
	rc = dm_docker_frames_feed(&m->frames, (const unsigned char *)data, len);
	if (rc == DM_EPROTO)
		m->bad = true;
	else if (rc)
		m->too_much = true;
	return rc ? 0 : len;
}

static long left_ms(int64_t deadline)
{
	int64_t ns = deadline - dm_now_monotonic_ns();

	return ns <= 0 ? 0 : (long)((ns + 999999) / 1000000);
}

static int exec_inspect(struct dm_docker *d, const char *exec_id, long timeout_ms,
			struct dm_docker_exec_state *out, struct dm_err *err)
{
	struct dm_buf b;
	char path[256];
	long status = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	dm_buf_init(&b, MAX_ANSWER);
	snprintf(path, sizeof(path), "/exec/%s/json", exec_id);
	struct call k = {
		.method = "GET", .path = path, .timeout_ms = timeout_ms > 0 ? timeout_ms : 1};
	rc = perform(d, &k, &status, &b, err);
	if (rc)
		goto done;
	if (status != 200 || dm_docker_parse_exec_state(out, (const char *)b.data, b.len))
		rc = dm_err_set(err, DM_EPROTO,
				"the Docker API answered %ld with no state for exec '%s'", status,
				exec_id);
done:
	dm_buf_release(&b);
	return rc;
}

/* Whether the engine behind the socket sees pids as dmd does: the socket's
 * peer (SO_PEERCRED: the process that listens, translated into our pid
 * namespace, 0 when it is not in it) is in our pid namespace. */
static bool engine_shares_pidns(struct dm_docker *d)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct ucred cr = {0};
	socklen_t len = sizeof(cr);
	char path[64], ours[64], theirs[64];
	ssize_t n1, n2;
	int fd;

	if (strlen(d->socket) >= sizeof(a.sun_path))
		return false;
	memcpy(a.sun_path, d->socket, strlen(d->socket) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || cr.pid <= 0) {
		close(fd);
		return false;
	}
	close(fd);
	snprintf(path, sizeof(path), "/proc/%ld/ns/pid", (long)cr.pid);
	n1 = readlink("/proc/self/ns/pid", ours, sizeof(ours) - 1);
	n2 = readlink(path, theirs, sizeof(theirs) - 1);
	return n1 > 0 && n1 == n2 && !memcmp(ours, theirs, (size_t)n1);
}

/* Kills the process group of an exec's process pid when it is a process of
 * container (its cgroup names the container's full id) and leads its group
 * (runc makes an exec's process a session leader). true when signalled. */
static bool kill_exec(struct dm_docker *d, long pid, const char *container)
{
	struct dm_buf b;
	char path[64];
	const char *close_paren;
	long pgrp = 0;
	bool ok = false;

	if (pid <= 1 || strlen(container) != 64 || !engine_shares_pidns(d))
		return false;
	dm_buf_init(&b, 1u << 16);
	snprintf(path, sizeof(path), "/proc/%ld/cgroup", pid);
	if (dm_read_file(&b, path, 1u << 16, NULL) || !strstr((const char *)b.data, container))
		goto done;
	dm_buf_reset(&b);
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (dm_read_file(&b, path, 1u << 16, NULL))
		goto done;
	/* "pid (comm) state ppid pgrp ...": comm may hold anything, even ')' */
	close_paren = strrchr((const char *)b.data, ')');
	if (!close_paren || close_paren[1] != ' ' || !close_paren[2] || close_paren[3] != ' ')
		goto done;
	{
		char *end;

		errno = 0;
		strtol(close_paren + 4, &end, 10); /* ppid */
		if (errno || *end != ' ')
			goto done;
		pgrp = strtol(end + 1, &end, 10);
		if (errno || *end != ' ')
			goto done;
	}
	if (pgrp == pid)
		ok = kill((pid_t)-pgrp, SIGKILL) == 0;
	ok = kill((pid_t)pid, SIGKILL) == 0 || ok;
done:
	dm_buf_release(&b);
	return ok;
}

/* The exec ran past its deadline: kill it when that is sound, and say so. */
static int exec_timed_out(struct dm_docker *d, const char *id, const char *exec_id,
			  const char *prog, int timeout_ms, int *exit_code, struct dm_err *err)
{
	struct dm_docker_exec_state st;
	bool killed = false;

	if (!exec_inspect(d, exec_id, KILL_BUDGET_MS / 2, &st, NULL)) {
		if (!st.running && st.has_exit) {
			/* it ended as the deadline came: its status is known */
			*exit_code = st.exit_code;
			return 0;
		}
		if (st.running && st.pid)
			killed = kill_exec(d, st.pid, st.container);
	}
	if (killed)
		return dm_err_set(
			err, DM_ETIMEOUT,
			"'%s' in container '%s' did not finish within %d ms and was killed", prog,
			id, timeout_ms);
	return dm_err_set(err, DM_ETIMEOUT,
			  "'%s' in container '%s' did not finish within %d ms; it may still be "
			  "running in the container (the Docker API cannot stop a command it runs)",
			  prog, id, timeout_ms);
}

/* POST /containers/ID/exec: the new exec's id into out. */
static int exec_create(struct dm_docker *d, const char *id, char *const argv[], char *const env[],
		       int64_t deadline, char out[DM_DOCKER_ID_MAX + 1], struct dm_err *err)
{
	json_t *cmd = json_array(), *envs = json_array(), *body = NULL;
	struct dm_buf b;
	char path[256], msg[256], *text = NULL;
	long status = 0;
	int rc = 0;

	dm_buf_init(&b, MAX_ANSWER);
	for (size_t i = 0; argv[i] && !rc; i++)
		if (json_array_append_new(cmd, json_string(argv[i])))
			rc = dm_err_set(err, DM_EINVAL, "argument %zu of the command is not UTF-8",
					i);
	for (size_t i = 0; env && env[i] && !rc; i++)
		if (!strchr(env[i], '=') || json_array_append_new(envs, json_string(env[i])))
			rc = dm_err_set(err, DM_EINVAL, "invalid environment entry '%.64s'",
					env[i]);
	if (rc)
		goto done;
	body = json_pack("{s:b, s:b, s:b, s:b, s:O, s:O}", "AttachStdin", 0, "AttachStdout", 1,
			 "AttachStderr", 1, "Tty", 0, "Cmd", cmd, "Env", envs);
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (!text) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto done;
	}
	snprintf(path, sizeof(path), "/containers/%s/exec", id);
	struct call k = {
		.method = "POST", .path = path, .body = text, .timeout_ms = left_ms(deadline)};
	if (k.timeout_ms <= 0) {
		rc = dm_err_set(err, DM_ETIMEOUT, "no time left to run '%s' in container '%s'",
				argv[0], id);
		goto done;
	}
	rc = perform(d, &k, &status, &b, err);
	if (rc)
		goto done;
	api_message(msg, sizeof(msg), &b);
	if (status == 404) {
		rc = dm_err_set(err, DM_ENOTFOUND, "no container '%s'", id);
		goto done;
	}
	if (status == 409) {
		rc = dm_err_set(err, DM_ECONFLICT, "cannot run '%s' in container '%s': %s", argv[0],
				id, msg[0] ? msg : "it is paused or not running");
		goto done;
	}
	if (status != 201 || dm_docker_parse_exec_id(out, (const char *)b.data, b.len))
		rc = dm_err_set(
			err, DM_EPROTO,
			"cannot run '%s' in container '%s': the Docker API answered %ld%s%s",
			argv[0], id, status, msg[0] ? ": " : "", msg);
done:
	free(text);
	json_decref(body);
	json_decref(cmd);
	json_decref(envs);
	dm_buf_release(&b);
	return rc;
}

int dm_docker_exec(struct dm_docker *d, const char *id, char *const argv[], char *const env[],
		   int timeout_ms, int *exit_code, struct dm_buf *output, struct dm_err *err)
{
	int64_t deadline = dm_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	struct dm_docker_tail t;
	struct demux m = {.status = 0};
	struct dm_docker_exec_state st;
	char exec_id[DM_DOCKER_ID_MAX + 1], path[256], msg[256];
	long status = 0;
	int rc = check_id(id, err);

	dm_docker_tail_init(&t);
	dm_buf_init(&m.answer, DM_DOCKER_EXEC_OUTPUT_MAX);
	m.frames.out = &t;
	if (rc)
		goto done;
	if (!argv || !argv[0] || !argv[0][0] || timeout_ms <= 0) {
		rc = dm_err_set(err, DM_EINVAL, "no command, or no time, to run in container '%s'",
				id);
		goto done;
	}
	rc = exec_create(d, id, argv, env, deadline, exec_id, err);
	if (rc)
		goto done;

	snprintf(path, sizeof(path), "/exec/%s/start", exec_id);
	struct call k = {.method = "POST",
			 .path = path,
			 .body = "{\"Detach\":false,\"Tty\":false}",
			 .timeout_ms = left_ms(deadline),
			 .sink = demux_write,
			 .sink_data = &m,
			 .handle = &m.handle};
	rc = k.timeout_ms > 0 ? perform(d, &k, &status, NULL, err) : DM_ETIMEOUT;
	if (rc == DM_ETIMEOUT) {
		rc = exec_timed_out(d, id, exec_id, argv[0], timeout_ms, exit_code, err);
		goto done;
	}
	if (m.bad) {
		rc = dm_err_set(err, DM_EPROTO,
				"the Docker API sent a malformed output stream for "
				"'%s' in container '%s'",
				argv[0], id);
		goto done;
	}
	if (rc) {
		if (m.too_much)
			rc = dm_err_set(err, DM_EPROTO,
					"the Docker API sent too much for '%s' in container '%s'",
					argv[0], id);
		goto done;
	}
	if (status != 200) {
		api_message(msg, sizeof(msg), &m.answer);
		rc = dm_err_set(
			err, status == 409 ? DM_ECONFLICT : DM_EPROTO,
			"cannot run '%s' in container '%s': the Docker API answered %ld%s%s",
			argv[0], id, status, msg[0] ? ": " : "", msg);
		goto done;
	}

	/* the stream ends when the command's output closes; its exit status
	 * may be recorded a moment later */
	for (long nap = 5;; nap = nap < 100 ? nap * 2 : 100) {
		long left = left_ms(deadline);

		if (left <= 0) {
			rc = exec_timed_out(d, id, exec_id, argv[0], timeout_ms, exit_code, err);
			goto done;
		}
		rc = exec_inspect(d, exec_id, left, &st, err);
		if (rc == DM_ETIMEOUT) {
			rc = exec_timed_out(d, id, exec_id, argv[0], timeout_ms, exit_code, err);
			goto done;
		}
		if (rc)
			goto done;
		if (!st.running && st.has_exit)
			break;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (nap < left ? nap : left) * 1000000};
		nanosleep(&ts, NULL);
	}
	*exit_code = st.exit_code;
done:
	if (dm_docker_tail_finish(&t, output) && !rc)
		rc = dm_err_set(err, DM_ETOOBIG, "no room for the output of '%s' in container '%s'",
				argv && argv[0] ? argv[0] : "", id);
	dm_buf_release(&t.b);
	dm_buf_release(&m.answer);
	return rc;
}
