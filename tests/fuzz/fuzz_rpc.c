/*
 * fuzz_rpc.c - libFuzzer target for JSON-RPC requests (server/api/rpc.c)
 * and the parameter checks of every method (rpc_*.c), run against a real
 * node with no dots (tests/fuzz/fuzz_node.h). The input's first byte picks
 * the caller (even: the admin, odd: a user "alice"), the rest is the body
 * of a POST /rpc.
 *
 * Methods run for real, except those that would make something or reach
 * another machine once their parameters pass (dots.create, users.add,
 * users.reset_key, transfers.pull, which may dial the remote it names)
 * and those that need the transfers actor (transfers.show,
 * transfers.list): those are dispatched, with the method's name, admin
 * flag and deadline, to a stub that answers {} (their parameters are
 * checked by the helpers the other methods share). With no dot, every
 * method that names one ends at "no such dot" once its parameters pass.
 *
 * Every request must get one reply: a JSON object with "jsonrpc":"2.0",
 * an id, and exactly one of result and error, an error having an integer
 * code, a message and data.code, a name from dm's table of errors.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_node.h"
#include "server/api/api.h"
#include "server/api/rpc.h"
#include "util/err.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const stubbed[] = {
	"dots.create",    "users.add",      "users.reset_key",
	"transfers.pull", "transfers.show", "transfers.list",
};

static int stub(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	if (!json_is_object(params) || !ctx->caller)
		abort();
	*result = json_object();
	return 0;
}

/* The server's tables, with the stubbed methods' handlers replaced. */
static struct dm_rpc_method methods[5][32];
static const struct dm_rpc_method *tables[6];
static struct dm_api_env env;

static void setup(void)
{
	const struct dm_rpc_method *const real[5] = {
		dm_rpc_server_methods,   dm_rpc_dot_methods,     dm_rpc_user_methods,
		dm_rpc_transfer_methods, dm_rpc_cluster_methods,
	};
	struct test_node *n = fuzz_node();

	for (size_t t = 0; t < 5; t++) {
		size_t i;

		for (i = 0; real[t][i].name; i++) {
			if (i + 1 >= sizeof(methods[t]) / sizeof(methods[t][0]))
				abort();
			methods[t][i] = real[t][i];
			for (size_t s = 0; s < sizeof(stubbed) / sizeof(stubbed[0]); s++)
				if (!strcmp(real[t][i].name, stubbed[s]))
					methods[t][i].handler = stub;
		}
		tables[t] = methods[t];
	}
	env.kv = n->kv;
	env.store = n->store;
	env.registry = n->reg;
	env.node_id = "0b5e0f6c-3a8d-4c1e-9f7a-2d4b6c8e0a1f";
	env.cluster_id = "";
	env.kv_root = "";
	env.kv_name = "lmdb";
	env.etcd_endpoints = "";
	env.advertise = "https://127.0.0.1:1";
	env.address = "127.0.0.1:1";
}

static void check_reply(const char *text)
{
	json_t *r = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	json_t *result, *error, *code, *name;

	if (!json_is_object(r) || !json_is_string(json_object_get(r, "jsonrpc")) ||
	    strcmp(json_string_value(json_object_get(r, "jsonrpc")), "2.0") ||
	    !json_object_get(r, "id"))
		abort();
	result = json_object_get(r, "result");
	error = json_object_get(r, "error");
	if (!result == !error)
		abort();
	if (error) {
		code = json_object_get(error, "code");
		name = json_object_get(json_object_get(error, "data"), "code");
		if (!json_is_integer(code) || !json_is_string(json_object_get(error, "message")) ||
		    !json_is_string(name))
			abort();
	}
	json_decref(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct dm_caller admin = {"admin", true, false, ""};
	static const struct dm_caller alice = {"alice", false, false, ""};
	char *reply;
	int status = 0;

	if (size < 1)
		return 0;
	if (!tables[0])
		setup();
	reply = dm_rpc_dispatch_in(tables, &env, data[0] % 2 ? &alice : &admin,
				   (const char *)data + 1, size - 1, &status);
	if (!reply || status != 200)
		abort();
	check_reply(reply);
	free(reply);
	return 0;
}
