/*
 * fuzz_names.c - libFuzzer target for the names users type, which dm and
 * dmd both read (util/names.h, util/volname.h): dot names
 * ([namespace/]name), branch names, commit refs (HEAD, HEAD^^, HEAD~N, ids
 * and prefixes), metadata keys, and volume names as containers give them
 * ([NS/]DOT[@BRANCH][.SUBDOT]). The input is one name (a NUL ends it
 * early, as it would a C string).
 *
 * Whatever a parser accepts must hold its promises: name parts of
 * 1..DM_NAME_PART_MAX characters of [A-Za-z0-9_-], a dot name and a
 * volume name that read back the same from their own text, a relative ref
 * only for a HEAD form, an id ref that points into the input; a refusal
 * is always DM_EINVAL with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/names.h"
#include "util/volname.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_part(const char *s)
{
	if (!dm_name_part_valid(s, strlen(s)))
		abort();
}

static void check_refusal(int rc, const struct dm_err *err)
{
	if (rc != DM_EINVAL || err->code != DM_EINVAL || !err->msg[0])
		abort();
}

static void fuzz_dot_name(const char *s)
{
	struct dm_dot_name n, again;
	char text[DM_DOT_NAME_TEXT_MAX];
	struct dm_err err;
	int rc = dm_dot_name_parse(&n, s, &err);

	if (rc) {
		check_refusal(rc, &err);
		return;
	}
	check_part(n.ns);
	check_part(n.name);
	dm_dot_name_text(text, &n);
	if (dm_dot_name_parse(&again, text, &err) || strcmp(again.ns, n.ns) ||
	    strcmp(again.name, n.name))
		abort();
}

static void fuzz_branch(const char *s)
{
	struct dm_err err;
	int rc = dm_branch_name_check(s, &err);

	if (rc)
		check_refusal(rc, &err);
	else
		check_part(s);
	if (!rc != dm_name_part_valid(s, strlen(s)))
		abort();
}

static void fuzz_ref(const char *s)
{
	struct dm_ref ref;
	struct dm_err err;
	int rc = dm_ref_parse(&ref, s, &err);

	if (rc) {
		check_refusal(rc, &err);
		return;
	}
	if (ref.relative) {
		if (strncmp(s, "HEAD", 4))
			abort();
	} else if (!ref.id || !ref.id[0] || ref.id < s || ref.id > s + strlen(s)) {
		abort();
	}
}

static void fuzz_volname(const char *s)
{
	struct dm_volname v, again;
	char text[DM_VOLNAME_MAX + 1];
	struct dm_err err;
	int rc = dm_volname_parse(&v, s, &err);

	if (rc) {
		check_refusal(rc, &err);
		return;
	}
	check_part(v.dot.ns);
	check_part(v.dot.name);
	if (v.branch[0])
		check_part(v.branch);
	if (strcmp(v.subdot, DM_SUBDOT_ROOT) && strcmp(v.subdot, DM_SUBDOT_DEFAULT))
		check_part(v.subdot);
	dm_volname_text(text, sizeof(text), &v);
	if (strnlen(text, sizeof(text)) == sizeof(text))
		abort();
	if (dm_volname_parse(&again, text, &err) || memcmp(&again.dot, &v.dot, sizeof(v.dot)) ||
	    strcmp(again.branch, v.branch) || strcmp(again.subdot, v.subdot))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct dm_err err;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_dot_name(s);
	fuzz_branch(s);
	fuzz_ref(s);
	fuzz_volname(s);
	if (dm_meta_key_not_reserved(s, &err) == 0 &&
	    !strncmp(s, DM_META_RESERVED_PREFIX, strlen(DM_META_RESERVED_PREFIX)))
		abort();
	free(s);
	return 0;
}
