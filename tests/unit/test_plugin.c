/*
 * test_plugin.c - the Docker volume plugin against real dots (KV, store,
 * dir engine and registry in a temp dir, threaded scheduler), without a
 * Docker API: every endpoint, what a mount records at the dot and the path
 * it answers, aliases, the refusals and their words, and the unix socket
 * (content type, a second plugin on a served socket refused, the socket
 * gone once stopped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actor/actor.h"
#include "engine/engine.h"
#include "kv/kv.h"
#include "server/api/plugin.h"
#include "server/dots/dot.h"
#include "server/dots/registry.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "node_fixture.h"

#include "util/banned.h"

struct fx {
	struct test_node n; /* KV, store, engine, scheduler, registry */
	struct dm_plugin *plugin;
};

static int fx_setup(void **state)
{
	struct dm_sched_opts so = {0, 0, 2, 2};
	struct dm_plugin_opts po;
	struct dm_err err;
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	test_node_open(&fx->n, "plugin", &so, 16u << 20);
	memset(&po, 0, sizeof(po));
	po.registry = fx->n.reg;
	po.kv = fx->n.kv;
	if (dm_plugin_new(&fx->plugin, &po, &err))
		fail_msg("plugin: %s", err.msg);
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;

	dm_plugin_free(fx->plugin, 1000);
	test_node_close(&fx->n);
	free(fx);
	return 0;
}

/* One call; *status its HTTP status; the answer's JSON (a new reference). */
static json_t *call(struct fx *fx, const char *url, const char *body, unsigned *status)
{
	char *text = dm_plugin_handle(fx->plugin, url, body, strlen(body), status);
	json_t *j = json_loads(text, 0, NULL);

	if (!j)
		fail_msg("%s answered non-JSON: %s", url, text);
	free(text);
	return j;
}

/* A call that must succeed; returns its answer. */
static json_t *ok(struct fx *fx, const char *url, const char *body)
{
	unsigned status = 0;
	json_t *j = call(fx, url, body, &status);

	if (status != 200 || json_object_get(j, "Err"))
		fail_msg("%s %s: %u %s", url, body, status,
			 json_string_value(json_object_get(j, "Err")));
	return j;
}

/* A call that must fail with status and an Err containing words. */
static void refused(struct fx *fx, const char *url, const char *body, unsigned want,
		    const char *words)
{
	unsigned status = 0;
	json_t *j = call(fx, url, body, &status);
	const char *e = json_string_value(json_object_get(j, "Err"));

	if (status != want || !e || !strstr(e, words))
		fail_msg("%s %s: got %u '%s', want %u '...%s...'", url, body, status, e ? e : "",
			 want, words);
	json_decref(j);
}

static struct dm_dot_view *view_of(struct fx *fx, const char *name)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(fx->n.reg);
	struct dm_dot_name n;
	const struct dm_registry_entry *e;
	struct dm_dot_view *v = NULL;

	assert_int_equal(dm_dot_name_parse(&n, name, NULL), 0);
	e = dm_registry_find(snap, &n);
	if (e)
		v = dm_dot_handle_view(e->dot);
	dm_registry_snap_unref(snap);
	return v;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);

	return a >= b && !strcmp(s + a - b, tail);
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_activate_and_capabilities(void **state)
{
	struct fx *fx = *state;
	json_t *j = ok(fx, "/Plugin.Activate", "");

	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "Implements"), 0)),
			    "VolumeDriver");
	json_decref(j);
	j = ok(fx, "/VolumeDriver.Capabilities", "{}");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(j, "Capabilities"), "Scope")),
		"local");
	json_decref(j);
	refused(fx, "/VolumeDriver.Frobnicate", "{}", 422, "dm does not implement");
	refused(fx, "/VolumeDriver.Get", "{not json", 400, "is not a JSON object");
	refused(fx, "/VolumeDriver.Get", "{}", 400, "the request has no Name");
}

static void test_create_get_list(void **state)
{
	struct fx *fx = *state;
	struct dm_dot_view *v;
	json_t *j;

	refused(fx, "/VolumeDriver.Get", "{\"Name\":\"shop\"}", 404,
		"no such volume 'shop': there is no dot 'shop'");
	json_decref(ok(fx, "/VolumeDriver.Create", "{\"Name\":\"shop\",\"Opts\":{}}"));
	v = view_of(fx, "shop");
	assert_non_null(v);
	assert_int_equal(v->state, DM_DOT_READY);
	dm_dot_view_unref(v);
	/* again: fine */
	json_decref(ok(fx, "/VolumeDriver.Create", "{\"Name\":\"shop\"}"));
	j = ok(fx, "/VolumeDriver.Get", "{\"Name\":\"shop.db\"}");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(j, "Volume"), "Name")),
		"shop.db");
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_object_get(j, "Volume"), "Status"), "subdot")),
		"db");
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_object_get(j, "Volume"), "Status"), "branch")),
		"master");
	json_decref(j);
	/* pinned branches must exist */
	refused(fx, "/VolumeDriver.Create", "{\"Name\":\"shop@b1\"}", 404,
		"dot 'shop' has no branch 'b1'");
	refused(fx, "/VolumeDriver.Get", "{\"Name\":\"shop@b1.db\"}", 404,
		"dot 'shop' has no branch 'b1'");
	refused(fx, "/VolumeDriver.Create", "{\"Name\":\"fresh@b1\"}", 404,
		"dot 'fresh' does not exist, so it has no branch 'b1'");
	assert_null(view_of(fx, "fresh"));
	/* a pinned master is fine for a new dot, in another namespace too (listed
	 * after admin's: by namespace, then name) */
	json_decref(ok(fx, "/VolumeDriver.Create", "{\"Name\":\"bob/new@master.x\"}"));
	v = view_of(fx, "bob/new");
	assert_non_null(v);
	dm_dot_view_unref(v);
	refused(fx, "/VolumeDriver.Create", "{\"Name\":\"a..b\"}", 400,
		"invalid volume name 'a..b': more than one '.'");
	refused(fx, "/VolumeDriver.Create", "{\"Name\":\"shop\",\"Opts\":{\"size\":\"1G\"}}", 400,
		"unknown option 'size'");
	j = ok(fx, "/VolumeDriver.List", "{}");
	assert_int_equal(json_array_size(json_object_get(j, "Volumes")), 2);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(j, "Volumes"), 0), "Name")),
			    "shop");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(j, "Volumes"), 1), "Name")),
			    "bob/new");
	json_decref(j);
}

static void test_aliases(void **state)
{
	struct fx *fx = *state;
	json_t *j;

	/* podman refuses '@' in names: -o volume= gives a plain name the meaning */
	json_decref(ok(fx, "/VolumeDriver.Create",
		       "{\"Name\":\"shop-db\",\"Opts\":{\"volume\":\"shop.db\"}}"));
	j = ok(fx, "/VolumeDriver.Get", "{\"Name\":\"shop-db\"}");
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_object_get(j, "Volume"), "Status"), "dot")),
		"shop");
	json_decref(j);
	/* the same again is fine, another meaning is not */
	json_decref(ok(fx, "/VolumeDriver.Create",
		       "{\"Name\":\"shop-db\",\"Opts\":{\"volume\":\"shop.db\"}}"));
	refused(fx, "/VolumeDriver.Create", "{\"Name\":\"shop-db\",\"Opts\":{\"volume\":\"shop\"}}",
		409, "volume 'shop-db' exists and stands for 'shop.db'");
	refused(fx, "/VolumeDriver.Create", "{\"Name\":\"x\",\"Opts\":{\"volume\":\"a@\"}}", 400,
		"invalid volume name 'a@': no branch after '@'");
	refused(fx, "/VolumeDriver.Create", "{\"Name\":\"x\",\"Opts\":{\"volume\":\"shop@nob\"}}",
		404, "dot 'shop' has no branch 'nob'");
	/* Remove forgets the alias; the dot stays */
	json_decref(ok(fx, "/VolumeDriver.Remove", "{\"Name\":\"shop-db\"}"));
	refused(fx, "/VolumeDriver.Get", "{\"Name\":\"shop-db\"}", 404,
		"there is no dot 'shop-db'");
	json_decref(ok(fx, "/VolumeDriver.Remove", "{\"Name\":\"shop\"}"));
	json_decref(ok(fx, "/VolumeDriver.Get", "{\"Name\":\"shop\"}"));
}

static const char *mountpoint(json_t *j)
{
	return json_string_value(json_object_get(j, "Mountpoint"));
}

static void test_mount_unmount(void **state)
{
	struct fx *fx = *state;
	struct dm_dot_handle *h;
	struct dm_dot_req *req;
	struct dm_registry_snap *snap;
	struct dm_dot_name n;
	struct dm_dot_view *v;
	struct dm_err err;
	json_t *j, *root, *res = NULL;
	char wc[512];

	/* a missing dot is made on first use */
	j = ok(fx, "/VolumeDriver.Mount", "{\"Name\":\"shop\",\"ID\":\"c0ffee0123456789abc\"}");
	assert_true(ends_with(mountpoint(j), "/__default__"));
	assert_true(is_dir(mountpoint(j)));
	snprintf(wc, sizeof(wc), "%s", mountpoint(j));
	json_decref(j);
	j = ok(fx, "/VolumeDriver.Path", "{\"Name\":\"shop\"}");
	assert_string_equal(mountpoint(j), wc);
	json_decref(j);
	j = ok(fx, "/VolumeDriver.Get", "{\"Name\":\"shop\"}");
	assert_string_equal(mountpoint(json_object_get(j, "Volume")), wc);
	json_decref(j);
	/* the same mount again: the same answer, one record */
	j = ok(fx, "/VolumeDriver.Mount", "{\"Name\":\"shop\",\"ID\":\"c0ffee0123456789abc\"}");
	assert_string_equal(mountpoint(j), wc);
	json_decref(j);
	root = ok(fx, "/VolumeDriver.Mount",
		  "{\"Name\":\"shop.__root__\",\"ID\":\"c0ffee0123456789abc\"}");
	assert_true(is_dir(mountpoint(root)));
	assert_int_equal(strncmp(wc, mountpoint(root), strlen(mountpoint(root))), 0);
	assert_string_equal(wc + strlen(mountpoint(root)), "/__default__");
	j = ok(fx, "/VolumeDriver.Mount", "{\"Name\":\"shop.db\",\"ID\":\"other\"}");
	assert_true(ends_with(mountpoint(j), "/db"));
	json_decref(j);
	v = view_of(fx, "shop");
	assert_int_equal(v->nmounts, 3);
	for (size_t i = 0; i < v->nmounts; i++) {
		/* no Docker API: named by the short mount id, and nothing to stop */
		assert_true(!strcmp(v->mounts[i].container, "c0ffee012345") ||
			    !strcmp(v->mounts[i].container, "other"));
		assert_string_equal(v->mounts[i].container_id, "");
		if (!strcmp(v->mounts[i].subdot, "db"))
			assert_string_equal(v->mounts[i].volume, "shop.db");
	}
	dm_dot_view_unref(v);

	/* in use: no delete */
	assert_int_equal(dm_dot_name_parse(&n, "shop", NULL), 0);
	snap = dm_registry_snapshot(fx->n.reg);
	h = dm_registry_find(snap, &n)->dot;
	dm_dot_handle_ref(h);
	dm_registry_snap_unref(snap);
	req = dm_dot_req_new(DM_DOT_OP_DELETE);
	assert_int_equal(dm_dot_call(&res, h, req, 5000, &err), DM_EBUSY);
	assert_non_null(strstr(err.msg, "in use by container"));

	json_decref(ok(fx, "/VolumeDriver.Unmount",
		       "{\"Name\":\"shop\",\"ID\":\"c0ffee0123456789abc\"}"));
	json_decref(ok(fx, "/VolumeDriver.Unmount",
		       "{\"Name\":\"shop.__root__\",\"ID\":\"c0ffee0123456789abc\"}"));
	json_decref(ok(fx, "/VolumeDriver.Unmount", "{\"Name\":\"shop.db\",\"ID\":\"other\"}"));
	/* twice, or one never mounted (dmd restarted): fine */
	json_decref(ok(fx, "/VolumeDriver.Unmount", "{\"Name\":\"shop.db\",\"ID\":\"other\"}"));
	v = view_of(fx, "shop");
	assert_int_equal(v->nmounts, 0);
	dm_dot_view_unref(v);
	j = ok(fx, "/VolumeDriver.Path", "{\"Name\":\"shop\"}");
	assert_string_equal(mountpoint(j), "");
	json_decref(j);
	json_decref(root);

	/* a missing pinned branch is refused at mount too */
	refused(fx, "/VolumeDriver.Mount", "{\"Name\":\"shop@b2\",\"ID\":\"x\"}", 404,
		"dot 'shop' has no branch 'b2'");
	refused(fx, "/VolumeDriver.Mount", "{\"Name\":\"shop\"}", 400, "the request has no ID");

	/* unused now: delete works, and the plugin sees it gone */
	req = dm_dot_req_new(DM_DOT_OP_DELETE);
	assert_int_equal(dm_dot_call(&res, h, req, 5000, &err), 0);
	json_decref(res);
	dm_dot_handle_unref(h);
	refused(fx, "/VolumeDriver.Get", "{\"Name\":\"shop\"}", 404, "no such volume 'shop'");
	/* the dot tells the registry it is gone after answering the delete;
	 * let that land before the teardown frees the registry */
	for (int i = 0; i < 500 && (v = view_of(fx, "shop")) != NULL; i++) {
		dm_dot_view_unref(v);
		usleep(10000);
	}
	assert_null(view_of(fx, "shop"));
}

/* ---- over the socket ---- */

static size_t collect(char *data, size_t size, size_t n, void *p)
{
	return dm_buf_add(p, data, size * n) ? 0 : size * n;
}

static void test_socket(void **state)
{
	struct fx *fx = *state;
	struct dm_plugin_opts po;
	struct dm_plugin *second = NULL;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	char sock[128];
	char *ctype = NULL;
	long status = 0;
	CURL *c;

	snprintf(sock, sizeof(sock), "%s/run/plugins/dm.sock", fx->n.dir);
	if (dm_plugin_listen(fx->plugin, NULL, sock, &err))
		fail_msg("listen: %s", err.msg);
	c = curl_easy_init();
	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_URL, "http://plugin/Plugin.Activate");
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
	assert_int_equal(status, 200);
	assert_string_equal(ctype, DM_PLUGIN_CONTENT_TYPE);
	assert_non_null(b.data);
	assert_non_null(strstr((const char *)b.data, "VolumeDriver"));
	/* GET is not the protocol */
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	assert_int_equal(status, 405);
	curl_easy_cleanup(c);
	dm_buf_release(&b);
	{
		struct stat st;

		assert_int_equal(stat(sock, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}

	/* a second plugin on a served socket is refused, not a thief */
	memset(&po, 0, sizeof(po));
	po.registry = fx->n.reg;
	po.kv = fx->n.kv;
	assert_int_equal(dm_plugin_new(&second, &po, &err), 0);
	assert_int_equal(dm_plugin_listen(second, NULL, sock, &err), DM_EBUSY);
	assert_non_null(strstr(err.msg, "is served by another process"));
	dm_plugin_free(second, 0);

	/* stopped: the socket is gone, so runtimes fail at once */
	dm_plugin_quiesce(fx->plugin);
	assert_int_equal(access(sock, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_activate_and_capabilities, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_create_get_list, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_aliases, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_mount_unmount, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_socket, fx_setup, fx_teardown),
	};

	dm_log_setup(stderr, DM_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
