/*
 * qgroup.h - a size limit on a btrfs working copy, as a btrfs qgroup limit
 * on the referenced bytes of its subvolume (src/engine only: btrfs.c).
 *
 * A branch's limit is recorded in its directory (ROOT/<dot>/<branch>/limit,
 * decimal bytes), because a qgroup belongs to one subvolume and a reset or
 * a receive swaps in a new one: the engine applies the recorded limit to
 * each subvolume it makes the working copy from a snapshot
 * (dm_qgroup_reapply) before it is the working copy, so none is ever the
 * working copy without it, or with another branch's.
 */
#ifndef DM_ENGINE_QGROUP_H
#define DM_ENGINE_QGROUP_H

#include <stdint.h>

struct dm_err;

/*
 * Records bytes as the limit of the branch whose directory is branch_dir
 * and applies it to subvol (its working copy); 0 removes the limit. Turns
 * quotas on for the whole file system the first time a limit is set there
 * (and waits for the rescan that follows). DM_EUNSUPPORTED when the kernel
 * has no quotas for it.
 */
int dm_qgroup_set(const char *branch_dir, const char *subvol, uint64_t bytes, struct dm_err *err);

/* Applies the limit recorded in branch_dir to subvol, or lifts the one
 * subvol has when none is recorded (a snapshot starts with its source's). */
int dm_qgroup_reapply(const char *branch_dir, const char *subvol, struct dm_err *err);

#endif
