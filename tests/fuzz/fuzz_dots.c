/*
 * fuzz_dots.c - libFuzzer target for what dmd's dots read from outside:
 * the Docker Engine API's answers (server/dots/docker_parse.h: the
 * container list, a container's inspect, an exec's create and inspect
 * answers, an error's message, the multiplexed output stream of an exec),
 * a freeze journal from the disk (server/dots/freezer_parse.h), and a
 * hook's JSON from a user (server/dots/hooks.h). The input's first byte
 * picks the reader (its value mod 10), the rest is what it reads:
 *     0 the container list (containers using a volume)
 *     1 the container list (running mounts, of driver "dm" and "local")
 *     2 a container's inspect (its name, cut to a size the byte picks, and
 *       its state)
 *     3 an exec's create answer      4 an exec's inspect answer
 *     5 an error answer's message (cut to a size the byte picks)
 *     6 an exec's output stream as the engine sends it
 *     7 a long output stream made from a short description (5 bytes a frame)
 *     8 a freeze journal             9 a hook's JSON
 *
 * Whatever a reader accepts must hold its promises: NUL-terminated strings
 * within their arrays, ids that may go into a URL, a pid and an exit code
 * in range, an output stream whose kept tail is exactly the last 64 KiB of
 * the payloads (checked against a model, fed in pieces of any size), a
 * journal of 1..DM_FREEZE_MAX valid names, a hook that is valid, leaves
 * its JSON as it was, and comes back equal through dm_hook_to_json and
 * through the text dmd stores; whatever it refuses leaves nothing
 * allocated (ASan's leak check sees to that).
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/dots/docker.h"
#include "server/dots/docker_parse.h"
#include "server/dots/freezer.h"
#include "server/dots/freezer_parse.h"
#include "server/dots/hooks.h"
#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the key of the journals in the seed corpus */
#define JOURNAL_KEY "3f2a8c1e-7b4d-4e9a-9c1f-5d6e7a8b9c0d-main"
/* what a synthetic output stream may hold in all */
#define STREAM_MAX (4 * DM_DOCKER_EXEC_OUTPUT_MAX)

static void check_str(const char *s, size_t size)
{
	if (strnlen(s, size) == size)
		abort();
}

static bool name_ok(const char *s, size_t max)
{
	size_t len = strnlen(s, max + 1);

	if (len == 0 || len > max)
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

static void fuzz_containers(const char *msg, size_t len)
{
	struct dm_container *cs = (struct dm_container *)1;
	size_t n = 1;

	if (dm_docker_parse_containers(&cs, &n, msg, len)) {
		if (cs || n)
			abort();
		return;
	}
	if (!cs)
		abort();
	for (size_t i = 0; i < n; i++) {
		check_str(cs[i].id, sizeof(cs[i].id));
		check_str(cs[i].name, sizeof(cs[i].name));
	}
	free(cs);
}

static void fuzz_mounts(const char *msg, size_t len, const char *driver)
{
	struct dm_docker_mount *ms = (struct dm_docker_mount *)1;
	size_t n = 1;

	if (dm_docker_parse_mounts(&ms, &n, driver, msg, len)) {
		if (ms || n)
			abort();
		return;
	}
	if (!ms != !n)
		abort();
	for (size_t i = 0; i < n; i++) {
		check_str(ms[i].id, sizeof(ms[i].id));
		check_str(ms[i].name, sizeof(ms[i].name));
		check_str(ms[i].volume, sizeof(ms[i].volume));
	}
	free(ms);
}

static void fuzz_inspect(const char *msg, size_t len, size_t size)
{
	char name[256];
	bool running, paused;

	size = size ? size : sizeof(name);
	if (dm_docker_parse_name(name, size, msg, len) == 0)
		check_str(name, size);
	(void)dm_docker_parse_state(&running, &paused, msg, len);
}

static void fuzz_exec_id(const char *msg, size_t len)
{
	char id[DM_DOCKER_ID_MAX + 1];

	if (dm_docker_parse_exec_id(id, msg, len) == 0 && !dm_docker_id_ok(id))
		abort();
}

static void fuzz_exec_state(const char *msg, size_t len)
{
	struct dm_docker_exec_state st;
	int rc = dm_docker_parse_exec_state(&st, msg, len);

	check_str(st.container, sizeof(st.container));
	if (rc) {
		if (st.running || st.has_exit || st.pid || st.container[0])
			abort();
		return;
	}
	if (st.pid != 0 && (st.pid < 2 || st.pid >= (1L << 30)))
		abort();
	if (!st.has_exit && st.exit_code)
		abort();
	if (st.container[0] && (strlen(st.container) != 64 || !dm_docker_id_ok(st.container)))
		abort();
}

static void fuzz_message(const char *msg, size_t len, size_t size)
{
	char out[256];
	const char *m;

	size = size ? size : sizeof(out);
	m = dm_docker_parse_message(out, size, msg, len);
	if (m != out)
		abort();
	check_str(out, size);
	for (size_t i = 0; out[i]; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			abort();
}

/* What dm_docker_tail_finish must give for payload p[0..n): all of it, or
 * after a line saying how much was dropped the last
 * DM_DOCKER_EXEC_OUTPUT_MAX bytes, from the next line's start when it
 * starts within 4 KiB. */
static void expect_tail(struct dm_buf *want, const unsigned char *p, size_t n)
{
	size_t from = 0;

	if (n > DM_DOCKER_EXEC_OUTPUT_MAX) {
		const unsigned char *nl;

		from = n - DM_DOCKER_EXEC_OUTPUT_MAX;
		nl = memchr(p + from, '\n', n - from);
		if (nl && (size_t)(nl - (p + from)) < 4096)
			from = (size_t)(nl - p) + 1;
		if (dm_buf_addf(want, "[%llu bytes of earlier output dropped]\n",
				(unsigned long long)from))
			abort();
	}
	if (n - from && dm_buf_add(want, p + from, n - from))
		abort();
}

/* Feeds stream s[0..n) in pieces whose sizes come from seed (0: in one
 * piece); its rc, and the tail's output into out (may be NULL). */
static int feed(struct dm_buf *out, const unsigned char *s, size_t n, uint32_t seed)
{
	struct dm_docker_tail t;
	struct dm_docker_frames f = {.hdr_len = 0};
	size_t i = 0;
	int rc = 0;

	dm_docker_tail_init(&t);
	f.out = &t;
	while (i < n && !rc) {
		size_t piece;

		seed = seed ? seed * 1103515245u + 12345u : 0;
		switch (seed ? seed >> 16 & 3 : 3) {
		case 0:
			piece = (seed >> 18) % 16 + 1;
			break;
		case 1:
			piece = (seed >> 18) % 4096 + 1;
			break;
		case 2:
			piece = seed % (n - i) + 1;
			break;
		default:
			piece = n - i;
			break;
		}
		if (piece > n - i)
			piece = n - i;
		rc = dm_docker_frames_feed(&f, s + i, piece);
		i += piece;
	}
	if (dm_docker_tail_finish(&t, out))
		abort();
	dm_buf_release(&t.b);
	return rc;
}

/* The stream as it comes from the engine: whatever is in it, whole and in
 * pieces, must give the same; its payloads are what a plain reading of
 * its frames gives. */
static void fuzz_stream_raw(const unsigned char *s, size_t n)
{
	struct dm_buf whole, pieces, payload, want;
	size_t i = 0;
	int rc1, rc2, rc = 0;

	dm_buf_init(&whole, DM_DOCKER_EXEC_OUTPUT_MAX + 256);
	dm_buf_init(&pieces, DM_DOCKER_EXEC_OUTPUT_MAX + 256);
	dm_buf_init(&payload, 0);
	dm_buf_init(&want, 0);
	rc1 = feed(&whole, s, n, 0);
	rc2 = feed(&pieces, s, n, n ? s[0] | 1u << 8 : 1);
	if (feed(NULL, s, n, (uint32_t)n) != rc1)
		abort();
	while (i + 8 <= n) {
		size_t len = (size_t)s[i + 4] << 24 | (size_t)s[i + 5] << 16 |
			     (size_t)s[i + 6] << 8 | s[i + 7];

		if (s[i] > 2 || s[i + 1] || s[i + 2] || s[i + 3]) {
			rc = DM_EPROTO;
			break;
		}
		i += 8;
		if (len > n - i)
			len = n - i;
		if (len && dm_buf_add(&payload, s + i, len))
			abort();
		i += len;
	}
	expect_tail(&want, payload.data, payload.len);
	if (rc1 != rc || rc2 != rc || whole.len != want.len || pieces.len != want.len ||
	    (want.len &&
	     (memcmp(whole.data, want.data, want.len) || memcmp(pieces.data, want.data, want.len))))
		abort();
	dm_buf_release(&whole);
	dm_buf_release(&pieces);
	dm_buf_release(&payload);
	dm_buf_release(&want);
}

/* A long stream made from a short description, to reach the tail's
 * dropping: 5 bytes a frame (stream, a 24-bit length, the distance between
 * newlines: 0xff for none), up to STREAM_MAX bytes of payload in all. */
static void fuzz_stream_long(const unsigned char *d, size_t n)
{
	struct dm_buf stream, payload, got, want;
	uint32_t seed = 0;

	dm_buf_init(&stream, 0);
	dm_buf_init(&payload, 0);
	dm_buf_init(&got, DM_DOCKER_EXEC_OUTPUT_MAX + 256);
	dm_buf_init(&want, 0);
	for (size_t i = 0; i + 5 <= n; i += 5) {
		size_t len = (size_t)d[i + 1] << 16 | (size_t)d[i + 2] << 8 | d[i + 3];
		unsigned char hdr[8] = {d[i] % 3, 0, 0, 0};
		unsigned every = d[i + 4];

		seed = seed * 31 + d[i] + d[i + 4];
		if (len > STREAM_MAX - payload.len)
			len = STREAM_MAX - payload.len;
		hdr[4] = (unsigned char)(len >> 24);
		hdr[5] = (unsigned char)(len >> 16);
		hdr[6] = (unsigned char)(len >> 8);
		hdr[7] = (unsigned char)len;
		if (dm_buf_add(&stream, hdr, sizeof(hdr)))
			abort();
		if (dm_buf_grow(&payload, len + 1))
			abort();
		for (size_t k = payload.len; k < payload.len + len; k++)
			payload.data[k] = every != 0xff && k % (every + 1) == every
						  ? '\n'
						  : (unsigned char)('a' + k % 26);
		if (len && dm_buf_add(&stream, payload.data + payload.len, len))
			abort();
		payload.len += len;
		payload.data[payload.len] = '\0';
		if (payload.len == STREAM_MAX)
			break;
	}
	if (feed(&got, stream.data, stream.len, seed))
		abort();
	expect_tail(&want, payload.data, payload.len);
	if (got.len != want.len || (want.len && memcmp(got.data, want.data, want.len)))
		abort();
	dm_buf_release(&stream);
	dm_buf_release(&payload);
	dm_buf_release(&got);
	dm_buf_release(&want);
}

static void fuzz_journal(const char *msg, size_t len)
{
	struct dm_freeze_journal j;
	struct dm_err err;

	if (dm_freeze_journal_parse(&j, JOURNAL_KEY, msg, len, &err)) {
		if (j.ids || j.n || err.code != DM_ECORRUPT)
			abort();
		return;
	}
	if (!j.ids || j.n < 1 || j.n > DM_FREEZE_MAX || j.socket[0] != '/')
		abort();
	check_str(j.socket, sizeof(j.socket));
	for (size_t i = 0; i < j.n; i++)
		if (!name_ok(j.ids[i], 64))
			abort();
	dm_freeze_journal_release(&j);
	if (j.ids || j.n)
		abort();
}

static bool hook_equal(const struct dm_hook *a, const struct dm_hook *b)
{
	if (a->argc != b->argc || a->timeout_ms != b->timeout_ms ||
	    !a->container != !b->container || (a->container && strcmp(a->container, b->container)))
		return false;
	for (size_t i = 0; i < a->argc; i++)
		if (strcmp(a->argv[i], b->argv[i]))
			return false;
	return true;
}

static void check_hook(const struct dm_hook *h)
{
	if (!h->argv || h->argc < 1 || h->argc > DM_HOOK_ARGS_MAX || h->argv[h->argc] ||
	    !h->argv[0][0] || h->timeout_ms < 1 || h->timeout_ms > DM_HOOK_TIMEOUT_MAX_MS)
		abort();
	for (size_t i = 0; i < h->argc; i++)
		if (!h->argv[i] || strlen(h->argv[i]) > DM_HOOK_ARG_MAX)
			abort();
	if (h->container &&
	    (strlen(h->container) < 2 || !name_ok(h->container, DM_HOOK_CONTAINER_MAX)))
		abort();
}

static void fuzz_hook(const char *msg, size_t len)
{
	json_t *j = json_loadb(msg, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	json_t *copy = j ? json_deep_copy(j) : NULL, *back = NULL, *again = NULL;
	struct dm_hook h, h2, h3;
	struct dm_err err;
	char *text = NULL;
	int rc;

	if (!j)
		return;
	if (!copy)
		abort();
	rc = dm_hook_from_json(&h, j, &err);
	if (!json_equal(j, copy))
		abort();
	if (rc) {
		if (h.argv || h.argc || h.container || err.code != DM_EINVAL)
			abort();
		goto done;
	}
	check_hook(&h);
	back = dm_hook_to_json(&h);
	if (!back || dm_hook_from_json(&h2, back, &err))
		abort();
	if (!hook_equal(&h, &h2))
		abort();
	dm_hook_release(&h2);
	/* as dmd stores it and reads it back */
	text = json_dumps(back, JSON_COMPACT);
	again = text ? json_loads(text, 0, NULL) : NULL;
	if (!again || dm_hook_from_json(&h3, again, &err))
		abort();
	if (!hook_equal(&h, &h3))
		abort();
	dm_hook_release(&h3);
	dm_hook_release(&h);
	if (h.argv || h.argc || h.container)
		abort();
done:
	free(text);
	json_decref(again);
	json_decref(back);
	json_decref(copy);
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data + 1;
	size_t len;

	if (size < 1)
		return 0;
	len = size - 1;
	switch (data[0] % 10) {
	case 0:
		fuzz_containers(msg, len);
		break;
	case 1:
		fuzz_mounts(msg, len, "dm");
		fuzz_mounts(msg, len, "local");
		break;
	case 2:
		fuzz_inspect(msg, len, data[0] / 10);
		break;
	case 3:
		fuzz_exec_id(msg, len);
		break;
	case 4:
		fuzz_exec_state(msg, len);
		break;
	case 5:
		fuzz_message(msg, len, data[0] / 10);
		break;
	case 6:
		fuzz_stream_raw(data + 1, len);
		break;
	case 7:
		fuzz_stream_long(data + 1, len);
		break;
	case 8:
		fuzz_journal(msg, len);
		break;
	default:
		fuzz_hook(msg, len);
		break;
	}
	return 0;
}
