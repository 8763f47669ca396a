/*
 * fuzz_object.c - libFuzzer target for the file, tree and commit decoders.
 *
 * Property checked beyond "no crash, no leak, no UB": the encoding is
 * canonical, so whatever decodes must re-encode to exactly the input bytes;
 * and the walker of references (dm_object_refs) names only objects of the
 * kinds a file, tree or commit can name, a chunk always with its length.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/object.h"
#include "util/err.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_or_die(const struct dm_buf *b, const uint8_t *data, size_t size)
{
	if (b->len != size || memcmp(b->data, data, size) != 0)
		abort();
}

static int check_ref(void *ctx, const struct dm_obj_ref *ref)
{
	int from = *(const int *)ctx;

	if (!ref->id || (ref->kind == DM_OBJ_CHUNK) != (ref->len > 0))
		abort();
	if ((from == DM_OBJ_FILE && ref->kind != DM_OBJ_CHUNK) ||
	    (from == DM_OBJ_TREE && ref->kind != DM_OBJ_FILE && ref->kind != DM_OBJ_TREE) ||
	    (from == DM_OBJ_COMMIT && ref->kind != DM_OBJ_TREE))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	struct dm_file f;
	struct dm_tree t;
	struct dm_commit c;

	if (dm_file_decode(&f, data, size, &err) == 0) {
		if (dm_file_encode(&b, &f, &err))
			abort();
		same_or_die(&b, data, size);
		dm_file_release(&f);
	}
	dm_buf_reset(&b);
	if (dm_tree_decode(&t, data, size, &err) == 0) {
		if (dm_tree_encode(&b, &t, &err))
			abort();
		same_or_die(&b, data, size);
		dm_tree_release(&t);
	}
	dm_buf_reset(&b);
	if (dm_commit_decode(&c, data, size, &err) == 0) {
		if (dm_commit_encode(&b, &c, &err))
			abort();
		same_or_die(&b, data, size);
		dm_commit_release(&c);
	}
	for (int kind = DM_OBJ_FILE; kind <= DM_OBJ_COMMIT; kind++)
		dm_object_refs(kind, data, size, check_ref, &kind, &err);
	dm_buf_release(&b);
	return 0;
}
