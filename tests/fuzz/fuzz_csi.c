/*
 * fuzz_csi.c - libFuzzer target for what a CSI client sends dmd (server/
 * api/csi/): a gRPC request body (grpc.h: the 5-byte prefix and one
 * message) decoded as the request of one of the driver's methods (the
 * input's first byte picks it), and a message encoded for grpc-message.
 *
 * Every input must be either refused with a gRPC code and a message, or
 * unframed to a message that lies inside the input; a decoded request must
 * pack again to at most the bytes it came from plus what protobuf-c adds
 * back for defaults (no growth past a small bound).
 */
#include <protobuf-c/protobuf-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/api/csi/csi.pb-c.h"
#include "server/api/csi/grpc.h"
#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const requests[] = {
	&csi__v1__get_plugin_info_request__descriptor,
	&csi__v1__probe_request__descriptor,
	&csi__v1__create_volume_request__descriptor,
	&csi__v1__delete_volume_request__descriptor,
	&csi__v1__validate_volume_capabilities_request__descriptor,
	&csi__v1__list_volumes_request__descriptor,
	&csi__v1__get_capacity_request__descriptor,
	&csi__v1__create_snapshot_request__descriptor,
	&csi__v1__delete_snapshot_request__descriptor,
	&csi__v1__list_snapshots_request__descriptor,
	&csi__v1__node_publish_volume_request__descriptor,
	&csi__v1__node_unpublish_volume_request__descriptor,
	&csi__v1__node_get_volume_stats_request__descriptor,
	&csi__v1__node_get_info_request__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const size_t n = sizeof(requests) / sizeof(requests[0]);
	const uint8_t *msg = NULL;
	size_t len = 0;
	struct dm_err err;
	struct dm_buf enc = DM_BUF_INIT;
	char *text;
	int code;

	if (size < 1)
		return 0;
	code = dm_grpc_unframe(data + 1, size - 1, &msg, &len, &err);
	if (code != DM_GRPC_OK) {
		if (!err.msg[0] || code < 0 || code > DM_GRPC_UNAVAILABLE)
			abort();
	} else {
		ProtobufCMessage *m;

		if (msg < data + 1 || msg + len > data + size)
			abort();
		m = protobuf_c_message_unpack(requests[data[0] % n], NULL, len, msg);
		if (m) {
			size_t packed = protobuf_c_message_get_packed_size(m);
			uint8_t *out = malloc(packed ? packed : 1);

			if (!out || protobuf_c_message_pack(m, out) != packed)
				abort();
			free(out);
			protobuf_c_message_free_unpacked(m, NULL);
		}
	}
	/* grpc-message: any bytes, percent-encoded to printable ASCII */
	text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	if (dm_grpc_percent_encode(&enc, text) == 0)
		for (size_t i = 0; i + 1 < enc.len; i++)
			if (enc.data[i] < 0x20 || enc.data[i] > 0x7e)
				abort();
	free(text);
	dm_buf_release(&enc);
	return 0;
}
