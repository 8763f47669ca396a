/*
 * pool.h - where the btrfs engine keeps its subvolumes: a btrfs file system
 * that is either an existing mount (`--pool-dir`) or a file that dmd
 * formats and loop-mounts itself (`--pool-size`, as dotmesh did with ZFS).
 *
 * A loop pool is an image file (sparse) formatted with mkfs.btrfs and
 * mounted through a loop device that the kernel frees by itself when the
 * file system is unmounted (LO_FLAGS_AUTOCLEAR), so unmounting is the only
 * cleanup there is.
 */
#ifndef DM_ENGINE_POOL_H
#define DM_ENGINE_POOL_H

#include <stdbool.h>
#include <stdint.h>

struct dm_err;

/* Smallest loop pool we make (mkfs.btrfs needs about 110 MiB). */
#define DM_POOL_MIN_SIZE (256ull << 20)

/* Parses "2G", "512M", "1T", "1.5G" is refused; K, M, G, T with an
 * optional "iB" or "B" (all powers of 1024), or plain bytes. */
int dm_pool_parse_size(uint64_t *out, const char *s, struct dm_err *err);

/* 0 when dir is a directory on a btrfs file system; otherwise
 * DM_EUNSUPPORTED (or the errno's code) saying what it is instead. */
int dm_pool_check_dir(const char *dir, struct dm_err *err);

/* 0 when this machine can make and mount a loop pool; otherwise says
 * exactly what is missing: root, btrfs in the kernel, loop devices, or
 * mkfs.btrfs. */
int dm_pool_can_loop(struct dm_err *err);

/* Makes image (sparse, size bytes; must not exist), formats it and mounts
 * it at mnt (made when missing). Nothing is left behind on failure. */
int dm_pool_create(const char *image, const char *mnt, uint64_t size, struct dm_err *err);

/* Mounts image at mnt unless a btrfs file system is mounted there already. */
int dm_pool_mount(const char *image, const char *mnt, struct dm_err *err);

/* true when a file system other than its parent's is mounted at mnt. */
bool dm_pool_is_mounted(const char *mnt);

/* Unmounts mnt when something is mounted there (its loop device goes with
 * it). A busy file system is detached lazily, with a warning in the log. */
int dm_pool_unmount(const char *mnt, struct dm_err *err);

#endif
