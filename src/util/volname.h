/*
 * volname.h - the names containers give dm volumes (DESIGN.md §1):
 *
 *     [NS/]DOT[@BRANCH][.SUBDOT]
 *
 * shop            dot admin/shop, follows its current branch, subdot __default__
 * bob/shop@b1     dot bob/shop, pinned to branch b1
 * shop.db         subdot db of shop (a directory of the working copy)
 * shop.__root__   the whole working copy
 *
 * Shared by dmd's volume plugin and the CLI, so both refuse a bad name with
 * the same words: "invalid volume name 'a@': no branch after '@'".
 */
#ifndef DM_UTIL_VOLNAME_H
#define DM_UTIL_VOLNAME_H

#include <stddef.h>

#include "util/names.h"

struct dm_err;

#define DM_SUBDOT_DEFAULT "__default__"
#define DM_SUBDOT_ROOT    "__root__"

/* The longest volume name accepted: every part at its longest. */
#define DM_VOLNAME_MAX (4 * DM_NAME_PART_MAX + 3)

struct dm_volname {
	struct dm_dot_name dot;            /* namespace defaults to "admin" */
	char branch[DM_NAME_PART_MAX + 1]; /* "" when the volume follows the current branch */
	char subdot[DM_NAME_PART_MAX + 1]; /* DM_SUBDOT_DEFAULT, DM_SUBDOT_ROOT or a name */
};

/* Parses s; DM_EINVAL "invalid volume name 'S': WHY" when it is not one. */
int dm_volname_parse(struct dm_volname *out, const char *s, struct dm_err *err);

/* The shortest text of v ("shop" rather than "admin/shop.__default__"),
 * into out (at least DM_VOLNAME_MAX + 1 bytes); returns out. */
const char *dm_volname_text(char *out, size_t size, const struct dm_volname *v);

#endif
