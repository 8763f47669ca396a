/*
 * fuzz_plugin.c - libFuzzer target for what Docker and podman send dmd's
 * volume plugin (server/api/plugin.h: POST /VolumeDriver.* with a JSON
 * body), run against a real node (tests/fuzz/fuzz_node.h) that holds one
 * dot, admin/shop. The input's first byte picks the endpoint (mod 10: the
 * nine of the protocol and one that does not exist), the rest is the
 * body.
 *
 * Every call must be answered: a JSON object, {"Err": message} with a 4xx
 * or 5xx status, or an answer with status 200. Create and Mount make the
 * dot a volume names when it is missing, so after each input every dot
 * but shop is deleted, and shop too once a mount holds it (its mounts
 * ended first), to be made again before the next input: each input starts
 * from the same node.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_node.h"
#include "server/api/plugin.h"
#include "server/dots/dot.h"
#include "server/dots/registry.h"
#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CALL_MS 10000

static const char *const urls[] = {
	"/Plugin.Activate",    "/VolumeDriver.Create",  "/VolumeDriver.Remove",
	"/VolumeDriver.Get",   "/VolumeDriver.List",    "/VolumeDriver.Path",
	"/VolumeDriver.Mount", "/VolumeDriver.Unmount", "/VolumeDriver.Capabilities",
	"/VolumeDriver.Nope",
};

static struct dm_plugin *plugin;

static void plugin_free(void)
{
	dm_plugin_free(plugin, 1000);
}

/* shop, made when missing */
static void ensure_shop(struct test_node *n)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(n->reg);
	struct dm_dot_name name;
	struct dm_err err;
	json_t *made = NULL;
	bool have;

	if (dm_dot_name_parse(&name, "shop", &err))
		abort();
	have = dm_registry_find(snap, &name) != NULL;
	dm_registry_snap_unref(snap);
	if (!have && dm_registry_create(n->reg, &made, &name, NULL, CALL_MS, &err)) {
		fprintf(stderr, "fuzz_plugin: cannot make shop: %s\n", err.msg);
		abort();
	}
	json_decref(made);
}

/* Deletes every dot but an unmounted shop. */
static void clean(struct test_node *n)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(n->reg);

	for (size_t i = 0; i < snap->n; i++) {
		struct dm_dot_handle *h = snap->e[i].dot;
		struct dm_dot_view *v = dm_dot_handle_view(h);
		bool keep = !strcmp(snap->e[i].name.ns, "admin") &&
			    !strcmp(snap->e[i].name.name, "shop") && !v->nruntime_mounts &&
			    !v->nmounts;
		json_t *res = NULL;
		struct dm_err err;

		if (keep) {
			dm_dot_view_unref(v);
			continue;
		}
		for (size_t k = 0; k < v->nruntime_mounts; k++) {
			struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_UNMOUNT);

			req->mount = dm_xcalloc(1, sizeof(*req->mount));
			snprintf(req->mount->mount_id, sizeof(req->mount->mount_id), "%s",
				 v->runtime_mounts[k].key);
			if (dm_dot_call(&res, h, req, CALL_MS, &err)) {
				fprintf(stderr, "fuzz_plugin: cannot unmount: %s\n", err.msg);
				abort();
			}
			json_decref(res);
			res = NULL;
		}
		dm_dot_view_unref(v);
		if (dm_dot_call(&res, h, dm_dot_req_new(DM_DOT_OP_DELETE), CALL_MS, &err)) {
			fprintf(stderr, "fuzz_plugin: cannot delete a dot: %s\n", err.msg);
			abort();
		}
		json_decref(res);
	}
	dm_registry_snap_unref(snap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct test_node *n = fuzz_node();
	unsigned status = 0;
	json_t *answer;
	char *text;

	if (size < 1)
		return 0;
	if (!plugin) {
		struct dm_plugin_opts po;
		struct dm_err err;

		memset(&po, 0, sizeof(po));
		po.registry = n->reg;
		po.kv = n->kv;
		po.call_ms = CALL_MS;
		if (dm_plugin_new(&plugin, &po, &err))
			abort();
		atexit(plugin_free);
	}
	ensure_shop(n);
	text = dm_plugin_handle(plugin, urls[data[0] % 10], (const char *)data + 1, size - 1,
				&status);
	answer = text ? json_loads(text, 0, NULL) : NULL;
	if (!json_is_object(answer))
		abort();
	if (status == 200 ? json_object_get(answer, "Err") != NULL
			  : (status < 400 || status > 599 ||
			     !json_is_string(json_object_get(answer, "Err"))))
		abort();
	json_decref(answer);
	free(text);
	clean(n);
	return 0;
}
